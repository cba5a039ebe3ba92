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

package receipt_test

import (
	"fmt"
	"strings"

	"github.com/aivm-dev/aivm-operator/chain-client/aivmv1"
	"github.com/aivm-dev/aivm-operator/chain-client/keys"
	"github.com/aivm-dev/aivm-operator/chain-client/receipt"
)

// A provider signs a result record; anyone verifies the receipt from its
// JSON envelope.
func ExampleSign() {
	key, err := keys.FromHex(strings.Repeat("11", 32))
	if err != nil {
		panic(err)
	}
	rec := &aivmv1.ResultRecord{
		JobUid:       "6f1c0d2e-8a4b-4c3d-9e2f-1a2b3c4d5e6f",
		KernelDigest: strings.Repeat("ab", 32),
		ModelDigest:  strings.Repeat("cd", 32),
		InputDigest:  strings.Repeat("01", 32),
		OutputDigest: strings.Repeat("02", 32),
		InputTokens:  12,
		OutputTokens: 64,
		DurationMs:   830,
	}
	r, err := receipt.Sign(key, "nesa", rec)
	if err != nil {
		panic(err)
	}
	envelope, err := receipt.Encode(r)
	if err != nil {
		panic(err)
	}
	back, err := receipt.Decode(envelope)
	if err != nil {
		panic(err)
	}
	fmt.Println("leaf:", back.LeafHash)
	fmt.Println("signer:", back.Signer)
	fmt.Println("verified:", back.Verify() == nil)
	// The leaf is sha256(0x00 || protobuf encoding of the record); it was
	// checked against an independent encoder, so it also pins the
	// canonical encoding.

	// Output:
	// leaf: 66aad81319e6186dfcea1a60a2f3f7dcaf1fbd8eafe0e08c00733a4ea1ba85e6
	// signer: nesa1l3e9pgs3mmwuwrh95fecme0s0qtn2880t03fxg
	// verified: true
}
