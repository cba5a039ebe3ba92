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
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/aivm-dev/aivm-operator/chain-client/aivmv1"
	"github.com/aivm-dev/aivm-operator/chain-client/keys"
	"github.com/aivm-dev/aivm-operator/chain-client/merkle"
)

func hexOf(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func record(uid string) *aivmv1.ResultRecord {
	return &aivmv1.ResultRecord{
		JobUid:       uid,
		KernelDigest: hexOf("kernel"),
		ModelDigest:  hexOf("model"),
		InputDigest:  hexOf("input " + uid),
		OutputDigest: hexOf("output " + uid),
		InputTokens:  12,
		OutputTokens: 34,
		DurationMs:   567,
	}
}

func testKey(t testing.TB, seed string) *keys.Key {
	t.Helper()
	h := sha256.Sum256([]byte(seed))
	k, err := keys.FromHex(hex.EncodeToString(h[:]))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func signed(t testing.TB) *Receipt {
	t.Helper()
	r, err := Sign(testKey(t, "provider"), "nesa", record("0b1e2c4a-5d6f-4a7b-8c9d-0e1f2a3b4c5d"))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestSignVerifyRoundTrip(t *testing.T) {
	r := signed(t)
	if err := r.Verify(); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !strings.HasPrefix(r.Signer, "nesa1") {
		t.Fatalf("signer %q lacks the nesa prefix", r.Signer)
	}
	canon, err := Canonical(r.Record)
	if err != nil {
		t.Fatal(err)
	}
	if r.LeafHash != merkle.LeafHash(canon) {
		t.Fatal("leaf hash is not merkle.LeafHash of the canonical record")
	}
	if err := VerifyBySigner(r.Signer, r.LeafHash, r.Signature); err != nil {
		t.Fatalf("VerifyBySigner: %v", err)
	}
	// Without the public key, Verify falls back to recovery from the address.
	r.PubKey = nil
	if err := r.Verify(); err != nil {
		t.Fatalf("Verify without public key: %v", err)
	}
}

// highS returns the malleated twin (r, n-s) of a low-S signature.
func highS(sig []byte) []byte {
	var s secp256k1.ModNScalar
	s.SetByteSlice(sig[32:])
	s.Negate()
	out := append([]byte(nil), sig...)
	b := s.Bytes()
	copy(out[32:], b[:])
	return out
}

func TestVerifyRejectsTampering(t *testing.T) {
	other := testKey(t, "someone else")
	otherAddr, err := other.Address("nesa")
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]func(r *Receipt){
		"record changed": func(r *Receipt) { r.Record.OutputTokens++ },
		"leaf changed":   func(r *Receipt) { r.LeafHash[0] ^= 1 },
		"signature bit":  func(r *Receipt) { r.Signature[10] ^= 1 },
		"high-S twin":    func(r *Receipt) { r.Signature = highS(r.Signature) },
		"short sig":      func(r *Receipt) { r.Signature = r.Signature[:63] },
		"other signer":   func(r *Receipt) { r.Signer = otherAddr },
		"other signer, no pubkey": func(r *Receipt) {
			r.Signer = otherAddr
			r.PubKey = nil
		},
		"other pubkey": func(r *Receipt) { r.PubKey = other.PubKeyBytes() },
		"signed by other key": func(r *Receipt) {
			r.Signature = other.SignHash(r.LeafHash[:])
		},
		"signed by other key, no pubkey": func(r *Receipt) {
			r.Signature = other.SignHash(r.LeafHash[:])
			r.PubKey = nil
		},
		"bad inclusion": func(r *Receipt) {
			r.Chain = &Inclusion{TxHash: strings.Repeat("A", 64), Height: 3, Root: merkle.LeafHash([]byte("x")),
				Proof: merkle.Proof{LeafIndex: 0, TreeSize: 1}}
		},
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			r := signed(t)
			mutate(r)
			if err := r.Verify(); err == nil {
				t.Fatal("tampered receipt verified")
			}
		})
	}
}

