package devnet

import (
	cmtlog "github.com/cometbft/cometbft/libs/log"
	"github.com/go-logr/logr"
)

// cmtLogger routes CometBFT's logging into a logr.Logger: errors as errors,
// info at V(2) (CometBFT logs every block at info), debug at V(4).
type cmtLogger struct{ l logr.Logger }

var _ cmtlog.Logger = cmtLogger{}

func (c cmtLogger) Debug(msg string, kv ...any) { c.l.V(4).Info(msg, kv...) }
func (c cmtLogger) Info(msg string, kv ...any)  { c.l.V(2).Info(msg, kv...) }
func (c cmtLogger) Error(msg string, kv ...any) { c.l.Error(nil, msg, kv...) }
func (c cmtLogger) With(kv ...any) cmtlog.Logger {
	return cmtLogger{l: c.l.WithValues(kv...)}
}
