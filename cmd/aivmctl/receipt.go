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
	"context"
	"fmt"
	"io"
	"os"

	"github.com/aivm-dev/aivm-operator/chain-client/receipt"
	"github.com/aivm-dev/aivm-operator/chain-client/rpc"
)

func init() {
	register("receipt", "Get and check signed result receipts (get, verify)", runReceipt)
}

var receiptSubcommands = map[string]subcommand{
	"get":    {"Build the receipt of an InferenceJob from its status and check it", receiptGet},
	"verify": {"Verify a receipt's signature and Merkle proof, and optionally that the chain holds it", receiptVerify},
}

func runReceipt(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return dispatch(ctx, "receipt", receiptSubcommands, args, stdin, stdout, stderr)
}

// receiptVerify checks a receipt envelope (a file, or "-" for stdin):
// strict decoding, the record's leaf hash, the signature against the signer
// address, the Merkle proof when the receipt carries an inclusion, and with
// --rpc that the chain stores the same record from the same provider under
// the same root, transaction and height.
func receiptVerify(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("receipt verify", stderr, "receipt verify [--rpc URL] [--signer ADDRESS] FILE|-")
	rpcURL := fs.String("rpc", "", "CometBFT RPC URL of the chain (e.g. http://127.0.0.1:26657); when set, the receipt is checked against the chain")
	signer := fs.String("signer", "", "require the receipt to be signed by this bech32 address")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return errUsage
	}
	data, err := readReceipt(pos[0], stdin)
	if err != nil {
		return err
	}
	r, err := receipt.Decode(data)
	if err != nil {
		return err
	}
	if err := r.Verify(); err != nil {
		return err
	}
	if *signer != "" && r.Signer != *signer {
		return fmt.Errorf("receipt signed by %s, not %s", r.Signer, *signer)
	}
	fmt.Fprintf(stdout, "job:        %s\n", r.Record.GetJobUid())
	fmt.Fprintf(stdout, "leaf hash:  %s\n", r.LeafHash)
	fmt.Fprintf(stdout, "signer:     %s (signature OK)\n", r.Signer)
	if c := r.Chain; c != nil {
		fmt.Fprintf(stdout, "inclusion:  leaf %d of %d under root %s (proof OK), tx %s at height %d\n",
			c.Proof.LeafIndex, c.Proof.TreeSize, c.Root, c.TxHash, c.Height)
	}
	if *rpcURL == "" {
		return nil
	}
	chain, err := rpc.New(*rpcURL)
	if err != nil {
		return err
	}
	stored, err := receipt.VerifyOnChain(ctx, chain, r)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "chain:      stored in tx %s at height %d by %s, leaf %d (matches)\n",
		stored.GetTxHash(), stored.GetHeight(), stored.GetProvider(), stored.GetIndex())
	return nil
}

// readReceipt reads a receipt from path ("-": stdin), refusing anything
// larger than an envelope can be.
func readReceipt(path string, stdin io.Reader) ([]byte, error) {
	src := stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("open receipt: %w", err)
		}
		defer func() { _ = f.Close() }()
		src = f
	}
	data, err := io.ReadAll(io.LimitReader(src, receipt.MaxEnvelopeSize+1))
	if err != nil {
		return nil, fmt.Errorf("read receipt: %w", err)
	}
	if len(data) > receipt.MaxEnvelopeSize {
		return nil, fmt.Errorf("receipt is larger than %d bytes", receipt.MaxEnvelopeSize)
	}
	return data, nil
}
