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
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/cosmos/go-bip39"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
)

const (
	// PrivKeySize is the length of a raw secp256k1 private key.
	PrivKeySize = 32
	// PubKeySize is the length of a compressed secp256k1 public key.
	PubKeySize = 33
	// SignatureSize is the length of a Cosmos secp256k1 signature (r||s).
	SignatureSize = 64
	// MnemonicEntropyBits is the entropy of a generated mnemonic (24 words).
	MnemonicEntropyBits = 256
)

// Key is a secp256k1 account key. The zero value is not usable; build one
// with FromHex, FromMnemonic, Generate or Load. A Key is safe for concurrent
// use: signing does not mutate it.
type Key struct {
	priv *secp256k1.PrivateKey
	pub  []byte
}

// newKey wraps a raw 32-byte private key.
func newKey(raw []byte) (*Key, error) {
	if len(raw) != PrivKeySize {
		return nil, fmt.Errorf("private key must be %d bytes, got %d", PrivKeySize, len(raw))
	}
	var s secp256k1.ModNScalar
	if overflow := s.SetByteSlice(raw); overflow || s.IsZero() {
		return nil, errors.New("private key is not a valid secp256k1 scalar")
	}
	priv := secp256k1.NewPrivateKey(&s)
	return &Key{priv: priv, pub: priv.PubKey().SerializeCompressed()}, nil
}

// FromHex loads a key from its hex-encoded 32-byte private key, the form
// Nesa's node setup keeps. Surrounding whitespace and a 0x prefix are
// accepted. The error never echoes the input.
func FromHex(s string) (*Key, error) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	if len(s) != 2*PrivKeySize {
		return nil, fmt.Errorf("hex private key must be %d hex characters, got %d", 2*PrivKeySize, len(s))
	}
	raw, err := hex.DecodeString(s)
	if err != nil {
		return nil, errors.New("hex private key contains non-hex characters")
	}
	return newKey(raw)
}

// FromMnemonic derives a key from a BIP39 mnemonic (empty passphrase) at the
// BIP32 path hdPath; an empty hdPath means DefaultHDPath. The error never
// echoes the mnemonic.
func FromMnemonic(mnemonic, hdPath string) (*Key, error) {
	return FromMnemonicWithPassphrase(mnemonic, "", hdPath)
}

// FromMnemonicWithPassphrase is FromMnemonic with a BIP39 passphrase.
func FromMnemonicWithPassphrase(mnemonic, passphrase, hdPath string) (*Key, error) {
	if hdPath == "" {
		hdPath = DefaultHDPath
	}
	mnemonic = strings.Join(strings.Fields(mnemonic), " ")
	if !bip39.IsMnemonicValid(mnemonic) {
		return nil, errors.New("mnemonic is not a valid BIP39 English mnemonic (word list or checksum)")
	}
	seed, err := bip39.NewSeedWithErrorChecking(mnemonic, passphrase)
	if err != nil {
		return nil, errors.New("mnemonic is not a valid BIP39 English mnemonic")
	}
	raw, err := derivePath(seed, hdPath)
	if err != nil {
		return nil, fmt.Errorf("derive key: %w", err)
	}
	return newKey(raw[:])
}

// Generate creates a new random key.
func Generate() (*Key, error) {
	priv, err := secp256k1.GeneratePrivateKey()
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return &Key{priv: priv, pub: priv.PubKey().SerializeCompressed()}, nil
}

// NewMnemonic returns a fresh 24-word BIP39 mnemonic.
func NewMnemonic() (string, error) {
	entropy, err := bip39.NewEntropy(MnemonicEntropyBits)
	if err != nil {
		return "", fmt.Errorf("generate entropy: %w", err)
	}
	m, err := bip39.NewMnemonic(entropy)
	if err != nil {
		return "", fmt.Errorf("encode mnemonic: %w", err)
	}
	return m, nil
}

// PubKeyBytes returns the 33-byte compressed public key.
func (k *Key) PubKeyBytes() []byte {
	return append([]byte(nil), k.pub...)
}

// AccAddress returns the 20-byte account address, ripemd160(sha256(pubkey)).
func (k *Key) AccAddress() []byte {
	return AccAddressFromPubKey(k.pub)
}

// Address returns the bech32 account address with the given human-readable
// prefix; an empty prefix means DefaultPrefix.
func (k *Key) Address(prefix string) (string, error) {
	return EncodeAddress(prefix, k.AccAddress())
}

// Sign returns the 64-byte low-S secp256k1 signature r||s over sha256(msg),
// as Cosmos SDK chains expect. Signing is deterministic (RFC 6979).
func (k *Key) Sign(msg []byte) []byte {
	h := sha256.Sum256(msg)
	return k.SignHash(h[:])
}

// SignHash signs a 32-byte digest the way Sign does.
func (k *Key) SignHash(hash []byte) []byte {
	sig := ecdsa.Sign(k.priv, hash)
	r, s := sig.R(), sig.S()
	out := make([]byte, SignatureSize)
	r.PutBytesUnchecked(out[:32])
	s.PutBytesUnchecked(out[32:])
	return out
}

// PrivKeyHex returns the hex-encoded private key. Only a key export should
// call it; everything else keeps the secret inside the Key.
func (k *Key) PrivKeyHex() string {
	b := k.priv.Serialize()
	return hex.EncodeToString(b)
}

// VerifySignature reports whether sig is a valid 64-byte low-S signature by
// the compressed public key pub over sha256(msg). High-S signatures are
// rejected, as a Cosmos chain rejects them.
func VerifySignature(pub, msg, sig []byte) bool {
	if len(sig) != SignatureSize || len(pub) != PubKeySize {
		return false
	}
	pk, err := secp256k1.ParsePubKey(pub)
	if err != nil {
		return false
	}
	var r, s secp256k1.ModNScalar
	if overflow := r.SetByteSlice(sig[:32]); overflow || r.IsZero() {
		return false
	}
	if overflow := s.SetByteSlice(sig[32:]); overflow || s.IsZero() {
		return false
	}
	if s.IsOverHalfOrder() {
		return false
	}
	h := sha256.Sum256(msg)
	return ecdsa.NewSignature(&r, &s).Verify(h[:], pk)
}

// IsLowS reports whether the S half of a 64-byte signature is at most half
// the curve order.
func IsLowS(sig []byte) bool {
	if len(sig) != SignatureSize {
		return false
	}
	var s secp256k1.ModNScalar
	if overflow := s.SetByteSlice(sig[32:]); overflow {
		return false
	}
	return !s.IsOverHalfOrder()
}

// String describes the key by its public key only.
func (k Key) String() string {
	return "keys.Key{pub:" + hex.EncodeToString(k.pub) + ", priv:REDACTED}"
}

// GoString is String, so %#v never shows the private key.
func (k Key) GoString() string { return k.String() }

// Format prints String for every verb, so no formatting verb (%x, %+v, ...)
// reaches the private key.
func (k Key) Format(f fmt.State, _ rune) {
	_, _ = f.Write([]byte(k.String()))
}

// MarshalText refuses to serialize the key, so encoding/json and friends
// cannot leak it.
func (k Key) MarshalText() ([]byte, error) {
	return nil, errors.New("keys: a private key is never marshalled")
}
