// Package outbox is the durable queue between finished jobs and the chain.
//
// Results are keyed by job UID in a cometbft-db (goleveldb) database and move
// through the states Pending -> Batched -> Committed (or Rejected). A batch's
// signed transaction bytes and hash are stored in the same atomic write that
// marks its results Batched, before the transaction is broadcast, so after a
// crash the same bytes are confirmed by hash or resent, and nothing is signed
// twice for one job while its transaction can still land.
//
// Every state change is one atomic, synced database batch. Concurrent Enqueue
// calls are group-committed: a single writer goroutine drains all waiting
// callers into one batch and one fsync.
package outbox

import (
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"unicode/utf8"

	dbm "github.com/cometbft/cometbft-db"
	"github.com/go-logr/logr"

	"github.com/aivm-dev/aivm-operator/chain-client/merkle"
)

// State is the position of a result in the outbox's life cycle.
type State string

// The states of an entry.
const (
	// StatePending: durable, waiting to be put into a transaction.
	StatePending State = "Pending"
	// StateBatched: part of a signed transaction whose bytes are stored.
	StateBatched State = "Batched"
	// StateCommitted: included in a block with a zero result code.
	StateCommitted State = "Committed"
	// StateRejected: the chain rejected the transaction with a permanent code.
	StateRejected State = "Rejected"
)

// MaxUIDLen bounds the length of a job UID.
const MaxUIDLen = 253

// MaxRecordLen bounds the size of one stored record.
const MaxRecordLen = 64 << 10

// maxGroup bounds how many Enqueue calls share one synced write.
const maxGroup = 4096

// Key prefixes of the database layout.
var (
	prefixEntry   = []byte("e/") // e/<uid> -> JSON Entry
	prefixPending = []byte("p/") // p/<seq, 8 bytes big endian> -> uid
	prefixBatch   = []byte("b/") // b/<tx hash> -> JSON Batch
	prefixCommit  = []byte("c/") // c/<height, 8 bytes big endian><uid> -> 1, for pruning
	keyNextSeq    = []byte("m/next-seq")
)

// ErrClosed is returned by operations on a closed outbox.
var ErrClosed = errors.New("outbox: closed")

// ErrNotFound is returned when a UID or transaction hash is unknown.
var ErrNotFound = errors.New("outbox: not found")

// Item is one result to be reported.
type Item struct {
	// UID is the job UID, the outbox key; at most MaxUIDLen bytes of UTF-8.
	UID string
	// Leaf is the result's Merkle leaf hash.
	Leaf merkle.Hash
	// Record is the encoded result record that goes into the transaction.
	Record []byte
}

// Entry is the stored state of one result.
type Entry struct {
	// UID is the job UID.
	UID string `json:"uid"`
	// Seq orders entries by enqueue time.
	Seq uint64 `json:"seq"`
	// Leaf is the result's Merkle leaf hash.
	Leaf merkle.Hash `json:"leaf"`
	// Record is the encoded result record.
	Record []byte `json:"record"`
	// State is the entry's life-cycle state.
	State State `json:"state"`
	// TxHash is the hash of the transaction carrying the result (Batched,
	// Committed, Rejected).
	TxHash string `json:"txHash,omitempty"`
	// Height is the block that included the transaction (Committed).
	Height int64 `json:"height,omitempty"`
	// Root is the Merkle root of the transaction's batch (Committed).
	Root merkle.Hash `json:"root,omitzero"`
	// Proof is the inclusion proof of Leaf under Root (Committed).
	Proof *merkle.Proof `json:"proof,omitempty"`
	// Code is the chain's result code (Rejected).
	Code uint32 `json:"code,omitempty"`
	// Codespace is the chain's error codespace (Rejected).
	Codespace string `json:"codespace,omitempty"`
	// Log is the chain's error message (Rejected).
	Log string `json:"log,omitempty"`
	// Requeues counts how often the entry returned to Pending because its
	// transaction could no longer land.
	Requeues int `json:"requeues,omitempty"`
}

// Batch is a signed transaction carrying a list of results.
type Batch struct {
	// TxHash is the uppercase hex sha256 of TxBytes.
	TxHash string `json:"txHash"`
	// TxBytes is the signed transaction exactly as broadcast.
	TxBytes []byte `json:"txBytes"`
	// Sequence is the account sequence the transaction was signed with.
	Sequence uint64 `json:"sequence"`
	// UIDs lists the results in leaf order.
	UIDs []string `json:"uids"`
	// Root is the Merkle root over the results' leaves in that order.
	Root merkle.Hash `json:"root"`
}

