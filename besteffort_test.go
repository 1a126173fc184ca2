package postbox_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/internal/testbroker"
)

// TestSendBestEffortDropsWhenFullNeverBlocksAndCounts: into a mailbox of
// capacity 3, a burst of best-effort sends returns at once (nothing
// waits for room), three messages are admitted, the rest are counted as
// dropped, and no reply arrives for any (the next call's reply is its
// own).
func TestSendBestEffortDropsWhenFullNeverBlocksAndCounts(t *testing.T) {
	testbroker.CheckGoroutines(t)
	b := testbroker.Start(t, nil)
	c := b.Dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.HangGuard)
	defer cancel()
	mb, err := c.Create(ctx, "metrics", postbox.Capacity(3))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := range 100 {
		if err := mb.SendBestEffort([]byte{byte(i)}, postbox.Type(2)); err != nil {
			t.Fatalf("best-effort send %d: %v", i, err)
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("100 best-effort sends took %v", d)
	}
	info, err := mb.Stat(ctx) // a round trip after all of them: they were read
	if err != nil {
		t.Fatal(err)
	}
	if info.Depth != 3 || info.Dropped != 97 || info.Sent != 3 {
		t.Fatalf("depth %d sent %d dropped %d, want 3, 3 and 97", info.Depth, info.Sent, info.Dropped)
	}
	for i := range 3 {
		m, err := mb.Receive(ctx, postbox.NoWait(), postbox.AutoAck())
		if err != nil {
			t.Fatal(err)
		}
		if m.Body[0] != byte(i) || m.Type != 2 {
			t.Fatalf("message %d: body %v type %d", i, m.Body, m.Type)
		}
	}
	// Room again: best effort is admitted like any send.
	if err := mb.SendBestEffort([]byte("again")); err != nil {
		t.Fatal(err)
	}
	if m, err := mb.Receive(ctx); err != nil || string(m.Body) != "again" {
		t.Fatalf("after draining: %v %v", m, err)
	}
}

func TestSendBestEffortChecksLocallyWhatItCan(t *testing.T) {
	b := testbroker.Start(t, nil)
	c := b.Dial(t)
	mb := c.Mailbox("metrics")
	if err := mb.SendBestEffort(nil, postbox.WithReceipt()); !errors.Is(err, postbox.ErrInvalid) {
		t.Fatalf("WithReceipt: %v, want ErrInvalid", err)
	}
	if err := mb.SendBestEffort(make([]byte, c.MaxMessage()+1)); !errors.Is(err, postbox.ErrTooLarge) {
		t.Fatalf("over MaxMessage: %v, want ErrTooLarge", err)
	}
	// No such mailbox: dropped by the broker, no error for the sender.
	if err := mb.SendBestEffort([]byte("x")); err != nil {
		t.Fatalf("to a missing mailbox: %v, want nil", err)
	}
	c.Close()
	if err := mb.SendBestEffort([]byte("x")); !errors.Is(err, postbox.ErrClosed) {
		t.Fatalf("after Close: %v, want ErrClosed", err)
	}
}
