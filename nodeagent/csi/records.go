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

package csi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// volumesDir is the state directory's subdirectory of volume records.
const volumesDir = "volumes"

// maxVolumeIDLength bounds volume IDs, which name record files. The kubelet's
// IDs for inline volumes are "csi-" and a sha256 in hex.
const maxVolumeIDLength = 128

// record is a published volume, kept on disk so that a restarted agent pins
// the snapshot again while the volume stays mounted.
type record struct {
	VolumeID     string `json:"volumeID"`
	TargetPath   string `json:"targetPath"`
	Namespace    string `json:"modelNamespace"`
	Name         string `json:"modelName"`
	Digest       string `json:"modelDigest"`
	PodNamespace string `json:"podNamespace,omitempty"`
	PodName      string `json:"podName,omitempty"`
	PodUID       string `json:"podUID,omitempty"`
}

func (r *record) model() ModelRef {
	return ModelRef{Namespace: r.Namespace, Name: r.Name, Digest: r.Digest}
}

// records stores one JSON file per volume under <state-dir>/volumes.
type records struct{ dir string }

func openRecords(stateDir string) (records, error) {
	dir := filepath.Join(stateDir, volumesDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return records{}, fmt.Errorf("create volume state directory: %w", err)
	}
	return records{dir: dir}, nil
}

// validVolumeID reports whether id can name a record file: letters, digits,
// '.', '_' and '-', not starting with '.', at most maxVolumeIDLength bytes.
func validVolumeID(id string) bool {
	if id == "" || len(id) > maxVolumeIDLength || id[0] == '.' {
		return false
	}
	for _, c := range []byte(id) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

func (s records) path(id string) string { return filepath.Join(s.dir, id+".json") }

// get returns the record of a volume, or nil when there is none.
func (s records) get(id string) (*record, error) {
	b, err := os.ReadFile(s.path(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read volume record: %w", err)
	}
	r := &record{}
	if err := json.Unmarshal(b, r); err != nil {
		return nil, fmt.Errorf("volume record %s: %w", s.path(id), err)
	}
	return r, nil
}

// put writes a record atomically: a temporary file, synced, renamed over the
// old one, and the directory synced, so a crash leaves the old or the new.
func (s records) put(r *record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(s.dir, "."+r.VolumeID+".*.tmp")
	if err != nil {
		return fmt.Errorf("write volume record: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, s.path(r.VolumeID))
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write volume record: %w", err)
	}
	return s.syncDir()
}

// remove deletes a volume's record; a missing one is no error.
func (s records) remove(id string) error {
	if err := os.Remove(s.path(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove volume record: %w", err)
	}
	return s.syncDir()
}

func (s records) syncDir() error {
	d, err := os.Open(s.dir)
	if err != nil {
		return fmt.Errorf("sync volume state directory: %w", err)
	}
	defer func() { _ = d.Close() }()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync volume state directory: %w", err)
	}
	return nil
}

// list returns every record, removing temporary files a crash left behind.
// A record that cannot be read is returned as an error after the rest.
func (s records) list() ([]*record, error) {
	des, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("list volume records: %w", err)
	}
	var out []*record
	var errs []error
	for _, de := range des {
		name := de.Name()
		if strings.HasPrefix(name, ".") && strings.HasSuffix(name, ".tmp") {
			_ = os.Remove(filepath.Join(s.dir, name))
			continue
		}
		id, ok := strings.CutSuffix(name, ".json")
		if !ok || !validVolumeID(id) || !de.Type().IsRegular() {
			continue
		}
		r, err := s.get(id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if r != nil && r.VolumeID == id {
			out = append(out, r)
		}
	}
	return out, errors.Join(errs...)
}
