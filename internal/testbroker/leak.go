package testbroker

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

// CheckGoroutines fails t if goroutines started during t are still alive
// once t's other cleanups have run (goleak.Find with goleak.IgnoreCurrent,
// plus opts). Call it first in a test (before Start and Dial) so that its
// check runs last. Goroutines may take a moment to exit after Close
// returns, so the check keeps looking (at most HangGuard) before failing.
//
// goleak cannot tell whose goroutine it sees, so a test that calls
// CheckGoroutines must not call t.Parallel. Parallel tests rely on the
// package's goleak.VerifyTestMain instead. (Go runs every parallel
// top-level test only after all sequential ones have finished, so
// sequential tests with this check never overlap a parallel one.)
func CheckGoroutines(t testing.TB) {
	t.Helper()
	opts := []goleak.Option{goleak.IgnoreCurrent()}
	t.Cleanup(func() {
		if err := settle(opts); err != nil {
			t.Errorf("goroutine leak: %v", err)
		}
	})
}

// settle runs goleak.Find until it finds nothing or HangGuard has passed,
// and returns its last error. A single Find gives up after well under a
// second, too soon on a slow, shared machine.
func settle(opts []goleak.Option) error {
	deadline := time.Now().Add(HangGuard)
	for {
		err := goleak.Find(opts...)
		if err == nil || time.Now().After(deadline) {
			return err
		}
	}
}
