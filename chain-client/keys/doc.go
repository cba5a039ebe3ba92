// Package keys holds the provider's secp256k1 account key: loading it from a
// hex private key, a BIP39 mnemonic (BIP32/BIP44 derivation, Cosmos coin type
// 118) or a Kubernetes-Secret-style directory, generating a new one, signing
// and verifying the way a Cosmos SDK chain does (64-byte r||s, low-S, over the
// SHA-256 of the message), and deriving bech32 account addresses.
//
// A *Key never prints its private part: String, GoString and Format show only
// the public key, so a key that slips into a log line or an error stays secret.
package keys
