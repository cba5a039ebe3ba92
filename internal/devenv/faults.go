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

package devenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/aivm-dev/aivm-operator/chain-client/devnet"
)

// faultSeq numbers fault files so a node agent applies them in order.
var faultSeq atomic.Int64

// InjectFaults hands the node's agent faults for its simulated GPUs, one a
// line ("xid GPU CODE", "ecc GPU", "detach GPU", "reattach GPU"; GPU is an
// index or UUID; see the node agent's --simulate-fault-dir). The agent
// applies them within a fraction of a second; a line it cannot parse is
// logged in its log and nothing of the file applied.
func (n *Node) InjectFaults(text string) error {
	name := fmt.Sprintf("%020d-%d", time.Now().UnixNano(), faultSeq.Add(1))
	tmp := filepath.Join(n.faultDir, "."+name)
	if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(n.faultDir, name))
}

// StopChain stops the devnet chain (an outage: the manager keeps running
// and its reporter keeps retrying); StartChain brings it back.
func (e *Env) StopChain() error {
	if e.Chain == nil {
		return errors.New("devenv: the chain is not running")
	}
	err := e.Chain.Stop()
	e.Chain = nil
	return err
}

// StartChain restarts the chain stopped with StopChain from its home, on
// the same RPC address and chain id, and waits for its next block.
func (e *Env) StartChain(ctx context.Context) error {
	if e.Chain != nil {
		return errors.New("devenv: the chain is running")
	}
	n, err := devnet.Start(ctx, e.chainCfg)
	if err != nil {
		return fmt.Errorf("restart the devnet: %w", err)
	}
	e.Chain = n
	wctx, cancel := context.WithTimeout(ctx, e.cfg.StartTimeout)
	defer cancel()
	return n.WaitForHeight(wctx, n.Height()+1)
}
