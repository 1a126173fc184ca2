package mux_test

import (
	"io"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox/internal/mux"
	"github.com/postbox-ipc/postbox/wire"
)

// TestStartWithUrgentGoesInTheUrgentLane: a request started with URGENT
// (an urgent SEND, a WITHDRAW) overtakes the data requests queued before
// it.
func TestStartWithUrgentGoesInTheUrgentLane(t *testing.T) {
	c, p := pipe(t, mux.Config{Grace: time.Second})
	// The pipe is unbuffered: once the peer has read the first byte of
	// PING 9, the writer is inside that write (of PING 9 alone: nothing
	// else was queued), and what follows queues meanwhile.
	c.Post(false, wire.Header{Op: wire.OpPing, Request: 9}, nil)
	first := make([]byte, wire.HeaderSize)
	p.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(p.nc, first[:1]); err != nil {
		t.Fatal(err)
	}
	enc := func(b []byte) []byte { return b }
	for range 3 {
		if err := c.Start(c.NewCall(), wire.OpPing, 0, enc); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Start(c.NewCall(), wire.OpPing, wire.FlagUrgent, enc); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(p.nc, first[1:]); err != nil {
		t.Fatal(err)
	}
	if hd, _ := p.next(); !hd.Urgent() {
		t.Fatalf("after PING 9 came request %d flags %#x, want the urgent one ahead of the data", hd.Request, hd.Flags)
	}
}