// Options tune an outbox.
type Options struct {
	// Logger receives debug messages; the zero value discards them.
	Logger logr.Logger
}

// Outbox is a durable, crash-safe result queue. It is safe for concurrent use.
type Outbox struct {
	db  dbm.DB
	log logr.Logger

	// mu serialises every write so that reads of the current state followed
	// by a batch write are atomic with respect to other writers.
	mu      sync.Mutex
	nextSeq uint64
	closed  bool

	requests chan *enqueueRequest
	stop     chan struct{}
	loopDone chan struct{}
	notify   chan struct{}
}

type enqueueRequest struct {
	items []Item
	done  chan error
}

// Open opens or creates the outbox database named "outbox" in dir.
func Open(dir string, opts Options) (*Outbox, error) {
	if dir == "" {
		return nil, errors.New("outbox: directory is required")
	}
	db, err := dbm.NewGoLevelDB("outbox", dir)
	if err != nil {
		return nil, fmt.Errorf("outbox: open database in %s: %w", dir, err)
	}
	o := &Outbox{
		db:       db,
		log:      opts.Logger,
		requests: make(chan *enqueueRequest, maxGroup),
		stop:     make(chan struct{}),
		loopDone: make(chan struct{}),
		notify:   make(chan struct{}, 1),
	}
	raw, err := db.Get(keyNextSeq)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("outbox: read sequence counter: %w", err)
	}
	if raw != nil {
		if len(raw) != 8 {
			_ = db.Close()
			return nil, fmt.Errorf("outbox: corrupt sequence counter of %d bytes", len(raw))
		}
		o.nextSeq = binary.BigEndian.Uint64(raw)
	}
	go o.commitLoop()
	return o, nil
}

// Close stops the writer and closes the database. Enqueue calls waiting for
// a write when Close is called fail with ErrClosed.
func (o *Outbox) Close() error {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return nil
	}
	o.closed = true
	o.mu.Unlock()
	close(o.stop)
	<-o.loopDone
	return o.db.Close()
}

// Notify returns a channel that receives a value after new entries became
// Pending (coalesced: one value may stand for many writes).
func (o *Outbox) Notify() <-chan struct{} { return o.notify }

func (o *Outbox) signal() {
	select {
	case o.notify <- struct{}{}:
	default:
	}
}

// ValidateItem checks an item before it is stored.
func ValidateItem(it Item) error {
	switch {
	case it.UID == "":
		return errors.New("outbox: item has an empty UID")
	case len(it.UID) > MaxUIDLen:
		return fmt.Errorf("outbox: UID of %d bytes exceeds %d", len(it.UID), MaxUIDLen)
	case !utf8.ValidString(it.UID):
		return errors.New("outbox: UID is not valid UTF-8")
	case len(it.Record) == 0:
		return fmt.Errorf("outbox: item %q has an empty record", it.UID)
	case len(it.Record) > MaxRecordLen:
		return fmt.Errorf("outbox: item %q record of %d bytes exceeds %d", it.UID, len(it.Record), MaxRecordLen)
	case it.Leaf == merkle.Hash{}:
		return fmt.Errorf("outbox: item %q has a zero leaf hash", it.UID)
	}
	return nil
}

