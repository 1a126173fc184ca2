package integration_test

import (
	"errors"
	"testing"

	"github.com/postbox-ipc/postbox"
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
