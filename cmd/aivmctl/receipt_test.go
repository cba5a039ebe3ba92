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

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	chainclient "github.com/aivm-dev/aivm-operator/chain-client"
	"github.com/aivm-dev/aivm-operator/chain-client/aivmv1"
	"github.com/aivm-dev/aivm-operator/chain-client/devnet"
	"github.com/aivm-dev/aivm-operator/chain-client/keys"
	"github.com/aivm-dev/aivm-operator/chain-client/outbox"
	"github.com/aivm-dev/aivm-operator/chain-client/receipt"
	"github.com/aivm-dev/aivm-operator/chain-client/rpc"
)

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// committedReceipt puts two results on a fresh devnet through the chain
// client and returns the devnet's RPC URL and a receipt, with its inclusion,
// for the first.
func committedReceipt(t *testing.T) (string, *receipt.Receipt) {
	t.Helper()
	recs := []*aivmv1.ResultRecord{}
	for i := range 2 {
		recs = append(recs, testRecord(fmt.Sprintf("cli-job-%d", i), i))
	}
	url, _, rs := commitResults(t, recs...)
	return url, rs[0]
}

// testKey is the provider key the receipt tests sign with.
func testKey(t *testing.T) *keys.Key {
	t.Helper()
	h := sha256.Sum256([]byte("aivmctl receipt test"))
	k, err := keys.FromHex(hex.EncodeToString(h[:]))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// testRecord returns a valid result record for jobUID; n varies its output.
func testRecord(jobUID string, n int) *aivmv1.ResultRecord {
	return &aivmv1.ResultRecord{JobUid: jobUID, KernelDigest: sha("k"),
		ModelDigest: sha("m"), InputDigest: sha("i"), OutputDigest: sha(fmt.Sprint("o", n)), InputTokens: 3, OutputTokens: 4, DurationMs: 5}
}

// commitResults puts recs on a fresh devnet through the chain client and
// returns the devnet's RPC URL, the provider key, and each record's signed
// receipt with its inclusion.
func commitResults(t *testing.T, recs ...*aivmv1.ResultRecord) (string, *keys.Key, []*receipt.Receipt) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	k := testKey(t)
	addr, _ := k.Address("")
	node, err := devnet.Start(ctx, devnet.Config{Home: t.TempDir(), BlockTime: 50 * time.Millisecond, Accounts: map[string]uint64{addr: 1 << 40}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Stop() })
	chain, err := rpc.New(node.RPCURL())
	if err != nil {
		t.Fatal(err)
	}
	box, err := outbox.Open(t.TempDir(), outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer box.Close()
	committed := make(chan chainclient.Event, len(recs))
	cc, err := chainclient.New(chainclient.Options{Key: k, ChainID: node.ChainID(), Chain: chain, Outbox: box,
		BatchDelay: 20 * time.Millisecond, PollInterval: 20 * time.Millisecond,
		Registration: &aivmv1.MsgRegisterProvider{Moniker: "cli-test", Endpoint: "https://p.example", Version: "v0"},
		OnEvent:      func(e chainclient.Event) { committed <- e }})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- cc.Run(runCtx) }()
	defer func() { stop(); <-done }()
	if err := cc.Enqueue(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	for range recs {
		select {
		case e := <-committed:
			if e.Type != chainclient.EventCommitted {
				t.Fatalf("event %+v", e)
			}
		case <-ctx.Done():
			t.Fatal("results not committed")
		}
	}
	var out []*receipt.Receipt
	for _, rec := range recs {
		e, err := cc.Get(rec.GetJobUid())
		if err != nil {
			t.Fatal(err)
		}
		r, err := receipt.Sign(k, "", rec)
		if err != nil {
			t.Fatal(err)
		}
		r.Chain = &receipt.Inclusion{ChainID: node.ChainID(), TxHash: e.TxHash, Height: e.Height, Root: e.Root, Proof: *e.Proof}
		out = append(out, r)
	}
	return node.RPCURL(), k, out
}

func writeReceipt(t *testing.T, r *receipt.Receipt) string {
	t.Helper()
	data, err := receipt.Encode(r)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "receipt.json")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReceiptVerify(t *testing.T) {
	url, r := committedReceipt(t)
	file := writeReceipt(t, r)

	out, _, err := runCmd(t, "", "receipt", "verify", "--rpc", url, file)
	if err != nil {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	for _, want := range []string{"signature OK", "proof OK", "(matches)", r.Signer, r.Chain.TxHash} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// From stdin, offline, with the expected signer.
	data, _ := os.ReadFile(file)
	if out, _, err := runCmd(t, string(data), "receipt", "verify", "--signer", r.Signer, "-"); err != nil || !strings.Contains(out, "signature OK") {
		t.Fatalf("verify from stdin: %v\n%s", err, out)
	}

	tampered := func(f func(r *receipt.Receipt)) string {
		c := *r
		inc := *r.Chain
		c.Chain = &inc
		c.Signature = append([]byte(nil), r.Signature...)
		f(&c)
		return writeReceipt(t, &c)
	}
	other := sha256.Sum256([]byte("other"))
	otherKey, _ := keys.FromHex(hex.EncodeToString(other[:]))
	otherAddr, _ := otherKey.Address("")
	tests := map[string]struct {
		args []string
		want string
	}{
		"bad signature": {args: []string{tampered(func(c *receipt.Receipt) { c.Signature[5] ^= 1 })}, want: "signature"},
		"other height on chain": {args: []string{"--rpc", url, tampered(func(c *receipt.Receipt) { c.Chain.Height++ })},
			want: "height"},
		"other root":    {args: []string{tampered(func(c *receipt.Receipt) { c.Chain.Root[0] ^= 1 })}, want: "proof"},
		"wrong signer":  {args: []string{"--signer", otherAddr, file}, want: "not " + otherAddr},
		"missing file":  {args: []string{filepath.Join(t.TempDir(), "none.json")}, want: "open receipt"},
		"unreachable":   {args: []string{"--rpc", "http://127.0.0.1:1", file}, want: "query chain"},
		"not a receipt": {args: []string{writeFile(t, `{"version":"aivm.dev/receipt/v1","extra":1}`)}, want: "unknown field"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, _, err := runCmd(t, "", append([]string{"receipt", "verify"}, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
	if _, _, err := runCmd(t, "", "receipt", "verify"); err == nil {
		t.Fatal("verify without a file succeeded")
	}
}

func writeFile(t *testing.T, s string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f.json")
	if err := os.WriteFile(p, bytes.TrimSpace([]byte(s)), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestReceiptVerifyRefusesEveryFlippedByte alters a committed receipt one
// byte at a time (each byte XOR 0x01) and expects `receipt verify --rpc`
// to refuse every altered copy. The receipt is leaf 0 of a batch of 6, so
// a treeSize of 7 still passes the offline proof check: only the chain's
// batch can refuse it, as only the chain can refuse another chain id.
func TestReceiptVerifyRefusesEveryFlippedByte(t *testing.T) {
	var recs []*aivmv1.ResultRecord
	for i := range 6 {
		recs = append(recs, testRecord(fmt.Sprintf("flip-job-%d", i), i))
	}
	url, _, rs := commitResults(t, recs...)
	r := rs[0]
	if r.Chain.Proof.TreeSize != 6 || r.Chain.Proof.LeafIndex != 0 {
		t.Fatalf("receipt is leaf %d of %d, want leaf 0 of one batch of 6", r.Chain.Proof.LeafIndex, r.Chain.Proof.TreeSize)
	}
	data, err := receipt.Encode(r)
	if err != nil {
		t.Fatal(err)
	}
	if out, _, err := runCmd(t, string(data), "receipt", "verify", "--rpc", url, "-"); err != nil {
		t.Fatalf("the unaltered receipt is refused: %v\n%s", err, out)
	}

	// The premise: these two alterations pass every offline check.
	for name, alter := range map[string]func(c *receipt.Inclusion){
		"treeSize 7": func(c *receipt.Inclusion) { c.Proof.TreeSize = 7 },
		"chain id":   func(c *receipt.Inclusion) { c.ChainID = "other-chain" },
	} {
		c := *r
		inc := *r.Chain
		alter(&inc)
		c.Chain = &inc
		if err := c.Verify(); err != nil {
			t.Fatalf("%s: offline verify refuses it already (%v); the test no longer covers the chain check", name, err)
		}
		if _, _, err := runCmd(t, "", "receipt", "verify", "--rpc", url, writeReceipt(t, &c)); err == nil || !strings.Contains(err.Error(), "does not match the chain") {
			t.Errorf("%s: error = %v, want a mismatch with the chain", name, err)
		}
	}

	for i := range data {
		altered := bytes.Clone(data)
		altered[i] ^= 0x01
		if out, _, err := runCmd(t, string(altered), "receipt", "verify", "--rpc", url, "-"); err == nil {
			t.Errorf("byte %d (%q -> %q) altered, receipt accepted:\n%s", i, data[i], altered[i], out)
		}
	}
}
