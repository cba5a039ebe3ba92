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

// Package tx builds, signs, decodes and verifies standard Cosmos SDK
// transactions in SIGN_MODE_DIRECT with one secp256k1 signer, using the
// published Cosmos protobuf types (cosmossdk.io/api). A transaction built here
// is a TxRaw{body_bytes, auth_info_bytes, signatures} that any Cosmos tooling
// (cosmjs, the Cosmos SDK) decodes and verifies.
package tx

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	basev1beta1 "cosmossdk.io/api/cosmos/base/v1beta1"
	secp256k1pb "cosmossdk.io/api/cosmos/crypto/secp256k1"
	signingv1beta1 "cosmossdk.io/api/cosmos/tx/signing/v1beta1"
	txv1beta1 "cosmossdk.io/api/cosmos/tx/v1beta1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/aivm-dev/aivm-operator/chain-client/keys"
)

// PubKeyTypeURL is the Any type URL of a Cosmos secp256k1 public key.
const PubKeyTypeURL = "/cosmos.crypto.secp256k1.PubKey"

// MaxMemoLength is the longest memo accepted, as in the Cosmos SDK's default
// auth parameters.
const MaxMemoLength = 256

// Errors wrapped by Decode and VerifyDirect, so a caller (the devnet's ABCI
// application) can map them to Cosmos error codes.
var (
	// ErrTxDecode marks bytes that are not a well-formed transaction.
	ErrTxDecode = errors.New("tx parse error")
	// ErrUnauthorized marks a signature that does not verify.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrInvalidPubKey marks a missing or malformed signer public key.
	ErrInvalidPubKey = errors.New("invalid pubkey")
	// ErrInvalidRequest marks a transaction that is well-formed but not
	// acceptable (no messages, several signers, wrong sign mode, ...).
	ErrInvalidRequest = errors.New("invalid request")
)

var deterministic = proto.MarshalOptions{Deterministic: true}

// SignInput is everything needed to build and sign one transaction.
type SignInput struct {
	// Key signs the transaction and pays its fee.
	Key *keys.Key
	// ChainID is the chain the signature is bound to.
	ChainID string
	// AccountNumber is the signer's account number on that chain.
	AccountNumber uint64
	// Sequence is the signer's next account sequence.
	Sequence uint64
	// Msgs are the transaction's messages, in order.
	Msgs []proto.Message
	// FeeAmount is the fee paid, in FeeDenom.
	FeeAmount uint64
	// FeeDenom is the fee's denomination (e.g. "unes"). Empty with a zero
	// FeeAmount means no fee coin.
	FeeDenom string
	// GasLimit is the gas the transaction may use.
	GasLimit uint64
	// Memo is an optional note (at most MaxMemoLength bytes).
	Memo string
	// TimeoutHeight, when non-zero, is the last height that may include the
	// transaction.
	TimeoutHeight uint64
}

// AnyOf wraps a message in a Cosmos-style Any ("/" + full name, deterministic
// encoding), unlike anypb.New which uses the type.googleapis.com prefix.
func AnyOf(m proto.Message) (*anypb.Any, error) {
	b, err := deterministic.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("marshal %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	return &anypb.Any{TypeUrl: "/" + string(m.ProtoReflect().Descriptor().FullName()), Value: b}, nil
}

// BuildAndSign builds the TxBody and AuthInfo, signs the SignDoc with in.Key
// and returns the encoded TxRaw and its hash (uppercase hex SHA-256, as
// CometBFT reports it). Building is deterministic: the same input gives the
// same bytes.
func BuildAndSign(in SignInput) (txBytes []byte, hash string, err error) {
	if in.Key == nil {
		return nil, "", errors.New("build tx: no signing key")
	}
	if in.ChainID == "" {
		return nil, "", errors.New("build tx: empty chain id")
	}
	if len(in.Msgs) == 0 {
		return nil, "", errors.New("build tx: no messages")
	}
	if len(in.Memo) > MaxMemoLength {
		return nil, "", fmt.Errorf("build tx: memo is %d bytes, limit %d", len(in.Memo), MaxMemoLength)
	}
	if in.FeeAmount > 0 && in.FeeDenom == "" {
		return nil, "", errors.New("build tx: fee amount without a denom")
	}
	body := &txv1beta1.TxBody{Memo: in.Memo, TimeoutHeight: in.TimeoutHeight}
	for _, m := range in.Msgs {
		a, err := AnyOf(m)
		if err != nil {
			return nil, "", fmt.Errorf("build tx: %w", err)
		}
		body.Messages = append(body.Messages, a)
	}
	bodyBytes, err := deterministic.Marshal(body)
	if err != nil {
		return nil, "", fmt.Errorf("build tx: marshal body: %w", err)
	}
	pk, err := AnyOf(&secp256k1pb.PubKey{Key: in.Key.PubKeyBytes()})
	if err != nil {
		return nil, "", fmt.Errorf("build tx: %w", err)
	}
	fee := &txv1beta1.Fee{GasLimit: in.GasLimit}
	if in.FeeDenom != "" {
		fee.Amount = []*basev1beta1.Coin{{Denom: in.FeeDenom, Amount: strconv.FormatUint(in.FeeAmount, 10)}}
	}
	auth := &txv1beta1.AuthInfo{
		SignerInfos: []*txv1beta1.SignerInfo{{
			PublicKey: pk,
			ModeInfo: &txv1beta1.ModeInfo{Sum: &txv1beta1.ModeInfo_Single_{
				Single: &txv1beta1.ModeInfo_Single{Mode: signingv1beta1.SignMode_SIGN_MODE_DIRECT},
			}},
			Sequence: in.Sequence,
		}},
		Fee: fee,
	}
	authBytes, err := deterministic.Marshal(auth)
	if err != nil {
		return nil, "", fmt.Errorf("build tx: marshal auth info: %w", err)
	}
	signBytes, err := SignBytes(bodyBytes, authBytes, in.ChainID, in.AccountNumber)
	if err != nil {
		return nil, "", fmt.Errorf("build tx: %w", err)
	}
	raw := &txv1beta1.TxRaw{
		BodyBytes:     bodyBytes,
		AuthInfoBytes: authBytes,
		Signatures:    [][]byte{in.Key.Sign(signBytes)},
	}
	txBytes, err = deterministic.Marshal(raw)
	if err != nil {
		return nil, "", fmt.Errorf("build tx: marshal tx: %w", err)
	}
	return txBytes, Hash(txBytes), nil
}

// SignBytes returns the SIGN_MODE_DIRECT sign bytes: the deterministic
// encoding of SignDoc{body_bytes, auth_info_bytes, chain_id, account_number}.
func SignBytes(bodyBytes, authInfoBytes []byte, chainID string, accountNumber uint64) ([]byte, error) {
	b, err := deterministic.Marshal(&txv1beta1.SignDoc{
		BodyBytes:     bodyBytes,
		AuthInfoBytes: authInfoBytes,
		ChainId:       chainID,
		AccountNumber: accountNumber,
	})
	if err != nil {
		return nil, fmt.Errorf("marshal sign doc: %w", err)
	}
	return b, nil
}

// Hash returns the transaction hash CometBFT uses: the uppercase hex SHA-256
// of the TxRaw bytes.
func Hash(txBytes []byte) string {
	h := sha256.Sum256(txBytes)
	return strings.ToUpper(hex.EncodeToString(h[:]))
}
