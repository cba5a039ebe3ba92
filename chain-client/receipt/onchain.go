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

package receipt

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/aivm-dev/aivm-operator/chain-client/aivmv1"
	"github.com/aivm-dev/aivm-operator/chain-client/merkle"
)

// ChainReader reads what VerifyOnChain checks a receipt against; the rpc
// package's Client satisfies it.
type ChainReader interface {
	// Result returns the job's stored result, or nil, nil when the chain
	// holds none.
	Result(ctx context.Context, jobUID string) (*aivmv1.StoredResult, error)
	// ChainID returns the id of the chain the node serves.
	ChainID(ctx context.Context) (string, error)
	// SubmittedResults returns the result batches a committed transaction
	// carries.
	SubmittedResults(ctx context.Context, txHash string) ([]*aivmv1.MsgSubmitResults, error)
}

// VerifyOnChain checks r (signature, leaf, and proof when it carries an
// inclusion) and then that the chain stores the same record for the job,
// submitted by the same provider, under a root the receipt's leaf is proven
// to be in. When r has no inclusion, the chain's root and position are
// used, and the record and provider must still match. An inclusion must also
// name the chain's id (when it names one) and the size of the batch the
// transaction carries.
func VerifyOnChain(ctx context.Context, q ChainReader, r *Receipt) (*aivmv1.StoredResult, error) {
	if err := r.Verify(); err != nil {
		return nil, err
	}
	stored, err := q.Result(ctx, r.Record.GetJobUid())
	if err != nil {
		return nil, fmt.Errorf("receipt: query chain for job %q: %w", r.Record.GetJobUid(), err)
	}
	if stored == nil || stored.GetResult() == nil {
		return nil, fmt.Errorf("receipt: the chain holds no result for job %q", r.Record.GetJobUid())
	}
	if !proto.Equal(stored.GetResult(), r.Record) {
		return nil, fmt.Errorf("receipt: the chain's record for job %q differs from the receipt's", r.Record.GetJobUid())
	}
	if stored.GetProvider() != r.Signer {
		return nil, fmt.Errorf("receipt: job %q was submitted by %s, not the signer %s", r.Record.GetJobUid(), stored.GetProvider(), r.Signer)
	}
	root, err := merkle.HashFromBytes(stored.GetMerkleRoot())
	if err != nil {
		return nil, fmt.Errorf("receipt: the chain's merkle root: %w", err)
	}
	if c := r.Chain; c != nil {
		var errs []error
		if c.Root != root {
			errs = append(errs, fmt.Errorf("root %s, chain has %s", c.Root, root))
		}
		if c.TxHash != stored.GetTxHash() {
			errs = append(errs, fmt.Errorf("tx %s, chain has %s", c.TxHash, stored.GetTxHash()))
		}
		if c.Height != stored.GetHeight() {
			errs = append(errs, fmt.Errorf("height %d, chain has %d", c.Height, stored.GetHeight()))
		}
		if c.Proof.LeafIndex != uint64(stored.GetIndex()) {
			errs = append(errs, fmt.Errorf("leaf index %d, chain has %d", c.Proof.LeafIndex, stored.GetIndex()))
		}
		if err := errors.Join(errs...); err != nil {
			return nil, fmt.Errorf("receipt: inclusion does not match the chain: %w", err)
		}
		if err := checkBatch(ctx, q, c, stored); err != nil {
			return nil, err
		}
	}
	return stored, nil
}

// checkBatch checks c's chain id against the chain's and its tree size
// against the batch (with stored's root) that stored's transaction carries.
func checkBatch(ctx context.Context, q ChainReader, c *Inclusion, stored *aivmv1.StoredResult) error {
	if c.ChainID != "" {
		id, err := q.ChainID(ctx)
		if err != nil {
			return fmt.Errorf("receipt: query chain id: %w", err)
		}
		if c.ChainID != id {
			return fmt.Errorf("receipt: inclusion does not match the chain: chain id %q, chain has %q", c.ChainID, id)
		}
	}
	batches, err := q.SubmittedResults(ctx, stored.GetTxHash())
	if err != nil {
		return fmt.Errorf("receipt: query chain for tx %s: %w", stored.GetTxHash(), err)
	}
	for _, b := range batches {
		if !bytes.Equal(b.GetMerkleRoot(), stored.GetMerkleRoot()) || int(stored.GetIndex()) >= len(b.GetResults()) ||
			!proto.Equal(b.GetResults()[stored.GetIndex()], stored.GetResult()) {
			continue
		}
		if n := uint64(len(b.GetResults())); c.Proof.TreeSize != n {
			return fmt.Errorf("receipt: inclusion does not match the chain: tree size %d, the batch on chain has %d results", c.Proof.TreeSize, n)
		}
		return nil
	}
	return fmt.Errorf("receipt: tx %s carries no batch with the job's record under root %x", stored.GetTxHash(), stored.GetMerkleRoot())
}
