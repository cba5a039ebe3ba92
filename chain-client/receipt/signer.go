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
	"errors"

	"github.com/aivm-dev/aivm-operator/chain-client/aivmv1"
	"github.com/aivm-dev/aivm-operator/chain-client/keys"
)

// KeySigner signs receipts with a provider key loaded once by its owner
// (the manager), so every replica can sign whether or not it reports on
// chain. *chainclient.Client signs the same way with the same key.
type KeySigner struct {
	key     *keys.Key
	prefix  string
	address string
}

// NewKeySigner returns a signer for k whose receipts name the bech32
// address with prefix (empty: keys.DefaultPrefix).
func NewKeySigner(k *keys.Key, prefix string) (*KeySigner, error) {
	if k == nil {
		return nil, errors.New("receipt: no signing key")
	}
	addr, err := k.Address(prefix)
	if err != nil {
		return nil, err
	}
	return &KeySigner{key: k, prefix: prefix, address: addr}, nil
}

// SignReceipt signs r (see Sign).
func (s *KeySigner) SignReceipt(r *aivmv1.ResultRecord) (*Receipt, error) {
	return Sign(s.key, s.prefix, r)
}

// Address is the signer's bech32 account address.
func (s *KeySigner) Address() string { return s.address }

// Key is the provider key, for the chain client's transaction signatures.
func (s *KeySigner) Key() *keys.Key { return s.key }
