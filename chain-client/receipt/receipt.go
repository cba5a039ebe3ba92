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

// Package receipt defines the provider's signed statement of a result.
//
// A result is described by its canonical record, aivmv1.ResultRecord, the
// same message that goes on chain in MsgSubmitResults. Its leaf hash is
//
//	leaf = sha256(0x00 || deterministic protobuf encoding of the record)
//
// (merkle.LeafHash), and the receipt carries the record, the leaf hash, the
// provider's bech32 address, its compressed public key and a 64-byte low-S
// secp256k1 ECDSA signature (r || s) whose message digest is the 32-byte leaf
// hash itself. Because the signed digest is a leaf hash, which starts from a
// 0x00 byte, it can never be mistaken for the SHA-256 of a Cosmos SignDoc:
// a receipt signature is useless as a transaction signature.
//
// Receipts travel as a JSON envelope (Encode, Decode); Decode is strict: it
// refuses unknown fields, trailing data, malformed digests and
// inconsistent hashes. Once the result is on chain the envelope also carries
// the inclusion: transaction hash, height, batch root and Merkle proof.
package receipt

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
	"google.golang.org/protobuf/proto"

	"github.com/aivm-dev/aivm-operator/chain-client/aivmv1"
	"github.com/aivm-dev/aivm-operator/chain-client/keys"
	"github.com/aivm-dev/aivm-operator/chain-client/merkle"
	"github.com/aivm-dev/aivm-operator/internal/sha256hex"
)

// Version names the envelope format.
const Version = "aivm.dev/receipt/v1"

// MaxEnvelopeSize bounds what Decode accepts.
const MaxEnvelopeSize = 64 << 10

// MaxJobUIDLen bounds a record's job UID.
const MaxJobUIDLen = 128

// SignatureSize is the length of a receipt signature.
const SignatureSize = 64

// DigestPrefix is the prefix digests carry elsewhere (the runtime's
// envelope, a Kernel's status.kernelDigest) and never in a record.
const DigestPrefix = sha256hex.Prefix

// CanonicalDigest returns d in the record's one form, 64 lowercase hex
// digits without the "sha256:" prefix (sha256hex.Parse). A record holds only
// this form, so one result has one leaf hash; callers convert at the
// boundary where a digest enters a record or a job's status.result.
func CanonicalDigest(d string) (string, error) {
	c, err := sha256hex.Parse(d)
	if err != nil {
		return "", fmt.Errorf("receipt: %w", err)
	}
	return c, nil
}

// ErrInvalidSignature is returned when a signature does not verify.
var ErrInvalidSignature = errors.New("receipt: signature does not verify")

// ValidateRecord checks a record's fields: a job UID and four sha256
// digests, each in canonical form (64 lowercase hex digits, no prefix; see
// CanonicalDigest).
func ValidateRecord(r *aivmv1.ResultRecord) error {
	if r == nil {
		return errors.New("receipt: record is missing")
	}
	switch {
	case r.GetJobUid() == "":
		return errors.New("receipt: record has no job UID")
	case len(r.GetJobUid()) > MaxJobUIDLen:
		return fmt.Errorf("receipt: job UID of %d bytes exceeds %d", len(r.GetJobUid()), MaxJobUIDLen)
	case !utf8.ValidString(r.GetJobUid()):
		return errors.New("receipt: job UID is not valid UTF-8")
	}
	for _, d := range []struct{ name, value string }{
		{"kernelDigest", r.GetKernelDigest()},
		{"modelDigest", r.GetModelDigest()},
		{"inputDigest", r.GetInputDigest()},
		{"outputDigest", r.GetOutputDigest()},
	} {
		if !sha256hex.IsCanonical(d.value) {
			return fmt.Errorf("receipt: %s %q is not a canonical digest (64 lowercase hex digits without the sha256: prefix; see CanonicalDigest)", d.name, d.value)
		}
	}
	return nil
}

