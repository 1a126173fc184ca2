package postbox_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/internal/faultconn"
	"github.com/postbox-ipc/postbox/internal/testbroker"
	"github.com/postbox-ipc/postbox/wire"
)

// serveEcho answers every request on mb with "re: "+body until ctx ends;
// it returns a function that waits for it to stop.
func serveEcho(t *testing.T, ctx context.Context, mb *postbox.Mailbox) func() {
	t.Helper()
	cons, err := mb.Consume(ctx)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			msg, err := cons.Next(ctx)
			if err != nil {
				return
			}
			if _, err := msg.Reply(ctx, append([]byte("re: "), msg.Body...), postbox.AckRequest()); err != nil {
				t.Errorf("reply: %v", err)
			}
		}
	}()
	return func() {
		<-done
		cons.Close(context.Background())
	}
}

func TestCallReturnsTheServersReply(t *testing.T) {
	testbroker.CheckGoroutines(t)
	b := testbroker.Start(t, nil)
	caller, server := b.Dial(t), b.Dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	svc, err := server.Create(ctx, "svc", postbox.Service(), postbox.Mode(0o622))
	if err != nil {
		t.Fatal(err)
	}
	var req *postbox.Message
	got := make(chan struct{})
	go func() {
		defer close(got)
		m, err := svc.Receive(ctx)
		if err != nil {
			t.Error(err)
			return
		}
		req = m
		claimed, err := m.Reply(ctx, []byte("pong"), postbox.ContentType("text/plain"), postbox.WithHeader("k", "v"))
		if err != nil || !claimed {
			t.Errorf("reply: claimed %v, %v", claimed, err)
		}
		if err := m.Ack(ctx); err != nil {
			t.Error(err)
		}
	}()
	rep, err := caller.Mailbox("svc").Call(ctx, []byte("ping"), postbox.Type(3), postbox.WithHeader("trace", "1"))
	if err != nil {
		t.Fatal(err)
	}
	<-got
	if string(rep.Body) != "pong" || rep.ContentType() != "text/plain" || rep.Header().Get("k") != "v" ||
		rep.Sender != server.Identity() || rep.ID != 0 || rep.Lease() != 0 || rep.Mailbox != postbox.InboxName(caller.Identity().Endpoint) {
		t.Fatalf("reply %+v", rep)
	}
	if !bytes.Equal(rep.CorrelationID(), req.CorrelationID()) || len(req.CorrelationID()) != 16 {
		t.Fatalf("correlation ids: reply %x, request %x", rep.CorrelationID(), req.CorrelationID())
	}
	dl, _ := ctx.Deadline()
	if req.Type != 3 || req.ReplyTo() != postbox.InboxName(caller.Identity().Endpoint) ||
		!req.Deadline().Equal(dl) || req.Header().Get("trace") != "1" {
		t.Fatalf("request %+v: reply to %q, deadline %v", req, req.ReplyTo(), req.Deadline())
	}
	info, err := svc.Stat(ctx)
	if err != nil || !info.Service {
		t.Fatalf("info %+v (%v): want Service", info, err)
	}
}

func TestReplyIsDroppedWhenNoCallWaits(t *testing.T) {
	testbroker.CheckGoroutines(t)
	b := testbroker.Start(t, nil)
	caller, server := b.Dial(t), b.Dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	svc, err := server.Create(ctx, "svc", postbox.Mode(0o622))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		cctx, ccancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer ccancel()
		caller.Mailbox("svc").Call(cctx, []byte("q"))
	}()
	m, err := svc.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-m.Interrupted(): // the call timed out
	case <-ctx.Done():
		t.Fatal("no interrupt after the call timed out")
	}
	claimed, err := m.Reply(ctx, []byte("too late"), postbox.AckRequest())
	if err != nil || claimed {
		t.Fatalf("late reply: claimed %v, %v; want dropped", claimed, err)
	}
	info, err := caller.Inbox().Stat(ctx)
	if err != nil || info.Depth != 0 {
		t.Fatalf("inbox %+v (%v): a dropped reply was queued", info, err)
	}
	if info, err := svc.Stat(ctx); err != nil || info.InFlight != 0 {
		t.Fatalf("svc %+v (%v): AckRequest left the request leased", info, err)
	}
	// A message that is no request cannot be answered.
	if _, err := svc.Send(ctx, []byte("plain")); err != nil {
		t.Fatal(err)
	}
	plain, err := svc.Receive(ctx, postbox.AutoAck())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plain.Reply(ctx, nil); !errors.Is(err, postbox.ErrInvalid) {
		t.Fatalf("reply to a message without ReplyTo: %v, want ErrInvalid", err)
	}
}

