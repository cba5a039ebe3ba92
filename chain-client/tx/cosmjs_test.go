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
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/aivm-dev/aivm-operator/chain-client/aivmv1"
)

// TestCosmJSDecodesAndVerifies hands a transaction built here to cosmjs
// (testdata/cosmjs/verify.mjs), which decodes it, verifies the signature
// over the SignDoc it rebuilds itself, and signs the same SignDoc with its
// own wallet. It runs only where node and the script's node_modules are
// installed (`npm ci` in testdata/cosmjs); go test never needs the network.
func TestCosmJSDecodesAndVerifies(t *testing.T) {
	// CI sets AIVM_REQUIRE_COSMJS: there the check must run, not skip.
	skip := t.Skipf
	if os.Getenv("AIVM_REQUIRE_COSMJS") != "" {
		skip = t.Fatalf
	}
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		skip("node not installed")
	}
	dir := filepath.Join("testdata", "cosmjs")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@cosmjs", "proto-signing")); err != nil {
		skip("cosmjs not installed; run `npm ci` in chain-client/tx/testdata/cosmjs")
	}
	in := sampleInput(t)
	in.Msgs = append(in.Msgs, &aivmv1.MsgSubmitResults{
		Provider:   in.Msgs[0].(*aivmv1.MsgRegisterProvider).Provider,
		MerkleRoot: bytes.Repeat([]byte{0xab}, 32),
		Results:    []*aivmv1.ResultRecord{{JobUid: "6f1c0f0e-uid", OutputDigest: "sha256:01", InputTokens: 3, OutputTokens: 9, DurationMs: 41}},
	})
	txBytes, _, err := BuildAndSign(in)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := json.Marshal(map[string]any{
		"txHex": hex.EncodeToString(txBytes), "chainId": in.ChainID, "accountNumber": in.AccountNumber,
		"prefix": "nesa", "testPrivKeyHex": in.Key.PrivKeyHex(),
	})
	cmd := exec.Command(nodeBin, "verify.mjs")
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(req)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cosmjs: %v\n%s", err, stderr.String())
	}
	t.Logf("cosmjs: %s", out)
	var got struct {
		SignatureValid  bool
		PubkeyType      string
		Address         string
		WalletAddress   string
		Sequence        string
		SignMode        int
		GasLimit        string
		Fee             []string
		Memo            string
		TimeoutHeight   string
		Messages        []struct{ TypeURL, ValueHex string }
		CosmjsSignature string
		TxSignature     string
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	addr, _ := in.Key.Address("nesa")
	if !got.SignatureValid {
		t.Error("cosmjs: signature does not verify")
	}
	if got.CosmjsSignature != got.TxSignature {
		t.Errorf("cosmjs signs the SignDoc as %s, we signed %s", got.CosmjsSignature, got.TxSignature)
	}
	if got.PubkeyType != "tendermint/PubKeySecp256k1" || got.Address != addr || got.WalletAddress != addr {
		t.Errorf("pubkey %s address %s wallet %s, want %s", got.PubkeyType, got.Address, got.WalletAddress, addr)
	}
	if got.Sequence != "42" || got.SignMode != 1 || got.GasLimit != "200000" || len(got.Fee) != 1 || got.Fee[0] != "5000unes" ||
		got.Memo != in.Memo || got.TimeoutHeight != "900" {
		t.Errorf("decoded fields %+v", got)
	}
	if len(got.Messages) != 2 {
		t.Fatalf("messages %+v", got.Messages)
	}
	for i, m := range in.Msgs {
		want, _ := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		if got.Messages[i].TypeURL != "/"+string(m.ProtoReflect().Descriptor().FullName()) || got.Messages[i].ValueHex != hex.EncodeToString(want) {
			t.Errorf("message %d: %+v", i, got.Messages[i])
		}
	}
}