// Canonical validates r and returns its deterministic protobuf encoding, the
// bytes a leaf hash is computed over.
func Canonical(r *aivmv1.ResultRecord) ([]byte, error) {
	if err := ValidateRecord(r); err != nil {
		return nil, err
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("receipt: encode record: %w", err)
	}
	return b, nil
}

// LeafHash validates r and returns its Merkle leaf hash.
func LeafHash(r *aivmv1.ResultRecord) (merkle.Hash, error) {
	b, err := Canonical(r)
	if err != nil {
		return merkle.Hash{}, err
	}
	return merkle.LeafHash(b), nil
}

// Inclusion says where a result landed on chain.
type Inclusion struct {
	// ChainID is the chain the transaction was sent to, when known.
	ChainID string `json:"chainID,omitempty"`
	// TxHash is the uppercase hex hash of the transaction.
	TxHash string `json:"txHash"`
	// Height is the block that committed the transaction.
	Height int64 `json:"height"`
	// Root is the batch's Merkle root as carried in MsgSubmitResults.
	Root merkle.Hash `json:"root"`
	// Proof is the inclusion proof of the receipt's leaf under Root.
	Proof merkle.Proof `json:"proof"`
}

// Receipt is a signed result record.
type Receipt struct {
	// Record is the canonical result record.
	Record *aivmv1.ResultRecord
	// LeafHash is the record's leaf hash.
	LeafHash merkle.Hash
	// Signer is the provider's bech32 account address.
	Signer string
	// PubKey is the provider's 33-byte compressed public key.
	PubKey []byte
	// Signature is the 64-byte low-S signature over LeafHash.
	Signature []byte
	// Chain is set once the result is committed on chain.
	Chain *Inclusion
}

// Sign builds the receipt of r signed with k; prefix is the bech32 prefix of
// the signer address (empty: keys.DefaultPrefix).
func Sign(k *keys.Key, prefix string, r *aivmv1.ResultRecord) (*Receipt, error) {
	if k == nil {
		return nil, errors.New("receipt: no signing key")
	}
	leaf, err := LeafHash(r)
	if err != nil {
		return nil, err
	}
	addr, err := k.Address(prefix)
	if err != nil {
		return nil, fmt.Errorf("receipt: signer address: %w", err)
	}
	return &Receipt{
		Record:    proto.Clone(r).(*aivmv1.ResultRecord),
		LeafHash:  leaf,
		Signer:    addr,
		PubKey:    k.PubKeyBytes(),
		Signature: k.SignHash(leaf[:]),
	}, nil
}

// Verify checks that the leaf hash is the record's, that the public key is
// the signer address's, and that the signature verifies. When the receipt
// carries an inclusion it also checks the Merkle proof against its root.
func (r *Receipt) Verify() error {
	leaf, err := LeafHash(r.Record)
	if err != nil {
		return err
	}
	if leaf != r.LeafHash {
		return fmt.Errorf("receipt: leaf hash %s is not the record's leaf hash %s", r.LeafHash, leaf)
	}
	if len(r.PubKey) > 0 {
		prefix, _, err := keys.DecodeAddress(r.Signer)
		if err != nil {
			return fmt.Errorf("receipt: signer: %w", err)
		}
		addr, err := keys.AddressFromPubKey(prefix, r.PubKey)
		if err != nil {
			return fmt.Errorf("receipt: public key: %w", err)
		}
		if addr != r.Signer {
			return fmt.Errorf("receipt: public key belongs to %s, not signer %s", addr, r.Signer)
		}
		if err := verifyWithPubKey(r.PubKey, leaf, r.Signature); err != nil {
			return err
		}
	} else if err := VerifyBySigner(r.Signer, leaf, r.Signature); err != nil {
		return err
	}
	if r.Chain != nil {
		if err := merkle.Verify(leaf, r.Chain.Proof, r.Chain.Root); err != nil {
			return fmt.Errorf("receipt: inclusion proof: %w", err)
		}
	}
	return nil
}

