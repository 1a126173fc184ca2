package rpc_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/rpc"
	"github.com/postbox-ipc/postbox/rpc/envelope"
	"github.com/postbox-ipc/postbox/rpc/retry"
)

// blockingServer serves "test.Block"/"Wait": each run signals started
// and waits for release or its context. It records how its context ended.
type blockingServer struct {
	runs    atomic.Int64
	started chan string
	release chan struct{}
	ended   chan error
}

func newBlocking(e *env, opts ...rpc.ServerOption) *blockingServer {
	b, _ := newBlockingServer(e, opts...)
	return b
}

func newBlockingServer(e *env, opts ...rpc.ServerOption) (*blockingServer, *rpc.Server) {
	b := &blockingServer{started: make(chan string, 16), release: make(chan struct{}), ended: make(chan error, 16)}
	srv := e.server(func(s *rpc.Server) {
		s.HandleRaw("test.Block", "Wait", func(ctx context.Context, r *rpc.Request) (*rpc.Reply, error) {
			b.runs.Add(1)
			b.started <- string(r.Body)
			select {
			case <-b.release:
				b.ended <- nil
				return &rpc.Reply{Body: r.Body}, nil
			case <-ctx.Done():
				b.ended <- context.Cause(ctx)
				return nil, ctx.Err()
			}
		})
	}, opts...)
	return b, srv
}

func TestCancelWhileQueuedWithdrawsRequestAndHandlerNeverRuns(t *testing.T) {
	for _, sem := range []rpc.Semantics{rpc.Maybe, rpc.AtLeastOnce, rpc.ExactlyOnce} {
		t.Run(sem.String(), func(t *testing.T) {
			e := newEnv(t)
			b := newBlocking(e, rpc.Concurrency(1))
			busy := make(chan error, 1)
			go func() {
				_, err := e.client.Invoke(ctx(t), "test.Block", "Wait", []byte("first"))
				busy <- err
			}()
			<-b.started // the only handler is busy: the next request waits in the mailbox
			c, cancel := context.WithCancel(context.Background())
			queued := make(chan error, 1)
			go func() {
				_, err := e.client.Invoke(c, "test.Block", "Wait", []byte("second"), rpc.WithSemantics(sem))
				queued <- err
			}()
			waitFor(t, "the request to be queued", func() bool { return depth(t, e.callPC, "test.Block") == 1 })
			cancel()
			err := <-queued
			if rpc.CodeOf(err) != envelope.Canceled || rpc.OutcomeOf(err) != postbox.OutcomeWithdrawn {
				t.Fatalf("%v (outcome %v)", err, rpc.OutcomeOf(err))
			}
			if d := depth(t, e.callPC, "test.Block"); d != 0 {
				t.Fatalf("%d requests still queued", d)
			}
			close(b.release)
			if err := <-busy; err != nil {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond)
			if n := b.runs.Load(); n != 1 {
				t.Fatalf("%d runs, want 1 (the withdrawn request never runs)", n)
			}
		})
	}
}

func TestCancelWhileRunningCancelsHandlerContext(t *testing.T) {
	e := newEnv(t)
	b := newBlocking(e)
	c, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := e.client.Invoke(c, "test.Block", "Wait", []byte("x"))
		done <- err
	}()
	<-b.started
	cancel()
	err := <-done
	if rpc.CodeOf(err) != envelope.Canceled || rpc.OutcomeOf(err) != postbox.OutcomeInProgress {
		t.Fatalf("%v (outcome %v)", err, rpc.OutcomeOf(err))
	}
	select {
	case cause := <-b.ended:
		if rpc.CodeOf(cause) != envelope.Canceled {
			t.Fatalf("handler's context ended with %v", cause)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the handler's context was not canceled")
	}
}

func TestCallerTimeoutWhileRunningCancelsHandlerContext(t *testing.T) {
	e := newEnv(t)
	b := newBlocking(e)
	c, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := e.client.Invoke(c, "test.Block", "Wait", []byte("x"))
	if rpc.CodeOf(err) != envelope.DeadlineExceeded {
		t.Fatal(err)
	}
	select {
	case cause := <-b.ended:
		if cause == nil {
			t.Fatal("the handler finished instead of seeing its deadline")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the handler's context did not end")
	}
	// The caller's client or the handler (returning ctx.Err() at the
	// same deadline) may decide it: either way it matches.
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%v does not match context.DeadlineExceeded", err)
	}
}

