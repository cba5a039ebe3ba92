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

package chainclient_test

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	chainclient "github.com/aivm-dev/aivm-operator/chain-client"
	"github.com/aivm-dev/aivm-operator/chain-client/aivmv1"
	"github.com/aivm-dev/aivm-operator/chain-client/devnet"
	"github.com/aivm-dev/aivm-operator/chain-client/keys"
	"github.com/aivm-dev/aivm-operator/chain-client/outbox"
	"github.com/aivm-dev/aivm-operator/chain-client/rpc"
	"github.com/aivm-dev/aivm-operator/chain-client/tx"
)

// Environment of a crash-test child process.
const (
	crashChildEnv  = "AIVM_CRASH_CHILD"
	crashRPCEnv    = "AIVM_CRASH_RPC"
	crashDirEnv    = "AIVM_CRASH_OUTBOX"
	crashKeyEnv    = "AIVM_CRASH_KEY_FILE"
	crashChainEnv  = "AIVM_CRASH_CHAIN_ID"
	crashUpToEnv   = "AIVM_CRASH_UPTO"
	crashHoldEnv   = "AIVM_CRASH_HOLD"
	crashGroupSize = 3
)

func TestMain(m *testing.M) {
	if os.Getenv(crashChildEnv) != "" {
		os.Exit(crashChild())
	}
	os.Exit(m.Run())
}

