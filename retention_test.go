package postbox_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/internal/testbroker"
)

func ctx10s(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestMaxDeliveriesMovesMessageToDeadLetterWithSenderAndReason(t *testing.T) {
	b := testbroker.Start(t, nil)
	sender, recv := b.Dial(t), b.Dial(t)
	ctx := ctx10s(t)
	if _, err := sender.Create(ctx, "dlq", postbox.Mode(0o666)); err != nil {
		t.Fatal(err)
	}
	jobs, err := sender.Create(ctx, "jobs", postbox.Mode(0o666), postbox.MaxDeliveries(2), postbox.DeadLetter("dlq"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jobs.Send(ctx, []byte("poison"), postbox.Type(7)); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		m, err := recv.Mailbox("jobs").Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if m.Redeliveries != uint32(i) {
			t.Fatalf("delivery %d: redeliveries %d", i, m.Redeliveries)
		}
		if err := m.Nack(ctx); err != nil {
			t.Fatal(err)
		}
	}
	dead, err := recv.Mailbox("dlq").Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(dead.Body) != "poison" || dead.Type != 7 || dead.Reason != postbox.ReasonMaxDeliveries {
		t.Fatalf("dead letter %q type %d reason %q", dead.Body, dead.Type, dead.Reason)
	}
	if dead.Sender != sender.Identity() {
		t.Fatalf("dead letter sender %+v, want the original sender %+v", dead.Sender, sender.Identity())
	}
	if _, err := recv.Mailbox("jobs").Receive(ctx, postbox.NoWait()); !errors.Is(err, postbox.ErrEmpty) {
		t.Fatalf("jobs after dead-lettering: %v, want ErrEmpty", err)
	}
	info, err := jobs.Stat(ctx)
	if err != nil || info.DeadLettered != 1 {
		t.Fatalf("stat: %+v %v", info, err)
	}
}

func TestTTLExpiresQueuedMessagesIntoDeadLetter(t *testing.T) {
	b := testbroker.Start(t, nil)
	c := b.Dial(t)
	ctx := ctx10s(t)
	if _, err := c.Create(ctx, "expired"); err != nil {
		t.Fatal(err)
	}
	mb, err := c.Create(ctx, "short", postbox.TTL(time.Millisecond), postbox.DeadLetter("expired"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mb.Send(ctx, []byte("stale")); err != nil {
		t.Fatal(err)
	}
	// Waiting on the dead-letter mailbox needs no sleep: the message
	// arrives there when the broker's sweeper expires it.
	dead, err := c.Mailbox("expired").Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(dead.Body) != "stale" || dead.Reason != postbox.ReasonExpired {
		t.Fatalf("got %q reason %q", dead.Body, dead.Reason)
	}
}

func TestMaxBytesBlocksLikeCapacity(t *testing.T) {
	b := testbroker.Start(t, nil)
	c := b.Dial(t)
	ctx := ctx10s(t)
	mb, err := c.Create(ctx, "small", postbox.MaxBytes(10))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mb.Send(ctx, []byte("12345678")); err != nil {
		t.Fatal(err)
	}
	if _, err := mb.Send(ctx, []byte("123"), postbox.NoWait()); !errors.Is(err, postbox.ErrFull) {
		t.Fatalf("send past MaxBytes: %v, want ErrFull", err)
	}
	if _, err := mb.Send(ctx, []byte("12")); err != nil {
		t.Fatalf("send within MaxBytes: %v", err)
	}
}

func TestCreateWithMissingDeadLetterMailboxFails(t *testing.T) {
	b := testbroker.Start(t, nil)
	c := b.Dial(t)
	if _, err := c.Create(ctx10s(t), "x", postbox.DeadLetter("nowhere")); !errors.Is(err, postbox.ErrNotFound) {
		t.Fatalf("got %v, want ErrNotFound", err)
	}
}
