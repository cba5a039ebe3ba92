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

package chainclient

import (
	"context"
	"fmt"
	"math"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/aivm-dev/aivm-operator/chain-client/aivmv1"
	"github.com/aivm-dev/aivm-operator/chain-client/merkle"
	"github.com/aivm-dev/aivm-operator/chain-client/outbox"
	"github.com/aivm-dev/aivm-operator/chain-client/tx"
)

// sign builds and signs a transaction with the next sequence (not yet
// consumed: the caller advances nextSeq once the bytes may be out).
func (l *loop) sign(msg proto.Message, results int) (*flight, error) {
	size := uint64(proto.Size(msg) + txOverhead)
	gas := l.o.GasBase + l.o.GasPerByte*size + l.o.GasPerResult*uint64(results)
	fee := uint64(math.Ceil(float64(gas) * l.o.GasPrice))
	txBytes, hash, err := tx.BuildAndSign(tx.SignInput{
		Key:           l.o.Key,
		ChainID:       l.o.ChainID,
		AccountNumber: l.accountNumber,
		Sequence:      l.nextSeq,
		Msgs:          []proto.Message{msg},
		FeeAmount:     fee,
		FeeDenom:      l.o.FeeDenom,
		GasLimit:      gas,
	})
	if err != nil {
		return nil, fmt.Errorf("sign transaction: %w", err)
	}
	return &flight{hash: hash, txBytes: txBytes, seq: l.nextSeq, batchedAt: l.height}, nil
}

// observeBatches sets the outbox's Batched count and the age of the oldest
// result transaction in flight.
func (l *loop) observeBatches() {
	var results int
	var oldest int64
	for _, f := range l.batches {
		if f.uids == nil {
			continue
		}
		results += len(f.uids)
		if f.batchedAt == 0 {
			f.batchedAt = l.height
		}
		if f.batchedAt > 0 {
			oldest = max(oldest, l.height-f.batchedAt)
		}
	}
	l.c.metrics.batched.Set(float64(results))
	l.c.metrics.oldestAge.Set(float64(oldest))
}

// maxSendRounds bounds the batches refused for their sequence in one step.
const maxSendRounds = 3

// send folds pending results into batches while there is room in flight.
func (l *loop) send(ctx context.Context) error {
	refused := 0
	for len(l.batches) < l.o.MaxInFlight && refused < maxSendRounds {
		entries, err := l.o.Outbox.Pending(l.o.MaxBatchResults)
		if err != nil {
			return err
		}
		if len(entries) == 0 {
			l.firstPendingAt = time.Time{}
			return nil
		}
		now := l.o.Clock.Now()
		if len(entries) < l.o.MaxBatchResults {
			if l.firstPendingAt.IsZero() {
				l.firstPendingAt = now
			}
			if now.Sub(l.firstPendingAt) < l.o.BatchDelay {
				return nil
			}
		}
		f, err := l.buildBatch(entries)
		if err != nil {
			return err
		}
		l.firstPendingAt = time.Time{}
		l.nextSeq++
		if l.c.batchStored != nil {
			l.c.batchStored(f.hash)
		}
		br, err := l.o.Chain.BroadcastSync(ctx, f.txBytes)
		if err != nil {
			// The bytes may have reached the node: keep them, resend later.
			l.batches = append(l.batches, f)
			return unreachable("broadcast batch "+f.hash, err)
		}
		if classify(br.Code, br.Codespace) != outcomeAccepted {
			// Refused at CheckTx: the sequence was not used.
			l.nextSeq = f.seq
		}
		switch classify(br.Code, br.Codespace) {
		case outcomeAccepted:
			f.sentHeight = l.height
			l.batches = append(l.batches, f)
			l.c.metrics.transactions.WithLabelValues("broadcast").Inc()
		case outcomeWrongSequence:
			refused++
			exp, ok := expectedSequence(br.Log)
			l.c.log.Info("Account sequence mismatch; re-syncing", "tx", f.hash, "sequence", f.seq, "log", br.Log)
			if err := l.requeue(ctx, f, exp, ok); err != nil {
				return err
			}
		default:
			if err := l.settleRefused(ctx, f, br.Code, br.Codespace, br.Log); err != nil {
				return err
			}
			if l.expires == 0 && l.registers() {
				return nil
			}
		}
	}
	return nil
}

// buildBatch takes the oldest pending entries that fit in one transaction,
// signs it and stores it in the outbox before anything is broadcast.
func (l *loop) buildBatch(entries []outbox.Entry) (*flight, error) {
	msg := &aivmv1.MsgSubmitResults{Provider: l.c.address, MerkleRoot: make([]byte, merkle.Size)}
	size := proto.Size(msg) + txOverhead
	var leaves []merkle.Hash
	var uids []string
	for _, e := range entries {
		rec := &aivmv1.ResultRecord{}
		if err := proto.Unmarshal(e.Record, rec); err != nil {
			return nil, fmt.Errorf("decode stored record of job %q: %w", e.UID, err)
		}
		// Field tag, length varint and the record itself.
		add := 1 + protoVarintLen(len(e.Record)) + len(e.Record)
		if len(uids) > 0 && size+add > l.o.MaxTxBytes {
			break
		}
		size += add
		msg.Results = append(msg.Results, rec)
		leaves = append(leaves, e.Leaf)
		uids = append(uids, e.UID)
	}
	var f *flight
	var root merkle.Hash
	for {
		var err error
		if root, err = merkle.Root(leaves); err != nil {
			return nil, err
		}
		msg.MerkleRoot = root[:]
		if f, err = l.sign(msg, len(uids)); err != nil {
			return nil, err
		}
		if len(f.txBytes) <= l.o.MaxTxBytes || len(uids) == 1 {
			break
		}
		// The estimate fell short: drop the newer half and sign again.
		n := len(uids) / 2
		msg.Results, leaves, uids = msg.Results[:n], leaves[:n], uids[:n]
	}
	f.uids = uids
	if err := l.o.Outbox.MarkBatched(outbox.Batch{TxHash: f.hash, TxBytes: f.txBytes, Sequence: f.seq, UIDs: uids, Root: root}); err != nil {
		return nil, fmt.Errorf("store batch before broadcast: %w", err)
	}
	return f, nil
}

func protoVarintLen(n int) int {
	l := 1
	for n >= 0x80 {
		n >>= 7
		l++
	}
	return l
}
