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

package keys

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
)

// Published coin-type-118 vectors (m/44'/118'/0'/0/0).
var mnemonicVectors = []struct {
	name, mnemonic, prefix, address, pubHex, privHex string
}{
	{
		name:     "abandon-about",
		mnemonic: "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about",
		prefix:   "cosmos",
		address:  "cosmos19rl4cm2hmr8afy4kldpxz3fka4jguq0auqdal4",
	},
	{
		name:     "cosmjs-default-wallet",
		mnemonic: "special sign fit simple patrol salute grocery chicken wheat radar tonight ceiling",
		prefix:   "cosmos",
		address:  "cosmos1jhg0e7s6gn44tfc5k37kr04sznyhedtc9rzys5",
		pubHex:   "02baa4ef93f2ce84592a49b1d729c074eab640112522a7a89f7d03ebab21ded7b6",
	},
	{
		name:     "cosmjs-faucet",
		mnemonic: "economy stock theory fatal elder harbor betray wasp final emotion task crumble siren bottom lizard educate guess current outdoor pair theory focus wife stone",
		prefix:   "cosmos",
		address:  "cosmos1pkptre7fdkl6gfrzlesjjvhxhlc3r4gmmk8rs6",
		pubHex:   b64hex("A08EGB7ro1ORuFhjOnZcSgwYlpe0DSFjVNUIkNNQxwKQ"),
	},
	{
		name:     "other-prefix",
		mnemonic: "dinner proud piano mention silk plunge forest fold trial duck electric define",
		prefix:   "gio",
		address:  "gio1tseh0grt8j8klrdunpudflvy9lfn3rl50zdpu8",
		pubHex:   "0366193cf056fdae59ef3a2d6ba50fde35dfcedeb13825cfe7aaed87d317478b0f",
		privHex:  "7307bb9729ca7139ffbf4dcbfe18cd2d8e07ff93754fb81d34ae5ecc3e6bf51e",
	},
}