// crashChild is the reporter process of TestCrashExactlyOnce: it enqueues
// results 0..UPTO-1 (idempotently; earlier runs may have stored some),
// reports progress on stdout ("E" per enqueue call, "B <tx hash>" per batch
// stored in the outbox, "C <uid>" per commit) and prints "DONE" once all of
// them are committed. With HOLD=N its N-th stored batch prints
// "H <tx hash>" instead and stops the client's loop there, stored and not
// yet broadcast, until the parent kills the process.
func crashChild() int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		return 2
	}
	upto, err := strconv.Atoi(os.Getenv(crashUpToEnv))
	if err != nil {
		return fail(err)
	}
	hold, err := strconv.Atoi(os.Getenv(crashHoldEnv))
	if err != nil {
		return fail(err)
	}
	k, err := keys.Load(os.Getenv(crashKeyEnv), "")
	if err != nil {
		return fail(err)
	}
	chain, err := rpc.New(os.Getenv(crashRPCEnv))
	if err != nil {
		return fail(err)
	}
	box, err := outbox.Open(os.Getenv(crashDirEnv), outbox.Options{})
	if err != nil {
		return fail(err)
	}
	out := bufio.NewWriter(os.Stdout)
	lines := make(chan string, 1<<12)
	c, err := chainclient.New(chainclient.Options{
		Key: k, ChainID: os.Getenv(crashChainEnv), Chain: chain, Outbox: box,
		MaxBatchResults: 25, BatchDelay: 10 * time.Millisecond, PollInterval: 20 * time.Millisecond,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		Registration: registration(), RenewBeforeBlocks: 10,
		OnEvent: func(e chainclient.Event) { lines <- "C " + e.UID },
	})
	if err != nil {
		return fail(err)
	}
	stored := 0
	chainclient.SetBatchStoredHook(c, func(txHash string) {
		stored++
		if stored != hold {
			lines <- "B " + txHash
			return
		}
		lines <- "H " + txHash
		for {
			time.Sleep(time.Minute) // until SIGKILL
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- c.Run(ctx) }()
	recs := records("crash", 0, upto)
	for i := 0; i < len(recs); i += crashGroupSize {
		if err := c.Enqueue(ctx, recs[i:min(i+crashGroupSize, len(recs))]...); err != nil {
			return fail(err)
		}
		fmt.Fprintln(out, "E", i)
		out.Flush()
	}
	for {
		counts, err := box.Counts()
		if err != nil {
			return fail(err)
		}
		if counts[outbox.StateCommitted] == upto {
			fmt.Fprintln(out, "DONE")
			out.Flush()
			return 0
		}
		if n := counts[outbox.StateRejected]; n > 0 {
			return fail(fmt.Errorf("%d results rejected", n))
		}
		select {
		case l := <-lines:
			fmt.Fprintln(out, l)
			out.Flush()
		case err := <-runErr:
			return fail(fmt.Errorf("client stopped: %w", err))
		}
	}
}

// TestCrashExactlyOnce kills the reporter process with SIGKILL over and
// over while it enqueues and reports a few hundred results, then lets a last
// run finish. Odd rounds kill at a random line of the child's output; even
// rounds kill with a signed batch stored in the outbox and not yet
// broadcast (the child holds there), so every run proves that a restart
// resends the stored bytes: each held batch must be committed under its own
// hash, first offered to the mempool by a later run. Of the exactly-once
// checks, "never lost" is that every job is on chain and Committed in the
// outbox; "never twice" is the devnet's mempool record (checkSignedOnce):
// each job was signed into exactly one transaction ever offered, so no
// second signing could land (the chain's duplicate-UID refusal would hide
// one from checkExactlyOnce). See docs/chain-client.md.
func TestCrashExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test re-executes the test binary many times")
	}
	const (
		rounds    = 16
		perRound  = 25
		total     = rounds * perRound
		minKills  = 12
		maxRounds = 40
	)
	k := keyFor(t, "crash")
	env := startChain(t, devnet.Config{Accounts: map[string]uint64{addrOf(t, k): testFunds}, BlockTime: 50 * time.Millisecond,
		ProviderValidBlocks: 1 << 40})
	// Register the provider before the runs, for good: every transaction a
	// run signs is then a batch, stored in the outbox before it is sent. (A
	// registration is not stored: a run killed with one in the mempool
	// leaves the next run to sign its first batch with the registration's
	// sequence; the chain refuses that batch at CheckTx, so it could never
	// land, and its results are signed again: safe, but not "signed once".)
	registerOutOfBand(t, env, k)
	dir := t.TempDir()
	keyFile := filepath.Join(t.TempDir(), "provider.key")
	if err := keys.SaveFile(keyFile, k, false); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	seed := rng.Uint64()
	t.Logf("kill points seeded with %d", seed)
	rng = rand.New(rand.NewPCG(seed, 7))

	// run starts a child for results 0..upto-1 and SIGKILLs it after
	// killAfter lines (0: never), or once it holds its hold-th stored batch
	// (0: never). It returns whether the child finished and the batch held.
	run := func(upto, killAfter, hold int) (done bool, held string) {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(),
			crashChildEnv+"=1",
			crashRPCEnv+"="+env.node.RPCURL(),
			crashDirEnv+"="+dir,
			crashKeyEnv+"="+keyFile,
			crashChainEnv+"="+env.node.ChainID(),
			crashUpToEnv+"="+strconv.Itoa(upto),
			crashHoldEnv+"="+strconv.Itoa(hold),
		)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		timer := time.AfterFunc(waitLimit, func() { cmd.Process.Kill() })
		defer timer.Stop()
		sc := bufio.NewScanner(stdout)
		seen := 0
		for sc.Scan() {
			if sc.Text() == "DONE" {
				done = true
				break
			}
			if h, ok := strings.CutPrefix(sc.Text(), "H "); ok {
				held = h
				break
			}
			seen++
			if killAfter > 0 && seen >= killAfter {
				break
			}
		}
		// SIGKILL: no deferred code, no flush, no clean close.
		cmd.Process.Kill()
		err = cmd.Wait()
		if !done && killAfter == 0 && held == "" {
			t.Fatalf("run ended without DONE or a held batch: %v\n%s", err, stderr.String())
		}
		if strings.Contains(stderr.String(), "crash child:") {
			t.Fatalf("child failed: %s", stderr.String())
		}
		return done, held
	}

	kills, inFlightAtKill := 0, 0
	var heldBatches []outbox.Batch
	// requeuesAtHold is each held result's requeue count when its run was
	// killed.
	requeuesAtHold := map[string]int{}
	// Every round adds perRound results; rounds go on (without new results
	// once all are in) until enough runs were killed before finishing.
	for round := 1; round <= rounds || (kills < minKills && round <= maxRounds); round++ {
		upto := min(round, rounds) * perRound
		killAfter, hold := 0, 0
		switch {
		case round <= rounds && round%4 == 2:
			// The round's new results make at least one batch.
			hold = 1
		case round <= rounds && round%4 == 0:
			hold = 2
		default:
			// A kill point among the lines this run prints: its enqueue
			// calls (always printed) and, often, some of its batches and
			// commits.
			killAfter = 1 + rng.IntN(upto/crashGroupSize+perRound/2)
		}
		done, held := run(upto, killAfter, hold)
		if done {
			continue
		}
		kills++
		box, err := outbox.Open(dir, outbox.Options{})
		if err != nil {
			t.Fatal(err)
		}
		counts, err := box.Counts()
		if err != nil {
			t.Fatal(err)
		}
		inFlight, err := box.InFlight()
		if err != nil {
			t.Fatal(err)
		}
		if len(inFlight) > 0 {
			inFlightAtKill++
		}
		if held != "" {
			i := slices.IndexFunc(inFlight, func(b outbox.Batch) bool { return b.TxHash == held })
			if i < 0 {
				t.Fatalf("run %d held batch %s, which the outbox does not hold in flight: %v", round, held, counts)
			}
			if offered(env, held) {
				t.Fatalf("run %d held batch %s before its broadcast, yet the mempool was offered it", round, held)
			}
			heldBatches = append(heldBatches, inFlight[i])
			for _, uid := range inFlight[i].UIDs {
				e, err := box.Get(uid)
				if err != nil {
					t.Fatal(err)
				}
				requeuesAtHold[uid] = e.Requeues
			}
		}
		box.Close()
		t.Logf("killed run %d (after %d lines, held %q): outbox %v, %d batches in flight", round, killAfter, held, counts, len(inFlight))
	}
	if kills < minKills {
		t.Fatalf("only %d runs were killed before finishing", kills)
	}
	if len(heldBatches) < rounds/4 {
		t.Fatalf("only %d runs were killed holding a stored batch, want at least %d", len(heldBatches), rounds/4)
	}
	if done, _ := run(total, 0, 0); !done {
		t.Fatal("final run did not finish")
	}
	t.Logf("%d runs killed with SIGKILL before finishing, %d of them with signed batches in flight, %d held before the batch's broadcast",
		kills, inFlightAtKill, len(heldBatches))

	box, err := outbox.Open(dir, outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer box.Close()
	ctx := ctxT(t)
	// The resend path ran: every held batch, never broadcast by the run
	// that signed it, was sent by a later run and committed as signed, its
	// results never back in Pending (signing them again at the same
	// sequence could make the same bytes).
	for _, b := range heldBatches {
		var res rpc.TxResult
		retry(t, func() (err error) { res, err = env.rpc.Tx(ctx, b.TxHash); return err })
		if !res.Found || res.Code != 0 {
			t.Errorf("held batch %s was not resent and committed after the restart: %+v (offered: %v)", b.TxHash, res, offered(env, b.TxHash))
		}
		for _, uid := range b.UIDs {
			if e, err := box.Get(uid); err != nil || e.TxHash != b.TxHash || e.Requeues != requeuesAtHold[uid] {
				t.Errorf("job %s of held batch %s: outbox has tx %s after %d requeues, %d when held (%v); want the held batch, not requeued",
					uid, b.TxHash, e.TxHash, e.Requeues, requeuesAtHold[uid], err)
			}
		}
	}
	// Never lost: every job is on chain.
	recs := records("crash", 0, total)
	for _, rec := range recs {
		var stored *aivmv1.StoredResult
		retry(t, func() (err error) { stored, err = env.rpc.Result(ctx, rec.GetJobUid()); return err })
		if stored == nil {
			t.Fatalf("job %s is not on chain", rec.GetJobUid())
		}
	}
	checkExactlyOnce(t, env, uidsOf(recs))
	// Never twice: killed runs resent their signed batches, never signed
	// them again.
	checkSignedOnce(t, env, uidsOf(recs))
	counts, err := box.Counts()
	if err != nil {
		t.Fatal(err)
	}
	if counts[outbox.StateCommitted] != total || len(counts) != 1 {
		t.Fatalf("outbox after the last run = %v, want %d Committed", counts, total)
	}
}

