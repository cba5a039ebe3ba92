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

package keys

import (
	"crypto/sha256"
	"fmt"

	"github.com/cosmos/btcutil/bech32"
	"golang.org/x/crypto/ripemd160" //nolint:staticcheck // Cosmos addresses are defined with RIPEMD-160.
)

// DefaultPrefix is the bech32 prefix of Nesa account addresses.
const DefaultPrefix = "nesa"

// AccAddressSize is the length of a Cosmos secp256k1 account address.
const AccAddressSize = 20

// AccAddressFromPubKey returns ripemd160(sha256(pub)), the Cosmos account
// address of a compressed secp256k1 public key.
func AccAddressFromPubKey(pub []byte) []byte {
	sh := sha256.Sum256(pub)
	r := ripemd160.New()
	r.Write(sh[:])
	return r.Sum(nil)
}

// EncodeAddress bech32-encodes a raw address with prefix (DefaultPrefix when
// empty).
func EncodeAddress(prefix string, raw []byte) (string, error) {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	s, err := bech32.EncodeFromBase256(prefix, raw)
	if err != nil {
		return "", fmt.Errorf("encode address with prefix %q: %w", prefix, err)
	}
	return s, nil
}

// AddressFromPubKey returns the bech32 account address of a compressed
// public key.
func AddressFromPubKey(prefix string, pub []byte) (string, error) {
	if len(pub) != PubKeySize {
		return "", fmt.Errorf("public key must be %d bytes, got %d", PubKeySize, len(pub))
	}
	return EncodeAddress(prefix, AccAddressFromPubKey(pub))
}

// DecodeAddress parses a bech32 account address, returning its prefix and the
// 20-byte raw address.
func DecodeAddress(addr string) (prefix string, raw []byte, err error) {
	prefix, raw, err = bech32.DecodeToBase256(addr)
	if err != nil {
		return "", nil, fmt.Errorf("decode address %q: %w", addr, err)
	}
	if len(raw) != AccAddressSize {
		return "", nil, fmt.Errorf("decode address %q: %d bytes, want %d", addr, len(raw), AccAddressSize)
	}
	return prefix, raw, nil
}

// ValidateAddress checks that addr is a bech32 account address with the
// given prefix.
func ValidateAddress(prefix, addr string) error {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	p, _, err := DecodeAddress(addr)
	if err != nil {
		return err
	}
	if p != prefix {
		return fmt.Errorf("address %q has prefix %q, want %q", addr, p, prefix)
	}
	return nil
}
