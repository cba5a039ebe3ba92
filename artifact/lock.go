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

package artifact

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/utils/clock"
)

// Lock wait backoff while another process holds a fetch lock.
const (
	lockPollInitial = 10 * time.Millisecond
	lockPollMax     = 500 * time.Millisecond
)

// fileLock is an flock held on an open file.
type fileLock struct {
	f *os.File
}

func openLockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	return f, nil
}

// tryLock takes the lock without waiting; ok is false when another holder
// has a conflicting lock.
func tryLock(path string, how int) (l *fileLock, ok bool, err error) {
	f, err := openLockFile(path)
	if err != nil {
		return nil, false, err
	}
	if err := flock(f, how|unix.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("lock %s: %w", path, err)
	}
	return &fileLock{f: f}, true, nil
}

// lockWait takes the lock, polling while another process holds it, until ctx
// is done. onWait, if set, is called once when the first attempt finds the
// lock held.
func lockWait(ctx context.Context, clk clock.Clock, path string, how int, onWait func()) (*fileLock, error) {
	delay := lockPollInitial
	for first := true; ; first = false {
		l, ok, err := tryLock(path, how)
		if err != nil || ok {
			return l, err
		}
		if first && onWait != nil {
			onWait()
		}
		t := clk.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("wait for lock: %w", ctx.Err())
		case <-t.C():
		}
		delay = min(2*delay, lockPollMax)
	}
}

// lockBlocking takes the lock, blocking in the kernel until it is free. Use
// it only for locks held briefly.
func lockBlocking(path string, how int) (*fileLock, error) {
	f, err := openLockFile(path)
	if err != nil {
		return nil, err
	}
	if err := flock(f, how); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return &fileLock{f: f}, nil
}

func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// unlock releases the lock. Closing the file releases the flock.
func (l *fileLock) unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