// Enqueue durably stores items as Pending and returns once they are synced to
// disk. An item whose UID is already present, in any state, is skipped, so
// Enqueue is idempotent. Invalid items fail the whole call and store nothing.
// Concurrent calls share one synced write.
func (o *Outbox) Enqueue(ctx context.Context, items ...Item) error {
	for _, it := range items {
		if err := ValidateItem(it); err != nil {
			return err
		}
	}
	if len(items) == 0 {
		return nil
	}
	req := &enqueueRequest{items: items, done: make(chan error, 1)}
	select {
	case o.requests <- req:
	case <-o.stop:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once handed over the write is not withdrawn; wait for its outcome so the
	// caller knows whether the items are durable.
	select {
	case err := <-req.done:
		return err
	case <-o.loopDone:
		select {
		case err := <-req.done:
			return err
		default:
			return ErrClosed
		}
	}
}

func (o *Outbox) commitLoop() {
	defer close(o.loopDone)
	group := make([]*enqueueRequest, 0, 64)
	for {
		group = group[:0]
		select {
		case <-o.stop:
			o.failWaiting()
			return
		case req := <-o.requests:
			group = append(group, req)
		}
	drain:
		for len(group) < maxGroup {
			select {
			case req := <-o.requests:
				group = append(group, req)
			default:
				break drain
			}
		}
		err := o.writeGroup(group)
		for _, req := range group {
			req.done <- err
		}
		if err == nil {
			o.signal()
		}
	}
}

func (o *Outbox) failWaiting() {
	for {
		select {
		case req := <-o.requests:
			req.done <- ErrClosed
		default:
			return
		}
	}
}

// writeGroup stores the items of all requests in one synced batch.
func (o *Outbox) writeGroup(group []*enqueueRequest) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	batch := o.db.NewBatch()
	defer func() { _ = batch.Close() }()
	seen := make(map[string]struct{})
	seq := o.nextSeq
	added := 0
	for _, req := range group {
		for _, it := range req.items {
			if _, dup := seen[it.UID]; dup {
				continue
			}
			seen[it.UID] = struct{}{}
			exists, err := o.db.Has(entryKey(it.UID))
			if err != nil {
				return fmt.Errorf("outbox: look up %q: %w", it.UID, err)
			}
			if exists {
				continue
			}
			e := Entry{UID: it.UID, Seq: seq, Leaf: it.Leaf, Record: it.Record, State: StatePending}
			if err := putEntry(batch, &e); err != nil {
				return err
			}
			if err := batch.Set(pendingKey(seq), []byte(it.UID)); err != nil {
				return fmt.Errorf("outbox: stage pending index: %w", err)
			}
			seq++
			added++
		}
	}
	if added == 0 {
		return nil
	}
	if err := batch.Set(keyNextSeq, be64(seq)); err != nil {
		return fmt.Errorf("outbox: stage sequence counter: %w", err)
	}
	if err := batch.WriteSync(); err != nil {
		return fmt.Errorf("outbox: write %d entries: %w", added, err)
	}
	o.nextSeq = seq
	o.log.V(1).Info("Enqueued results", "count", added, "callers", len(group))
	return nil
}

// Get returns the entry stored for uid, or ErrNotFound.
func (o *Outbox) Get(uid string) (Entry, error) {
	e, err := o.getEntry(uid)
	if err != nil {
		return Entry{}, err
	}
	if e == nil {
		return Entry{}, fmt.Errorf("%w: job %q", ErrNotFound, uid)
	}
	return *e, nil
}

// CountPending returns the number of Pending entries. It reads the pending
// index's keys only, so it is cheap enough for every metrics scrape.
func (o *Outbox) CountPending() (int, error) {
	o.mu.Lock()
	closed := o.closed
	o.mu.Unlock()
	if closed {
		return 0, ErrClosed
	}
	it, err := o.db.Iterator(prefixPending, prefixEnd(prefixPending))
	if err != nil {
		return 0, fmt.Errorf("outbox: iterate pending: %w", err)
	}
	defer func() { _ = it.Close() }()
	n := 0
	for ; it.Valid(); it.Next() {
		n++
	}
	if err := it.Error(); err != nil {
		return 0, fmt.Errorf("outbox: iterate pending: %w", err)
	}
	return n, nil
}

// Pending returns up to limit Pending entries, oldest first.
func (o *Outbox) Pending(limit int) ([]Entry, error) {
	it, err := o.db.Iterator(prefixPending, prefixEnd(prefixPending))
	if err != nil {
		return nil, fmt.Errorf("outbox: iterate pending: %w", err)
	}
	defer func() { _ = it.Close() }()
	var uids []string
	for ; it.Valid() && len(uids) < limit; it.Next() {
		uids = append(uids, string(it.Value()))
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("outbox: iterate pending: %w", err)
	}
	out := make([]Entry, 0, len(uids))
	for _, uid := range uids {
		e, err := o.getEntry(uid)
		if err != nil {
			return nil, err
		}
		if e == nil || e.State != StatePending {
			// Moved on between the index read and this read.
			continue
		}
		out = append(out, *e)
	}
	return out, nil
}

