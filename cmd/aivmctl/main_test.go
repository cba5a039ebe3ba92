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

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aivm-dev/aivm-operator/chain-client/keys"
	"github.com/aivm-dev/aivm-operator/chain-client/rpc"
)

func runCmd(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), err
}

func TestKeysAddShowAddress(t *testing.T) {
	home := t.TempDir()
	out, errOut, err := runCmd(t, "", "keys", "add", "provider", "--home", home, "--output", "json")
	if err != nil {
		t.Fatalf("%v: %s", err, errOut)
	}
	var info keyInfo
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if !strings.HasPrefix(info.Address, "nesa1") || info.MnemonicFile == "" {
		t.Fatalf("info %+v", info)
	}
	// The printed address is the one of the stored key and of the mnemonic.
	k, err := keys.Load(filepath.Join(home, "provider.key"), "")
	if err != nil {
		t.Fatal(err)
	}
	mk, err := keys.Load(info.MnemonicFile, "")
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := k.Address(""); a != info.Address {
		t.Errorf("stored key address %s, printed %s", a, info.Address)
	}
	if a, _ := mk.Address(""); a != info.Address {
		t.Errorf("mnemonic address %s, printed %s", a, info.Address)
	}
	for _, p := range []string{filepath.Join(home, "provider.key"), info.MnemonicFile} {
		if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v", p, st.Mode().Perm())
		}
	}
	// No secret in any output.
	mn, _ := os.ReadFile(info.MnemonicFile)
	for _, s := range []string{out, errOut} {
		if strings.Contains(s, k.PrivKeyHex()) || strings.Contains(s, strings.Fields(string(mn))[0]+" "+strings.Fields(string(mn))[1]) {
			t.Errorf("output leaks a secret: %s", s)
		}
	}

	out, _, err = runCmd(t, "", "keys", "address", "provider", "--home", home)
	if err != nil || strings.TrimSpace(out) != info.Address {
		t.Errorf("address: %q %v", out, err)
	}
	out, _, err = runCmd(t, "", "keys", "show", "provider", "--home", home)
	if err != nil || !strings.Contains(out, info.Address) || !strings.Contains(out, info.PubKey) || strings.Contains(out, k.PrivKeyHex()) {
		t.Errorf("show: %q %v", out, err)
	}
	out, _, err = runCmd(t, "", "keys", "list", "--home", home)
	if err != nil || out != "provider\t"+info.Address+"\n" {
		t.Errorf("list: %q %v", out, err)
	}
	// Adding the same name again does not replace the key.
	if _, _, err := runCmd(t, "", "keys", "add", "provider", "--home", home); err == nil {
		t.Error("second add replaced the key")
	}
	if k2, _ := keys.Load(filepath.Join(home, "provider.key"), ""); k2.PrivKeyHex() != k.PrivKeyHex() {
		t.Error("key file changed")
	}
}