func TestValidateRecord(t *testing.T) {
	tests := map[string]func(r *aivmv1.ResultRecord){
		"no uid":             func(r *aivmv1.ResultRecord) { r.JobUid = "" },
		"long uid":           func(r *aivmv1.ResultRecord) { r.JobUid = strings.Repeat("x", MaxJobUIDLen+1) },
		"bad utf8":           func(r *aivmv1.ResultRecord) { r.JobUid = "\xfe" },
		"uppercase digest":   func(r *aivmv1.ResultRecord) { r.ModelDigest = strings.ToUpper(r.ModelDigest) },
		"short digest":       func(r *aivmv1.ResultRecord) { r.InputDigest = r.InputDigest[:63] },
		"other algorithm":    func(r *aivmv1.ResultRecord) { r.KernelDigest = "sha512:" + hexOf("k") },
		"empty output":       func(r *aivmv1.ResultRecord) { r.OutputDigest = "" },
		"digest with suffix": func(r *aivmv1.ResultRecord) { r.OutputDigest += "\n" },
		// The prefixed form would give the same result a second leaf hash.
		"prefixed digest": func(r *aivmv1.ResultRecord) { r.KernelDigest = DigestPrefix + r.KernelDigest },
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			r := record("u")
			mutate(r)
			if err := ValidateRecord(r); err == nil {
				t.Fatal("invalid record accepted")
			}
			if _, err := Sign(testKey(t, "p"), "", r); err == nil {
				t.Fatal("invalid record signed")
			}
		})
	}
	if err := ValidateRecord(nil); err == nil {
		t.Fatal("nil record accepted")
	}
	if err := ValidateRecord(record("u")); err != nil {
		t.Fatal(err)
	}
}

func withInclusion(t testing.TB, r *Receipt) *Receipt {
	t.Helper()
	leaves := []merkle.Hash{merkle.LeafHash([]byte("a")), r.LeafHash, merkle.LeafHash([]byte("c"))}
	tree, err := merkle.New(leaves)
	if err != nil {
		t.Fatal(err)
	}
	p, err := tree.Proof(1)
	if err != nil {
		t.Fatal(err)
	}
	r.Chain = &Inclusion{ChainID: "nesa", TxHash: strings.Repeat("AB", 32), Height: 17, Root: tree.Root(), Proof: p}
	return r
}

func TestEnvelopeRoundTrip(t *testing.T) {
	for name, r := range map[string]*Receipt{
		"signed":        signed(t),
		"with chain":    withInclusion(t, signed(t)),
		"no public key": func() *Receipt { r := signed(t); r.PubKey = nil; return r }(),
	} {
		t.Run(name, func(t *testing.T) {
			data, err := Encode(r)
			if err != nil {
				t.Fatal(err)
			}
			back, err := Decode(data)
			if err != nil {
				t.Fatalf("Decode: %v\n%s", err, data)
			}
			if diff := cmp.Diff(r, back, protocmp.Transform(), cmp.Comparer(func(a, b []byte) bool { return bytes.Equal(a, b) })); diff != "" {
				t.Fatalf("round trip (-want +got):\n%s", diff)
			}
			if err := back.Verify(); err != nil {
				t.Fatalf("Verify after round trip: %v", err)
			}
		})
	}
}

