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
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"sort"
	"strconv"

	"github.com/aivm-dev/aivm-operator/chain-client/keys"
)

// Params are the chain's parameters, fixed at genesis.
type Params struct {
	// Prefix is the bech32 account prefix.
	Prefix string `json:"prefix"`
	// FeeDenom is the only fee denomination.
	FeeDenom string `json:"fee_denom"`
	// MinGasPrice is the minimum fee per unit of gas limit, a decimal in
	// FeeDenom (e.g. "0.025").
	MinGasPrice string `json:"min_gas_price"`
	// ProviderValidBlocks is how many blocks a registration stays valid.
	ProviderValidBlocks int64 `json:"provider_valid_blocks"`
	// MaxTxBytes is the largest transaction accepted.
	MaxTxBytes int64 `json:"max_tx_bytes"`
}

// GenesisAccount is a funded account created at genesis.
type GenesisAccount struct {
	// Address is the bech32 account address.
	Address string `json:"address"`
	// Balance is the balance in the fee denomination, a decimal string.
	Balance string `json:"balance"`
}

// GenesisState is the app_state of the devnet's genesis file.
type GenesisState struct {
	// Params are the chain parameters.
	Params Params `json:"params"`
	// Accounts are the funded accounts, numbered in address order from 0.
	Accounts []GenesisAccount `json:"accounts"`
}

func (p Params) validate() error {
	if p.Prefix == "" {
		return errors.New("params: empty prefix")
	}
	if p.FeeDenom == "" {
		return errors.New("params: empty fee denom")
	}
	if _, err := p.minGasPrice(); err != nil {
		return err
	}
	if p.ProviderValidBlocks <= 0 {
		return fmt.Errorf("params: provider_valid_blocks must be positive, got %d", p.ProviderValidBlocks)
	}
	if p.MaxTxBytes <= 0 {
		return fmt.Errorf("params: max_tx_bytes must be positive, got %d", p.MaxTxBytes)
	}
	return nil
}

func (p Params) minGasPrice() (*big.Rat, error) {
	if p.MinGasPrice == "" {
		return new(big.Rat), nil
	}
	r, ok := new(big.Rat).SetString(p.MinGasPrice)
	if !ok || r.Sign() < 0 {
		return nil, fmt.Errorf("params: min_gas_price %q is not a non-negative decimal", p.MinGasPrice)
	}
	return r, nil
}

// validate checks the genesis state and returns its accounts sorted by
// address with parsed balances.
func (g GenesisState) validate() ([]GenesisAccount, []uint64, error) {
	if err := g.Params.validate(); err != nil {
		return nil, nil, err
	}
	accs := append([]GenesisAccount(nil), g.Accounts...)
	sort.Slice(accs, func(i, j int) bool { return accs[i].Address < accs[j].Address })
	bals := make([]uint64, len(accs))
	for i, a := range accs {
		if err := keys.ValidateAddress(g.Params.Prefix, a.Address); err != nil {
			return nil, nil, fmt.Errorf("genesis account %d: %w", i, err)
		}
		if i > 0 && accs[i-1].Address == a.Address {
			return nil, nil, fmt.Errorf("genesis account %s listed twice", a.Address)
		}
		b, err := strconv.ParseUint(a.Balance, 10, 64)
		if err != nil {
			return nil, nil, fmt.Errorf("genesis account %s: balance %q: %w", a.Address, a.Balance, err)
		}
		bals[i] = b
	}
	return accs, bals, nil
}

func parseGenesisState(b []byte) (GenesisState, error) {
	var g GenesisState
	if err := json.Unmarshal(b, &g); err != nil {
		return g, fmt.Errorf("parse app state: %w", err)
	}
	return g, nil
}