func TestAttemptTimeoutDoesNotCancelHandlerAndRetryGetsItsReply(t *testing.T) {
	e := newEnv(t)
	var runs atomic.Int64
	canceled := make(chan bool, 4)
	e.server(func(s *rpc.Server) {
		s.HandleRaw("test.Slow", "Work", func(ctx context.Context, r *rpc.Request) (*rpc.Reply, error) {
			runs.Add(1)
			select {
			case <-time.After(300 * time.Millisecond):
				canceled <- false
				return &rpc.Reply{Body: []byte("done")}, nil
			case <-ctx.Done():
				canceled <- true
				return nil, ctx.Err()
			}
		})
	})
	rep, err := e.client.Invoke(ctx(t), "test.Slow", "Work", nil, rpc.WithSemantics(rpc.ExactlyOnce),
		rpc.WithRetry(retry.Policy{FirstTimeout: 60 * time.Millisecond, Backoff: time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	if string(rep.Body) != "done" || rep.Attempts < 2 {
		t.Fatalf("%q after %d attempts", rep.Body, rep.Attempts)
	}
	if runs.Load() != 1 || <-canceled {
		t.Fatalf("%d runs; the attempt timeout canceled the handler", runs.Load())
	}
}

func TestCancelRetriedCallWhileRunningCancelsHandlerContext(t *testing.T) {
	e := newEnv(t)
	b := newBlocking(e)
	c, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := e.client.Invoke(c, "test.Block", "Wait", nil, rpc.WithSemantics(rpc.AtLeastOnce),
			rpc.WithRetry(retry.Policy{FirstTimeout: 10 * time.Second}))
		done <- err
	}()
	<-b.started
	cancel()
	if err := <-done; rpc.CodeOf(err) != envelope.Canceled || rpc.OutcomeOf(err) != postbox.OutcomeInProgress {
		t.Fatalf("%v", err)
	}
	select {
	case cause := <-b.ended:
		if rpc.CodeOf(cause) != envelope.Canceled {
			t.Fatalf("handler's context ended with %v", cause)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the handler's context was not canceled")
	}
}

// TestHandlerContextEndsWithDeadlineExceededAtCallersDeadline: when the
// caller's deadline passes, the broker times the call out and
// interrupts the request; that INTERRUPT (reason TIMEOUT) races the
// handler's context's own timer and must not end it with Canceled.
// Many calls at once make the race happen.
func TestHandlerContextEndsWithDeadlineExceededAtCallersDeadline(t *testing.T) {
	e := newEnv(t)
	const calls = 10
	sems := []rpc.Semantics{rpc.Maybe, rpc.AtLeastOnce, rpc.ExactlyOnce}
	ended := make(chan error, calls*len(sems))
	e.server(func(s *rpc.Server) {
		s.HandleRaw("test.Deadline", "", func(ctx context.Context, r *rpc.Request) (*rpc.Reply, error) {
			<-ctx.Done()
			ended <- ctx.Err()
			return nil, ctx.Err()
		})
	}, rpc.Concurrency(calls*len(sems)))
	c, cancel := context.WithTimeout(ctx(t), 200*time.Millisecond)
	defer cancel()
	errs := make(chan error, calls*len(sems))
	for _, sem := range sems {
		for range calls {
			go func() {
				_, err := e.client.Invoke(c, "test.Deadline", "Wait", nil, rpc.WithSemantics(sem))
				errs <- err
			}()
		}
	}
	got := map[error]int{}
	for range calls * len(sems) {
		if err := <-errs; rpc.CodeOf(err) != envelope.DeadlineExceeded {
			t.Errorf("call past its deadline: %v", err)
		}
		got[<-ended]++
	}
	if got[context.DeadlineExceeded] != calls*len(sems) {
		t.Fatalf("the handlers' contexts ended with %v, want DeadlineExceeded for all %d", got, calls*len(sems))
	}
}
