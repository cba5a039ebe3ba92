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
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"

	bankv1beta1 "cosmossdk.io/api/cosmos/bank/v1beta1"
	basev1beta1 "cosmossdk.io/api/cosmos/base/v1beta1"
	secp256k1pb "cosmossdk.io/api/cosmos/crypto/secp256k1"
	signingv1beta1 "cosmossdk.io/api/cosmos/tx/signing/v1beta1"
	txv1beta1 "cosmossdk.io/api/cosmos/tx/v1beta1"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/aivm-dev/aivm-operator/chain-client/aivmv1"
	"github.com/aivm-dev/aivm-operator/chain-client/keys"
)

const faucetMnemonic = "economy stock theory fatal elder harbor betray wasp final emotion task crumble siren bottom lizard educate guess current outdoor pair theory focus wife stone"

func testKey(t testing.TB) *keys.Key {
	t.Helper()
	k, err := keys.FromHex("7307bb9729ca7139ffbf4dcbfe18cd2d8e07ff93754fb81d34ae5ecc3e6bf51e")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func registerMsg(t testing.TB, k *keys.Key) *aivmv1.MsgRegisterProvider {
	t.Helper()
	addr, err := k.Address("")
	if err != nil {
		t.Fatal(err)
	}
	return &aivmv1.MsgRegisterProvider{
		Provider: addr,
		Moniker:  "rack-7",
		Endpoint: "https://rack-7.example:8443",
		Version:  "v0.1.0",
		Gpus: []*aivmv1.GPU{
			{Product: "NVIDIA A100-SXM4-40GB", MemoryBytes: 40 << 30},
			{Product: "NVIDIA A100-SXM4-40GB", MemoryBytes: 40 << 30},
		},
		TotalVramBytes: 80 << 30,
	}
}

func sampleInput(t testing.TB) SignInput {
	k := testKey(t)
	return SignInput{
		Key:           k,
		ChainID:       "nesa",
		AccountNumber: 7,
		Sequence:      42,
		Msgs:          []proto.Message{registerMsg(t, k)},
		FeeAmount:     5000,
		FeeDenom:      "unes",
		GasLimit:      200000,
		Memo:          "aivm-operator",
		TimeoutHeight: 900,
	}
}

// TestBuildDecodesFieldByField decodes a built tx with the Cosmos types
// directly (not with this package's Decode) and checks every field, then
// verifies the signature with the secp256k1 library on a SignDoc rebuilt
// here.
func TestBuildDecodesFieldByField(t *testing.T) {
	in := sampleInput(t)
	txBytes, hash, err := BuildAndSign(in)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(txBytes)
	if want := fmt.Sprintf("%X", sum); hash != want {
		t.Errorf("hash %s, want %s", hash, want)
	}

	var raw txv1beta1.TxRaw
	if err := proto.Unmarshal(txBytes, &raw); err != nil {
		t.Fatal(err)
	}
	var body txv1beta1.TxBody
	if err := proto.Unmarshal(raw.BodyBytes, &body); err != nil {
		t.Fatal(err)
	}
	if body.Memo != in.Memo || body.TimeoutHeight != in.TimeoutHeight || len(body.Messages) != 1 {
		t.Fatalf("body = %v", &body)
	}
	if body.Messages[0].TypeUrl != aivmv1.TypeURLMsgRegisterProvider {
		t.Errorf("type URL %q", body.Messages[0].TypeUrl)
	}
	var msg aivmv1.MsgRegisterProvider
	if err := proto.Unmarshal(body.Messages[0].Value, &msg); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(in.Msgs[0], &msg, protocmp.Transform()); d != "" {
		t.Errorf("message (-want +got):\n%s", d)
	}

	var auth txv1beta1.AuthInfo
	if err := proto.Unmarshal(raw.AuthInfoBytes, &auth); err != nil {
		t.Fatal(err)
	}
	if len(auth.SignerInfos) != 1 {
		t.Fatalf("%d signer infos", len(auth.SignerInfos))
	}
	si := auth.SignerInfos[0]
	if si.Sequence != in.Sequence {
		t.Errorf("sequence %d", si.Sequence)
	}
	if si.GetModeInfo().GetSingle().GetMode() != signingv1beta1.SignMode_SIGN_MODE_DIRECT {
		t.Errorf("mode info %v", si.ModeInfo)
	}
	if si.PublicKey.TypeUrl != "/cosmos.crypto.secp256k1.PubKey" {
		t.Errorf("pubkey type %q", si.PublicKey.TypeUrl)
	}
	var pk secp256k1pb.PubKey
	if err := proto.Unmarshal(si.PublicKey.Value, &pk); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pk.Key, in.Key.PubKeyBytes()) {
		t.Errorf("pubkey %x", pk.Key)
	}
	wantFee := &txv1beta1.Fee{Amount: []*basev1beta1.Coin{{Denom: "unes", Amount: "5000"}}, GasLimit: 200000}
	if d := cmp.Diff(wantFee, auth.Fee, protocmp.Transform()); d != "" {
		t.Errorf("fee (-want +got):\n%s", d)
	}

	// Independent signature check: SignDoc built here, hashed, verified with
	// the secp256k1 library.
	if len(raw.Signatures) != 1 || len(raw.Signatures[0]) != 64 {
		t.Fatalf("signatures %x", raw.Signatures)
	}
	doc, err := proto.MarshalOptions{Deterministic: true}.Marshal(&txv1beta1.SignDoc{
		BodyBytes: raw.BodyBytes, AuthInfoBytes: raw.AuthInfoBytes, ChainId: "nesa", AccountNumber: 7,
	})
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256(doc)
	var r, s secp256k1.ModNScalar
	r.SetByteSlice(raw.Signatures[0][:32])
	s.SetByteSlice(raw.Signatures[0][32:])
	if s.IsOverHalfOrder() {
		t.Error("signature is high-S")
	}
	pub, err := secp256k1.ParsePubKey(pk.Key)
	if err != nil {
		t.Fatal(err)
	}
	if !ecdsa.NewSignature(&r, &s).Verify(digest[:], pub) {
		t.Error("signature does not verify over the SignDoc")
	}

	// Deterministic: building again gives identical bytes.
	again, hash2, err := BuildAndSign(in)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, txBytes) || hash2 != hash {
		t.Error("building the same input twice gave different bytes")
	}
}