func verifyWithPubKey(pub []byte, leaf merkle.Hash, sig []byte) error {
	pk, err := secp256k1.ParsePubKey(pub)
	if err != nil {
		return fmt.Errorf("receipt: public key: %w", err)
	}
	s, err := parseSignature(sig)
	if err != nil {
		return err
	}
	if !s.Verify(leaf[:], pk) {
		return ErrInvalidSignature
	}
	return nil
}

func parseSignature(sig []byte) (*ecdsa.Signature, error) {
	if len(sig) != SignatureSize {
		return nil, fmt.Errorf("receipt: signature must be %d bytes, got %d", SignatureSize, len(sig))
	}
	var r, s secp256k1.ModNScalar
	if overflow := r.SetByteSlice(sig[:32]); overflow || r.IsZero() {
		return nil, errors.New("receipt: signature r is out of range")
	}
	if overflow := s.SetByteSlice(sig[32:]); overflow || s.IsZero() {
		return nil, errors.New("receipt: signature s is out of range")
	}
	if s.IsOverHalfOrder() {
		return nil, errors.New("receipt: signature is not low-S")
	}
	return ecdsa.NewSignature(&r, &s), nil
}

// VerifyBySigner checks a signature over leaf when only the signer's bech32
// address is known (as in an InferenceJob's status): it recovers the public
// keys the signature could come from and accepts when one of them has the
// signer's address.
func VerifyBySigner(signer string, leaf merkle.Hash, sig []byte) error {
	_, raw, err := keys.DecodeAddress(signer)
	if err != nil {
		return fmt.Errorf("receipt: signer: %w", err)
	}
	if _, err := parseSignature(sig); err != nil {
		return err
	}
	compact := make([]byte, 1+SignatureSize)
	copy(compact[1:], sig)
	for recID := byte(0); recID < 4; recID++ {
		// 27 + 4 marks a compressed key in the compact format.
		compact[0] = 27 + 4 + recID
		pk, _, err := ecdsa.RecoverCompact(compact, leaf[:])
		if err != nil {
			continue
		}
		if bytes.Equal(keys.AccAddressFromPubKey(pk.SerializeCompressed()), raw) {
			return nil
		}
	}
	return ErrInvalidSignature
}

// envelope is the JSON form of a Receipt.
type envelope struct {
	Version   string      `json:"version"`
	Record    recordJSON  `json:"record"`
	LeafHash  merkle.Hash `json:"leafHash"`
	Signer    string      `json:"signer"`
	PubKey    string      `json:"pubKey,omitempty"`
	Signature string      `json:"signature"`
	Chain     *Inclusion  `json:"chain,omitempty"`
}

// recordJSON is the JSON form of aivmv1.ResultRecord.
type recordJSON struct {
	JobUID       string `json:"jobUID"`
	KernelDigest string `json:"kernelDigest"`
	ModelDigest  string `json:"modelDigest"`
	InputDigest  string `json:"inputDigest"`
	OutputDigest string `json:"outputDigest"`
	InputTokens  uint64 `json:"inputTokens"`
	OutputTokens uint64 `json:"outputTokens"`
	DurationMs   uint64 `json:"durationMs"`
}

// Encode returns the JSON envelope of r, indented for people to read.
func Encode(r *Receipt) ([]byte, error) {
	if r == nil || r.Record == nil {
		return nil, errors.New("receipt: nothing to encode")
	}
	env := envelope{
		Version: Version,
		Record: recordJSON{
			JobUID:       r.Record.GetJobUid(),
			KernelDigest: r.Record.GetKernelDigest(),
			ModelDigest:  r.Record.GetModelDigest(),
			InputDigest:  r.Record.GetInputDigest(),
			OutputDigest: r.Record.GetOutputDigest(),
			InputTokens:  r.Record.GetInputTokens(),
			OutputTokens: r.Record.GetOutputTokens(),
			DurationMs:   r.Record.GetDurationMs(),
		},
		LeafHash:  r.LeafHash,
		Signer:    r.Signer,
		Signature: base64.StdEncoding.EncodeToString(r.Signature),
		Chain:     r.Chain,
	}
	if len(r.PubKey) > 0 {
		env.PubKey = base64.StdEncoding.EncodeToString(r.PubKey)
	}
	out, err := json.MarshalIndent(env, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("receipt: encode envelope: %w", err)
	}
	return append(out, '\n'), nil
}

