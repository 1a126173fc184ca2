package postbox_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/internal/testbroker"
)

// TestReceivedMessageCarriesWhatWasSent: type, priority, body, the
// sender's identity and the mailbox name survive the trip; a second ack
// of the same lease is stale.
func TestReceivedMessageCarriesWhatWasSent(t *testing.T) {
	b := testbroker.Start(t, nil)
	c := b.Dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	mb, err := c.Create(ctx, "jobs", postbox.Capacity(10), postbox.Mode(0o660))
	if err != nil {
		t.Fatal(err)
	}
	r, err := mb.Send(ctx, []byte("hello"), postbox.Type(3), postbox.Priority(2))
	if err != nil {
		t.Fatal(err)
	}
	msg, err := mb.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if msg.ID != r.ID || msg.Type != 3 || msg.Priority != 2 || string(msg.Body) != "hello" ||
		msg.Mailbox != "jobs" || msg.Sender != c.Identity() || msg.Lease() == 0 || msg.SentAt.IsZero() {
		t.Fatalf("received %+v, sent id %d from %+v", msg, r.ID, c.Identity())
	}
	if err := msg.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	if err := msg.Ack(ctx); !errors.Is(err, postbox.ErrStaleLease) {
		t.Fatalf("second ack: %v, want ErrStaleLease", err)
	}
}

// TestConsumerKeepsReceivingPastItsPrefetchWindow: credit is granted back
// as the application takes messages, so a small window does not stall.
func TestConsumerKeepsReceivingPastItsPrefetchWindow(t *testing.T) {
	b := testbroker.Start(t, nil)
	c := b.Dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	mb, err := c.Create(ctx, "stream")
	if err != nil {
		t.Fatal(err)
	}
	cons, err := mb.Consume(ctx, postbox.Prefetch(4))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close(ctx)
	for i := range 50 {
		if _, err := mb.Send(ctx, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		m, err := cons.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if m.Body[0] != byte(i) {
			t.Fatalf("message %d: got %d", i, m.Body[0])
		}
		m.AckNoWait()
	}
}
