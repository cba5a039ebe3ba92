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

// Package aivmv1 holds the Go types generated from
// chain-client/proto/aivm/v1/aivm.proto (proto package aivm.v1), plus the
// type URLs and query paths that go with them.
//
// Regenerate with `make proto` (hack/protogen: no protoc needed); `make
// verify` fails while aivm.pb.go differs from what the .proto generates.
package aivmv1

// Type URLs of the module's messages, as they appear in a TxBody's Any.
const (
	TypeURLMsgRegisterProvider = "/aivm.v1.MsgRegisterProvider"
	TypeURLMsgSubmitResults    = "/aivm.v1.MsgSubmitResults"
)

// ABCI query paths (request and response proto-encoded).
const (
	QueryPathProvider = "/aivm.v1.Query/Provider"
	QueryPathResult   = "/aivm.v1.Query/Result"
	// QueryPathAccount is the standard Cosmos auth account query
	// (cosmos.auth.v1beta1.QueryAccountRequest/Response).
	QueryPathAccount = "/cosmos.auth.v1beta1.Query/Account"
)

// Codespace is the ABCI codespace of the module's own errors.
const Codespace = "aivm"
