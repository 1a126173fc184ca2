package integration_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/internal/testbroker"
)

// TestReconnectAfterBrokerRestartResumesConsumerAndFailsInFlightCalls:
// the broker process is killed and restarted on the same socket and data
// directory. The client's requests in flight fail with ErrUnknownOutcome;
// one started while it reconnects waits and fails at its deadline with
// nothing sent; the client comes back with the same session and a new
// endpoint; its consumer of a durable mailbox resumes, getting the
// message it held at the crash again (redelivered, the old lease stale)
// and new ones.
func TestReconnectAfterBrokerRestartResumesConsumerAndFailsInFlightCalls(t *testing.T) {
	testbroker.CheckGoroutines(t)
	bin, dir := cli(t), t.TempDir()
	p := testbroker.StartProcess(t, bin, "--data", dir)
	reconnected := make(chan postbox.Identity, 4)
	ctx := ctxT(t)
	c, err := postbox.Dial(ctx, postbox.WithSocket(p.Socket), postbox.WithName(t.Name()),
		postbox.WithReconnect(postbox.ReconnectPolicy{Backoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
			OnReconnect: func(id postbox.Identity) { reconnected <- id }}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	session, old := c.Session(), c.Identity()

	jobs := create(t, c, "jobs", postbox.Durable())
	svc := create(t, c, "svc", postbox.Service())
	cons, err := jobs.Consume(ctx, postbox.Prefetch(8))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close(ctx)
	send(t, jobs, "held")
	held, err := cons.Next(ctx)
	if err != nil || string(held.Body) != "held" {
		t.Fatalf("before the crash: %v %v", held, err)
	}

	// Two requests in flight at the crash: a RECV waiting on an empty
	// mailbox, and a CALL nobody answers.
	inFlight := make(chan error, 2)
	go func() {
		_, err := create(t, c, "idle").Receive(ctx)
		inFlight <- err
	}()
	go func() {
		_, err := svc.Call(ctx, []byte("ping"))
		inFlight <- err
	}()
	waitStat(t, svc, "the call's request queued", func(i postbox.Info) bool { return i.Depth == 1 })

	p.Crash(t)
	for range 2 {
		select {
		case err := <-inFlight:
			if !errors.Is(err, postbox.ErrUnknownOutcome) || errors.Is(err, postbox.ErrClosed) {
				t.Fatalf("request in flight at the crash: %v, want ErrUnknownOutcome (and not ErrClosed)", err)
			}
		case <-time.After(hangGuard):
			t.Fatal("requests in flight not failed after the crash")
		}
	}
	// Started while the broker is down: waits for the new connection,
	// then gives up at its deadline, nothing sent.
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_, err = jobs.Send(short, []byte("lost"))
	cancel()
	if !errors.Is(err, postbox.ErrTimeout) || errors.Is(err, postbox.ErrUnknownOutcome) {
		t.Fatalf("send while reconnecting: %v, want ErrTimeout, outcome known", err)
	}
	if c.Err() != nil {
		t.Fatalf("reconnecting client reports it stopped: %v", c.Err())
	}

	testbroker.StartProcessAt(t, bin, p.Socket, "--data", dir)
	var id postbox.Identity
	select {
	case id = <-reconnected:
	case <-time.After(hangGuard):
		t.Fatal("no reconnect")
	}
	if id.Endpoint == old.Endpoint || c.Identity() != id || c.Session() != session {
		t.Fatalf("after reconnect: identity %+v (was %+v), session %v (was %v)", c.Identity(), old, c.Session(), session)
	}
	if err := held.Ack(ctx); !errors.Is(err, postbox.ErrStaleLease) {
		t.Fatalf("ack of a message received before the reconnect: %v, want ErrStaleLease", err)
	}

	send(t, jobs, "after")
	for _, want := range []struct {
		body         string
		redeliveries uint32
	}{{"held", 1}, {"after", 0}} {
		m, err := cons.Next(ctx)
		if err != nil {
			t.Fatalf("resumed consumer: %v", err)
		}
		if string(m.Body) != want.body || m.Redeliveries != want.redeliveries {
			t.Fatalf("resumed consumer got %q (redelivered %d), want %q (%d)", m.Body, m.Redeliveries, want.body, want.redeliveries)
		}
		if err := m.Ack(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// TestReconnectGivesUpAfterMaxAttempts: with no broker to come back to,
// the client stops after its attempts: Done, Err and its consumer's end
// say ErrClosed.
func TestReconnectGivesUpAfterMaxAttempts(t *testing.T) {
	b := start(t, nil)
	ctx := ctxT(t)
	c, err := postbox.Dial(ctx, postbox.WithSocket(b.Socket),
		postbox.WithReconnect(postbox.ReconnectPolicy{MaxAttempts: 2, Backoff: 10 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cons, err := create(t, c, "q").Consume(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b.Stop(t)
	select {
	case <-c.Done():
	case <-time.After(hangGuard):
		t.Fatal("client did not give up")
	}
	if !errors.Is(c.Err(), postbox.ErrClosed) {
		t.Fatalf("Err: %v, want ErrClosed", c.Err())
	}
	if _, err := cons.Next(ctx); !errors.Is(err, postbox.ErrClosed) {
		t.Fatalf("consumer after give-up: %v, want ErrClosed", err)
	}
	if _, err := c.Mailbox("q").Send(ctx, []byte("x")); !errors.Is(err, postbox.ErrClosed) {
		t.Fatalf("send after give-up: %v, want ErrClosed", err)
	}
}

func TestReconnectNeedsDial(t *testing.T) {
	b := start(t, nil)
	nc := dialUnix(t, b.Socket)
	_, err := postbox.NewClient(ctxT(t), nc, postbox.WithReconnect(postbox.ReconnectPolicy{}))
	if !errors.Is(err, postbox.ErrInvalid) {
		t.Fatalf("NewClient with WithReconnect: %v, want ErrInvalid", err)
	}
}

// dialUnix connects to socket, closed when t ends.
func dialUnix(t *testing.T, socket string) net.Conn {
	t.Helper()
	nc, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}
