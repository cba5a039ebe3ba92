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

package devnet_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cmthttp "github.com/cometbft/cometbft/rpc/client/http"
)

// TestPublicRPCServesWholeResponses reads BlockchainInfo(1, 20) responses
// (several KiB each) through the public RPC address from several clients at
// once: every response arrives whole. Before the proxy buffered request
// bodies, about one call in a few thousand got 200 OK and then an
// unexpected EOF. AIVM_RPC_PROXY_CALLS sets the number of calls (default
// 2000; 10000 makes a lost call all but certain on a proxy with the fault).
func TestPublicRPCServesWholeResponses(t *testing.T) {
	calls := 2000
	if s := os.Getenv("AIVM_RPC_PROXY_CALLS"); s != "" {
		var err error
		if calls, err = strconv.Atoi(s); err != nil {
			t.Fatal(err)
		}
	}
	const workers = 8
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var (
		next, failed atomic.Int64
		firstErr     atomic.Value
		wg           sync.WaitGroup
	)
	for w := 0; w < workers; w++ {
		c, err := cmthttp.New(shared.node.RPCURL())
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(calls) {
				res, err := c.BlockchainInfo(ctx, 1, 20)
				if err == nil && len(res.BlockMetas) == 0 {
					err = errNoBlocks
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		}()
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d calls through the public RPC address failed; first: %v", n, calls, firstErr.Load())
	}
}

// TestPublicRPCRefusesOversizeBody: a request body over the RPC's body
// limit gets 413 from the public address, and nothing is forwarded.
func TestPublicRPCRefusesOversizeBody(t *testing.T) {
	body := strings.Repeat(" ", 64<<20)
	resp, err := http.Post(shared.node.RPCURL(), "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(msg), "request body exceeds") {
		t.Fatalf("status %s %q, want 413 naming the limit", resp.Status, msg)
	}
}