func TestKeysImport(t *testing.T) {
	home := t.TempDir()
	abandon := "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"
	out, _, err := runCmd(t, abandon+"\n", "keys", "add", "ab", "--recover", "--home", home, "--prefix", "cosmos")
	if err != nil || !strings.Contains(out, "cosmos19rl4cm2hmr8afy4kldpxz3fka4jguq0auqdal4") {
		t.Fatalf("recover: %q %v", out, err)
	}
	if _, err := os.Stat(filepath.Join(home, "ab.mnemonic")); !errors.Is(err, os.ErrNotExist) {
		t.Error("an imported mnemonic was written to disk")
	}
	hexKey := "7307bb9729ca7139ffbf4dcbfe18cd2d8e07ff93754fb81d34ae5ecc3e6bf51e"
	out, _, err = runCmd(t, hexKey, "keys", "add", "hx", "--from-hex", "--home", home, "--prefix", "gio")
	if err != nil || !strings.Contains(out, "gio1tseh0grt8j8klrdunpudflvy9lfn3rl50zdpu8") {
		t.Fatalf("from-hex: %q %v", out, err)
	}
	// Bad input: a clear error without the input, and no file.
	secret := strings.Repeat("5", 63) + "x"
	_, _, err = runCmd(t, secret, "keys", "add", "bad", "--from-hex", "--home", home)
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("bad hex: %v", err)
	}
	if _, err := os.Stat(filepath.Join(home, "bad.key")); !errors.Is(err, os.ErrNotExist) {
		t.Error("a key file was written for bad input")
	}
	if _, _, err := runCmd(t, "", "keys", "add", "../evil", "--home", home); err == nil {
		t.Error("path-like key name accepted")
	}
	if _, _, err := runCmd(t, "", "keys", "add", "x", "--recover", "--from-hex", "--home", home); err == nil {
		t.Error("--recover with --from-hex accepted")
	}
	// show also reads a Kubernetes-Secret-style directory.
	sec := t.TempDir()
	os.WriteFile(filepath.Join(sec, keys.SecretMnemonic), []byte(abandon), 0o600)
	out, _, err = runCmd(t, "", "keys", "address", sec, "--prefix", "cosmos")
	if err != nil || strings.TrimSpace(out) != "cosmos19rl4cm2hmr8afy4kldpxz3fka4jguq0auqdal4" {
		t.Errorf("secret dir: %q %v", out, err)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"bogus"}, {"keys"}, {"keys", "frob"}, {"keys", "show"}, {"devnet", "start", "extra"}} {
		if _, _, err := runCmd(t, "", args...); !errors.Is(err, errUsage) {
			t.Errorf("%v: err = %v", args, err)
		}
	}
	if _, _, err := runCmd(t, "", "devnet", "start", "--account", "nesa1x"); err == nil {
		t.Error("bad --account accepted")
	}
	if _, _, err := runCmd(t, "", "devnet", "start", "--account", "nokey=5", "--keys-home", t.TempDir(), "--home", t.TempDir()); err == nil {
		t.Error("--account naming a missing key accepted")
	}
}

// TestDevnetStart runs `aivmctl devnet start` until its context is
// cancelled, checking the chain answers in between.
func TestDevnetStart(t *testing.T) {
	k, _ := keys.Generate()
	addr, _ := k.Address("")
	keysHome := t.TempDir()
	if _, _, err := runCmd(t, "", "keys", "add", "prov", "--home", keysHome); err != nil {
		t.Fatal(err)
	}
	out, _, _ := runCmd(t, "", "keys", "address", "prov", "--home", keysHome)
	provAddr := strings.TrimSpace(out)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	var errOut bytes.Buffer
	home := t.TempDir()
	go func() {
		done <- run(ctx, []string{"devnet", "start", "--home", home, "--chain-id", "cli-test",
			"--account", addr + "=5000unes", "--account", "prov=7000", "--keys-home", keysHome, "--rpc-laddr", "tcp://127.0.0.1:0", "--block-time", "100ms"}, nil, pw, &errOut)
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	if !lines.Scan() {
		t.Fatalf("no output; stderr: %s; err: %v", errOut.String(), <-done)
	}
	m := regexp.MustCompile(`rpc=(\S+)`).FindStringSubmatch(lines.Text())
	if m == nil {
		t.Fatalf("first line %q", lines.Text())
	}
	c, err := rpc.New(m[1])
	if err != nil {
		t.Fatal(err)
	}
	qctx, qcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer qcancel()
	st, err := c.Status(qctx)
	if err != nil || st.ChainID != "cli-test" {
		t.Fatalf("status %+v %v", st, err)
	}
	for _, a := range []string{addr, provAddr} {
		if _, seq, err := c.Account(qctx, a); err != nil || seq != 0 {
			t.Errorf("genesis account %s: %d %v", a, seq, err)
		}
	}
	// Fund the key from the faucet through `devnet fund`.
	fundOut, fundErr, err := runCmd(t, "", "devnet", "fund", "prov", "123456", "--home", home, "--rpc", m[1], "--keys-home", keysHome)
	if err != nil || !strings.Contains(fundOut, "sent 123456unes to "+provAddr) {
		t.Fatalf("fund: %q %q %v", fundOut, fundErr, err)
	}
	if bal, err := c.Balance(qctx, provAddr, "unes"); err != nil || bal != 7000+123456 {
		t.Errorf("balance after funding %d: %v", bal, err)
	}
	cancel()
	rest, _ := io.ReadAll(pr)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(rest), "stopping devnet") {
		t.Errorf("shutdown output %q", rest)
	}
}
