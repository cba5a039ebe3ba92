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
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/aivm-dev/aivm-operator/chain-client/keys"
)

// keyFileExt is the extension of key files in the keys home.
const keyFileExt = ".key"

func init() {
	register("keys", "Create and inspect provider keys (add, show, address, list)", runKeys)
}

var keySubcommands = map[string]subcommand{
	"add":     {"Create a key, or import one from a mnemonic or hex private key on stdin", keysAdd},
	"show":    {"Show a key's address and public key", keysShow},
	"address": {"Print a key's bech32 address", keysAddress},
	"list":    {"List the keys in the keys home", keysList},
}

func runKeys(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return dispatch(ctx, "keys", keySubcommands, args, stdin, stdout, stderr)
}

func defaultKeysHome() string {
	if d := os.Getenv("AIVM_KEYS_HOME"); d != "" {
		return d
	}
	h, err := os.UserHomeDir()
	if err != nil {
		return ".aivm/keys"
	}
	return filepath.Join(h, ".aivm", "keys")
}

// validKeyName keeps key names to simple file names.
func validKeyName(name string) error {
	if name == "" || len(name) > 64 || strings.Trim(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != "" || strings.HasPrefix(name, ".") {
		return fmt.Errorf("key name %q: use 1-64 letters, digits, '-', '_' or '.', not starting with '.'", name)
	}
	return nil
}

func keysAdd(_ context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("keys add", stderr, "keys add <name> [flags]")
	home := fs.String("home", defaultKeysHome(), "Directory holding key files (<name>.key, hex private key, mode 0600); default $AIVM_KEYS_HOME or ~/.aivm/keys.")
	recoverMnemonic := fs.Bool("recover", false, "Read a BIP39 mnemonic from stdin instead of generating one.")
	fromHex := fs.Bool("from-hex", false, "Read a hex private key from stdin (as Nesa's node setup keeps it).")
	hdPath := fs.String("hd-path", keys.DefaultHDPath, "BIP32 path for mnemonic keys.")
	mnemonicFile := fs.String("mnemonic-file", "", "Where to save a generated mnemonic (mode 0600); default <home>/<name>.mnemonic.")
	prefix := fs.String("prefix", keys.DefaultPrefix, "Bech32 address prefix.")
	force := fs.Bool("force", false, "Replace an existing key file.")
	output := fs.String("output", "text", "Output format: text or json.")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return errUsage
	}
	name := pos[0]
	if err := validKeyName(name); err != nil {
		return err
	}
	if *recoverMnemonic && *fromHex {
		return errors.New("--recover and --from-hex are exclusive")
	}
	keyPath := filepath.Join(*home, name+keyFileExt)
	if !*force {
		if _, err := os.Stat(keyPath); err == nil {
			return fmt.Errorf("key %q already exists at %s (use --force to replace it)", name, keyPath)
		}
	}

	var k *keys.Key
	var mnemonic string
	switch {
	case *fromHex:
		line, err := readSecretLine(stdin)
		if err != nil {
			return err
		}
		if k, err = keys.FromHex(line); err != nil {
			return err
		}
	case *recoverMnemonic:
		line, err := readSecretLine(stdin)
		if err != nil {
			return err
		}
		if k, err = keys.FromMnemonic(line, *hdPath); err != nil {
			return err
		}
	default:
		if mnemonic, err = keys.NewMnemonic(); err != nil {
			return err
		}
		if k, err = keys.FromMnemonic(mnemonic, *hdPath); err != nil {
			return err
		}
	}
	addr, err := k.Address(*prefix)
	if err != nil {
		return err
	}
	mPath := ""
	if mnemonic != "" {
		mPath = *mnemonicFile
		if mPath == "" {
			mPath = filepath.Join(*home, name+".mnemonic")
		}
		if err := keys.SaveMnemonicFile(mPath, mnemonic, *force); err != nil {
			return fmt.Errorf("save mnemonic: %w", err)
		}
	}
	if err := keys.SaveFile(keyPath, k, *force); err != nil {
		return fmt.Errorf("save key: %w", err)
	}
	info := keyInfo{Name: name, Address: addr, PubKey: hex.EncodeToString(k.PubKeyBytes()), File: keyPath, MnemonicFile: mPath}
	if err := printKeyInfo(stdout, *output, info); err != nil {
		return err
	}
	if mPath != "" && *output == "text" {
		fmt.Fprintf(stderr, "The mnemonic was written to %s. Back it up and remove it from this machine: it is the only way to recover the key.\n", mPath)
	}
	return nil
}

