package integration_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
)

func TestReceiptedSendIsWithdrawnAtDeadline(t *testing.T) {
	b := start(t, nil)
	c := b.Dial(t)
	mb := create(t, c, "bounded", postbox.Capacity(10))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := mb.Send(ctx, []byte("all or nothing"), postbox.WithReceipt())
	checkTimeout(t, err, "receipted send nobody took")
	_, err = mb.Receive(ctxT(t), postbox.NoWait())
	wantErr(t, err, postbox.ErrEmpty, "receive after the receipted send was withdrawn")
	info := waitStat(t, mb, "", func(postbox.Info) bool { return true })
	if info.BlockedSenders != 0 || info.Depth != 0 {
		t.Fatalf("withdrawn send left state: %+v", info)
	}
}

func TestBlockedSendIsDroppedWhenSenderDisconnects(t *testing.T) {
	b := start(t, nil)
	owner := b.Dial(t)
	full := create(t, owner, "full", postbox.Capacity(1), postbox.Mode(0o666))
	rv := create(t, owner, "rv", postbox.Rendezvous(), postbox.Mode(0o666))
	send(t, full, "kept")

	sender := b.Dial(t)
	s1 := async(func() (postbox.Receipt, error) { return sender.Mailbox("full").Send(ctxT(t), []byte("dropped")) })
	s2 := async(func() (postbox.Receipt, error) { return sender.Mailbox("rv").Send(ctxT(t), []byte("offer dropped")) })
	waitStat(t, full, "BlockedSenders == 1", func(i postbox.Info) bool { return i.BlockedSenders == 1 })
	waitStat(t, rv, "BlockedSenders == 1", func(i postbox.Info) bool { return i.BlockedSenders == 1 })
	sender.Close()
	wantErr(t, await(t, s1, "blocked send").err, postbox.ErrClosed, "blocked send on Close")
	wantErr(t, await(t, s2, "offered send").err, postbox.ErrClosed, "offered send on Close")
	waitStat(t, full, "BlockedSenders == 0", func(i postbox.Info) bool { return i.BlockedSenders == 0 })
	waitStat(t, rv, "offer withdrawn", func(i postbox.Info) bool { return i.BlockedSenders == 0 && i.Depth == 0 })

	if got := recvAck(t, full); got != "kept" {
		t.Fatalf("got %q", got)
	}
	_, err := full.Receive(ctxT(t), postbox.NoWait())
	wantErr(t, err, postbox.ErrEmpty, "a disconnected sender's blocked message must not arrive")
	_, err = rv.Receive(ctxT(t), postbox.NoWait())
	wantErr(t, err, postbox.ErrEmpty, "a disconnected sender's offer must not arrive")
}

func TestCancelledReceiveLeavesNoWaiterBehind(t *testing.T) {
	b := start(t, nil)
	c := b.Dial(t)
	mb := create(t, c, "q")
	ctx, cancel := context.WithCancel(ctxT(t))
	r := async(func() (*postbox.Message, error) { return mb.Receive(ctx) })
	waitStat(t, mb, "Receivers == 1", func(i postbox.Info) bool { return i.Receivers == 1 })
	cancel()
	res := await(t, r, "cancelled receive")
	if !errors.Is(res.err, context.Canceled) || !errors.Is(res.err, postbox.ErrCanceled) {
		t.Fatalf("cancelled receive: %v, want ErrCanceled and context.Canceled", res.err)
	}
	waitStat(t, mb, "Receivers == 0", func(i postbox.Info) bool { return i.Receivers == 0 })
	send(t, mb, "not lost")
	if got := recvAck(t, mb); got != "not lost" {
		t.Fatalf("got %q", got)
	}
}

func TestConsumerCloseReturnsUnreadMessages(t *testing.T) {
	b := start(t, nil)
	c := b.Dial(t)
	mb := create(t, c, "q", postbox.Mode(0o666))
	const n = 10
	for i := range n {
		send(t, mb, fmt.Sprint(i))
	}
	cons, err := mb.Consume(ctxT(t), postbox.Prefetch(4))
	if err != nil {
		t.Fatal(err)
	}
	m, err := cons.Next(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	ack(t, m)
	if err := cons.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	// Every message not handed to the application is back, without the
	// consumer's client having to go away.
	waitStat(t, mb, "InFlight == 0", func(i postbox.Info) bool { return i.InFlight == 0 && i.Consumers == 0 })
	other := b.Dial(t).Mailbox("q")
	for i := 1; i < n; i++ {
		if got := recvAck(t, other, postbox.NoWait()); got != fmt.Sprint(i) {
			t.Fatalf("message %d: got %q", i, got)
		}
	}
}

func TestConsumerWithTypeSelectorGetsOnlyMatchingMessages(t *testing.T) {
	b := start(t, nil)
	c := b.Dial(t)
	mb := create(t, c, "q")
	cons, err := mb.Consume(ctxT(t), postbox.Type(2))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close(ctxT(t))
	for i := range 6 {
		send(t, mb, fmt.Sprint(i), postbox.Type(int64(1+i%2)))
	}
	for _, want := range []string{"1", "3", "5"} {
		m, err := cons.Next(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		if string(m.Body) != want || m.Type != 2 {
			t.Fatalf("consumer of type 2 got %q type %d, want %q", m.Body, m.Type, want)
		}
		ack(t, m)
	}
	for _, want := range []string{"0", "2", "4"} {
		if got := recvAck(t, mb, postbox.NoWait()); got != want {
			t.Fatalf("left over %q, want %q", got, want)
		}
	}
}
