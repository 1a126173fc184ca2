package main

import (
	"os"
	"runtime/debug"

	"github.com/postbox-ipc/postbox/broker"
)

// defaultGCPercent is the GOGC the broker runs with unless $GOGC says
// otherwise. A broker allocates a little per message and holds little
// else, so collecting less often is where throughput is (measured: 64-byte
// messages/s rose from 1.29 M at GOGC=100 to 1.76 M at 400); the soft
// memory limit below keeps that from turning into unbounded memory.
const defaultGCPercent = 400

// tuneGC sets the collector for a process that runs a broker: GOGC 400 and
// a soft memory limit of twice the broker's queued-bytes limit plus
// 512 MiB, so the collector works harder only as memory approaches what
// the broker may legitimately hold. $GOGC and $GOMEMLIMIT, if set, win.
// It returns the settings in force, for the log.
func tuneGC(cfg broker.Config) (gcPercent int, memLimit int64) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(2*cfg.MaxQueuedBytes + 512<<20)
	}
	gcPercent = debug.SetGCPercent(-1)
	debug.SetGCPercent(gcPercent)
	return gcPercent, debug.SetMemoryLimit(-1)
}
