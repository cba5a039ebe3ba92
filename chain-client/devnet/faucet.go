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

package devnet

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"time"

	bankv1beta1 "cosmossdk.io/api/cosmos/bank/v1beta1"
	basev1beta1 "cosmossdk.io/api/cosmos/base/v1beta1"
	cmttypes "github.com/cometbft/cometbft/types"
	"google.golang.org/protobuf/proto"

	"github.com/aivm-dev/aivm-operator/chain-client/keys"
	"github.com/aivm-dev/aivm-operator/chain-client/rpc"
	"github.com/aivm-dev/aivm-operator/chain-client/tx"
)

// DefaultFaucetBalance is the genesis balance of the devnet's faucet account.
const DefaultFaucetBalance = 1_000_000_000_000_000

// faucetKeyFile holds the faucet's hex private key under <home>/config.
const faucetKeyFile = "faucet.key"

// faucetGas is the gas limit of a faucet transfer, well above its cost.
const faucetGas = 100_000

// faucetAttempts bounds retries when another sender used the faucet's
// sequence first.
const faucetAttempts = 5

// faucetPoll is how often Fund looks for its transaction.
const faucetPoll = 50 * time.Millisecond

// faucetKeyPath returns where the faucet key of home lives.
func faucetKeyPath(home string) string { return filepath.Join(home, "config", faucetKeyFile) }

// ensureFaucetKey loads the faucet key of home, creating it when absent.
func ensureFaucetKey(home string) (*keys.Key, error) {
	p := faucetKeyPath(home)
	if _, err := os.Stat(p); err == nil {
		return keys.Load(p, "")
	}
	k, err := keys.Generate()
	if err != nil {
		return nil, err
	}
	if err := keys.SaveFile(p, k, false); err != nil {
		return nil, fmt.Errorf("save faucet key: %w", err)
	}
	return k, nil
}

// Fund sends amount (in the fee denomination) from the faucet of the devnet
// whose home is home, reached at rpcURL, to address, creating the account
// if needed, and waits until the transfer is committed. It returns the
// transaction hash. The faucet key is created with the home; this is a
// development tool, the key is not protected beyond file permissions.
func Fund(ctx context.Context, home, rpcURL, address string, amount uint64) (string, error) {
	if amount == 0 {
		return "", errors.New("fund: amount must be positive")
	}
	doc, err := cmttypes.GenesisDocFromFile(filepath.Join(home, "config", "genesis.json"))
	if err != nil {
		return "", fmt.Errorf("fund: read genesis: %w", err)
	}
	g, err := parseGenesisState(doc.AppState)
	if err != nil {
		return "", fmt.Errorf("fund: %w", err)
	}
	if err := keys.ValidateAddress(g.Params.Prefix, address); err != nil {
		return "", fmt.Errorf("fund: %w", err)
	}
	price, err := g.Params.minGasPrice()
	if err != nil {
		return "", fmt.Errorf("fund: %w", err)
	}
	fee := new(big.Rat).Mul(new(big.Rat).SetInt64(faucetGas), price)
	feeAmt := new(big.Int).Quo(fee.Num(), fee.Denom())
	if new(big.Rat).SetInt(feeAmt).Cmp(fee) < 0 {
		feeAmt.Add(feeAmt, big.NewInt(1))
	}
	k, err := keys.Load(faucetKeyPath(home), "")
	if err != nil {
		return "", fmt.Errorf("fund: faucet key: %w", err)
	}
	from, err := k.Address(g.Params.Prefix)
	if err != nil {
		return "", fmt.Errorf("fund: %w", err)
	}
	c, err := rpc.New(rpcURL)
	if err != nil {
		return "", fmt.Errorf("fund: %w", err)
	}
	msg := &bankv1beta1.MsgSend{FromAddress: from, ToAddress: address,
		Amount: []*basev1beta1.Coin{{Denom: g.Params.FeeDenom, Amount: strconv.FormatUint(amount, 10)}}}
	for attempt := 1; ; attempt++ {
		num, seq, err := c.Account(ctx, from)
		if err != nil {
			return "", fmt.Errorf("fund: faucet account: %w", err)
		}
		txBytes, hash, err := tx.BuildAndSign(tx.SignInput{
			Key: k, ChainID: doc.ChainID, AccountNumber: num, Sequence: seq, Msgs: []proto.Message{msg},
			FeeAmount: feeAmt.Uint64(), FeeDenom: g.Params.FeeDenom, GasLimit: faucetGas, Memo: "devnet faucet",
		})
		if err != nil {
			return "", fmt.Errorf("fund: %w", err)
		}
		br, err := c.BroadcastSync(ctx, txBytes)
		if err != nil {
			return "", fmt.Errorf("fund: %w", err)
		}
		if br.Code == CodeWrongSequence && attempt < faucetAttempts {
			continue // another transfer took the sequence; sign again
		}
		if br.Code != 0 {
			return "", fmt.Errorf("fund: refused: code %d (%s): %s", br.Code, br.Codespace, br.Log)
		}
		r, err := c.WaitForTx(ctx, hash, faucetPoll)
		if err != nil {
			return "", fmt.Errorf("fund: %w", err)
		}
		if r.Code != 0 {
			return "", fmt.Errorf("fund: failed: code %d (%s): %s", r.Code, r.Codespace, r.Log)
		}
		return hash, nil
	}
}

// Fund sends amount from the faucet to address and waits for the commit;
// see the package-level Fund.
func (n *Node) Fund(ctx context.Context, address string, amount uint64) (string, error) {
	n.fundMu.Lock()
	defer n.fundMu.Unlock()
	return Fund(ctx, n.cfg.Home, n.RPCURL(), address, amount)
}
