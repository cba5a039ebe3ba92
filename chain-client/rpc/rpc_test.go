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

package rpc_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/aivm-dev/aivm-operator/chain-client/aivmv1"
	"github.com/aivm-dev/aivm-operator/chain-client/devnet"
	"github.com/aivm-dev/aivm-operator/chain-client/keys"
	"github.com/aivm-dev/aivm-operator/chain-client/rpc"
	"github.com/aivm-dev/aivm-operator/chain-client/tx"
)

var (
	node   *devnet.Node
	client *rpc.Client
	key    *keys.Key
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	home, err := os.MkdirTemp("", "aivm-rpc-test-")
	if err != nil {
		return 1
	}
	defer os.RemoveAll(home)
	h := sha256.Sum256([]byte("rpc test key"))
	key, _ = keys.FromHex(fmt.Sprintf("%x", h))
	a, _ := key.Address("")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	node, err = devnet.Start(ctx, devnet.Config{Home: home, ChainID: "rpc-test", Accounts: map[string]uint64{a: 1 << 40}, BlockTime: 100 * time.Millisecond})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer node.Stop()
	if client, err = rpc.New(node.RPCURL()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

func tctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func registerTx(t *testing.T, seq uint64, moniker string) ([]byte, string) {
	t.Helper()
	a, _ := key.Address("")
	num, _, err := client.Account(tctx(t), a)
	if err != nil {
		t.Fatal(err)
	}
	b, h, err := tx.BuildAndSign(tx.SignInput{Key: key, ChainID: "rpc-test", AccountNumber: num, Sequence: seq,
		Msgs:      []proto.Message{&aivmv1.MsgRegisterProvider{Provider: a, Moniker: moniker}},
		FeeAmount: 100000, FeeDenom: "unes", GasLimit: 1_000_000})
	if err != nil {
		t.Fatal(err)
	}
	return b, h
}

// TestBroadcastTwiceCountsAsInMempool: sending the same signed bytes again
// is answered with code 19, which a client counts as accepted; the tx
// executes once.
func TestBroadcastTwiceCountsAsInMempool(t *testing.T) {
	b, h := registerTx(t, 0, "twice")
	br, err := client.BroadcastSync(tctx(t), b)
	if err != nil || br.Code != 0 || br.Hash != h {
		t.Fatalf("first broadcast: %+v %v", br, err)
	}
	br, err = client.BroadcastSync(tctx(t), b)
	if err != nil {
		t.Fatal(err)
	}
	if br.Code != rpc.CodeTxInMempoolCache || br.Codespace != rpc.CodespaceSDK || br.Hash != h {
		t.Errorf("second broadcast: %+v", br)
	}
	r, err := client.WaitForTx(tctx(t), h, 20*time.Millisecond)
	if err != nil || !r.Found || r.Code != 0 || r.Height <= 0 || r.GasUsed <= 0 {
		t.Fatalf("tx result %+v %v", r, err)
	}
	a, _ := key.Address("")
	if _, seq, _ := client.Account(tctx(t), a); seq != 1 {
		t.Errorf("sequence %d, want 1", seq)
	}
	p, err := client.Provider(tctx(t), a)
	if err != nil || p.GetRegistration().GetMoniker() != "twice" {
		t.Errorf("provider %v %v", p, err)
	}
	// Once committed, a third send is still refused (cache or sequence).
	br, err = client.BroadcastSync(tctx(t), b)
	if err != nil || (br.Code != rpc.CodeTxInMempoolCache && br.Code != devnet.CodeWrongSequence) {
		t.Errorf("third broadcast: %+v %v", br, err)
	}
}

func TestCheckTxRefusalIsAResultNotAnError(t *testing.T) {
	b, _ := registerTx(t, 77, "future")
	br, err := client.BroadcastSync(tctx(t), b)
	if err != nil {
		t.Fatal(err)
	}
	if br.Code != devnet.CodeWrongSequence || br.Codespace != "sdk" || !strings.HasPrefix(br.Log, "account sequence mismatch, expected ") {
		t.Errorf("got %+v", br)
	}
}

func TestTxNotFoundAndBadHash(t *testing.T) {
	r, err := client.Tx(tctx(t), strings.Repeat("AB", 32))
	if err != nil || r.Found {
		t.Errorf("unknown hash: %+v %v", r, err)
	}
	if _, err := client.Tx(tctx(t), "xyz"); err == nil {
		t.Error("bad hash accepted")
	}
}

func TestStatusAndHeight(t *testing.T) {
	st, err := client.Status(tctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if st.ChainID != "rpc-test" || st.Height < 1 {
		t.Errorf("status %+v", st)
	}
	if err := node.WaitForHeight(tctx(t), st.Height+1); err != nil {
		t.Fatal(err)
	}
	h, err := client.Height(tctx(t))
	if err != nil || h <= st.Height {
		t.Errorf("height %d after %d: %v", h, st.Height, err)
	}
}

func TestQueriesNotFound(t *testing.T) {
	other, _ := keys.Generate()
	a, _ := other.Address("")
	if _, _, err := client.Account(tctx(t), a); !errors.Is(err, rpc.ErrAccountNotFound) {
		t.Errorf("account: %v", err)
	}
	if p, err := client.Provider(tctx(t), a); p != nil || err != nil {
		t.Errorf("provider: %v %v", p, err)
	}
	if r, err := client.Result(tctx(t), "no-such-job"); r != nil || err != nil {
		t.Errorf("result: %v %v", r, err)
	}
	var qe *rpc.QueryError
	if _, _, err := client.Account(tctx(t), "garbage"); !errors.As(err, &qe) || qe.Code != devnet.CodeInvalidAddress {
		t.Errorf("garbage address: %v", err)
	}
}

// TestWaitForTxPollsOnTheClock: WaitForTx waits on its injected clock
// between lookups and gives up when ctx ends.
func TestWaitForTxPollsOnTheClock(t *testing.T) {
	fc := clocktesting.NewFakeClock(time.Now())
	c, err := rpc.New(node.RPCURL(), rpc.WithClock(fc))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.WaitForTx(ctx, strings.Repeat("CD", 32), time.Second)
		done <- err
	}()
	// Step the clock a few times; each step releases one more lookup.
	for i := 0; i < 3; i++ {
		for !fc.HasWaiters() {
			select {
			case err := <-done:
				t.Fatalf("WaitForTx returned early: %v", err)
			default:
			}
			runtime.Gosched() // until the poller parks on the fake ticker
		}
		fc.Step(time.Second)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v", err)
	}
}

func TestUnreachableNode(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String()
	l.Close()
	c, err := rpc.New(url)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := key.Address("")
	if _, _, err := c.Account(tctx(t), a); err == nil || errors.Is(err, rpc.ErrAccountNotFound) {
		t.Errorf("account on a dead node: %v", err)
	}
	if _, err := c.BroadcastSync(tctx(t), []byte{1}); err == nil {
		t.Error("broadcast to a dead node succeeded")
	}
}

// TestURLSecretsNeverInErrors: an RPC URL may carry a password and an API
// key; neither appears in any error, whether the URL is refused at once or
// the node behind it cannot be reached.
func TestURLSecretsNeverInErrors(t *testing.T) {
	secrets := []string{"s3cr3tpass", "apikey", "k3y-s3cr3t"}
	check := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: no error", what)
		}
		for _, s := range secrets {
			if strings.Contains(err.Error(), s) {
				t.Errorf("%s: error %q reveals %q", what, err, s)
			}
		}
	}
	_, err := rpc.New("http://alice:s3cr3tpass@127.0.0.1:1x/?apikey=k3y-s3cr3t")
	check("New with a bad port", err)
	if !strings.Contains(err.Error(), "invalid port") {
		t.Errorf("error %q does not say what is wrong", err)
	}

	// A URL that parses, for a node that is not there.
	c, err := rpc.New("http://alice:s3cr3tpass@127.0.0.1:1/?apikey=k3y-s3cr3t")
	if err != nil {
		t.Fatal(err)
	}
	ctx := tctx(t)
	_, err = c.Height(ctx)
	check("Height", err)
	_, err = c.BroadcastSync(ctx, []byte("tx"))
	check("BroadcastSync", err)
	_, _, err = c.Account(ctx, "nesa1xyz")
	check("Account", err)
	_, err = c.Tx(ctx, strings.Repeat("ab", 32))
	check("Tx", err)
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://alice:s3cr3tpass@node:26657/rpc?apikey=k3y-s3cr3t#frag": "http://alice:xxxxx@node:26657/rpc",
		"https://k3y-s3cr3t@node":                            "https://xxxxx@node",
		"http://node:26657?apikey=k3y-s3cr3t":                "http://node:26657",
		"http://127.0.0.1:26657":                             "http://127.0.0.1:26657",
		"http://alice:s3cr3tpass@node:1x/?apikey=k3y-s3cr3t": "<unparsable URL>",
	} {
		if got := rpc.RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
