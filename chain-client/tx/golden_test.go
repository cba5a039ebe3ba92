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
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	bankv1beta1 "cosmossdk.io/api/cosmos/bank/v1beta1"
	basev1beta1 "cosmossdk.io/api/cosmos/base/v1beta1"
	"google.golang.org/protobuf/proto"

	"github.com/aivm-dev/aivm-operator/chain-client/keys"
)

// cosmjsGolden is testdata/golden.json, written by testdata/cosmjs/golden.mjs.
type cosmjsGolden struct {
	KeyHex        string
	ChainID       string
	AccountNumber uint64
	Sequence      uint64
	GasLimit      uint64
	Fee           struct{ Denom, Amount string }
	Memo          string
	TimeoutHeight uint64
	Send          struct {
		FromAddress, ToAddress string
		Amount                 []struct{ Denom, Amount string }
	}
	BodyBytesHex, AuthInfoBytesHex, SignBytesHex, SignatureHex, TxHex string
}

// TestCosmJSGoldenVector builds and signs the transaction cosmjs built and
// signed (testdata/golden.json) and wants the same bytes: body, auth info,
// sign bytes, signature and the whole TxRaw. It needs no node, so plain go
// test keeps one check of signing that this package did not write.
func TestCosmJSGoldenVector(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g cosmjsGolden
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	k, err := keys.FromHex(g.KeyHex)
	if err != nil {
		t.Fatal(err)
	}
	if addr, _ := k.Address("nesa"); addr != g.Send.FromAddress {
		t.Fatalf("key address %s, cosmjs %s", addr, g.Send.FromAddress)
	}
	send := &bankv1beta1.MsgSend{FromAddress: g.Send.FromAddress, ToAddress: g.Send.ToAddress}
	for _, c := range g.Send.Amount {
		send.Amount = append(send.Amount, &basev1beta1.Coin{Denom: c.Denom, Amount: c.Amount})
	}
	feeAmount, err := strconv.ParseUint(g.Fee.Amount, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	txBytes, _, err := BuildAndSign(SignInput{
		Key: k, ChainID: g.ChainID, AccountNumber: g.AccountNumber, Sequence: g.Sequence,
		Msgs: []proto.Message{send}, FeeAmount: feeAmount, FeeDenom: g.Fee.Denom, GasLimit: g.GasLimit,
		Memo: g.Memo, TimeoutHeight: g.TimeoutHeight,
	})
	if err != nil {
		t.Fatal(err)
	}
	d, err := Decode(txBytes)
	if err != nil {
		t.Fatal(err)
	}
	signBytes, err := SignBytes(d.Raw.BodyBytes, d.Raw.AuthInfoBytes, g.ChainID, g.AccountNumber)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		got  []byte
		want string
	}{
		{"body bytes", d.Raw.BodyBytes, g.BodyBytesHex},
		{"auth info bytes", d.Raw.AuthInfoBytes, g.AuthInfoBytesHex},
		{"sign bytes", signBytes, g.SignBytesHex},
		{"signature", d.Signature, g.SignatureHex},
		{"tx bytes", txBytes, g.TxHex},
	} {
		if got := hex.EncodeToString(c.got); got != c.want {
			t.Errorf("%s differ from cosmjs's:\n got  %s\n want %s", c.name, got, c.want)
		}
	}
}