// Decode parses a JSON envelope strictly: known fields only, one JSON value,
// the current Version, a valid record whose leaf hash matches, a bech32
// signer, a 33-byte public key when present, a 64-byte low-S signature, and
// a well-formed inclusion when present. It does not check the signature;
// call Verify for that.
func Decode(data []byte) (*Receipt, error) {
	if len(data) > MaxEnvelopeSize {
		return nil, fmt.Errorf("receipt: envelope of %d bytes exceeds %d", len(data), MaxEnvelopeSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var env envelope
	if err := dec.Decode(&env); err != nil {
		return nil, fmt.Errorf("receipt: decode envelope: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("receipt: trailing data after the envelope")
	}
	if env.Version != Version {
		return nil, fmt.Errorf("receipt: version %q, want %q", env.Version, Version)
	}
	rec := &aivmv1.ResultRecord{
		JobUid:       env.Record.JobUID,
		KernelDigest: env.Record.KernelDigest,
		ModelDigest:  env.Record.ModelDigest,
		InputDigest:  env.Record.InputDigest,
		OutputDigest: env.Record.OutputDigest,
		InputTokens:  env.Record.InputTokens,
		OutputTokens: env.Record.OutputTokens,
		DurationMs:   env.Record.DurationMs,
	}
	leaf, err := LeafHash(rec)
	if err != nil {
		return nil, err
	}
	if leaf != env.LeafHash {
		return nil, fmt.Errorf("receipt: leafHash %s is not the record's leaf hash %s", env.LeafHash, leaf)
	}
	if _, _, err := keys.DecodeAddress(env.Signer); err != nil {
		return nil, fmt.Errorf("receipt: signer: %w", err)
	}
	r := &Receipt{Record: rec, LeafHash: leaf, Signer: env.Signer, Chain: env.Chain}
	if env.PubKey != "" {
		if r.PubKey, err = base64.StdEncoding.Strict().DecodeString(env.PubKey); err != nil {
			return nil, fmt.Errorf("receipt: pubKey is not base64: %w", err)
		}
		if _, err := secp256k1.ParsePubKey(r.PubKey); err != nil || len(r.PubKey) != secp256k1.PubKeyBytesLenCompressed {
			return nil, errors.New("receipt: pubKey is not a 33-byte compressed secp256k1 key")
		}
	}
	if r.Signature, err = base64.StdEncoding.Strict().DecodeString(env.Signature); err != nil {
		return nil, fmt.Errorf("receipt: signature is not base64: %w", err)
	}
	if _, err := parseSignature(r.Signature); err != nil {
		return nil, err
	}
	if c := env.Chain; c != nil {
		switch {
		case c.TxHash == "" || len(c.TxHash) != 64 || !isUpperHex(c.TxHash):
			return nil, fmt.Errorf("receipt: chain.txHash %q is not 64 uppercase hex characters", c.TxHash)
		case c.Height <= 0:
			return nil, fmt.Errorf("receipt: chain.height %d is not positive", c.Height)
		case c.Proof.TreeSize == 0 || c.Proof.LeafIndex >= c.Proof.TreeSize:
			return nil, fmt.Errorf("receipt: chain.proof index %d / size %d is invalid", c.Proof.LeafIndex, c.Proof.TreeSize)
		case len(c.Proof.Path) > merkle.MaxProofLen:
			return nil, fmt.Errorf("receipt: chain.proof has %d hashes, more than %d", len(c.Proof.Path), merkle.MaxProofLen)
		}
	}
	return r, nil
}

func isUpperHex(s string) bool {
	for _, c := range []byte(s) {
		if (c < '0' || c > '9') && (c < 'A' || c > 'F') {
			return false
		}
	}
	return true
}
