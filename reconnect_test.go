package postbox_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/internal/testbroker"
)

// TestReconnectOverTCPAfterTheNetworkBreaks: a client dialling TCP
// (WithDialer) loses its connection to a network failure; it dials
// again, gets a new endpoint, its consumer resumes, and the message it
// held unacked comes back redelivered while its old lease is stale.
func TestReconnectOverTCPAfterTheNetworkBreaks(t *testing.T) {
	testbroker.CheckGoroutines(t)
	b := testbroker.Start(t, nil)
	p := startStallingProxy(t, b.ServeTCP(t))
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.HangGuard)
	defer cancel()
	reconnected := make(chan postbox.Identity, 1)
	var d net.Dialer
	c, err := postbox.Dial(ctx,
		postbox.WithDialer(func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", p.addr) }),
		postbox.WithReconnect(postbox.ReconnectPolicy{Backoff: 10 * time.Millisecond,
			OnReconnect: func(id postbox.Identity) { reconnected <- id }}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	local := b.Dial(t) // a sender on the Unix socket, unaffected
	jobs, err := local.Create(ctx, "jobs", postbox.Mode(0o666))
	if err != nil {
		t.Fatal(err)
	}
	cons, err := c.Mailbox("jobs").Consume(ctx, postbox.Prefetch(4))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close(ctx)
	if _, err := jobs.Send(ctx, []byte("one")); err != nil {
		t.Fatal(err)
	}
	held, err := cons.Next(ctx)
	if err != nil || string(held.Body) != "one" {
		t.Fatalf("before the break: %v %v", held, err)
	}
	old := c.Identity()

	p.cut()
	var id postbox.Identity
	select {
	case id = <-reconnected:
	case <-time.After(testbroker.HangGuard):
		t.Fatal("no reconnect")
	}
	if id.Endpoint == old.Endpoint || c.Inbox().Name() == postbox.InboxName(old.Endpoint) {
		t.Fatalf("same endpoint %d after reconnecting", id.Endpoint)
	}
	if err := held.Ack(ctx); !errors.Is(err, postbox.ErrStaleLease) {
		t.Fatalf("ack of the old connection's lease: %v, want ErrStaleLease", err)
	}
	m, err := cons.Next(ctx)
	if err != nil || string(m.Body) != "one" || m.Redeliveries != 1 {
		t.Fatalf("resumed consumer: %v %v, want \"one\" redelivered once", m, err)
	}
	if err := m.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := jobs.Send(ctx, []byte("two")); err != nil {
		t.Fatal(err)
	}
	if m, err := cons.Next(ctx); err != nil || string(m.Body) != "two" {
		t.Fatalf("resumed consumer, new message: %v %v", m, err)
	}
}

// TestReconnectCarriesManualCreditOver: a ManualCredit consumer resumes
// with the credit it had left, not a fresh window: with its window
// handed out before the break, nothing comes after it until Credit.
func TestReconnectCarriesManualCreditOver(t *testing.T) {
	testbroker.CheckGoroutines(t)
	b := testbroker.Start(t, nil)
	p := startStallingProxy(t, b.ServeTCP(t))
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.HangGuard)
	defer cancel()
	reconnected := make(chan postbox.Identity, 1)
	var d net.Dialer
	c, err := postbox.Dial(ctx,
		postbox.WithDialer(func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", p.addr) }),
		postbox.WithReconnect(postbox.ReconnectPolicy{Backoff: 10 * time.Millisecond,
			OnReconnect: func(id postbox.Identity) { reconnected <- id }}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	local := b.Dial(t)
	jobs, err := local.Create(ctx, "jobs", postbox.Mode(0o666))
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{"a", "b", "c", "d"} {
		if _, err := jobs.Send(ctx, []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	cons, err := c.Mailbox("jobs").Consume(ctx, postbox.Prefetch(2), postbox.ManualCredit())
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close(ctx)
	for range 2 {
		if _, err := cons.Next(ctx); err != nil {
			t.Fatal(err)
		}
	}
	p.cut()
	select {
	case <-reconnected:
	case <-time.After(testbroker.HangGuard):
		t.Fatal("no reconnect")
	}
	noMore(t, ctx, cons) // the window was used up before the break
	cons.Credit(1)
	if _, err := cons.Next(ctx); err != nil {
		t.Fatalf("after Credit(1) on the new connection: %v", err)
	}
	noMore(t, ctx, cons)
}
