package testbroker

import (
	"runtime"
	"testing"
	"time"
)

// CheckGoroutines fails t if, once t's other cleanups have run, more
// goroutines are alive than when it was called. Call it first in a test
// (before Start and Dial) so that its check runs last. Goroutines may take
// a moment to exit after Close returns, so the check waits for the count
// to settle (at most HangGuard) before failing. Tests that use it must not
// run in parallel with others.
func CheckGoroutines(t testing.TB) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		if n := settle(before); n > before {
			t.Errorf("goroutine leak: %d goroutines before the test, %d after\n%s", before, n, stacks())
		}
	})
}

// Settle waits (at most HangGuard) until at most want goroutines are
// alive and returns the last count, for a check in TestMain.
func Settle(want int) int { return settle(want) }

func settle(want int) int {
	deadline := time.Now().Add(HangGuard)
	for {
		n := runtime.NumGoroutine()
		if n <= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(time.Millisecond)
	}
}

// Stacks returns every goroutine's stack, for a leak report.
func Stacks() string { return stacks() }

func stacks() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}
