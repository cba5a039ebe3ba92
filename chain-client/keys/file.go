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
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Names of the entries a Kubernetes-Secret-style key directory may hold. A
// directory holds either SecretPrivateKey or SecretMnemonic (optionally with
// SecretHDPath); holding both is an error, so there is never doubt about
// which key is in use.
const (
	// SecretPrivateKey holds a hex-encoded private key.
	SecretPrivateKey = "private-key"
	// SecretMnemonic holds a BIP39 mnemonic.
	SecretMnemonic = "mnemonic"
	// SecretHDPath optionally holds the HD path used with SecretMnemonic.
	SecretHDPath = "hd-path"
)

// maxKeyFileSize bounds what Load reads; a key file is a few hundred bytes.
const maxKeyFileSize = 4096

// Load reads a key from path. A directory is read as a mounted Kubernetes
// Secret (see SecretPrivateKey, SecretMnemonic, SecretHDPath); a file holds
// either a hex private key or a mnemonic, told apart by their form. hdPath is
// used for a mnemonic when the source names none (empty: DefaultHDPath).
// Errors name the path but never its contents.
func Load(path, hdPath string) (*Key, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("load key: %w", err)
	}
	if st.IsDir() {
		return loadDir(path, hdPath)
	}
	s, err := readSecretFile(path)
	if err != nil {
		return nil, fmt.Errorf("load key: %w", err)
	}
	k, err := parseKeyText(s, hdPath)
	if err != nil {
		return nil, fmt.Errorf("load key from %s: %w", path, err)
	}
	return k, nil
}

func loadDir(dir, hdPath string) (*Key, error) {
	privPath := filepath.Join(dir, SecretPrivateKey)
	mnPath := filepath.Join(dir, SecretMnemonic)
	hasPriv, hasMn := exists(privPath), exists(mnPath)
	switch {
	case hasPriv && hasMn:
		return nil, fmt.Errorf("load key from %s: holds both %q and %q; keep one", dir, SecretPrivateKey, SecretMnemonic)
	case hasPriv:
		s, err := readSecretFile(privPath)
		if err != nil {
			return nil, fmt.Errorf("load key: %w", err)
		}
		k, err := FromHex(s)
		if err != nil {
			return nil, fmt.Errorf("load key from %s: %w", privPath, err)
		}
		return k, nil
	case hasMn:
		s, err := readSecretFile(mnPath)
		if err != nil {
			return nil, fmt.Errorf("load key: %w", err)
		}
		if p := filepath.Join(dir, SecretHDPath); exists(p) {
			b, err := readSecretFile(p)
			if err != nil {
				return nil, fmt.Errorf("load key: %w", err)
			}
			hdPath = strings.TrimSpace(b)
		}
		k, err := FromMnemonic(s, hdPath)
		if err != nil {
			return nil, fmt.Errorf("load key from %s: %w", mnPath, err)
		}
		return k, nil
	default:
		return nil, fmt.Errorf("load key from %s: neither %q nor %q found", dir, SecretPrivateKey, SecretMnemonic)
	}
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func readSecretFile(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer func() { _ = f.Close() }()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", p, err)
	}
	if len(b) > maxKeyFileSize {
		return "", fmt.Errorf("read %s: larger than %d bytes, not a key file", p, maxKeyFileSize)
	}
	return string(b), nil
}

// parseKeyText tells a hex private key from a mnemonic by its form.
func parseKeyText(s, hdPath string) (*Key, error) {
	t := strings.TrimSpace(s)
	if len(strings.Fields(t)) > 1 {
		return FromMnemonic(t, hdPath)
	}
	return FromHex(t)
}

// SaveFile writes k's hex private key to path with mode 0600, atomically
// (temp file, fsync, rename). It refuses to replace an existing file unless
// overwrite is set.
func SaveFile(path string, k *Key, overwrite bool) error {
	return writeSecret(path, []byte(k.PrivKeyHex()+"\n"), overwrite)
}

// SaveMnemonicFile writes a mnemonic to path with mode 0600, atomically; it
// refuses to replace an existing file unless overwrite is set.
func SaveMnemonicFile(path, mnemonic string, overwrite bool) error {
	return writeSecret(path, []byte(mnemonic+"\n"), overwrite)
}

func writeSecret(path string, data []byte, overwrite bool) error {
	if !overwrite && exists(path) {
		return fmt.Errorf("write %s: file exists", path)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmpName := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			_ = tmp.Close()
			_ = os.Remove(tmpName)
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if !overwrite {
		// Link fails if path appeared meanwhile, so a concurrent writer never
		// loses its key.
		if err := os.Link(tmpName, path); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		_ = os.Remove(tmpName)
	} else if err := os.Rename(tmpName, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}
