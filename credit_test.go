package postbox_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/internal/testbroker"
)

// manualSetup makes a mailbox with n messages (bodies 0..n-1) and a
// second client to take from it beside the consumer.
func manualSetup(t *testing.T, n int) (ctx context.Context, mb *postbox.Mailbox, other *postbox.Mailbox) {
	t.Helper()
	b := testbroker.Start(t, nil)
	c := b.Dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	mb, err := c.Create(ctx, "work")
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := mb.Send(ctx, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	return ctx, mb, b.Dial(t).Mailbox("work")
}

// noMore checks that the consumer has nothing more to hand out.
func noMore(t *testing.T, ctx context.Context, cons *postbox.Consumer) {
	t.Helper()
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if m, err := cons.Next(short); !errors.Is(err, postbox.ErrTimeout) {
		t.Fatalf("Next beyond the credit: %v, %v; want ErrTimeout", m, err)
	}
}

// TestManualCreditDeliversNoMoreThanGranted: the window, then only what
// Credit grants; the rest stay in the mailbox for other receivers.
func TestManualCreditDeliversNoMoreThanGranted(t *testing.T) {
	ctx, mb, other := manualSetup(t, 6)
	cons, err := mb.Consume(ctx, postbox.Prefetch(2), postbox.ManualCredit())
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close(ctx)
	for i := range 2 {
		m, err := cons.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if m.Body[0] != byte(i) {
			t.Fatalf("message %d: got %d", i, m.Body[0])
		}
		m.AckNoWait()
	}
	noMore(t, ctx, cons)
	// Still in the mailbox, not prefetched: another receiver takes it.
	m, err := other.Receive(ctx, postbox.NoWait())
	if err != nil {
		t.Fatalf("another receiver: %v (the consumer took more than its credit?)", err)
	}
	if m.Body[0] != 2 {
		t.Fatalf("another receiver got %d, want 2", m.Body[0])
	}
	m.Ack(ctx)
	// Credit(2) lets exactly two more in.
	cons.Credit(2)
	for _, want := range []byte{3, 4} {
		m, err := cons.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if m.Body[0] != want {
			t.Fatalf("got %d, want %d", m.Body[0], want)
		}
		m.AckNoWait()
	}
	noMore(t, ctx, cons)
}

// TestManualCreditAfterNextLetsTheNextOneIn: one at a time, the way a
// worker pool uses it: take one, finish it, Credit(1).
func TestManualCreditAfterNextLetsTheNextOneIn(t *testing.T) {
	ctx, mb, _ := manualSetup(t, 5)
	cons, err := mb.Consume(ctx, postbox.Prefetch(1), postbox.ManualCredit())
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close(ctx)
	for i := range 5 {
		m, err := cons.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if m.Body[0] != byte(i) {
			t.Fatalf("message %d: got %d", i, m.Body[0])
		}
		if err := m.Ack(ctx); err != nil {
			t.Fatal(err)
		}
		if i < 4 {
			noMore(t, ctx, cons)
		}
		cons.Credit(1)
	}
	noMore(t, ctx, cons)
}

// TestManualCreditCloseReturnsUndelivered: Close nacks the messages the
// consumer received but Next did not hand out, as without ManualCredit.
func TestManualCreditCloseReturnsUndelivered(t *testing.T) {
	ctx, mb, other := manualSetup(t, 4)
	cons, err := mb.Consume(ctx, postbox.Prefetch(3), postbox.ManualCredit())
	if err != nil {
		t.Fatal(err)
	}
	m, err := cons.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	// By the ack's reply the broker has sent the window's other two
	// (they were delivered before it).
	if err := cons.Close(ctx); err != nil {
		t.Fatal(err)
	}
	cons.Credit(5) // after Close: nothing
	got := map[byte]uint32{}
	for range 3 {
		// Waiting: Close's nacks are posted, not awaited.
		m, err := other.Receive(ctx)
		if err != nil {
			t.Fatalf("after Close: %v; got %v", err, got)
		}
		got[m.Body[0]] = m.Redeliveries
		m.Ack(ctx)
	}
	if _, err := other.Receive(ctx, postbox.NoWait()); !errors.Is(err, postbox.ErrEmpty) {
		t.Fatalf("a fourth: %v, want ErrEmpty", err)
	}
	if len(got) != 3 || got[1] != 1 || got[2] != 1 || got[3] != 0 {
		t.Fatalf("after Close got %v (body: redeliveries), want 1:1 2:1 3:0", got)
	}
}

// TestDrainKeepsReceivedMessagesForNext: Drain ends the stream but Next
// still returns what was received, leased and not redelivered, then the
// end error.
func TestDrainKeepsReceivedMessagesForNext(t *testing.T) {
	ctx, mb, other := manualSetup(t, 4)
	cons, err := mb.Consume(ctx, postbox.Prefetch(3), postbox.ManualCredit())
	if err != nil {
		t.Fatal(err)
	}
	m, err := cons.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	if err := cons.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	for _, want := range []byte{1, 2} {
		m, err := cons.Next(ctx)
		if err != nil {
			t.Fatalf("Next after Drain: %v", err)
		}
		if m.Body[0] != want || m.Redeliveries != 0 || m.Lease() == 0 {
			t.Fatalf("got body %d (redeliveries %d, lease %d), want %d", m.Body[0], m.Redeliveries, m.Lease(), want)
		}
		if err := m.Ack(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cons.Next(ctx); !errors.Is(err, postbox.ErrCanceled) {
		t.Fatalf("Next after the drained messages: %v, want ErrCanceled", err)
	}
	m, err = other.Receive(ctx, postbox.NoWait())
	if err != nil || m.Body[0] != 3 {
		t.Fatalf("the one never delivered: %v, %v", m, err)
	}
}