// MarkBatched records b and moves its results from Pending to Batched in one
// synced write. It must be called before b.TxBytes is broadcast. Every UID
// must be Pending; otherwise nothing changes.
func (o *Outbox) MarkBatched(b Batch) error {
	if b.TxHash == "" || len(b.TxBytes) == 0 || len(b.UIDs) == 0 {
		return errors.New("outbox: batch needs a tx hash, tx bytes and at least one UID")
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return ErrClosed
	}
	if raw, err := o.db.Get(batchKey(b.TxHash)); err != nil {
		return fmt.Errorf("outbox: look up batch %s: %w", b.TxHash, err)
	} else if raw != nil {
		return fmt.Errorf("outbox: batch %s already stored", b.TxHash)
	}
	entries, err := o.entriesInState(b.UIDs, StatePending)
	if err != nil {
		return err
	}
	leaves := make([]merkle.Hash, len(entries))
	for i, e := range entries {
		leaves[i] = e.Leaf
	}
	root, err := merkle.Root(leaves)
	if err != nil {
		return fmt.Errorf("outbox: batch %s: %w", b.TxHash, err)
	}
	if root != b.Root {
		return fmt.Errorf("outbox: batch %s root %s does not match its results' root %s", b.TxHash, b.Root, root)
	}
	batch := o.db.NewBatch()
	defer func() { _ = batch.Close() }()
	for _, e := range entries {
		if err := batch.Delete(pendingKey(e.Seq)); err != nil {
			return fmt.Errorf("outbox: stage pending index delete: %w", err)
		}
		e.State = StateBatched
		e.TxHash = b.TxHash
		if err := putEntry(batch, e); err != nil {
			return err
		}
	}
	if err := putJSON(batch, batchKey(b.TxHash), &b); err != nil {
		return err
	}
	if err := batch.WriteSync(); err != nil {
		return fmt.Errorf("outbox: write batch %s: %w", b.TxHash, err)
	}
	return nil
}

// InFlight returns every stored batch that is neither committed nor
// rejected, ordered by account sequence.
func (o *Outbox) InFlight() ([]Batch, error) {
	it, err := o.db.Iterator(prefixBatch, prefixEnd(prefixBatch))
	if err != nil {
		return nil, fmt.Errorf("outbox: iterate batches: %w", err)
	}
	defer func() { _ = it.Close() }()
	var out []Batch
	for ; it.Valid(); it.Next() {
		var b Batch
		if err := json.Unmarshal(it.Value(), &b); err != nil {
			return nil, fmt.Errorf("outbox: decode batch %s: %w", it.Key()[len(prefixBatch):], err)
		}
		out = append(out, b)
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("outbox: iterate batches: %w", err)
	}
	sortBatches(out)
	return out, nil
}

// MarkCommitted records that the transaction txHash was included at height
// with a zero code: its results become Committed with their root and proof,
// and the batch record is removed, in one synced write. It returns the
// committed entries in leaf order.
func (o *Outbox) MarkCommitted(txHash string, height int64) ([]Entry, error) {
	return o.finish(txHash, func(b *Batch, entries []*Entry) error {
		leaves := make([]merkle.Hash, len(entries))
		for i, e := range entries {
			leaves[i] = e.Leaf
		}
		tree, err := merkle.New(leaves)
		if err != nil {
			return err
		}
		if tree.Root() != b.Root {
			return fmt.Errorf("outbox: batch %s stored root %s differs from its leaves' root %s", txHash, b.Root, tree.Root())
		}
		for i, e := range entries {
			p, err := tree.Proof(i)
			if err != nil {
				return err
			}
			e.State = StateCommitted
			e.Height = height
			e.Root = b.Root
			e.Proof = &p
		}
		return nil
	})
}

// MarkRejected records that the chain permanently rejected txHash: its
// results become Rejected with the code, codespace and log, and the batch
// record is removed, in one synced write.
func (o *Outbox) MarkRejected(txHash string, code uint32, codespace, log string) ([]Entry, error) {
	return o.finish(txHash, func(_ *Batch, entries []*Entry) error {
		for _, e := range entries {
			e.State = StateRejected
			e.Code, e.Codespace, e.Log = code, codespace, log
		}
		return nil
	})
}

// Requeue returns the results of txHash to Pending, keeping their original
// order, and removes the batch record, in one synced write. Call it only once
// the transaction can no longer be included (its account sequence was used
// by another transaction, or the chain refused it before it entered a
// mempool); the results are then signed again in a new transaction.
func (o *Outbox) Requeue(txHash string) ([]Entry, error) {
	return o.finish(txHash, func(_ *Batch, entries []*Entry) error {
		for _, e := range entries {
			e.State = StatePending
			e.TxHash = ""
			e.Requeues++
		}
		return nil
	})
}

// Rejection is the chain's reason for refusing a result.
type Rejection struct {
	// Code and Codespace are the chain's error code.
	Code      uint32
	Codespace string
	// Log is the chain's message.
	Log string
}

