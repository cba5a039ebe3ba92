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

// Package devnet runs a single-validator CometBFT chain in process, for the
// dev environment and for tests: a real CometBFT v1 node (consensus, mempool,
// RPC, tx indexer, file private validator) with a small ABCI application that
// behaves towards clients like a Cosmos SDK chain.
//
// The application decodes standard Cosmos transactions (SIGN_MODE_DIRECT,
// one secp256k1 signer), and runs the checks of the Cosmos ante handler:
// transaction size, memo length, timeout height, minimum gas price,
// gas limit, fee balance, the public key matching the signer, the account
// sequence (checked in CheckTx against the mempool's view and again in
// FinalizeBlock, so a replay is refused), and the signature over chain-id and
// account number. Errors carry Cosmos codes in the "sdk" codespace (2 decode,
// 4 unauthorized, 5 insufficient funds, 11 out of gas, 13 insufficient fee,
// 21 too large, 32 wrong sequence, ...) and the module's own in "aivm".
//
// It executes aivm.v1.MsgRegisterProvider (registrations expire after
// Config.ProviderValidBlocks blocks and are renewed by registering again),
// aivm.v1.MsgSubmitResults (the provider must be registered, every job UID
// is new, and the Merkle root is recomputed from the records) and the
// standard cosmos.bank.v1beta1.MsgSend (which creates the recipient's
// account), and answers the ABCI queries /cosmos.auth.v1beta1.Query/Account,
// /cosmos.bank.v1beta1.Query/Balance, /aivm.v1.Query/Provider and
// /aivm.v1.Query/Result.
//
// Genesis funds the accounts of Config.Accounts and a faucet whose key the
// devnet keeps in its home; Fund (and `aivmctl devnet fund`) sends from it,
// so keys created after genesis can be funded.
//
// Application state (accounts, balances, providers, results) lives in a
// cometbft-db goleveldb database under the home directory, written in one
// batch per block at Commit; the app hash chains the previous hash with the
// block's writes. Restarting on the same home resumes the chain at its last
// height with its state.
//
// Unlike a Cosmos SDK chain, CheckTx also runs the message checks, so a batch
// holding an already reported job UID is refused at broadcast time rather
// than failing in the block.
package devnet