// TestCosmJSMessageEncoding builds cosmjs's published MsgSend test vector and
// checks our Any encoding of the message against cosmjs's body bytes.
func TestCosmJSMessageEncoding(t *testing.T) {
	k, err := keys.FromMnemonic(faucetMnemonic, "")
	if err != nil {
		t.Fatal(err)
	}
	from, _ := k.Address("cosmos")
	send := &bankv1beta1.MsgSend{
		FromAddress: from,
		ToAddress:   "cosmos1qypqxpq9qcrsszg2pvxq6rs0zqg3yyc5lzv7xu",
		Amount:      []*basev1beta1.Coin{{Denom: "ucosm", Amount: "1234567"}},
	}
	txBytes, _, err := BuildAndSign(SignInput{Key: k, ChainID: "simd-testing", AccountNumber: 1, Msgs: []proto.Message{send}, FeeAmount: 2000, FeeDenom: "ucosm", GasLimit: 200000})
	if err != nil {
		t.Fatal(err)
	}
	// cosmjs's bodyBytes vector: TxBody{messages: [Any(MsgSend)]}.
	wantBody, _ := hex.DecodeString("0a90010a1c2f636f736d6f732e62616e6b2e763162657461312e4d736753656e6412700a2d636f736d6f7331706b707472653766646b6c366766727a6c65736a6a766878686c63337234676d6d6b38727336122d636f736d6f7331717970717870713971637273737a673270767871367273307a716733797963356c7a763778751a100a0575636f736d120731323334353637")
	d, err := Decode(txBytes)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(d.Raw.BodyBytes, wantBody) {
		t.Errorf("body bytes\n got %x\nwant %x", d.Raw.BodyBytes, wantBody)
	}
	if err := VerifyDirect(d, "simd-testing", 1); err != nil {
		t.Error(err)
	}
	msgs, err := d.Msgs()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]proto.Message{send}, msgs, protocmp.Transform()); diff != "" {
		t.Errorf("msgs (-want +got):\n%s", diff)
	}
}

