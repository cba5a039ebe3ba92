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

package outbox

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/aivm-dev/aivm-operator/chain-client/merkle"
)

func item(uid string) Item {
	return Item{UID: uid, Leaf: merkle.LeafHash([]byte(uid)), Record: []byte("record:" + uid)}
}

func openT(t testing.TB, dir string) *Outbox {
	t.Helper()
	o, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	return o
}

func uidsOf(es []Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.UID
	}
	return out
}

func batchOf(t testing.TB, hash string, seq uint64, uids ...string) Batch {
	t.Helper()
	leaves := make([]merkle.Hash, len(uids))
	for i, u := range uids {
		leaves[i] = item(u).Leaf
	}
	root, err := merkle.Root(leaves)
	if err != nil {
		t.Fatal(err)
	}
	return Batch{TxHash: hash, TxBytes: []byte("signed-" + hash), Sequence: seq, UIDs: uids, Root: root}
}

func TestEnqueueIsIdempotentAndOrdered(t *testing.T) {
	ctx := context.Background()
	o := openT(t, t.TempDir())
	if err := o.Enqueue(ctx, item("a"), item("b")); err != nil {
		t.Fatal(err)
	}
	changed := item("a")
	changed.Record = []byte("other")
	if err := o.Enqueue(ctx, changed, item("c"), item("c")); err != nil {
		t.Fatal(err)
	}
	got, err := o.Pending(10)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a", "b", "c"}, uidsOf(got)); diff != "" {
		t.Fatalf("pending (-want +got):\n%s", diff)
	}
	a, err := o.Get("a")
	if err != nil {
		t.Fatal(err)
	}
	if string(a.Record) != "record:a" || a.State != StatePending {
		t.Fatalf("entry a = %+v, want the first record, Pending", a)
	}
	if got, _ := o.Pending(2); len(got) != 2 {
		t.Fatalf("Pending(2) returned %d entries", len(got))
	}
	if _, err := o.Get("zz"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(zz) error = %v, want ErrNotFound", err)
	}
}

func TestEnqueueRejectsInvalidItemsAndStoresNothing(t *testing.T) {
	ctx := context.Background()
	o := openT(t, t.TempDir())
	bad := map[string]Item{
		"empty uid":    {Leaf: item("x").Leaf, Record: []byte("r")},
		"long uid":     {UID: strings.Repeat("u", MaxUIDLen+1), Leaf: item("x").Leaf, Record: []byte("r")},
		"bad utf8":     {UID: "\xff", Leaf: item("x").Leaf, Record: []byte("r")},
		"empty record": {UID: "x", Leaf: item("x").Leaf},
		"huge record":  {UID: "x", Leaf: item("x").Leaf, Record: make([]byte, MaxRecordLen+1)},
		"zero leaf":    {UID: "x", Record: []byte("r")},
	}
	for name, it := range bad {
		t.Run(name, func(t *testing.T) {
			if err := o.Enqueue(ctx, item("good"), it); err == nil {
				t.Fatal("invalid item accepted")
			}
		})
	}
	counts, err := o.Counts()
	if err != nil {
		t.Fatal(err)
	}
	if len(counts) != 0 {
		t.Fatalf("counts after rejected enqueues = %v, want none", counts)
	}
}

func TestLifecycleSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	o, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := o.Enqueue(ctx, item(fmt.Sprintf("job-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := o.CountPending(); err != nil || n != 5 {
		t.Fatalf("CountPending = %d, %v; want 5", n, err)
	}
	b := batchOf(t, "HASH1", 7, "job-0", "job-1", "job-2")
	if err := o.MarkBatched(b); err != nil {
		t.Fatal(err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}

	o = openT(t, dir)
	if n, err := o.CountPending(); err != nil || n != 2 {
		t.Fatalf("CountPending after reopen = %d, %v; want the 2 results not batched", n, err)
	}
	inflight, err := o.InFlight()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Batch{b}, inflight); diff != "" {
		t.Fatalf("in-flight after reopen (-want +got):\n%s", diff)
	}
	pending, err := o.Pending(10)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"job-3", "job-4"}, uidsOf(pending)); diff != "" {
		t.Fatalf("pending after reopen (-want +got):\n%s", diff)
	}
	// Sequence numbers continue after a reopen.
	if err := o.Enqueue(ctx, item("job-5")); err != nil {
		t.Fatal(err)
	}
	e5, _ := o.Get("job-5")
	if e5.Seq != 5 {
		t.Fatalf("job-5 seq = %d, want 5", e5.Seq)
	}

	committed, err := o.MarkCommitted("HASH1", 42)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(b.UIDs, uidsOf(committed)); diff != "" {
		t.Fatalf("committed (-want +got):\n%s", diff)
	}
	for _, e := range committed {
		got, err := o.Get(e.UID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != StateCommitted || got.Height != 42 || got.TxHash != "HASH1" || got.Root != b.Root {
			t.Fatalf("entry %s = %+v", e.UID, got)
		}
		if err := merkle.Verify(got.Leaf, *got.Proof, got.Root); err != nil {
			t.Fatalf("proof of %s: %v", e.UID, err)
		}
	}
	if inflight, _ := o.InFlight(); len(inflight) != 0 {
		t.Fatalf("in-flight after commit = %v", inflight)
	}
	if _, err := o.MarkCommitted("HASH1", 43); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second commit error = %v, want ErrNotFound", err)
	}
	// A committed UID is never enqueued again.
	if err := o.Enqueue(ctx, item("job-0")); err != nil {
		t.Fatal(err)
	}
	if e, _ := o.Get("job-0"); e.State != StateCommitted {
		t.Fatalf("job-0 after re-enqueue is %s", e.State)
	}
}

