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
	"errors"
	"fmt"

	"github.com/aivm-dev/aivm-operator/chain-client/aivmv1"
	"github.com/aivm-dev/aivm-operator/chain-client/tx"
)

// CodespaceSDK is the codespace of the standard Cosmos SDK errors.
const CodespaceSDK = "sdk"

// CodespaceAIVM is the codespace of the aivm module's errors.
const CodespaceAIVM = aivmv1.Codespace

// Cosmos SDK error codes (codespace "sdk") the devnet returns.
const (
	CodeTxDecode          uint32 = 2
	CodeUnauthorized      uint32 = 4
	CodeInsufficientFunds uint32 = 5
	CodeUnknownRequest    uint32 = 6
	CodeInvalidAddress    uint32 = 7
	CodeInvalidPubKey     uint32 = 8
	CodeInvalidCoins      uint32 = 10
	CodeUnknownAddress    uint32 = 9
	CodeOutOfGas          uint32 = 11
	CodeMemoTooLarge      uint32 = 12
	CodeInsufficientFee   uint32 = 13
	CodeInvalidRequest    uint32 = 18
	CodeTxInMempoolCache  uint32 = 19
	CodeTxTooLarge        uint32 = 21
	CodeTxTimeoutHeight   uint32 = 30
	CodeWrongSequence     uint32 = 32
	CodeNotFound          uint32 = 38
)

// aivm module error codes (codespace "aivm").
const (
	// CodeInvalidRegistration: a MsgRegisterProvider with bad fields.
	CodeInvalidRegistration uint32 = 2
	// CodeProviderNotRegistered: results from an unknown provider.
	CodeProviderNotRegistered uint32 = 3
	// CodeProviderExpired: results from a provider whose registration expired.
	CodeProviderExpired uint32 = 4
	// CodeDuplicateResult: a job UID already on chain or twice in a batch.
	CodeDuplicateResult uint32 = 5
	// CodeRootMismatch: merkle_root differs from the root of the records.
	CodeRootMismatch uint32 = 6
	// CodeInvalidResult: a record or batch with bad fields.
	CodeInvalidResult uint32 = 7
)

// abciError is an error with an ABCI code and codespace.
type abciError struct {
	codespace string
	code      uint32
	msg       string
}

func (e *abciError) Error() string { return e.msg }

func sdkErr(code uint32, format string, args ...any) *abciError {
	return &abciError{codespace: CodespaceSDK, code: code, msg: fmt.Sprintf(format, args...)}
}

func aivmErr(code uint32, format string, args ...any) *abciError {
	return &abciError{codespace: CodespaceAIVM, code: code, msg: fmt.Sprintf(format, args...)}
}

// fromTxErr maps the tx package's errors to Cosmos codes.
func fromTxErr(err error) *abciError {
	switch {
	case errors.Is(err, tx.ErrInvalidPubKey):
		return sdkErr(CodeInvalidPubKey, "%v", err)
	case errors.Is(err, tx.ErrUnauthorized):
		return sdkErr(CodeUnauthorized, "%v", err)
	case errors.Is(err, tx.ErrInvalidRequest):
		return sdkErr(CodeInvalidRequest, "%v", err)
	default:
		return sdkErr(CodeTxDecode, "%v", err)
	}
}
