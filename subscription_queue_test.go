package postbox

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/postbox-ipc/postbox/wire"
)

// TestSubscriptionQueueKeepsOrderAcrossRefills drives a subscription's
// receive side (subStream.Push, as the connection's reader calls it, and
// Next) with random runs of arrivals and takes: every event comes out
// once, in order, and the queue's array stays within four times the largest
// backlog (it is reused and slid down, not grown for ever).
func TestSubscriptionQueueKeepsOrderAcrossRefills(t *testing.T) {
	// A buffer no test run reaches a quarter of: Next returns no credit
	// (there is no connection to post it on).
	s := &Subscription{buffer: 1 << 20, ready: make(chan struct{}, 1), ended: make(chan struct{}), chunks: new(eventChunks)}
	st := (*subStream)(s)
	hd := wire.Header{Op: wire.OpEvent, Flags: wire.FlagPush}
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	pushed, taken, most := 0, 0, 0
	take := func() {
		ev, err := s.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if taken++; ev.Type != int64(taken) || string(ev.Body) != "b" {
			t.Fatalf("event %d: type %d, body %q", taken, ev.Type, ev.Body)
		}
	}
	for range 5000 {
		for range rng.IntN(48) {
			pushed++
			e := wire.Event{Subject: []byte("q.t"), Type: int64(pushed), Body: []byte("b")}
			st.Push(hd, e.Append(nil))
		}
		most = max(most, pushed-taken)
		for n := rng.IntN(48); n > 0 && taken < pushed; n-- {
			take()
		}
	}
	if c := cap(s.queue); c > 4*most+64 { // grown only when over half live, by at most 2×
		t.Errorf("queue array of %d for a backlog of at most %d", c, most)
	}
	for taken < pushed {
		take()
	}
	if s.qhead != 0 || len(s.queue) != 0 {
		t.Errorf("drained: head %d, length %d, want 0, 0", s.qhead, len(s.queue))
	}
}