// offered reports whether the devnet's mempool was ever offered the
// transaction hash.
func offered(env *chainEnv, hash string) bool {
	env.offers.mu.Lock()
	defer env.offers.mu.Unlock()
	return env.offers.txs[hash] != nil
}

// registerOutOfBand registers k's provider with the test's registration,
// signed by the test itself with the account's next sequence, and waits for
// the block.
func registerOutOfBand(t *testing.T, env *chainEnv, k *keys.Key) {
	t.Helper()
	ctx := ctxT(t)
	num, seq, err := env.rpc.Account(ctx, addrOf(t, k))
	if err != nil {
		t.Fatal(err)
	}
	msg := registration()
	msg.Provider = addrOf(t, k)
	raw, hash, err := tx.BuildAndSign(tx.SignInput{Key: k, ChainID: env.node.ChainID(), AccountNumber: num,
		Sequence: seq, Msgs: []proto.Message{msg}, FeeAmount: 10_000, FeeDenom: "unes", GasLimit: 400_000})
	if err != nil {
		t.Fatal(err)
	}
	if br, err := env.rpc.BroadcastSync(ctx, raw); err != nil || br.Code != 0 {
		t.Fatalf("registration: %+v, %v", br, err)
	}
	if res, err := env.rpc.WaitForTx(ctx, hash, 20*time.Millisecond); err != nil || res.Code != 0 {
		t.Fatalf("registration: %+v, %v", res, err)
	}
}