// mutateJSON decodes a valid envelope into a generic map, applies f and
// re-encodes it.
func mutateJSON(t *testing.T, f func(m map[string]any)) []byte {
	t.Helper()
	data, err := Encode(withInclusion(t, signed(t)))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	f(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDecodeIsStrict(t *testing.T) {
	rec := func(m map[string]any) map[string]any { return m["record"].(map[string]any) }
	chain := func(m map[string]any) map[string]any { return m["chain"].(map[string]any) }
	tests := map[string]func(m map[string]any){
		"unknown field":        func(m map[string]any) { m["extra"] = 1 },
		"unknown record field": func(m map[string]any) { rec(m)["nonce"] = "x" },
		"wrong version":        func(m map[string]any) { m["version"] = "aivm.dev/receipt/v0" },
		"no version":           func(m map[string]any) { delete(m, "version") },
		"leaf mismatch":        func(m map[string]any) { rec(m)["outputTokens"] = 35 },
		"bad leaf hex":         func(m map[string]any) { m["leafHash"] = "xyz" },
		"bad digest":           func(m map[string]any) { rec(m)["inputDigest"] = "abc" },
		"negative tokens":      func(m map[string]any) { rec(m)["inputTokens"] = -1 },
		"bad signer":           func(m map[string]any) { m["signer"] = "nesa1notanaddress" },
		"signature not b64":    func(m map[string]any) { m["signature"] = "!!" },
		"short signature":      func(m map[string]any) { m["signature"] = base64.StdEncoding.EncodeToString(make([]byte, 63)) },
		"zero signature":       func(m map[string]any) { m["signature"] = base64.StdEncoding.EncodeToString(make([]byte, 64)) },
		"bad pubkey":           func(m map[string]any) { m["pubKey"] = base64.StdEncoding.EncodeToString(make([]byte, 33)) },
		"lowercase tx hash":    func(m map[string]any) { chain(m)["txHash"] = strings.Repeat("ab", 32) },
		"zero height":          func(m map[string]any) { chain(m)["height"] = 0 },
		"index beyond size": func(m map[string]any) {
			chain(m)["proof"].(map[string]any)["leafIndex"] = 3
		},
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := Decode(mutateJSON(t, mutate)); err == nil {
				t.Fatal("malformed envelope decoded")
			}
		})
	}
	valid, err := Encode(signed(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Decode(append(append([]byte{}, valid...), []byte(`{}`)...)); err == nil {
		t.Fatal("trailing data accepted")
	}
	if _, err := Decode(make([]byte, MaxEnvelopeSize+1)); err == nil {
		t.Fatal("oversized envelope accepted")
	}
}

func TestDecodedHighSSignatureIsRejected(t *testing.T) {
	r := signed(t)
	r.Signature = highS(r.Signature)
	data, err := Encode(r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Decode(data); err == nil {
		t.Fatal("high-S signature decoded")
	}
}

func TestVerifyBySignerErrors(t *testing.T) {
	r := signed(t)
	if err := VerifyBySigner("not-bech32", r.LeafHash, r.Signature); err == nil {
		t.Fatal("bad address accepted")
	}
	other := r.LeafHash
	other[3] ^= 0x10
	if err := VerifyBySigner(r.Signer, other, r.Signature); !errors.Is(err, ErrInvalidSignature) {
		t.Fatalf("signature over another leaf: %v, want ErrInvalidSignature", err)
	}
}

// FuzzDecode feeds envelopes to Decode; whatever decodes must encode and
// decode again to the same receipt.
func FuzzDecode(f *testing.F) {
	r := signed(f)
	plain, err := Encode(r)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(plain)
	withChain, err := Encode(withInclusion(f, signed(f)))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(withChain)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"version":"aivm.dev/receipt/v1","record":{}}`))
	f.Add(bytes.Replace(plain, []byte(`"inputTokens": 12`), []byte(`"inputTokens": 1e99`), 1))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := Decode(data)
		if err != nil {
			return
		}
		again, err := Encode(got)
		if err != nil {
			t.Fatalf("decoded receipt does not encode: %v", err)
		}
		back, err := Decode(again)
		if err != nil {
			t.Fatalf("re-encoded receipt does not decode: %v", err)
		}
		if diff := cmp.Diff(got, back, protocmp.Transform()); diff != "" {
			t.Fatalf("re-decode differs (-first +second):\n%s", diff)
		}
	})
}

// BenchmarkSign measures receipts signed per second (run with -cpu 1 for the
// per-core figure).
func BenchmarkSign(b *testing.B) {
	k := testKey(b, "provider")
	rec := record("0b1e2c4a-5d6f-4a7b-8c9d-0e1f2a3b4c5d")
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	for b.Loop() {
		if _, err := Sign(k, "nesa", rec); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "receipts/s")
	b.ReportMetric(float64(b.N)/(cpuTime(b)-cpu0).Seconds(), "receipts/cpu-s")
}

// BenchmarkVerify measures receipt verification with a public key.
func BenchmarkVerify(b *testing.B) {
	r := signed(b)
	for b.Loop() {
		if err := r.Verify(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "receipts/s")
}

// cpuTime returns the CPU time this process has used, so a benchmark can
// report throughput per core-second even on a machine shared with others.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestCanonicalDigest: both spellings of a digest convert to the one form a
// record holds, so they give one leaf hash; anything else is refused.
func TestCanonicalDigest(t *testing.T) {
	hex := hexOf("x")
	for _, in := range []string{hex, DigestPrefix + hex, strings.ToUpper(hex), DigestPrefix + strings.ToUpper(hex)} {
		got, err := CanonicalDigest(in)
		if err != nil || got != hex {
			t.Errorf("CanonicalDigest(%q) = %q, %v; want %q", in, got, err, hex)
		}
	}
	for _, in := range []string{"", hex[:63], "sha512:" + hex, hex + " ", "sha256:", "SHA256:" + hex} {
		if got, err := CanonicalDigest(in); err == nil {
			t.Errorf("CanonicalDigest(%q) = %q, want an error", in, got)
		}
	}
}
