package postbox_test

import (
	"context"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/broker"
	"github.com/postbox-ipc/postbox/internal/testbroker"
)

// TestKeepaliveKeepsAnIdleTCPClientConnectedPastTheDeadPeerTime: a Go
// client that holds a lease and does nothing for several dead-peer times
// is still connected (it pinged), so its lease is still its own to ack.
func TestKeepaliveKeepsAnIdleTCPClientConnectedPastTheDeadPeerTime(t *testing.T) {
	testbroker.CheckGoroutines(t)
	const dead = 300 * time.Millisecond
	cfg := broker.DefaultConfig()
	cfg.DeadPeer = dead
	b := testbroker.Start(t, &cfg)
	c := testbroker.DialTCP(t, b.ServeTCP(t))
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.HangGuard)
	defer cancel()
	mb, err := c.Create(ctx, "jobs", postbox.Mode(0o666))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mb.Send(ctx, []byte("work")); err != nil {
		t.Fatal(err)
	}
	m, err := mb.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(4 * dead) // idle: only the keepalive speaks
	if err := c.Err(); err != nil {
		t.Fatalf("client stopped while idle: %v", err)
	}
	if err := m.Ack(ctx); err != nil {
		t.Fatalf("ack after idling past the dead-peer time: %v", err)
	}
	info, err := mb.Stat(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Redelivered != 0 || info.Received != 1 {
		t.Fatalf("redelivered %d received %d, want 0 and 1", info.Redelivered, info.Received)
	}
}