func TestDecodeAndVerify(t *testing.T) {
	in := sampleInput(t)
	txBytes, hash, err := BuildAndSign(in)
	if err != nil {
		t.Fatal(err)
	}
	d, err := Decode(txBytes)
	if err != nil {
		t.Fatal(err)
	}
	if d.Hash != hash || d.Sequence != 42 || d.GasLimit != 200000 || d.Fee["unes"].Int64() != 5000 || !bytes.Equal(d.PubKey, in.Key.PubKeyBytes()) {
		t.Errorf("decoded %+v", d)
	}
	if err := VerifyDirect(d, "nesa", 7); err != nil {
		t.Errorf("VerifyDirect: %v", err)
	}
	for _, c := range []struct {
		chain string
		acc   uint64
	}{{"nesa-testnet-3", 7}, {"nesa", 8}, {"", 7}} {
		err := VerifyDirect(d, c.chain, c.acc)
		if !errors.Is(err, ErrUnauthorized) {
			t.Errorf("chain %q account %d: err = %v, want ErrUnauthorized", c.chain, c.acc, err)
		}
	}
	// A body changed after signing no longer verifies.
	var raw txv1beta1.TxRaw
	_ = proto.Unmarshal(txBytes, &raw)
	var body txv1beta1.TxBody
	_ = proto.Unmarshal(raw.BodyBytes, &body)
	body.Memo = "tampered"
	raw.BodyBytes, _ = proto.Marshal(&body)
	tampered, _ := proto.Marshal(&raw)
	d2, err := Decode(tampered)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyDirect(d2, "nesa", 7); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("tampered body: err = %v", err)
	}
}

func TestDecodeRejects(t *testing.T) {
	in := sampleInput(t)
	good, _, err := BuildAndSign(in)
	if err != nil {
		t.Fatal(err)
	}
	var raw txv1beta1.TxRaw
	_ = proto.Unmarshal(good, &raw)
	var auth txv1beta1.AuthInfo
	_ = proto.Unmarshal(raw.AuthInfoBytes, &auth)
	var body txv1beta1.TxBody
	_ = proto.Unmarshal(raw.BodyBytes, &body)

	mutate := func(f func(r *txv1beta1.TxRaw, b *txv1beta1.TxBody, a *txv1beta1.AuthInfo)) []byte {
		r := proto.Clone(&raw).(*txv1beta1.TxRaw)
		b := proto.Clone(&body).(*txv1beta1.TxBody)
		a := proto.Clone(&auth).(*txv1beta1.AuthInfo)
		f(r, b, a)
		r.BodyBytes, _ = proto.Marshal(b)
		r.AuthInfoBytes, _ = proto.Marshal(a)
		out, _ := proto.Marshal(r)
		return out
	}
	cases := map[string]struct {
		tx   []byte
		want error
	}{
		"empty":            {nil, ErrTxDecode},
		"garbage":          {[]byte{0xff, 0xff, 0xff}, ErrTxDecode},
		"trailing unknown": {append(append([]byte(nil), good...), 0x22, 0x01, 0x00), ErrTxDecode},
		"no messages": {mutate(func(_ *txv1beta1.TxRaw, b *txv1beta1.TxBody, _ *txv1beta1.AuthInfo) {
			b.Messages = nil
		}), ErrInvalidRequest},
		"two signatures": {mutate(func(r *txv1beta1.TxRaw, _ *txv1beta1.TxBody, _ *txv1beta1.AuthInfo) {
			r.Signatures = append(r.Signatures, r.Signatures[0])
		}), ErrUnauthorized},
		"two signers": {mutate(func(_ *txv1beta1.TxRaw, _ *txv1beta1.TxBody, a *txv1beta1.AuthInfo) {
			a.SignerInfos = append(a.SignerInfos, a.SignerInfos[0])
		}), ErrInvalidRequest},
		"amino json mode": {mutate(func(_ *txv1beta1.TxRaw, _ *txv1beta1.TxBody, a *txv1beta1.AuthInfo) {
			a.SignerInfos[0].ModeInfo.GetSingle().Mode = signingv1beta1.SignMode_SIGN_MODE_LEGACY_AMINO_JSON
		}), ErrInvalidRequest},
		"no pubkey": {mutate(func(_ *txv1beta1.TxRaw, _ *txv1beta1.TxBody, a *txv1beta1.AuthInfo) {
			a.SignerInfos[0].PublicKey = nil
		}), ErrInvalidPubKey},
		"ed25519 pubkey": {mutate(func(_ *txv1beta1.TxRaw, _ *txv1beta1.TxBody, a *txv1beta1.AuthInfo) {
			a.SignerInfos[0].PublicKey.TypeUrl = "/cosmos.crypto.ed25519.PubKey"
		}), ErrInvalidPubKey},
		"short pubkey": {mutate(func(_ *txv1beta1.TxRaw, _ *txv1beta1.TxBody, a *txv1beta1.AuthInfo) {
			a.SignerInfos[0].PublicKey.Value, _ = proto.Marshal(&secp256k1pb.PubKey{Key: []byte{2, 3}})
		}), ErrInvalidPubKey},
		"negative fee": {mutate(func(_ *txv1beta1.TxRaw, _ *txv1beta1.TxBody, a *txv1beta1.AuthInfo) {
			a.Fee.Amount[0].Amount = "-5"
		}), ErrInvalidRequest},
		"extension option": {mutate(func(_ *txv1beta1.TxRaw, b *txv1beta1.TxBody, _ *txv1beta1.AuthInfo) {
			b.ExtensionOptions = []*anypb.Any{{TypeUrl: "/x.Y"}}
		}), ErrInvalidRequest},
		"unknown field in body": {mutate(func(_ *txv1beta1.TxRaw, b *txv1beta1.TxBody, _ *txv1beta1.AuthInfo) {
			b.ProtoReflect().SetUnknown([]byte{0xa0, 0x06, 0x01})
		}), ErrTxDecode},
		"unknown field in signer info": {mutate(func(_ *txv1beta1.TxRaw, _ *txv1beta1.TxBody, a *txv1beta1.AuthInfo) {
			a.SignerInfos[0].ProtoReflect().SetUnknown([]byte{0xa0, 0x06, 0x01})
		}), ErrTxDecode},
	}
	for name, c := range cases {
		_, err := Decode(c.tx)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", name, err, c.want)
		}
	}
}

