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

package aivmv1

import (
	"testing"

	"google.golang.org/protobuf/proto"
)

func TestTypeURLsMatchDescriptors(t *testing.T) {
	for url, m := range map[string]proto.Message{
		TypeURLMsgRegisterProvider: &MsgRegisterProvider{},
		TypeURLMsgSubmitResults:    &MsgSubmitResults{},
	} {
		if got := "/" + string(m.ProtoReflect().Descriptor().FullName()); got != url {
			t.Errorf("type URL %s, descriptor says %s", url, got)
		}
	}
}

// TestResultRecordWireFormat pins the field numbers of the agreed contract:
// a change here changes every leaf hash.
func TestResultRecordWireFormat(t *testing.T) {
	r := &ResultRecord{JobUid: "a", KernelDigest: "b", ModelDigest: "c", InputDigest: "d", OutputDigest: "e", InputTokens: 1, OutputTokens: 2, DurationMs: 3}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0x0a, 1, 'a', 0x12, 1, 'b', 0x1a, 1, 'c', 0x22, 1, 'd', 0x2a, 1, 'e', 0x30, 1, 0x38, 2, 0x40, 3}
	if string(b) != string(want) {
		t.Errorf("encoding %x, want %x", b, want)
	}
}