func TestMarkBatchedValidates(t *testing.T) {
	ctx := context.Background()
	o := openT(t, t.TempDir())
	if err := o.Enqueue(ctx, item("a"), item("b"), item("c")); err != nil {
		t.Fatal(err)
	}
	if err := o.MarkBatched(batchOf(t, "H0", 1, "a")); err != nil {
		t.Fatal(err)
	}
	wrongRoot := batchOf(t, "H1", 2, "b", "c")
	wrongRoot.Root = item("x").Leaf
	tests := map[string]Batch{
		"already batched": batchOf(t, "H2", 2, "a", "b"),
		"unknown uid":     batchOf(t, "H3", 2, "b", "nope"),
		"duplicate uid":   batchOf(t, "H4", 2, "b", "b"),
		"wrong root":      wrongRoot,
		"reused hash":     batchOf(t, "H0", 2, "b"),
		"no uids":         {TxHash: "H5", TxBytes: []byte("x")},
		"no bytes":        {TxHash: "H6", UIDs: []string{"b"}},
	}
	for name, b := range tests {
		t.Run(name, func(t *testing.T) {
			if err := o.MarkBatched(b); err == nil {
				t.Fatal("invalid batch accepted")
			}
		})
	}
	pending, err := o.Pending(10)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"b", "c"}, uidsOf(pending)); diff != "" {
		t.Fatalf("pending after rejected batches (-want +got):\n%s", diff)
	}
}

func TestRequeueRestoresOrderAndRejectKeepsReason(t *testing.T) {
	ctx := context.Background()
	o := openT(t, t.TempDir())
	if err := o.Enqueue(ctx, item("a"), item("b"), item("c"), item("d")); err != nil {
		t.Fatal(err)
	}
	if err := o.MarkBatched(batchOf(t, "H1", 1, "a", "b")); err != nil {
		t.Fatal(err)
	}
	if err := o.MarkBatched(batchOf(t, "H2", 2, "c")); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Requeue("H1"); err != nil {
		t.Fatal(err)
	}
	pending, err := o.Pending(10)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a", "b", "d"}, uidsOf(pending)); diff != "" {
		t.Fatalf("pending after requeue (-want +got):\n%s", diff)
	}
	if pending[0].Requeues != 1 || pending[0].TxHash != "" {
		t.Fatalf("requeued entry = %+v", pending[0])
	}
	rejected, err := o.MarkRejected("H2", 7, "aivm", "bad digest")
	if err != nil {
		t.Fatal(err)
	}
	want := Entry{UID: "c", Seq: 2, Leaf: item("c").Leaf, Record: item("c").Record, State: StateRejected,
		TxHash: "H2", Code: 7, Codespace: "aivm", Log: "bad digest"}
	if diff := cmp.Diff([]Entry{want}, rejected); diff != "" {
		t.Fatalf("rejected (-want +got):\n%s", diff)
	}
	counts, err := o.Counts()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[State]int{StatePending: 3, StateRejected: 1}, counts); diff != "" {
		t.Fatalf("counts (-want +got):\n%s", diff)
	}
}

