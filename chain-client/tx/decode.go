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

package tx

import (
	"errors"
	"fmt"
	"math/big"

	secp256k1pb "cosmossdk.io/api/cosmos/crypto/secp256k1"
	signingv1beta1 "cosmossdk.io/api/cosmos/tx/signing/v1beta1"
	txv1beta1 "cosmossdk.io/api/cosmos/tx/v1beta1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/aivm-dev/aivm-operator/chain-client/keys"
)

// MaxTxBytes bounds what Decode accepts, far above any block size.
const MaxTxBytes = 8 << 20

// Decoded is a transaction decoded from its TxRaw bytes, with its single
// signer's fields pulled out.
type Decoded struct {
	// Raw is the TxRaw as decoded.
	Raw *txv1beta1.TxRaw
	// Body is the decoded TxBody.
	Body *txv1beta1.TxBody
	// AuthInfo is the decoded AuthInfo.
	AuthInfo *txv1beta1.AuthInfo
	// PubKey is the signer's 33-byte compressed secp256k1 public key.
	PubKey []byte
	// Sequence is the signer's account sequence from AuthInfo.
	Sequence uint64
	// Signature is the signer's 64-byte signature.
	Signature []byte
	// GasLimit is the fee's gas limit.
	GasLimit uint64
	// Fee is the fee as denom -> amount.
	Fee map[string]*big.Int
	// Hash is the transaction hash (uppercase hex).
	Hash string
}

// Decode parses TxRaw bytes the way a Cosmos chain's decoder does: unknown
// fields are rejected (so one transaction has one encoding), and the
// transaction must carry exactly one secp256k1 signer in SIGN_MODE_DIRECT
// with at least one message. Errors wrap ErrTxDecode, ErrInvalidPubKey or
// ErrInvalidRequest.
func Decode(txBytes []byte) (*Decoded, error) {
	if len(txBytes) == 0 {
		return nil, fmt.Errorf("%w: empty tx", ErrTxDecode)
	}
	if len(txBytes) > MaxTxBytes {
		return nil, fmt.Errorf("%w: tx is %d bytes, limit %d", ErrTxDecode, len(txBytes), MaxTxBytes)
	}
	d := &Decoded{Raw: &txv1beta1.TxRaw{}, Body: &txv1beta1.TxBody{}, AuthInfo: &txv1beta1.AuthInfo{}, Hash: Hash(txBytes)}
	if err := strictUnmarshal(txBytes, d.Raw, "tx raw"); err != nil {
		return nil, err
	}
	if err := strictUnmarshal(d.Raw.BodyBytes, d.Body, "tx body"); err != nil {
		return nil, err
	}
	if err := strictUnmarshal(d.Raw.AuthInfoBytes, d.AuthInfo, "auth info"); err != nil {
		return nil, err
	}
	if len(d.Body.Messages) == 0 {
		return nil, fmt.Errorf("%w: tx has no messages", ErrInvalidRequest)
	}
	if len(d.Body.ExtensionOptions) > 0 {
		return nil, fmt.Errorf("%w: unknown extension options", ErrInvalidRequest)
	}
	if d.Body.Unordered {
		return nil, fmt.Errorf("%w: unordered transactions are not supported", ErrInvalidRequest)
	}
	if len(d.AuthInfo.SignerInfos) != 1 {
		return nil, fmt.Errorf("%w: want exactly 1 signer, got %d", ErrInvalidRequest, len(d.AuthInfo.SignerInfos))
	}
	if len(d.Raw.Signatures) != 1 {
		return nil, fmt.Errorf("%w: wrong number of signatures; expected 1, got %d", ErrUnauthorized, len(d.Raw.Signatures))
	}
	si := d.AuthInfo.SignerInfos[0]
	single := si.GetModeInfo().GetSingle()
	if single == nil || single.Mode != signingv1beta1.SignMode_SIGN_MODE_DIRECT {
		return nil, fmt.Errorf("%w: only SIGN_MODE_DIRECT with a single signer is supported", ErrInvalidRequest)
	}
	pk := si.GetPublicKey()
	if pk == nil {
		return nil, fmt.Errorf("%w: signer has no public key", ErrInvalidPubKey)
	}
	if pk.TypeUrl != PubKeyTypeURL {
		return nil, fmt.Errorf("%w: unsupported public key type %q", ErrInvalidPubKey, pk.TypeUrl)
	}
	var pub secp256k1pb.PubKey
	if err := strictUnmarshal(pk.Value, &pub, "public key"); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidPubKey, err)
	}
	if len(pub.Key) != keys.PubKeySize {
		return nil, fmt.Errorf("%w: public key is %d bytes, want %d", ErrInvalidPubKey, len(pub.Key), keys.PubKeySize)
	}
	d.PubKey = pub.Key
	d.Sequence = si.Sequence
	d.Signature = d.Raw.Signatures[0]
	fee := d.AuthInfo.GetFee()
	d.GasLimit = fee.GetGasLimit()
	if fee.GetPayer() != "" || fee.GetGranter() != "" {
		return nil, fmt.Errorf("%w: fee payer and granter are not supported", ErrInvalidRequest)
	}
	d.Fee = map[string]*big.Int{}
	for _, c := range fee.GetAmount() {
		amt, ok := new(big.Int).SetString(c.Amount, 10)
		if !ok || amt.Sign() < 0 || c.Denom == "" {
			return nil, fmt.Errorf("%w: invalid fee coin %q%s", ErrInvalidRequest, c.Amount, c.Denom)
		}
		if _, dup := d.Fee[c.Denom]; dup {
			return nil, fmt.Errorf("%w: duplicate fee denom %q", ErrInvalidRequest, c.Denom)
		}
		d.Fee[c.Denom] = amt
	}
	return d, nil
}

