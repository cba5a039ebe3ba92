package receipt

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/aivm-dev/aivm-operator/chain-client/aivmv1"
	"github.com/aivm-dev/aivm-operator/chain-client/merkle"
)

// ResultQuerier looks a job's result up on chain (the rpc client's Result
// query satisfies it). It returns nil, nil when the chain holds no result for
// the job.
type ResultQuerier interface {
	Result(ctx context.Context, jobUID string) (*aivmv1.StoredResult, error)
}

// VerifyOnChain checks r (signature, leaf, and proof when it carries an
// inclusion) and then that the chain stores the same record for the job,
// submitted by the same provider, under a root the receipt's leaf is proven
// to be in. When r has no inclusion, the chain's root and position are
// used, and the record and provider must still match.
func VerifyOnChain(ctx context.Context, q ResultQuerier, r *Receipt) (*aivmv1.StoredResult, error) {
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
	}
	return stored, nil
}
