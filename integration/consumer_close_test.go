package integration_test

import (
	"fmt"
	"testing"

	"github.com/postbox-ipc/postbox"
)

// Under AutoAck the broker removes a message when it delivers it, so the
// prefetched messages exist only in the consumer: Close must not drop
// them. Next returns every one, then the end.
func TestConsumerCloseUnderAutoAckLosesNoPrefetchedMessage(t *testing.T) {
	const n = 8
	b := start(t, nil)
	c := b.Dial(t)
	mb := create(t, c, "q")
	for i := range n {
		send(t, mb, fmt.Sprint(i))
	}
	cons, err := mb.Consume(ctxT(t), postbox.Prefetch(n), postbox.AutoAck())
	if err != nil {
		t.Fatal(err)
	}
	// All n are delivered (and so removed) before Close: nothing is left
	// in the mailbox for anyone else.
	waitStat(t, mb, "Depth == 0", func(i postbox.Info) bool { return i.Depth == 0 })
	if err := cons.Close(ctxT(t)); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for i := range n {
		m, err := cons.Next(ctxT(t))
		if err != nil {
			t.Fatalf("Next after Close: message %d of %d: %v", i, n, err)
		}
		if got, want := string(m.Body), fmt.Sprint(i); got != want {
			t.Fatalf("Next after Close: %q, want %q", got, want)
		}
	}
	_, err = cons.Next(ctxT(t))
	wantErr(t, err, postbox.ErrCanceled, "Next after the last message of a closed consumer")
}

// Leased prefetched messages go back to the mailbox on Close, as before.
func TestConsumerCloseNacksLeasedPrefetchedMessages(t *testing.T) {
	const n = 4
	b := start(t, nil)
	c := b.Dial(t)
	mb := create(t, c, "q")
	for i := range n {
		send(t, mb, fmt.Sprint(i))
	}
	cons, err := mb.Consume(ctxT(t), postbox.Prefetch(n))
	if err != nil {
		t.Fatal(err)
	}
	waitStat(t, mb, "InFlight == n", func(i postbox.Info) bool { return i.InFlight == n })
	if err := cons.Close(ctxT(t)); err != nil {
		t.Fatalf("Close: %v", err)
	}
	_, err = cons.Next(ctxT(t))
	wantErr(t, err, postbox.ErrCanceled, "Next after closing a leasing consumer")
	for i := range n {
		if got, want := recvAck(t, mb), fmt.Sprint(i); got != want {
			t.Fatalf("after Close: %q, want %q", got, want)
		}
	}
}
