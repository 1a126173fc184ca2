package shmbroker_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/broker"
	"github.com/postbox-ipc/postbox/internal/testbroker"
	"github.com/postbox-ipc/postbox/shm"
	"github.com/postbox-ipc/postbox/shm/shmbroker"
)

func ctx10(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestChannelToEndpointCarriesDataBothWays: A offers a channel to B's
// inbox; B receives the offer and attaches; then data flows through shared
// memory in both directions without the broker.
func TestChannelToEndpointCarriesDataBothWays(t *testing.T) {
	b := testbroker.Start(t, nil)
	a, bc := b.Dial(t), b.Dial(t)
	ctx := ctx10(t)

	chA, err := shmbroker.Open(ctx, a, bc.Inbox().Name(), shm.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer chA.Close()
	offer, err := bc.Inbox().Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !offer.IsChannelOffer() || offer.Sender != a.Identity() {
		t.Fatalf("offer: channel=%v sender=%+v, want a channel offer from %+v", offer.IsChannelOffer(), offer.Sender, a.Identity())
	}
	chB, err := shmbroker.Accept(ctx, bc, offer, shm.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer chB.Close()
	if err := offer.Ack(ctx); err != nil {
		t.Fatal(err)
	}

	buf := make([]byte, 1<<20)
	for i, size := range []int{1, 64, 4096, 200 << 10} {
		msg := bytes.Repeat([]byte{byte(i + 1)}, size)
		if err := chA.Send(ctx, msg); err != nil {
			t.Fatal(err)
		}
		n, err := chB.Receive(ctx, buf)
		if err != nil || !bytes.Equal(buf[:n], msg) {
			t.Fatalf("size %d: got %d bytes, err %v", size, n, err)
		}
		if err := chB.Send(ctx, msg[:size/2+1]); err != nil {
			t.Fatal(err)
		}
		if n, err := chA.Receive(ctx, buf); err != nil || n != size/2+1 {
			t.Fatalf("reply size %d: got %d, err %v", size/2+1, n, err)
		}
	}

	// The broker is out of the data path and holds no descriptor of
	// either side: one side's end is seen by the other at once.
	chA.Close()
	if _, err := chB.Receive(ctx, buf); !errors.Is(err, shm.ErrPeerGone) {
		t.Fatalf("after the peer closed: %v, want ErrPeerGone", err)
	}
}

// TestChannelOfferWorksOnce: the token is a one-time capability.
func TestChannelOfferWorksOnce(t *testing.T) {
	b := testbroker.Start(t, nil)
	a, bc := b.Dial(t), b.Dial(t)
	ctx := ctx10(t)
	if _, err := a.Create(ctx, "render", postbox.Mode(0o666)); err != nil {
		t.Fatal(err)
	}
	chA, err := shmbroker.Open(ctx, a, "render", shm.Config{RingSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer chA.Close()
	offer, err := bc.Mailbox("render").Receive(ctx, postbox.AutoAck())
	if err != nil {
		t.Fatal(err)
	}
	chB, err := shmbroker.Accept(ctx, bc, offer, shm.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer chB.Close()
	if _, err := shmbroker.Accept(ctx, bc, offer, shm.Config{}); !errors.Is(err, postbox.ErrNotFound) {
		t.Fatalf("second attach: %v, want ErrNotFound", err)
	}
}

// TestChannelOfferNeedsWritePermission: the broker checks the offering
// process's right to send to the target.
func TestChannelOfferNeedsWritePermission(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a client as another uid; the in-process client is this process")
	}
	b := testbroker.Start(t, nil)
	a := b.Dial(t)
	ctx := ctx10(t)
	if _, err := a.Create(ctx, "private", postbox.Mode(0o600)); err != nil {
		t.Fatal(err)
	}
	// Root bypasses mode bits, so check the refusal with a durable-free
	// rule every client meets: a missing target.
	if _, err := shmbroker.Open(ctx, a, "nowhere", shm.Config{}); !errors.Is(err, postbox.ErrNotFound) {
		t.Fatalf("offer to a missing mailbox: %v, want ErrNotFound", err)
	}
}

// TestChannelOfferToDurableMailboxIsInvalid: an offer is ephemeral and
// would be meaningless after a restart.
func TestChannelOfferToDurableMailboxIsInvalid(t *testing.T) {
	cfg := broker.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.NoSync = true
	b := testbroker.Start(t, &cfg)
	a := b.Dial(t)
	ctx := ctx10(t)
	if _, err := a.Create(ctx, "kept", postbox.Durable()); err != nil {
		t.Fatal(err)
	}
	if _, err := shmbroker.Open(ctx, a, "kept", shm.Config{}); !errors.Is(err, postbox.ErrInvalid) {
		t.Fatalf("offer to a durable mailbox: %v, want ErrInvalid", err)
	}
}

// TestUnattachedOfferIsDroppedWithBroker: when the broker goes away with
// the offer untaken, the offering side sees its peer gone, not a hang.
func TestUnattachedOfferIsDroppedWithBroker(t *testing.T) {
	b := testbroker.Start(t, nil)
	a, bc := b.Dial(t), b.Dial(t)
	ctx := ctx10(t)
	chA, err := shmbroker.Open(ctx, a, bc.Inbox().Name(), shm.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer chA.Close()
	b.Close()
	if _, err := chA.Receive(ctx, make([]byte, 64)); !errors.Is(err, shm.ErrPeerGone) {
		t.Fatalf("receive on an offer dropped by the broker: %v, want ErrPeerGone", err)
	}
}

// TestAttachRacingTheChannelReply: the offer can be taken and attached
// before the broker has answered the offering CHANNEL; each side must
// still get its own working descriptors (run with -race).
func TestAttachRacingTheChannelReply(t *testing.T) {
	b := testbroker.Start(t, nil)
	a, bc := b.Dial(t), b.Dial(t)
	ctx := ctx10(t)
	n := 200
	if testing.Short() {
		n = 20
	}
	type accepted struct {
		ch  *shm.Chan
		err error
	}
	got := make(chan accepted, n)
	go func() {
		for range n {
			// Waiting already, so the offer goes straight to this receiver.
			offer, err := bc.Inbox().Receive(ctx, postbox.AutoAck())
			if err != nil {
				got <- accepted{err: err}
				return
			}
			ch, err := shmbroker.Accept(ctx, bc, offer, shm.Config{RingSize: 4096})
			got <- accepted{ch, err}
		}
	}()
	for i := range n {
		chA, err := shmbroker.Open(ctx, a, bc.Inbox().Name(), shm.Config{RingSize: 4096})
		if err != nil {
			t.Fatalf("offer %d: %v", i, err)
		}
		acc := <-got
		if acc.err != nil {
			t.Fatalf("accept %d: %v", i, acc.err)
		}
		if err := chA.Send(ctx, []byte{byte(i)}); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		buf := make([]byte, 8)
		if k, err := acc.ch.Receive(ctx, buf); err != nil || k != 1 || buf[0] != byte(i) {
			t.Fatalf("channel %d: %d bytes %v, err %v", i, k, buf[:k], err)
		}
		chA.Close()
		acc.ch.Close()
	}
}