func TestCallCanceledWhileQueuedIsWithdrawn(t *testing.T) {
	testbroker.CheckGoroutines(t)
	b := testbroker.Start(t, nil)
	c := b.Dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	svc, err := c.Create(ctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	cctx, ccancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		_, err := svc.Call(cctx, []byte("q"))
		errc <- err
	}()
	waitDepth(t, ctx, svc, 1)
	ccancel()
	err = <-errc
	var ce *postbox.CallError
	if !errors.As(err, &ce) || ce.Outcome != postbox.OutcomeWithdrawn || !errors.Is(err, postbox.ErrCanceled) || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call: %v, want CallError withdrawn matching ErrCanceled and context.Canceled", err)
	}
	if _, err := svc.Receive(ctx, postbox.NoWait()); !errors.Is(err, postbox.ErrEmpty) {
		t.Fatalf("the server saw a withdrawn request: %v", err)
	}
}

func TestCallTimedOutWhileQueuedIsWithdrawn(t *testing.T) {
	testbroker.CheckGoroutines(t)
	b := testbroker.Start(t, nil)
	c := b.Dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	svc, err := c.Create(ctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	cctx, ccancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer ccancel()
	_, err = svc.Call(cctx, []byte("q"))
	var ce *postbox.CallError
	if !errors.As(err, &ce) || ce.Outcome != postbox.OutcomeWithdrawn || !errors.Is(err, postbox.ErrTimeout) ||
		!errors.Is(err, context.DeadlineExceeded) || errors.Is(err, postbox.ErrUnknownOutcome) {
		t.Fatalf("timed-out call: %v, want CallError withdrawn matching ErrTimeout", err)
	}
	if info, err := svc.Stat(ctx); err != nil || info.Depth != 0 {
		t.Fatalf("svc %+v (%v): the request is still queued", info, err)
	}
}

func TestCallCanceledWhileLeasedInterruptsTheServer(t *testing.T) {
	testbroker.CheckGoroutines(t)
	b := testbroker.Start(t, nil)
	caller, server := b.Dial(t), b.Dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	svc, err := server.Create(ctx, "svc", postbox.Mode(0o622))
	if err != nil {
		t.Fatal(err)
	}
	cctx, ccancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		_, err := caller.Mailbox("svc").Call(cctx, []byte("slow"))
		errc <- err
	}()
	m, err := svc.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-m.Interrupted():
		t.Fatal("interrupted before the call was cancelled")
	default:
	}
	ccancel()
	err = <-errc
	var ce *postbox.CallError
	if !errors.As(err, &ce) || ce.Outcome != postbox.OutcomeInProgress || ce.Receiver != server.Identity() || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call: %v, want CallError in progress at %+v", err, server.Identity())
	}
	select {
	case <-m.Interrupted():
	case <-ctx.Done():
		t.Fatal("the server's lease was never interrupted")
	}
	if err := m.Ack(ctx); err != nil {
		t.Fatalf("ack after the interrupt: %v", err)
	}
}

func TestCallTimedOutAfterTheServerSettledItSaysSettled(t *testing.T) {
	testbroker.CheckGoroutines(t)
	b := testbroker.Start(t, nil)
	caller, server := b.Dial(t), b.Dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	svc, err := server.Create(ctx, "svc", postbox.Mode(0o622))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		if m, err := svc.Receive(ctx); err == nil {
			m.Ack(ctx) // taken and settled, never answered
		}
	}()
	cctx, ccancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer ccancel()
	_, err = caller.Mailbox("svc").Call(cctx, []byte("q"))
	var ce *postbox.CallError
	if !errors.As(err, &ce) || ce.Outcome != postbox.OutcomeSettled || ce.Receiver != server.Identity() || !errors.Is(err, postbox.ErrTimeout) {
		t.Fatalf("timed-out call: %v, want CallError settled by %+v", err, server.Identity())
	}
}

func TestCallerDisconnectWithdrawsItsRequest(t *testing.T) {
	testbroker.CheckGoroutines(t)
	b := testbroker.Start(t, nil)
	caller, server := b.Dial(t), b.Dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	svc, err := server.Create(ctx, "svc", postbox.Mode(0o622))
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := caller.Mailbox("svc").Call(ctx, []byte("q"))
		errc <- err
	}()
	waitDepth(t, ctx, svc, 1)
	caller.Close()
	var ce *postbox.CallError
	if err := <-errc; !errors.As(err, &ce) || ce.Outcome != postbox.OutcomeUnknown || !errors.Is(err, postbox.ErrClosed) {
		t.Fatalf("call of a closed client: %v, want CallError, outcome unknown, ErrClosed", err)
	}
	waitDepth(t, ctx, svc, 0)
}