// readSecretLine reads one line of secret input; the text never appears in
// errors.
func readSecretLine(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read stdin: %w", err)
	}
	line = strings.TrimSpace(line)
	if line == "" {
		return "", errors.New("stdin is empty; pipe the mnemonic or key in")
	}
	return line, nil
}

// keyInfo is what show and add print: never the private key.
type keyInfo struct {
	Name         string `json:"name"`
	Address      string `json:"address"`
	PubKey       string `json:"pubkey"`
	File         string `json:"file"`
	MnemonicFile string `json:"mnemonicFile,omitempty"`
}

func printKeyInfo(w io.Writer, format string, info keyInfo) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(info)
	case "text":
		fmt.Fprintf(w, "name:    %s\naddress: %s\npubkey:  %s\nfile:    %s\n", info.Name, info.Address, info.PubKey, info.File)
		return nil
	default:
		return fmt.Errorf("unknown output format %q (text or json)", format)
	}
}

// loadNamedKey loads a key by name from home, or from a path (a key file,
// a mnemonic file, or a Kubernetes-Secret-style directory). A reference
// holding a path separator is a path ("./provider.key" for the current
// directory); anything else is a key name.
func loadNamedKey(home, ref, hdPath string) (*keys.Key, string, error) {
	path := ref
	if !strings.ContainsRune(ref, os.PathSeparator) {
		if err := validKeyName(ref); err != nil {
			return nil, "", err
		}
		path = filepath.Join(home, ref+keyFileExt)
	}
	k, err := keys.Load(path, hdPath)
	if err != nil {
		return nil, "", err
	}
	return k, path, nil
}

// keyFlags are the flags of the commands that act on one stored key.
type keyFlags struct {
	home, hdPath, prefix *string
}

func bindKeyFlags(fs *flag.FlagSet) keyFlags {
	return keyFlags{
		home:   fs.String("home", defaultKeysHome(), "Directory holding key files."),
		hdPath: fs.String("hd-path", keys.DefaultHDPath, "BIP32 path when the key source is a mnemonic."),
		prefix: fs.String("prefix", keys.DefaultPrefix, "Bech32 address prefix."),
	}
}

// loadOne parses args, which must name one key (a name or a path), and
// loads it with its address.
func (f keyFlags) loadOne(fs *flag.FlagSet, args []string) (k *keys.Key, path, addr string, err error) {
	pos, err := parseFlags(fs, args)
	if err != nil {
		return nil, "", "", err
	}
	if len(pos) != 1 {
		fs.Usage()
		return nil, "", "", errUsage
	}
	k, path, err = loadNamedKey(*f.home, pos[0], *f.hdPath)
	if err != nil {
		return nil, "", "", err
	}
	addr, err = k.Address(*f.prefix)
	if err != nil {
		return nil, "", "", err
	}
	return k, path, addr, nil
}

func keysShow(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("keys show", stderr, "keys show <name|path> [flags]")
	kf := bindKeyFlags(fs)
	output := fs.String("output", "text", "Output format: text or json.")
	k, path, addr, err := kf.loadOne(fs, args)
	if err != nil {
		return err
	}
	name := strings.TrimSuffix(filepath.Base(path), keyFileExt)
	return printKeyInfo(stdout, *output, keyInfo{Name: name, Address: addr, PubKey: hex.EncodeToString(k.PubKeyBytes()), File: path})
}

func keysAddress(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("keys address", stderr, "keys address <name|path> [flags]")
	_, _, addr, err := bindKeyFlags(fs).loadOne(fs, args)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, addr)
	return nil
}

func keysList(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("keys list", stderr, "keys list [flags]")
	home := fs.String("home", defaultKeysHome(), "Directory holding key files.")
	prefix := fs.String("prefix", keys.DefaultPrefix, "Bech32 address prefix.")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		fs.Usage()
		return errUsage
	}
	entries, err := os.ReadDir(*home)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), keyFileExt) && !strings.HasPrefix(e.Name(), ".") {
			names = append(names, strings.TrimSuffix(e.Name(), keyFileExt))
		}
	}
	sort.Strings(names)
	for _, n := range names {
		k, err := keys.Load(filepath.Join(*home, n+keyFileExt), "")
		if err != nil {
			fmt.Fprintf(stdout, "%s\t(unreadable: %v)\n", n, err)
			continue
		}
		addr, err := k.Address(*prefix)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\t%s\n", n, addr)
	}
	return nil
}
