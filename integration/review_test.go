package integration_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/internal/testbroker"
)

// TestAckNoWaitIsSentByClose: a fire-and-forget ack queued just before
// Close still reaches the broker; the message is not delivered again.
func TestAckNoWaitIsSentByClose(t *testing.T) {
	b := start(t, nil)
	owner := b.Dial(t)
	mb := create(t, owner, "acked", postbox.Mode(0o666))
	send(t, mb, "once")
	c, err := postbox.Dial(ctxT(t), postbox.WithSocket(b.Socket))
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.Mailbox("acked").Receive(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	m.AckNoWait()
	c.Close()
	waitStat(t, mb, "InFlight == 0", func(i postbox.Info) bool { return i.InFlight == 0 })
	if i, err := mb.Stat(ctxT(t)); err != nil || i.Depth != 0 || i.Received != 1 {
		t.Fatalf("after AckNoWait and Close: %+v %v, want the message acked (depth 0, received 1)", i, err)
	}
}

// TestInvalidNamesAreInvalidNotNotFound: a name that cannot exist is a
// bad argument, whatever the operation.
func TestInvalidNamesAreInvalidNotNotFound(t *testing.T) {
	b := start(t, nil)
	c := b.Dial(t)
	for _, name := range []string{"bad name!", "", "@", "@12x", "@-1"} {
		mb := c.Mailbox(name)
		if _, err := mb.Send(ctxT(t), []byte("x")); !errors.Is(err, postbox.ErrInvalid) {
			t.Errorf("send to %q: %v, want ErrInvalid", name, err)
		}
		if _, err := mb.Receive(ctxT(t), postbox.NoWait()); !errors.Is(err, postbox.ErrInvalid) {
			t.Errorf("receive from %q: %v, want ErrInvalid", name, err)
		}
		if _, err := mb.Stat(ctxT(t)); !errors.Is(err, postbox.ErrInvalid) {
			t.Errorf("stat %q: %v, want ErrInvalid", name, err)
		}
		if err := mb.Destroy(ctxT(t)); !errors.Is(err, postbox.ErrInvalid) {
			t.Errorf("destroy %q: %v, want ErrInvalid", name, err)
		}
	}
	// A well-formed name that does not exist is still NOT_FOUND.
	if _, err := c.Mailbox("nowhere").Stat(ctxT(t)); !errors.Is(err, postbox.ErrNotFound) {
		t.Errorf("stat of a missing mailbox: %v, want ErrNotFound", err)
	}
	if _, err := c.Mailbox("@999999").Send(ctxT(t), []byte("x")); !errors.Is(err, postbox.ErrNotFound) {
		t.Errorf("send to a missing endpoint: %v, want ErrNotFound", err)
	}
}

// TestDurableSendToAWaitingReceiverFailsWhenItsRecordIsRefused: on a full
// disk a durable send is refused even when a receiver is already waiting
// for it (the lease record that follows must not mask the refusal), and
// the sender is told so.
func TestDurableSendToAWaitingReceiverFailsWhenItsRecordIsRefused(t *testing.T) {
	fs := testbroker.MountTmpfs(t, "2m")
	b := start(t, durableConfig(filepath.Join(fs, "data")))
	c := b.Dial(t)
	mb := create(t, c, "full", postbox.Durable(), postbox.Mode(0o666))
	body := strings.Repeat("x", 16<<10)
	for i := 0; ; i++ {
		if _, err := mb.Send(ctxT(t), []byte(body)); err != nil {
			wantErr(t, err, postbox.ErrStorage, "send on a full disk")
			break
		}
		if i > 1000 {
			t.Fatal("the file system never filled")
		}
	}
	rc := b.Dial(t)
	// The queued messages keep the disk full; a receiver waiting for
	// type 2, which none of them has, takes the next send directly.
	got := async(func() (*postbox.Message, error) { return rc.Mailbox("full").Receive(ctxT(t), postbox.Type(2)) })
	waitStat(t, mb, "Receivers == 1", func(i postbox.Info) bool { return i.Receivers == 1 })
	_, err := mb.Send(ctxT(t), []byte("refused"), postbox.Type(2))
	wantErr(t, err, postbox.ErrStorage, "send to a waiting receiver on a full disk")
	rc.Close() // the receiver may have it (at least once); nothing more to check there
	await(t, got, "the waiting receive")
}

// TestAcksQueuedBeforeCloseAreAppliedWhileDeliveriesFlow: a consumer
// acking many messages without waiting, then closing while the broker is
// still pushing deliveries, loses none of its acks.
func TestAcksQueuedBeforeCloseAreAppliedWhileDeliveriesFlow(t *testing.T) {
	b := start(t, nil)
	owner := b.Dial(t)
	mb := create(t, owner, "flow", postbox.Mode(0o666))
	const n = 1500
	pub := mb.Publisher(256)
	for i := range n {
		if err := pub.Send(ctxT(t), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	c, err := postbox.Dial(ctxT(t), postbox.WithSocket(b.Socket))
	if err != nil {
		t.Fatal(err)
	}
	cons, err := c.Mailbox("flow").Consume(ctxT(t), postbox.Prefetch(1000))
	if err != nil {
		t.Fatal(err)
	}
	acked := 0
	for range 1000 {
		m, err := cons.Next(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		m.AckNoWait()
		acked++
	}
	c.Close()
	waitStat(t, mb, "InFlight == 0", func(i postbox.Info) bool { return i.InFlight == 0 })
	i, err := mb.Stat(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if int(i.Received) != acked || int(i.Depth) != n-acked {
		t.Fatalf("after %d acks and Close: received %d, depth %d, want %d and %d", acked, i.Received, i.Depth, acked, n-acked)
	}
}