func TestCallRefusedBeforeAdmissionIsThePlainError(t *testing.T) {
	testbroker.CheckGoroutines(t)
	b := testbroker.Start(t, nil)
	c := b.Dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.Mailbox("nope").Call(ctx, nil)
	var ce *postbox.CallError
	if !errors.Is(err, postbox.ErrNotFound) || errors.As(err, &ce) {
		t.Fatalf("call to a missing mailbox: %v, want ErrNotFound, no CallError", err)
	}
	if _, err := c.Mailbox("nope").Call(ctx, nil, postbox.Type(0)); !errors.Is(err, postbox.ErrInvalid) {
		t.Fatalf("type 0: %v", err)
	}
	done, stop := context.WithCancel(ctx)
	stop()
	if _, err := c.Mailbox("nope").Call(done, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("ended context: %v", err)
	}
}

func TestConcurrentCallsEachGetTheirOwnReply(t *testing.T) {
	testbroker.CheckGoroutines(t)
	b := testbroker.Start(t, nil)
	caller, server := b.Dial(t), b.Dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	svc, err := server.Create(ctx, "svc", postbox.Service(), postbox.Mode(0o622))
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	wait := serveEcho(t, sctx, svc)
	defer wait()
	defer stop()
	const goroutines, calls = 32, 50
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mb := caller.Mailbox("svc")
			for i := range calls {
				body := fmt.Sprintf("%d/%d", g, i)
				rep, err := mb.Call(ctx, []byte(body))
				if err != nil {
					t.Error(err)
					return
				}
				if string(rep.Body) != "re: "+body {
					t.Errorf("call %s got %q", body, rep.Body)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// waitDepth waits until mb holds n queued messages.
func waitDepth(t *testing.T, ctx context.Context, mb *postbox.Mailbox, n uint64) {
	t.Helper()
	for {
		info, err := mb.Stat(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.Depth == n {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: depth %d, want %d", mb.Name(), info.Depth, n)
		case <-time.After(time.Millisecond):
		}
	}
}

// TestCallOutlivesAServerThatDiesHoldingItsRequest: the request of a
// server that disconnects goes back to the mailbox, another server takes
// it (as a redelivery) and its reply ends the call.
func TestCallOutlivesAServerThatDiesHoldingItsRequest(t *testing.T) {
	testbroker.CheckGoroutines(t)
	b := testbroker.Start(t, nil)
	caller, first, second := b.Dial(t), b.Dial(t), b.Dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := first.Create(ctx, "svc", postbox.Service(), postbox.Mode(0o666)); err != nil {
		t.Fatal(err)
	}
	type answer struct {
		m   *postbox.Message
		err error
	}
	done := make(chan answer, 1)
	go func() {
		m, err := caller.Mailbox("svc").Call(ctx, []byte("work"))
		done <- answer{m, err}
	}()
	if _, err := first.Mailbox("svc").Receive(ctx); err != nil {
		t.Fatal(err)
	}
	first.Close() // dies holding the request
	req, err := second.Mailbox("svc").Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if req.Redeliveries != 1 || string(req.Body) != "work" {
		t.Fatalf("second server got %q, redeliveries %d", req.Body, req.Redeliveries)
	}
	if claimed, err := req.Reply(ctx, []byte("done"), postbox.AckRequest()); err != nil || !claimed {
		t.Fatalf("reply: claimed %v, %v", claimed, err)
	}
	a := <-done
	if a.err != nil || string(a.m.Body) != "done" || a.m.Sender != second.Identity() {
		t.Fatalf("call: %v %+v", a.err, a.m)
	}
}

// TestInterruptReasonSaysWhyTheCallEnded: a leased request's
// InterruptReason is nil until the INTERRUPT, then ErrTimeout for a call
// the broker timed out and ErrCanceled for one its caller cancelled. (A
// Go caller cancels its CALL when its context's deadline passes, which
// usually beats the broker's timer: the timed-out caller here has its
// CANCEL frames dropped, so that the broker's timer ends the call.)
func TestInterruptReasonSaysWhyTheCallEnded(t *testing.T) {
	testbroker.CheckGoroutines(t)
	b := testbroker.Start(t, nil)
	caller, server := b.Dial(t), b.Dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	svc, err := server.Create(ctx, "svc", postbox.Mode(0o622))
	if err != nil {
		t.Fatal(err)
	}
	nc, _, err := faultconn.Dial(ctx, b.Socket, faultconn.DropRequest(wire.OpCancel, faultconn.Always()))
	if err != nil {
		t.Fatal(err)
	}
	noCancel, err := postbox.NewClient(ctx, nc)
	if err != nil {
		nc.Close()
		t.Fatal(err)
	}
	defer noCancel.Close()
	for _, tc := range []struct {
		name   string
		caller *postbox.Client
		end    func(context.Context) (context.Context, context.CancelFunc, func())
		want   error
	}{
		{"timeout", noCancel, func(ctx context.Context) (context.Context, context.CancelFunc, func()) {
			cctx, ccancel := context.WithTimeout(ctx, 100*time.Millisecond)
			return cctx, ccancel, func() {}
		}, postbox.ErrTimeout},
		{"cancel", caller, func(ctx context.Context) (context.Context, context.CancelFunc, func()) {
			cctx, ccancel := context.WithCancel(ctx)
			return cctx, ccancel, ccancel
		}, postbox.ErrCanceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cctx, ccancel, end := tc.end(ctx)
			defer ccancel()
			errc := make(chan error, 1)
			go func() {
				_, err := tc.caller.Mailbox("svc").Call(cctx, []byte(tc.name))
				errc <- err
			}()
			m, err := svc.Receive(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if r := m.InterruptReason(); r != nil {
				t.Fatalf("reason %v before any interrupt", r)
			}
			end()
			<-errc
			select {
			case <-m.Interrupted():
			case <-ctx.Done():
				t.Fatal("the server's lease was never interrupted")
			}
			if r := m.InterruptReason(); !errors.Is(r, tc.want) {
				t.Fatalf("reason %v, want %v", r, tc.want)
			}
			if err := m.Ack(ctx); err != nil {
				t.Fatal(err)
			}
			if r := m.InterruptReason(); r != nil {
				t.Fatalf("reason %v after the lease was settled", r)
			}
		})
	}
}

// TestCallWhoseCorrelationIDIsWaitingIsErrCallInFlight: the broker
// refuses a CALL whose CORRELATION_ID another waiting CALL of the
// endpoint holds; the refusal matches ErrCallInFlight and ErrInvalid,
// other INVALID refusals only ErrInvalid.
func TestCallWhoseCorrelationIDIsWaitingIsErrCallInFlight(t *testing.T) {
	testbroker.CheckGoroutines(t)
	b := testbroker.Start(t, nil)
	caller, server := b.Dial(t), b.Dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	svc, err := server.Create(ctx, "svc", postbox.Mode(0o622))
	if err != nil {
		t.Fatal(err)
	}
	corr := postbox.CorrelationID([]byte("0123456789abcdef"))
	first := make(chan error, 1)
	go func() {
		_, err := caller.Mailbox("svc").Call(ctx, []byte("first"), corr)
		first <- err
	}()
	m, err := svc.Receive(ctx) // the first call waits
	if err != nil {
		t.Fatal(err)
	}
	_, err = caller.Mailbox("svc").Call(ctx, []byte("second"), corr)
	var ce *postbox.CallError
	if !errors.Is(err, postbox.ErrCallInFlight) || !errors.Is(err, postbox.ErrInvalid) || errors.As(err, &ce) {
		t.Fatalf("second call with a waiting CORRELATION_ID: %v, want ErrCallInFlight and ErrInvalid", err)
	}
	if _, err := m.Reply(ctx, []byte("re"), postbox.AckRequest()); err != nil {
		t.Fatal(err)
	}
	if err := <-first; err != nil {
		t.Fatalf("first call: %v", err)
	}
	// Once the first call ended, the id is free again.
	go func() {
		if m, err := svc.Receive(ctx); err == nil {
			m.Reply(ctx, []byte("re"), postbox.AckRequest())
		}
	}()
	if _, err := caller.Mailbox("svc").Call(ctx, []byte("third"), corr); err != nil {
		t.Fatalf("call after the first ended: %v", err)
	}
	if _, err := caller.Mailbox("svc").Call(ctx, nil, postbox.Type(0)); !errors.Is(err, postbox.ErrInvalid) || errors.Is(err, postbox.ErrCallInFlight) {
		t.Fatalf("type 0: %v, want ErrInvalid only", err)
	}
}