func b64hex(s string) string {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func TestMnemonicVectors(t *testing.T) {
	for _, v := range mnemonicVectors {
		t.Run(v.name, func(t *testing.T) {
			k, err := FromMnemonic(v.mnemonic, "")
			if err != nil {
				t.Fatal(err)
			}
			addr, err := k.Address(v.prefix)
			if err != nil {
				t.Fatal(err)
			}
			if addr != v.address {
				t.Errorf("address = %s, want %s", addr, v.address)
			}
			if v.pubHex != "" && hex.EncodeToString(k.PubKeyBytes()) != v.pubHex {
				t.Errorf("pubkey = %x, want %s", k.PubKeyBytes(), v.pubHex)
			}
			if v.privHex != "" && k.PrivKeyHex() != v.privHex {
				t.Errorf("private key differs from the published vector")
			}
			// The same key loaded from hex gives the same address.
			k2, err := FromHex(k.PrivKeyHex())
			if err != nil {
				t.Fatal(err)
			}
			if a2, _ := k2.Address(v.prefix); a2 != v.address {
				t.Errorf("hex round trip address = %s", a2)
			}
		})
	}
}

func TestDefaultPrefixAndAddressCodec(t *testing.T) {
	k, err := FromMnemonic(mnemonicVectors[0].mnemonic, DefaultHDPath)
	if err != nil {
		t.Fatal(err)
	}
	addr, err := k.Address("")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(addr, "nesa1") {
		t.Fatalf("default address %s lacks nesa prefix", addr)
	}
	prefix, raw, err := DecodeAddress(addr)
	if err != nil {
		t.Fatal(err)
	}
	if prefix != "nesa" || !bytes.Equal(raw, k.AccAddress()) {
		t.Errorf("DecodeAddress = %s %x, want nesa %x", prefix, raw, k.AccAddress())
	}
	if err := ValidateAddress("nesa", addr); err != nil {
		t.Error(err)
	}
	if err := ValidateAddress("nesa", mnemonicVectors[0].address); err == nil {
		t.Error("cosmos address accepted as nesa")
	}
	last := byte('q')
	if addr[len(addr)-1] == 'q' {
		last = 'p'
	}
	bad := addr[:len(addr)-1] + string(last)
	if _, _, err := DecodeAddress(bad); err == nil {
		t.Errorf("address with broken checksum %s accepted", bad)
	}
	// A different account index gives a different key.
	k1, err := FromMnemonic(mnemonicVectors[0].mnemonic, "m/44'/118'/0'/0/1")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(k1.PubKeyBytes(), k.PubKeyBytes()) {
		t.Error("index 1 derived the same key as index 0")
	}
}

// TestCosmJSDirectSignature signs the SIGN_MODE_DIRECT sign bytes of cosmjs's
// published proto-signing test vectors (faucet key, chain simd-testing,
// account 1, sequences 0..2) and expects the exact signatures carried in the
// vectors' signed TxRaw bytes: both sides use RFC 6979 nonces and low-S.
func TestCosmJSDirectSignature(t *testing.T) {
	k, err := FromMnemonic(mnemonicVectors[2].mnemonic, "")
	if err != nil {
		t.Fatal(err)
	}
	const (
		body     = "0a90010a1c2f636f736d6f732e62616e6b2e763162657461312e4d736753656e6412700a2d636f736d6f7331706b707472653766646b6c366766727a6c65736a6a766878686c63337234676d6d6b38727336122d636f736d6f7331717970717870713971637273737a673270767871367273307a716733797963356c7a763778751a100a0575636f736d12073132333435363712001800"
		authHead = "0a500a460a1f2f636f736d6f732e63727970746f2e736563703235366b312e5075624b657912230a21034f04181eeba35391b858633a765c4a0c189697b40d216354d50890d350c7029012040a0208011800"
		authTail = "12170a0d0a0575636f736d12043230303010c09a0c1a002200"
	)
	// SignDoc{body_bytes, auth_info_bytes, chain_id "simd-testing", account_number 1}.
	signDoc := func(seq byte) []byte {
		auth := authHead[:len(authHead)-2] + hex.EncodeToString([]byte{seq}) + authTail
		h := "0a9701" + body + "126b" + auth + "1a0c" + hex.EncodeToString([]byte("simd-testing")) + "2001"
		b, err := hex.DecodeString(h)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	want := []string{
		"d1bb55b0f3e5f9c260a20c8ccf2cb44f19bafccba84c7fb6e2b77fac401b15c9228c33236a701dd7a7c4a481aa5dedb902c982fe565504c4f4e7f39ccfcd73d6",
		"d6d876ec9c01d03b025443822b1385e29ed559341ec71853ac310219b4bcb4112bf24265a19d805f0cbb1cb39f4ac4fe75235445070aa14845733117a746c248",
		"c62931c5f283dc72774cb34165ad98169c40de14c13e9c11c696cb439c7c58ab0c2017c95cb9ed874ace06460b61f1296dddb20c9e0609e364d1f38e163b7c7b",
	}
	for seq, w := range want {
		msg := signDoc(byte(seq))
		sig := k.Sign(msg)
		if got := hex.EncodeToString(sig); got != w {
			t.Errorf("sequence %d: signature %s, want %s", seq, got, w)
		}
		if !VerifySignature(k.PubKeyBytes(), msg, sig) {
			t.Errorf("sequence %d: own signature does not verify", seq)
		}
	}
}

func TestSignVerifyRoundTrip(t *testing.T) {
	k, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	other, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 200; i++ {
		msg := []byte(fmt.Sprintf("message %d", i))
		sig := k.Sign(msg)
		if len(sig) != SignatureSize {
			t.Fatalf("signature length %d", len(sig))
		}
		if !IsLowS(sig) {
			t.Fatalf("signature %d is high-S", i)
		}
		if !VerifySignature(k.PubKeyBytes(), msg, sig) {
			t.Fatalf("signature %d does not verify", i)
		}
		if VerifySignature(k.PubKeyBytes(), append(msg, '!'), sig) {
			t.Fatalf("signature %d verifies a different message", i)
		}
		if VerifySignature(other.PubKeyBytes(), msg, sig) {
			t.Fatalf("signature %d verifies under another key", i)
		}
		// The high-S twin (r, n-s) is a valid ECDSA signature that a Cosmos
		// chain rejects; so must we.
		var s secp256k1.ModNScalar
		s.SetByteSlice(sig[32:])
		s.Negate()
		high := append([]byte(nil), sig...)
		s.PutBytesUnchecked(high[32:])
		if IsLowS(high) {
			t.Fatalf("negated S reported low")
		}
		if VerifySignature(k.PubKeyBytes(), msg, high) {
			t.Fatalf("high-S signature %d accepted", i)
		}
	}
	msg := []byte("x")
	sig := k.Sign(msg)
	for name, bad := range map[string][]byte{
		"short":    sig[:63],
		"zero-r":   append(make([]byte, 32), sig[32:]...),
		"all-ones": bytes.Repeat([]byte{0xff}, 64),
	} {
		if VerifySignature(k.PubKeyBytes(), msg, bad) {
			t.Errorf("%s signature accepted", name)
		}
	}
	if VerifySignature(k.PubKeyBytes()[:32], msg, sig) {
		t.Error("truncated public key accepted")
	}
}

func TestFromHexErrorsDoNotEchoInput(t *testing.T) {
	secret := strings.Repeat("ab", 31) + "zz"
	cases := []string{"", "1234", secret, strings.Repeat("00", 32), strings.Repeat("ff", 32)}
	for _, in := range cases {
		_, err := FromHex(in)
		if err == nil {
			t.Errorf("FromHex(%q): no error", in)
			continue
		}
		if len(in) > 8 && strings.Contains(err.Error(), in) {
			t.Errorf("error %q echoes its input", err)
		}
	}
	words := "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon"
	_, err := FromMnemonic(words, "")
	if err == nil {
		t.Fatal("mnemonic with bad checksum accepted")
	}
	if strings.Contains(err.Error(), "abandon") {
		t.Errorf("error %q echoes the mnemonic", err)
	}
	if _, err := FromMnemonic(mnemonicVectors[0].mnemonic, "m/44'/x"); err == nil {
		t.Error("bad hd path accepted")
	}
	k, err := FromHex("0x" + strings.ToUpper(mnemonicVectors[3].privHex) + "\n")
	if err != nil {
		t.Fatalf("0x-prefixed upper-case hex with newline: %v", err)
	}
	if a, _ := k.Address("gio"); a != mnemonicVectors[3].address {
		t.Errorf("address %s", a)
	}
}

func TestKeyNeverPrints(t *testing.T) {
	k, err := FromHex(mnemonicVectors[3].privHex)
	if err != nil {
		t.Fatal(err)
	}
	priv := mnemonicVectors[3].privHex
	type holder struct {
		K  *Key
		KV Key
	}
	h := holder{K: k, KV: *k}
	outs := []string{
		fmt.Sprint(k), fmt.Sprintf("%v", k), fmt.Sprintf("%+v", k), fmt.Sprintf("%#v", k),
		fmt.Sprintf("%x", k), fmt.Sprintf("%X", *k), fmt.Sprintf("%s", *k), fmt.Sprintf("%q", k),
		fmt.Sprintf("%+v", h), fmt.Sprintf("%#v", h), fmt.Sprintf("%v", []*Key{k}),
		fmt.Errorf("wrapped: %v", k).Error(),
	}
	privRaw, _ := hex.DecodeString(priv)
	for _, o := range outs {
		if strings.Contains(strings.ToLower(o), priv) || strings.Contains(o, string(privRaw)) {
			t.Errorf("output leaks the private key: %s", o)
		}
		if !strings.Contains(o, "REDACTED") {
			t.Errorf("output lacks the redaction marker: %s", o)
		}
	}
	if b, err := json.Marshal(h); err == nil {
		t.Errorf("json.Marshal of a key succeeded: %s", b)
	}
}

func TestLoadAndSave(t *testing.T) {
	dir := t.TempDir()
	v := mnemonicVectors[3]
	k, err := FromHex(v.privHex)
	if err != nil {
		t.Fatal(err)
	}

	p := filepath.Join(dir, "sub", "provider.key")
	if err := SaveFile(p, k, false); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", st.Mode().Perm())
	}
	if err := SaveFile(p, k, false); err == nil {
		t.Error("SaveFile replaced an existing key")
	}
	other, _ := Generate()
	if err := SaveFile(p, other, false); err == nil {
		t.Error("SaveFile replaced an existing key with another")
	}
	got, err := Load(p, "")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.PubKeyBytes(), k.PubKeyBytes()) {
		t.Error("loaded key differs from saved key")
	}
	entries, _ := os.ReadDir(filepath.Dir(p))
	if len(entries) != 1 {
		t.Errorf("temp files left behind: %v", entries)
	}

	// A mnemonic file.
	mp := filepath.Join(dir, "mnemonic.txt")
	if err := SaveMnemonicFile(mp, v.mnemonic, false); err != nil {
		t.Fatal(err)
	}
	got, err = Load(mp, "")
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := got.Address(v.prefix); a != v.address {
		t.Errorf("mnemonic file address %s", a)
	}

	// Secret-style directories.
	secHex := filepath.Join(dir, "secret-hex")
	os.Mkdir(secHex, 0o700)
	os.WriteFile(filepath.Join(secHex, SecretPrivateKey), []byte(v.privHex), 0o600)
	if got, err = Load(secHex, ""); err != nil || !bytes.Equal(got.PubKeyBytes(), k.PubKeyBytes()) {
		t.Errorf("secret dir with private-key: %v", err)
	}
	secMn := filepath.Join(dir, "secret-mn")
	os.Mkdir(secMn, 0o700)
	os.WriteFile(filepath.Join(secMn, SecretMnemonic), []byte(mnemonicVectors[0].mnemonic+"\n"), 0o600)
	os.WriteFile(filepath.Join(secMn, SecretHDPath), []byte("m/44'/118'/0'/0/1\n"), 0o600)
	want, _ := FromMnemonic(mnemonicVectors[0].mnemonic, "m/44'/118'/0'/0/1")
	if got, err = Load(secMn, ""); err != nil || !bytes.Equal(got.PubKeyBytes(), want.PubKeyBytes()) {
		t.Errorf("secret dir with mnemonic and hd-path: %v", err)
	}
	os.WriteFile(filepath.Join(secMn, SecretPrivateKey), []byte(v.privHex), 0o600)
	if _, err := Load(secMn, ""); err == nil {
		t.Error("directory with both a mnemonic and a private key accepted")
	}
	if _, err := Load(t.TempDir(), ""); err == nil {
		t.Error("empty directory accepted")
	}

	// Garbage content: error names the file, never the content.
	gp := filepath.Join(dir, "garbage")
	os.WriteFile(gp, []byte("not-a-key-SECRETVALUE"), 0o600)
	_, err = Load(gp, "")
	if err == nil || strings.Contains(err.Error(), "SECRETVALUE") || !strings.Contains(err.Error(), gp) {
		t.Errorf("garbage key file error = %v", err)
	}
	big := filepath.Join(dir, "big")
	os.WriteFile(big, bytes.Repeat([]byte("a"), maxKeyFileSize+1), 0o600)
	if _, err := Load(big, ""); err == nil {
		t.Error("oversized key file accepted")
	}
	if _, err := Load(filepath.Join(dir, "missing"), ""); err == nil {
		t.Error("missing file accepted")
	}
}

func BenchmarkSign(b *testing.B) {
	k, _ := Generate()
	msg := bytes.Repeat([]byte{7}, 200)
	b.ReportAllocs()
	for b.Loop() {
		k.Sign(msg)
	}
}

func BenchmarkVerify(b *testing.B) {
	k, _ := Generate()
	msg := bytes.Repeat([]byte{7}, 200)
	sig := k.Sign(msg)
	pub := k.PubKeyBytes()
	b.ReportAllocs()
	for b.Loop() {
		VerifySignature(pub, msg, sig)
	}
}