// Settlement settles one result of a refused batch (see Split): exactly
// one of its fields is set.
type Settlement struct {
	// Rejected rejects the result for good with this reason.
	Rejected *Rejection
	// Committed records that the result is already on chain, carried by
	// another transaction.
	Committed *Inclusion
}

// Inclusion is where a result is on chain.
type Inclusion struct {
	// TxHash is the transaction that carried it.
	TxHash string
	// Height is the block that committed it.
	Height int64
	// Root is that batch's Merkle root.
	Root merkle.Hash
	// Proof is the result's inclusion proof under Root.
	Proof merkle.Proof
}

// Split settles a refused batch result by result, in one synced write: the
// UIDs in settled become Rejected or Committed as given, the batch's other
// results return to Pending (to be signed again), and the batch record is
// removed. Use it when the chain's refusal concerns only some results (job
// UIDs already on chain), so the others are not lost with them. A
// Committed settlement must carry a proof of the entry's leaf under its
// root.
func (o *Outbox) Split(txHash string, settled map[string]Settlement) ([]Entry, error) {
	return o.finish(txHash, func(_ *Batch, entries []*Entry) error {
		for _, e := range entries {
			st, ok := settled[e.UID]
			switch {
			case !ok:
				e.State = StatePending
				e.TxHash = ""
				e.Requeues++
			case st.Rejected != nil:
				e.State = StateRejected
				e.Code, e.Codespace, e.Log = st.Rejected.Code, st.Rejected.Codespace, st.Rejected.Log
			case st.Committed != nil:
				c := st.Committed
				if err := merkle.Verify(e.Leaf, c.Proof, c.Root); err != nil {
					return fmt.Errorf("outbox: job %q committed in %s: %w", e.UID, c.TxHash, err)
				}
				p := c.Proof
				e.State = StateCommitted
				e.TxHash, e.Height, e.Root, e.Proof = c.TxHash, c.Height, c.Root, &p
			default:
				return fmt.Errorf("outbox: empty settlement for job %q", e.UID)
			}
		}
		return nil
	})
}

func (o *Outbox) finish(txHash string, apply func(*Batch, []*Entry) error) ([]Entry, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return nil, ErrClosed
	}
	raw, err := o.db.Get(batchKey(txHash))
	if err != nil {
		return nil, fmt.Errorf("outbox: look up batch %s: %w", txHash, err)
	}
	if raw == nil {
		return nil, fmt.Errorf("%w: batch %s", ErrNotFound, txHash)
	}
	var b Batch
	if err := json.Unmarshal(raw, &b); err != nil {
		return nil, fmt.Errorf("outbox: decode batch %s: %w", txHash, err)
	}
	entries, err := o.entriesInState(b.UIDs, StateBatched)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if e.TxHash != txHash {
			return nil, fmt.Errorf("outbox: job %q belongs to batch %s, not %s", e.UID, e.TxHash, txHash)
		}
	}
	if err := apply(&b, entries); err != nil {
		return nil, err
	}
	batch := o.db.NewBatch()
	defer func() { _ = batch.Close() }()
	requeued := false
	out := make([]Entry, len(entries))
	for i, e := range entries {
		if err := putEntry(batch, e); err != nil {
			return nil, err
		}
		if e.State == StateCommitted {
			if err := batch.Set(commitKey(e.Height, e.UID), []byte{1}); err != nil {
				return nil, fmt.Errorf("outbox: stage commit index: %w", err)
			}
		}
		if e.State == StatePending {
			requeued = true
			if err := batch.Set(pendingKey(e.Seq), []byte(e.UID)); err != nil {
				return nil, fmt.Errorf("outbox: stage pending index: %w", err)
			}
		}
		out[i] = *e
	}
	if err := batch.Delete(batchKey(txHash)); err != nil {
		return nil, fmt.Errorf("outbox: stage batch delete: %w", err)
	}
	if err := batch.WriteSync(); err != nil {
		return nil, fmt.Errorf("outbox: finish batch %s: %w", txHash, err)
	}
	if requeued {
		o.signal()
	}
	return out, nil
}

// Counts returns the number of entries in each state. It reads every entry.
func (o *Outbox) Counts() (map[State]int, error) {
	it, err := o.db.Iterator(prefixEntry, prefixEnd(prefixEntry))
	if err != nil {
		return nil, fmt.Errorf("outbox: iterate entries: %w", err)
	}
	defer func() { _ = it.Close() }()
	out := map[State]int{}
	for ; it.Valid(); it.Next() {
		e, err := decodeEntry(it.Value())
		if err != nil {
			return nil, fmt.Errorf("outbox: decode entry %q: %w", it.Key()[len(prefixEntry):], err)
		}
		out[e.State]++
	}
	return out, it.Error()
}

