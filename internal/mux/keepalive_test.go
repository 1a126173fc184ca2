package mux_test

import (
	"errors"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox/internal/mux"
	"github.com/postbox-ipc/postbox/wire"
)

// TestKeepalivePingsAnIdleConnectionAndTheReplyIsDiscarded: with nothing
// to send, the client sends urgent PINGs about every Keepalive; answering
// them keeps it alive well past DeadPeer.
func TestKeepalivePingsAnIdleConnectionAndTheReplyIsDiscarded(t *testing.T) {
	const ka = 20 * time.Millisecond
	c, p := pipe(t, mux.Config{Keepalive: ka, DeadPeer: 3 * ka})
	start := time.Now()
	for i := range 10 {
		hd, _ := p.next()
		if hd.Op != wire.OpPing || hd.Flags&wire.FlagUrgent == 0 || hd.Request == 0 {
			t.Fatalf("frame %d of an idle connection: %s flags %#x request %d, want an urgent PING", i, hd.Op, hd.Flags, hd.Request)
		}
		p.write(wire.Header{Op: wire.OpPing.Reply(), Request: hd.Request}, nil)
	}
	if d := time.Since(start); d < 5*ka {
		t.Fatalf("10 pings in %v: more often than every keepalive (%v)", d, ka)
	}
	if err := c.Err(); err != nil {
		t.Fatalf("answered connection stopped: %v", err)
	}
}

// TestKeepaliveGivesUpASilentBroker: a broker that reads the PINGs but
// never answers is given up after DeadPeer, and calls in flight fail
// with ErrDeadPeer.
func TestKeepaliveGivesUpASilentBroker(t *testing.T) {
	const ka = 20 * time.Millisecond
	c, p := pipe(t, mux.Config{Keepalive: ka, DeadPeer: 5 * ka})
	cl := c.NewCall()
	if err := c.Start(cl, wire.OpRecv, 0, func(b []byte) []byte { return b }); err != nil {
		t.Fatal(err)
	}
	go func() { // read and drop everything, answer nothing
		buf := make([]byte, 4096)
		for {
			if _, err := p.nc.Read(buf); err != nil {
				return
			}
		}
	}()
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("silent broker not given up")
	}
	if err := c.Err(); !errors.Is(err, mux.ErrDeadPeer) {
		t.Fatalf("Err: %v, want ErrDeadPeer", err)
	}
}
