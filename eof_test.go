package postbox_test

import (
	"context"
	"errors"
	"testing"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/internal/testbroker"
)

// TestCloseSendConsumerDrainsThenEndsWithEndOfStream: a consumer gets
// every queued message and then, instead of waiting, the end of the
// stream; a send fails with it; Stat says closed; another client's
// consumer, started after the close, ends at once.
func TestCloseSendConsumerDrainsThenEndsWithEndOfStream(t *testing.T) {
	testbroker.CheckGoroutines(t)
	b := testbroker.Start(t, nil)
	prod, cons := b.Dial(t), b.Dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.HangGuard)
	defer cancel()
	mb, err := prod.Create(ctx, "jobs")
	if err != nil {
		t.Fatal(err)
	}
	cn, err := cons.Mailbox("jobs").Consume(ctx, postbox.Prefetch(1))
	if err != nil {
		t.Fatal(err)
	}
	defer cn.Close(ctx)
	for _, s := range []string{"a", "b", "c"} {
		if _, err := mb.Send(ctx, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	if err := mb.CloseSend(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := mb.Send(ctx, []byte("late")); !errors.Is(err, postbox.ErrEndOfStream) {
		t.Fatalf("send after CloseSend: %v, want ErrEndOfStream", err)
	}
	if info, err := mb.Stat(ctx); err != nil || !info.Closed {
		t.Fatalf("stat: closed=%v err=%v", info.Closed, err)
	}
	var got string
	for {
		m, err := cn.Next(ctx)
		if errors.Is(err, postbox.ErrEndOfStream) {
			break
		}
		if err != nil {
			t.Fatalf("after %q: %v", got, err)
		}
		got += string(m.Body)
		if err := m.Ack(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got != "abc" {
		t.Fatalf("drained %q, want abc", got)
	}
	if _, err := cons.Mailbox("jobs").Receive(ctx); !errors.Is(err, postbox.ErrEndOfStream) {
		t.Fatalf("receive from a closed, drained mailbox: %v", err)
	}
	if err := mb.ReopenSend(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := mb.Send(ctx, []byte("d")); err != nil {
		t.Fatalf("send after ReopenSend: %v", err)
	}
}