func (o *Outbox) entriesInState(uids []string, want State) ([]*Entry, error) {
	seen := make(map[string]struct{}, len(uids))
	out := make([]*Entry, 0, len(uids))
	for _, uid := range uids {
		if _, dup := seen[uid]; dup {
			return nil, fmt.Errorf("outbox: job %q listed twice in one batch", uid)
		}
		seen[uid] = struct{}{}
		e, err := o.getEntry(uid)
		if err != nil {
			return nil, err
		}
		if e == nil {
			return nil, fmt.Errorf("%w: job %q", ErrNotFound, uid)
		}
		if e.State != want {
			return nil, fmt.Errorf("outbox: job %q is %s, not %s", uid, e.State, want)
		}
		out = append(out, e)
	}
	return out, nil
}

func (o *Outbox) getEntry(uid string) (*Entry, error) {
	raw, err := o.db.Get(entryKey(uid))
	if err != nil {
		return nil, fmt.Errorf("outbox: read job %q: %w", uid, err)
	}
	if raw == nil {
		return nil, nil
	}
	e, err := decodeEntry(raw)
	if err != nil {
		return nil, fmt.Errorf("outbox: decode job %q: %w", uid, err)
	}
	return e, nil
}

func putEntry(b dbm.Batch, e *Entry) error {
	raw, err := encodeEntry(e)
	if err != nil {
		return err
	}
	if err := b.Set(entryKey(e.UID), raw); err != nil {
		return fmt.Errorf("outbox: stage job %q: %w", e.UID, err)
	}
	return nil
}

func putJSON(b dbm.Batch, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("outbox: encode %s: %w", key, err)
	}
	if err := b.Set(key, raw); err != nil {
		return fmt.Errorf("outbox: stage %s: %w", key, err)
	}
	return nil
}

// PruneCommitted deletes up to limit Committed entries whose block is below
// height, oldest first, in one synced write, and returns how many it
// deleted. A pruned job UID is unknown to the outbox afterwards: enqueueing
// it again would send it again (and the chain would refuse the duplicate),
// so prune only what the callers are done with.
func (o *Outbox) PruneCommitted(height int64, limit int) (int, error) {
	if height <= 0 || limit <= 0 {
		return 0, nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return 0, ErrClosed
	}
	it, err := o.db.Iterator(prefixCommit, commitKey(height, ""))
	if err != nil {
		return 0, fmt.Errorf("outbox: iterate commits: %w", err)
	}
	var keys [][]byte
	for ; it.Valid() && len(keys) < limit; it.Next() {
		keys = append(keys, append([]byte(nil), it.Key()...))
	}
	err = it.Error()
	_ = it.Close()
	if err != nil {
		return 0, fmt.Errorf("outbox: iterate commits: %w", err)
	}
	if len(keys) == 0 {
		return 0, nil
	}
	batch := o.db.NewBatch()
	defer func() { _ = batch.Close() }()
	for _, k := range keys {
		uid := string(k[len(prefixCommit)+8:])
		if err := batch.Delete(k); err != nil {
			return 0, fmt.Errorf("outbox: stage prune: %w", err)
		}
		if err := batch.Delete(entryKey(uid)); err != nil {
			return 0, fmt.Errorf("outbox: stage prune: %w", err)
		}
	}
	if err := batch.WriteSync(); err != nil {
		return 0, fmt.Errorf("outbox: prune %d entries: %w", len(keys), err)
	}
	return len(keys), nil
}

func commitKey(height int64, uid string) []byte {
	k := append(append([]byte{}, prefixCommit...), be64(uint64(height))...)
	return append(k, uid...)
}

func entryKey(uid string) []byte { return append(append([]byte{}, prefixEntry...), uid...) }

func batchKey(hash string) []byte { return append(append([]byte{}, prefixBatch...), hash...) }

func pendingKey(seq uint64) []byte { return append(append([]byte{}, prefixPending...), be64(seq)...) }

func be64(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}

// prefixEnd returns the smallest key greater than every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := append([]byte{}, p...)
	end[len(end)-1]++
	return end
}

func sortBatches(bs []Batch) {
	slices.SortStableFunc(bs, func(a, b Batch) int { return cmp.Compare(a.Sequence, b.Sequence) })
}