// strictUnmarshal decodes b into m and rejects unknown fields anywhere in it.
func strictUnmarshal(b []byte, m proto.Message, what string) error {
	if err := proto.Unmarshal(b, m); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrTxDecode, what, err)
	}
	if path := unknownFieldPath(m.ProtoReflect(), what); path != "" {
		return fmt.Errorf("%w: %s: unknown field in %s", ErrTxDecode, what, path)
	}
	return nil
}

// unknownFieldPath returns where m holds unknown fields, or "".
func unknownFieldPath(m protoreflect.Message, at string) string {
	if len(m.GetUnknown()) > 0 {
		return at
	}
	found := ""
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind && fd.Kind() != protoreflect.GroupKind {
			return true
		}
		sub := at + "." + string(fd.Name())
		switch {
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				if p := unknownFieldPath(l.Get(i).Message(), sub); p != "" {
					found = p
					return false
				}
			}
		case fd.IsMap():
			// Cosmos tx types have no message-valued maps.
		default:
			if p := unknownFieldPath(v.Message(), sub); p != "" {
				found = p
				return false
			}
		}
		return true
	})
	return found
}

// VerifyDirect checks the signature of d against the SIGN_MODE_DIRECT sign
// bytes for chainID and accountNumber, with the low-S rule of Cosmos chains.
// The error wraps ErrUnauthorized and reads like a Cosmos chain's.
func VerifyDirect(d *Decoded, chainID string, accountNumber uint64) error {
	signBytes, err := SignBytes(d.Raw.BodyBytes, d.Raw.AuthInfoBytes, chainID, accountNumber)
	if err != nil {
		return err
	}
	if !keys.VerifySignature(d.PubKey, signBytes, d.Signature) {
		return fmt.Errorf("%w: signature verification failed; please verify account number (%d) and chain-id (%s)", ErrUnauthorized, accountNumber, chainID)
	}
	return nil
}

// Msgs unpacks the body's messages with the global protobuf registry, so
// any message type linked into the binary (aivm.v1, cosmos.bank.v1beta1, ...)
// is resolved. Unknown type URLs are an ErrTxDecode error.
func (d *Decoded) Msgs() ([]proto.Message, error) {
	out := make([]proto.Message, 0, len(d.Body.Messages))
	for i, a := range d.Body.Messages {
		m, err := UnpackAny(a)
		if err != nil {
			return nil, fmt.Errorf("message %d: %w", i, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// UnpackAny resolves a Cosmos-style Any ("/full.Name") with the global
// registry and decodes it strictly.
func UnpackAny(a *anypb.Any) (proto.Message, error) {
	if a == nil || len(a.TypeUrl) < 2 || a.TypeUrl[0] != '/' {
		return nil, fmt.Errorf("%w: malformed type URL", ErrTxDecode)
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(a.TypeUrl[1:]))
	if err != nil {
		if errors.Is(err, protoregistry.NotFound) {
			return nil, fmt.Errorf("%w: unknown message type %q", ErrTxDecode, a.TypeUrl)
		}
		return nil, fmt.Errorf("%w: %w", ErrTxDecode, err)
	}
	m := mt.New().Interface()
	if err := strictUnmarshal(a.Value, m, a.TypeUrl); err != nil {
		return nil, err
	}
	return m, nil
}
