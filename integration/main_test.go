package integration_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/broker"
	"github.com/postbox-ipc/postbox/internal/testbroker"
	"go.uber.org/goleak"
)

// roleEnv, when set, makes the test binary play a client role (see
// role.go) instead of running tests.
const roleEnv = "POSTBOX_TEST_ROLE"

const hangGuard = testbroker.HangGuard

// binDir holds the binaries child processes run: the postbox CLI and a
// copy of this test binary, in a directory every uid may enter.
var binDir string

func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(runRole(role, os.Args[1:]))
	}
	dir, err := testbroker.SharedDir(nil, "postbox-integration-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	// After all tests (parallel ones included), no goroutine of ours may
	// be left; goleak itself ignores the testing package's and os/signal's.
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		os.RemoveAll(dir)
		os.Exit(code)
	}))
}

var (
	cliOnce sync.Once
	cliPath string
	cliErr  error

	selfOnce sync.Once
	selfPath string
	selfErr  error
)

// cli returns the postbox binary, built on first use: only tests that need
// it pay for (and depend on) building ./cmd/postbox.
func cli(t testing.TB) string {
	t.Helper()
	cliOnce.Do(func() { cliPath, cliErr = testbroker.BuildCLI(binDir) })
	if cliErr != nil {
		t.Fatal(cliErr)
	}
	return cliPath
}

// self returns a copy of this test binary that any uid may execute.
func self(t testing.TB) string {
	t.Helper()
	selfOnce.Do(func() { selfPath, selfErr = testbroker.CopyExecutable(binDir) })
	if selfErr != nil {
		t.Fatal(selfErr)
	}
	return selfPath
}

// start runs an in-process broker for t with cfg (nil: defaults), after
// arming the goroutine leak check so that it runs last.
func start(t *testing.T, cfg *broker.Config) *testbroker.Broker {
	t.Helper()
	testbroker.CheckGoroutines(t)
	return testbroker.Start(t, cfg)
}

// limits returns the default config with f applied.
func limits(f func(*broker.Config)) *broker.Config {
	c := broker.DefaultConfig()
	f(&c)
	return &c
}

// ctxT returns a context bounded by the hang guard, cancelled when t ends.
func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	t.Cleanup(cancel)
	return ctx
}

// create makes a mailbox or fails t.
func create(t testing.TB, c *postbox.Client, name string, opts ...postbox.CreateOption) *postbox.Mailbox {
	t.Helper()
	mb, err := c.Create(ctxT(t), name, opts...)
	if err != nil {
		t.Fatalf("create %q: %v", name, err)
	}
	return mb
}

func send(t testing.TB, mb *postbox.Mailbox, body string, opts ...postbox.SendOption) postbox.Receipt {
	t.Helper()
	r, err := mb.Send(ctxT(t), []byte(body), opts...)
	if err != nil {
		t.Fatalf("send %q to %s: %v", body, mb.Name(), err)
	}
	return r
}

func recv(t testing.TB, mb *postbox.Mailbox, opts ...postbox.ReceiveOption) *postbox.Message {
	t.Helper()
	m, err := mb.Receive(ctxT(t), opts...)
	if err != nil {
		t.Fatalf("receive from %s: %v", mb.Name(), err)
	}
	return m
}

func ack(t testing.TB, m *postbox.Message) {
	t.Helper()
	if err := m.Ack(ctxT(t)); err != nil {
		t.Fatalf("ack %q: %v", m.Body, err)
	}
}

// recvAck receives one message, acks it and returns its body.
func recvAck(t testing.TB, mb *postbox.Mailbox, opts ...postbox.ReceiveOption) string {
	t.Helper()
	m := recv(t, mb, opts...)
	ack(t, m)
	return string(m.Body)
}

// waitStat polls the mailbox's Stat until ok holds. Assertions that a
// request "is blocked" use it instead of sleeping: the broker's own count
// says the request is waiting.
func waitStat(t testing.TB, mb *postbox.Mailbox, what string, ok func(postbox.Info) bool) postbox.Info {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for {
		info, err := mb.Stat(ctxT(t))
		if err != nil {
			t.Fatalf("stat %s: %v", mb.Name(), err)
		}
		if ok(info) {
			return info
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s not reached after %v: %+v", mb.Name(), what, hangGuard, info)
		}
		time.Sleep(time.Millisecond)
	}
}

// result is the outcome of a call made in another goroutine.
type result[T any] struct {
	v   T
	err error
}

// async runs f in a goroutine and returns the channel its result arrives
// on. The goroutine ends when f returns; every caller waits for it.
func async[T any](f func() (T, error)) <-chan result[T] {
	ch := make(chan result[T], 1)
	go func() {
		v, err := f()
		ch <- result[T]{v, err}
	}()
	return ch
}

// await waits (at most the hang guard) for a result.
func await[T any](t testing.TB, ch <-chan result[T], what string) result[T] {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(hangGuard):
		t.Fatalf("%s: no result after %v", what, hangGuard)
		panic("unreachable")
	}
}

// notYet fails t if ch already has a result.
func notYet[T any](t testing.TB, ch <-chan result[T], what string) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("%s completed while it should still wait: %+v", what, r)
	default:
	}
}

// wantErr fails t unless errors.Is(err, want).
func wantErr(t testing.TB, err, want error, what string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

// waitFor polls cond (at most the hang guard).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached after %v", what, hangGuard)
		}
		time.Sleep(time.Millisecond)
	}
}
