package rpcfault_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/rpc/envelope"
)

// deadlineSlack is how far the handler's deadline may be from the
// caller's: the DEADLINE header carries it to the nanosecond, so only a
// rounding in the header's encoding could move it.
const deadlineSlack = time.Millisecond

// blockingSetup runs one server process with a single handler on a fresh
// broker and returns a caller and the log's path.
func blockingSetup(t *testing.T, service string) (*caller, string) {
	b := start(t)
	logPath := filepath.Join(t.TempDir(), "exec.log")
	startServerProc(t, b.Socket, service, logPath, 1)
	cl := newCaller(b.Dial(t))
	return cl, logPath
}

// waitEnding waits for the C line of key and returns it.
func waitEnding(t *testing.T, logPath, key string) ending {
	t.Helper()
	var e ending
	waitFor(t, hangGuard, "the handler's context to end for "+key, func() bool {
		tl, err := readExecLog(logPath)
		if err != nil {
			t.Fatal(err)
		}
		if ends := tl.ends[key]; len(ends) > 0 {
			e = ends[0]
			return true
		}
		return false
	})
	return e
}

// waitRunning waits until the handler runs key.
func waitRunning(t *testing.T, logPath, key string) {
	t.Helper()
	waitFor(t, hangGuard, key+" to start running", func() bool {
		tl, err := readExecLog(logPath)
		if err != nil {
			t.Fatal(err)
		}
		return len(tl.runs[key]) > 0
	})
}

// deadlineCalls is how many calls TestHandlerContextEndsAtCallerDeadline
// makes at once per semantics, each on its own handler.
const deadlineCalls = 8

// TestHandlerContextEndsAtCallerDeadline: the caller's deadline travels
// with the request and is the handler's context deadline, in the server
// process; when it passes, the handler's context ends with
// DeadlineExceeded (not Canceled: the broker's INTERRUPT for the timed
// out call must not beat the deadline to it) and the caller gets
// DeadlineExceeded.
func TestHandlerContextEndsAtCallerDeadline(t *testing.T) {
	for _, sem := range allSemantics {
		t.Run(string(sem), func(t *testing.T) {
			const service = "rpcfault.deadline"
			b := start(t)
			logPath := filepath.Join(t.TempDir(), "exec.log")
			startServerProc(t, b.Socket, service, logPath, deadlineCalls)
			cl := newCaller(b.Dial(t))
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			want, _ := ctx.Deadline()
			errs := make(chan error, deadlineCalls)
			for i := range deadlineCalls {
				go func() { errs <- cl.block(ctx, service, sem, fmt.Sprintf("deadline-%s-%d", sem, i)) }()
			}
			for range deadlineCalls {
				if err := <-errs; codeOf(err) != envelope.DeadlineExceeded {
					t.Errorf("call past its deadline: code %v (%v), want DeadlineExceeded", codeOf(err), err)
				}
			}
			seen := map[string]int{}
			for i := range deadlineCalls {
				key := fmt.Sprintf("deadline-%s-%d", sem, i)
				e := waitEnding(t, logPath, key)
				seen[e.err]++
				if e.err != "deadline" {
					t.Errorf("%s: handler's context ended with %q (cause: %s), want deadline", key, e.err, e.cause)
				}
				if d := e.deadline.Sub(want); e.deadline.IsZero() || d < -deadlineSlack || d > deadlineSlack {
					t.Errorf("%s: handler's deadline %v, caller's %v (off by %v)", key, e.deadline, want, d)
				}
			}
			t.Logf("%s: %d calls past their deadline; the handlers' contexts ended with %v", sem, deadlineCalls, seen)
		})
	}
}

// TestHandlerContextCanceledWhenCallerCancels: cancelling a call whose
// handler runs interrupts its lease; the rpc server cancels the
// handler's context (the handler, in the server process, logs
// context.Canceled) and the caller learns the request was in progress.
// A request still queued behind it is withdrawn and never runs.
func TestHandlerContextCanceledWhenCallerCancels(t *testing.T) {
	for _, sem := range allSemantics {
		t.Run(string(sem), func(t *testing.T) {
			const service = "rpcfault.cancel"
			cl, logPath := blockingSetup(t, service)
			running, queued := "running-"+string(sem), "queued-"+string(sem)

			ctx1, cancel1 := context.WithTimeout(context.Background(), hangGuard)
			defer cancel1()
			first := make(chan error, 1)
			go func() { first <- cl.block(ctx1, service, sem, running) }()
			waitRunning(t, logPath, running)

			// The one handler is busy: the second request waits in the
			// mailbox (or prefetched by the server) until cancelled.
			ctx2, cancel2 := context.WithTimeout(context.Background(), hangGuard)
			defer cancel2()
			second := make(chan error, 1)
			go func() { second <- cl.block(ctx2, service, sem, queued) }()
			time.Sleep(50 * time.Millisecond) // let it reach the broker; nothing below depends on it
			cancel2()
			err2 := <-second
			if code := codeOf(err2); code != envelope.Canceled {
				t.Errorf("cancelled queued call: code %v (%v), want Canceled", code, err2)
			}

			cancel1()
			err1 := <-first
			if code := codeOf(err1); code != envelope.Canceled {
				t.Errorf("cancelled running call: code %v (%v), want Canceled", code, err1)
			}
			var ce *postbox.CallError
			if errors.As(err1, &ce) && ce.Outcome != postbox.OutcomeInProgress {
				t.Errorf("cancelled running call: outcome %v, want in progress", ce.Outcome)
			}
			e := waitEnding(t, logPath, running)
			if e.err != "canceled" {
				t.Errorf("handler's context ended with %q, want canceled", e.err)
			}

			// A call made now runs after anything still queued ahead of it
			// (one handler, FIFO): once it has run, the withdrawn request
			// would have run too if it were still there.
			after := "after-" + string(sem)
			if _, err := cl.echo(ctxT(t), service, sem, echoReq{Key: after}); err != nil {
				t.Fatalf("call after the cancellations: %v", err)
			}
			tl, err := readExecLog(logPath)
			if err != nil {
				t.Fatal(err)
			}
			if runs := tl.runs[queued]; len(runs) > 0 {
				t.Errorf("the cancelled queued call ran anyway: %v (its call returned %v)", runs, err2)
			}
			t.Logf("%s: running call's handler saw %s (caller got %v); queued call withdrawn (caller got %v)", sem, e.err, err1, err2)
		})
	}
}
