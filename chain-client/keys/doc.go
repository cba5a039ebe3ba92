/*
Copyright 2026 The aivm-operator Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

// Package keys holds the provider's secp256k1 account key: loading it from a
// hex private key, a BIP39 mnemonic (BIP32/BIP44 derivation, Cosmos coin type
// 118) or a Kubernetes-Secret-style directory, generating a new one, signing
// and verifying the way a Cosmos SDK chain does (64-byte r||s, low-S, over the
// SHA-256 of the message), and deriving bech32 account addresses.
//
// A *Key never prints its private part: String, GoString and Format show only
// the public key, so a key that slips into a log line or an error stays secret.
package keys