func TestConcurrentEnqueueStoresEverythingOnce(t *testing.T) {
	ctx := context.Background()
	o := openT(t, t.TempDir())
	const writers, each = 16, 50
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				// Every UID is written by two writers.
				uid := fmt.Sprintf("job-%d-%d", w/2, i)
				if err := o.Enqueue(ctx, item(uid)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	pending, err := o.Pending(10 * writers * each)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != writers/2*each {
		t.Fatalf("pending = %d, want %d", len(pending), writers/2*each)
	}
	seqs := map[uint64]bool{}
	for _, e := range pending {
		if seqs[e.Seq] {
			t.Fatalf("sequence %d used twice", e.Seq)
		}
		seqs[e.Seq] = true
	}
}

func TestClosed(t *testing.T) {
	o, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if err := o.Enqueue(context.Background(), item("a")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Enqueue after Close = %v, want ErrClosed", err)
	}
	if err := o.MarkBatched(Batch{TxHash: "H", TxBytes: []byte("x"), UIDs: []string{"a"}}); !errors.Is(err, ErrClosed) {
		t.Fatalf("MarkBatched after Close = %v, want ErrClosed", err)
	}
	if _, err := o.CountPending(); !errors.Is(err, ErrClosed) {
		t.Fatalf("CountPending after Close = %v, want ErrClosed", err)
	}
	if err := o.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
}

func TestOpenNeedsDir(t *testing.T) {
	if _, err := Open("", Options{}); err == nil {
		t.Fatal("Open with no directory succeeded")
	}
}

// BenchmarkEnqueueDurable measures durable (fsynced) writes per second with
// many concurrent writers sharing group commits.
func BenchmarkEnqueueDurable(b *testing.B) {
	ctx := context.Background()
	o := openT(b, b.TempDir())
	b.SetParallelism(64)
	var n sync.Mutex
	next := 0
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n.Lock()
			next++
			uid := fmt.Sprintf("job-%09d", next)
			n.Unlock()
			if err := o.Enqueue(ctx, item(uid)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
}

// BenchmarkEnqueueDurableSerial measures one writer waiting for each fsync,
// the figure group commit improves on.
func BenchmarkEnqueueDurableSerial(b *testing.B) {
	ctx := context.Background()
	o := openT(b, b.TempDir())
	i := 0
	for b.Loop() {
		i++
		if err := o.Enqueue(ctx, item(fmt.Sprintf("job-%09d", i))); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
}

func TestEntryCodecRoundTrip(t *testing.T) {
	tree, err := merkle.New([]merkle.Hash{item("a").Leaf, item("b").Leaf, item("c").Leaf})
	if err != nil {
		t.Fatal(err)
	}
	p, err := tree.Proof(2)
	if err != nil {
		t.Fatal(err)
	}
	for name, e := range map[string]Entry{
		"pending": {UID: "a", Seq: 3, Leaf: item("a").Leaf, Record: []byte("r"), State: StatePending},
		"committed": {UID: "job-ü", Seq: 1 << 40, Leaf: item("c").Leaf, Record: []byte{0, 1, 2}, State: StateCommitted,
			TxHash: "ABCDEF", Height: 1234567, Root: tree.Root(), Proof: &p, Requeues: 2},
		"rejected": {UID: "r", Leaf: item("r").Leaf, Record: []byte("x"), State: StateRejected, TxHash: "H",
			Code: 1<<32 - 1, Codespace: "aivm", Log: "duplicate job uid"},
		"one-leaf proof": {UID: "o", Leaf: item("o").Leaf, Record: []byte("x"), State: StateCommitted,
			Proof: &merkle.Proof{LeafIndex: 0, TreeSize: 1}},
	} {
		t.Run(name, func(t *testing.T) {
			raw, err := encodeEntry(&e)
			if err != nil {
				t.Fatal(err)
			}
			back, err := decodeEntry(raw)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(e, *back); diff != "" {
				t.Fatalf("round trip (-want +got):\n%s", diff)
			}
			for i := range raw {
				if _, err := decodeEntry(raw[:i]); err == nil {
					t.Fatalf("truncated entry of %d/%d bytes decoded", i, len(raw))
				}
			}
			if _, err := decodeEntry(append(raw, 0)); err == nil {
				t.Fatal("entry with trailing byte decoded")
			}
		})
	}
	if _, err := encodeEntry(&Entry{UID: "x", State: "Lost"}); err == nil {
		t.Fatal("unknown state encoded")
	}
}

// FuzzDecodeEntry checks that arbitrary stored bytes never crash the decoder
// and that whatever decodes re-encodes to the same bytes.
func FuzzDecodeEntry(f *testing.F) {
	p := merkle.Proof{LeafIndex: 1, TreeSize: 2, Path: []merkle.Hash{item("z").Leaf}}
	for _, e := range []Entry{
		{UID: "a", Leaf: item("a").Leaf, Record: []byte("r"), State: StatePending},
		{UID: "b", Leaf: item("b").Leaf, Record: []byte("r"), State: StateCommitted, TxHash: "T", Height: 9, Proof: &p},
	} {
		raw, err := encodeEntry(&e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte{1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		e, err := decodeEntry(raw)
		if err != nil {
			return
		}
		again, err := encodeEntry(e)
		if err != nil {
			t.Fatalf("decoded entry does not encode: %v", err)
		}
		back, err := decodeEntry(again)
		if err != nil {
			t.Fatalf("re-encoded entry does not decode: %v", err)
		}
		if diff := cmp.Diff(e, back); diff != "" {
			t.Fatalf("re-decode differs:\n%s", diff)
		}
	})
}

func TestSplitSettlesSomeAndRequeuesTheRest(t *testing.T) {
	ctx := context.Background()
	o := openT(t, t.TempDir())
	if err := o.Enqueue(ctx, item("a"), item("b"), item("c"), item("d")); err != nil {
		t.Fatal(err)
	}
	if err := o.MarkBatched(batchOf(t, "H", 1, "a", "b", "c", "d")); err != nil {
		t.Fatal(err)
	}
	// d is already on chain in another batch, with c's leaf beside it.
	other, err := merkle.New([]merkle.Hash{item("x").Leaf, item("d").Leaf})
	if err != nil {
		t.Fatal(err)
	}
	proof, _ := other.Proof(1)
	wrongProof, _ := other.Proof(0)
	bad := map[string]Settlement{"d": {Committed: &Inclusion{TxHash: "OTHER", Height: 7, Root: other.Root(), Proof: wrongProof}}}
	if _, err := o.Split("H", bad); err == nil {
		t.Fatal("settlement with a proof of another leaf accepted")
	}
	if _, err := o.Split("H", map[string]Settlement{"d": {}}); err == nil {
		t.Fatal("empty settlement accepted")
	}
	out, err := o.Split("H", map[string]Settlement{
		"b": {Rejected: &Rejection{Code: 5, Codespace: "aivm", Log: "already on chain"}},
		"d": {Committed: &Inclusion{TxHash: "OTHER", Height: 7, Root: other.Root(), Proof: proof}},
	})
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]State{}
	for _, e := range out {
		states[e.UID] = e.State
	}
	if diff := cmp.Diff(map[string]State{"a": StatePending, "b": StateRejected, "c": StatePending, "d": StateCommitted}, states); diff != "" {
		t.Fatalf("states (-want +got):\n%s", diff)
	}
	pending, err := o.Pending(10)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a", "c"}, uidsOf(pending)); diff != "" {
		t.Fatalf("pending (-want +got):\n%s", diff)
	}
	b, _ := o.Get("b")
	if b.Code != 5 || b.Log != "already on chain" {
		t.Fatalf("b = %+v", b)
	}
	d, _ := o.Get("d")
	if d.TxHash != "OTHER" || d.Height != 7 || d.Root != other.Root() || merkle.Verify(d.Leaf, *d.Proof, d.Root) != nil {
		t.Fatalf("d = %+v", d)
	}
	if inflight, _ := o.InFlight(); len(inflight) != 0 {
		t.Fatalf("batch kept after split: %v", inflight)
	}
}

func TestPruneCommitted(t *testing.T) {
	ctx := context.Background()
	o := openT(t, t.TempDir())
	if err := o.Enqueue(ctx, item("a"), item("b"), item("c"), item("d")); err != nil {
		t.Fatal(err)
	}
	for i, b := range []Batch{batchOf(t, "H1", 1, "a", "b"), batchOf(t, "H2", 2, "c"), batchOf(t, "H3", 3, "d")} {
		if err := o.MarkBatched(b); err != nil {
			t.Fatal(err)
		}
		if i < 2 {
			if _, err := o.MarkCommitted(b.TxHash, int64(10*(i+1))); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Below height 20: only a and b (committed at 10).
	n, err := o.PruneCommitted(20, 100)
	if err != nil || n != 2 {
		t.Fatalf("PruneCommitted(20) = %d, %v; want 2", n, err)
	}
	for uid, want := range map[string]bool{"a": false, "b": false, "c": true, "d": true} {
		_, err := o.Get(uid)
		if got := err == nil; got != want {
			t.Errorf("%s present = %v, want %v (%v)", uid, got, want, err)
		}
	}
	// The limit bounds one call; batched entries are never pruned.
	if n, err := o.PruneCommitted(1000, 100); err != nil || n != 1 {
		t.Fatalf("PruneCommitted(1000) = %d, %v; want 1", n, err)
	}
	if e, err := o.Get("d"); err != nil || e.State != StateBatched {
		t.Fatalf("batched d = %+v, %v", e, err)
	}
	if n, err := o.PruneCommitted(1000, 100); err != nil || n != 0 {
		t.Fatalf("third prune = %d, %v; want 0", n, err)
	}
}