func TestBuildRejectsBadInput(t *testing.T) {
	good := sampleInput(t)
	cases := map[string]func(*SignInput){
		"no key":       func(in *SignInput) { in.Key = nil },
		"no chain":     func(in *SignInput) { in.ChainID = "" },
		"no msgs":      func(in *SignInput) { in.Msgs = nil },
		"long memo":    func(in *SignInput) { in.Memo = string(make([]byte, MaxMemoLength+1)) },
		"fee no denom": func(in *SignInput) { in.FeeDenom = "" },
	}
	for name, f := range cases {
		in := good
		f(&in)
		if _, _, err := BuildAndSign(in); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestUnpackUnknownType(t *testing.T) {
	if _, err := UnpackAny(&anypb.Any{TypeUrl: "/nope.v1.Missing"}); !errors.Is(err, ErrTxDecode) {
		t.Errorf("err = %v", err)
	}
	if _, err := UnpackAny(&anypb.Any{TypeUrl: "type.googleapis.com/aivm.v1.GPU"}); !errors.Is(err, ErrTxDecode) {
		t.Errorf("err = %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	in := sampleInput(f)
	good, _, err := BuildAndSign(in)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x00, 0x12, 0x00, 0x1a, 0x00})
	in.Msgs = []proto.Message{&aivmv1.MsgSubmitResults{Provider: "x", MerkleRoot: make([]byte, 32), Results: []*aivmv1.ResultRecord{{JobUid: "j"}}}}
	other, _, _ := BuildAndSign(in)
	f.Add(other)
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := Decode(b)
		if err != nil {
			return
		}
		if len(d.PubKey) != keys.PubKeySize || len(d.Body.Messages) == 0 || d.Hash != Hash(b) {
			t.Fatalf("accepted inconsistent tx: %+v", d)
		}
		_ = VerifyDirect(d, "nesa", 7)
		_, _ = d.Msgs()
	})
}

func BenchmarkBuildAndSign(b *testing.B) {
	in := sampleInput(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := BuildAndSign(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeVerify(b *testing.B) {
	in := sampleInput(b)
	txBytes, _, _ := BuildAndSign(in)
	b.ReportAllocs()
	for b.Loop() {
		d, err := Decode(txBytes)
		if err != nil {
			b.Fatal(err)
		}
		if err := VerifyDirect(d, "nesa", 7); err != nil {
			b.Fatal(err)
		}
	}
}
