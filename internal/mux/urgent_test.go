package mux_test

import (
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
	// The pipe is unbuffered: the writer blocks in this write until the
	// peer reads, and what follows queues meanwhile.
	c.Post(false, wire.Header{Op: wire.OpPing, Request: 9}, nil)
	enc := func(b []byte) []byte { return b }
	for range 3 {
		if err := c.Start(c.NewCall(), wire.OpPing, 0, enc); err != nil {
			t.Fatal(err)
		}
	}
	urgent := c.NewCall()
	if err := c.Start(urgent, wire.OpPing, wire.FlagUrgent, enc); err != nil {
		t.Fatal(err)
	}
	// Whether or not the writer had taken PING 9 alone before the rest
	// queued, the urgent request leaves ahead of the three data ones.
	data := 0
	for range 5 {
		hd, _ := p.next()
		switch {
		case hd.Urgent():
			if data > 0 {
				t.Fatalf("the urgent request came after %d data requests queued before it", data)
			}
			return
		case hd.Request != 9:
			data++
		}
	}
	t.Fatal("no urgent request")
}
