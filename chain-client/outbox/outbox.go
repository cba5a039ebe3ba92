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

// Package outbox is the durable queue between finished jobs and the chain.
//
// Results are keyed by job UID in a cometbft-db (goleveldb) database and move
// through the states Pending -> Batched -> Committed (or Rejected); a batch's
// signed bytes are stored in the write that marks its results Batched, before
// any broadcast. Every state change is one atomic, synced write, and
// concurrent Enqueue calls share one. docs/chain-client.md has the state
// diagram and the invariants.
package outbox

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
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
