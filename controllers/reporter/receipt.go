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

package reporter

import (
	"encoding/base64"

	aivmv1alpha1 "github.com/aivm-dev/aivm-operator/api/v1alpha1"
	"github.com/aivm-dev/aivm-operator/chain-client/receipt"
)

// StatusReceipt is the form of a signed receipt that an InferenceJob's
// status.result.receipt holds (hex leaf hash, base64 signature, signer
// address); the reporter checks exactly these fields before it sends the
// result.
func StatusReceipt(r *receipt.Receipt) *aivmv1alpha1.Receipt {
	return &aivmv1alpha1.Receipt{
		LeafHash:      r.LeafHash.String(),
		Signature:     base64.StdEncoding.EncodeToString(r.Signature),
		SignerAddress: r.Signer,
	}
}
