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

package devnet

import (
	"sync/atomic"

	cmtlog "github.com/cometbft/cometbft/libs/log"
	"github.com/go-logr/logr"
)

// cmtLogger routes CometBFT's logging into a logr.Logger: errors as errors,
// info at V(2) (CometBFT logs every block at info), debug at V(4). Once the
// node is stopping, its errors (closed listeners and the like) drop to V(1).
type cmtLogger struct {
	l        logr.Logger
	stopping *atomic.Bool
}

var _ cmtlog.Logger = cmtLogger{}

func (c cmtLogger) Debug(msg string, kv ...any) { c.l.V(4).Info(msg, kv...) }
func (c cmtLogger) Info(msg string, kv ...any)  { c.l.V(2).Info(msg, kv...) }
func (c cmtLogger) Error(msg string, kv ...any) {
	if c.stopping != nil && c.stopping.Load() {
		c.l.V(1).Info(msg, kv...)
		return
	}
	c.l.Error(nil, msg, kv...)
}
func (c cmtLogger) With(kv ...any) cmtlog.Logger {
	return cmtLogger{l: c.l.WithValues(kv...), stopping: c.stopping}
}
