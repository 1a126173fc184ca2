package rpcfault_test

import (
	"context"
	"flag"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox/internal/testbroker"
	"go.uber.org/goleak"
)

var (
	callsFlag = flag.Int("rpcfault.calls", 2000, "fault tests: calls per semantics through the fault-injection layer")
	seedFlag  = flag.Uint64("rpcfault.seed", 1, "fault tests: seed of the fault-injection layer and of the kill points")
	crashFlag = flag.Int("rpcfault.crash.calls", 400, "crash tests: calls per semantics while servers are killed")
	killsFlag = flag.Int("rpcfault.crash.kills", 4, "crash tests: servers killed with SIGKILL per semantics")
)

// roleEnv, when set to "server", makes the test binary an rpc server
// process (see role_test.go, whose init dispatches it before TestMain)
// instead of running tests.
const roleEnv = "POSTBOX_RPCFAULT_ROLE"

const hangGuard = testbroker.HangGuard

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// start runs an in-process broker for t after arming the goroutine leak
// check, so that the check runs last.
func start(t *testing.T) *testbroker.Broker {
	t.Helper()
	testbroker.CheckGoroutines(t)
	return testbroker.Start(t, nil)
}

// ctxT returns a context bounded by the hang guard, cancelled when t ends.
func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond (at most d).
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached after %v", what, d)
		}
		time.Sleep(time.Millisecond)
	}
}
