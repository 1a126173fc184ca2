package mux_test

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox/internal/mux"
	"github.com/postbox-ipc/postbox/wire"
)

// peer is the broker's end of a pipe: it reads the client's frames and
// writes frames of its own.
type peer struct {
	t  *testing.T
	nc net.Conn
	r  *wire.Reader
}

func pipe(t *testing.T, cfg mux.Config) (*mux.Conn, *peer) {
	t.Helper()
	cc, bc := net.Pipe()
	c := mux.New(cc, cfg)
	t.Cleanup(func() {
		bc.Close()
		c.Close()
	})
	return c, &peer{t: t, nc: bc, r: wire.NewReader(bc, 0, 4096)}
}

func (p *peer) next() (wire.Header, []byte) {
	p.t.Helper()
	p.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	hd, pl, err := p.r.Next()
	if err != nil {
		p.t.Fatalf("peer read: %v", err)
	}
	return hd, append([]byte(nil), pl...)
}

func (p *peer) write(hd wire.Header, payload []byte) {
	p.t.Helper()
	b := append(wire.AppendHeader(nil, hd, len(payload)), payload...)
	if _, err := p.nc.Write(b); err != nil {
		p.t.Fatalf("peer write: %v", err)
	}
}

func TestCallGetsItsReplyByRequestID(t *testing.T) {
	c, p := pipe(t, mux.Config{Grace: time.Second})
	cl := c.NewCall()
	if err := c.Start(cl, wire.OpPing, 0, func(b []byte) []byte { return b }); err != nil {
		t.Fatal(err)
	}
	hd, _ := p.next()
	if hd.Op != wire.OpPing {
		t.Fatalf("peer got %s", hd.Op)
	}
	p.write(wire.Header{Op: wire.OpPing.Reply(), Request: hd.Request}, []byte("pong"))
	if err := c.Await(context.Background(), cl); err != nil || cl.Status != wire.OK || string(cl.Payload) != "pong" {
		t.Fatalf("Await: %v status %s payload %q", err, cl.Status, cl.Payload)
	}
	c.Release(cl)
}

// TestCancelGoesUrgentAndALateReplyIsDiscarded: when the context ends the
// call sends CANCEL in the urgent lane, gives up after the grace with
// ErrNoReply, and the reply that comes later is disposed of: a leased
// message it carried is nacked.
func TestCancelGoesUrgentAndALateReplyIsDiscarded(t *testing.T) {
	c, p := pipe(t, mux.Config{Grace: 20 * time.Millisecond})
	cl := c.NewCall()
	if err := c.Start(cl, wire.OpRecv, 0, (&wire.Recv{Name: []byte("q"), Timeout: -1}).Append); err != nil {
		t.Fatal(err)
	}
	req, _ := p.next()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	errc := make(chan error, 1)
	go func() { errc <- c.Await(ctx, cl) }()
	hd, _ := p.next()
	if hd.Op != wire.OpCancel || !hd.Urgent() || hd.Request != req.Request {
		t.Fatalf("after the context ended the peer got %s flags %#x request %d, want urgent CANCEL of %d", hd.Op, hd.Flags, hd.Request, req.Request)
	}
	if err := <-errc; !errors.Is(err, mux.ErrNoReply) {
		t.Fatalf("Await: %v, want ErrNoReply", err)
	}
	c.Release(cl)
	d := wire.Delivery{Lease: 77, ID: 1, Type: 1, Body: []byte("late")}
	p.write(wire.Header{Op: wire.OpRecv.Reply(), Request: req.Request}, d.Append(nil))
	hd, pl := p.next()
	var l wire.Leases
	if hd.Op != wire.OpNack || hd.Flags&wire.FlagNoReply == 0 || l.Decode(pl) != nil || len(l.Ranges) != 1 || l.Ranges[0] != (wire.LeaseRange{First: 77, N: 1}) {
		t.Fatalf("after the late reply the peer got %s %x, want NACK NOREPLY of lease 77", hd.Op, pl)
	}
}

// TestAckNoWaitFoldsLeasesIntoRanges: leases queued while the writer is
// busy leave as lease ranges, not one entry per lease.
func TestAckNoWaitFoldsLeasesIntoRanges(t *testing.T) {
	c, p := pipe(t, mux.Config{})
	// The pipe is unbuffered: the writer blocks in this write until the
	// peer reads, and the acks queue up meanwhile.
	c.Post(false, wire.Header{Op: wire.OpPing, Request: 9}, nil)
	want := map[uint64]bool{}
	for i := uint64(1000); i >= 1; i-- { // out of order on purpose
		c.AckNoWait(i)
		want[i] = true
	}
	c.AckNoWait(5000)
	want[5000] = true
	if hd, _ := p.next(); hd.Op != wire.OpPing {
		t.Fatalf("first frame %s", hd.Op)
	}
	got := map[uint64]bool{}
	frames, ranges := 0, 0
	for len(got) < len(want) {
		hd, pl := p.next()
		var l wire.Leases
		if hd.Op != wire.OpAck || hd.Flags&wire.FlagNoReply == 0 || l.Decode(pl) != nil {
			t.Fatalf("got %s flags %#x, want ACK NOREPLY", hd.Op, hd.Flags)
		}
		frames++
		ranges += len(l.Ranges)
		for lease := range l.All() {
			if got[lease] || !want[lease] {
				t.Fatalf("lease %d acked twice or never queued", lease)
			}
			got[lease] = true
		}
	}
	if frames > 2 || ranges > 3 {
		t.Fatalf("1001 leases took %d frames and %d ranges, want at most 2 and 3", frames, ranges)
	}
}

type recorder struct {
	mu     sync.Mutex
	pushes []string
	ended  wire.Code
	end    chan struct{}
}

func (r *recorder) Push(hd wire.Header, p []byte) {
	r.mu.Lock()
	r.pushes = append(r.pushes, string(p))
	r.mu.Unlock()
}
func (r *recorder) End(hd wire.Header, p []byte) { r.ended = hd.Status; close(r.end) }
func (r *recorder) Stopped(err error)            { close(r.end) }

// TestStreamRoutesByPushBitFirst: a pushed DELIVER goes to its stream; a
// frame with the same op but no PUSH bit is not a delivery; the final
// reply ends the stream.
func TestStreamRoutesByPushBitFirst(t *testing.T) {
	c, p := pipe(t, mux.Config{})
	r := &recorder{end: make(chan struct{})}
	id, err := c.OpenStream(r)
	if err != nil {
		t.Fatal(err)
	}
	p.write(wire.Header{Op: wire.OpDeliver, Flags: wire.FlagPush, Request: id}, []byte("one"))
	p.write(wire.Header{Op: wire.OpDeliver, Request: id}, []byte("not pushed"))
	p.write(wire.Header{Op: wire.OpDeliver, Flags: wire.FlagPush, Request: id}, []byte("two"))
	p.write(wire.Header{Op: wire.OpConsume.Reply(), Status: wire.CodeDestroyed, Request: id}, wire.AppendError(nil, "gone"))
	select {
	case <-r.end:
	case <-time.After(5 * time.Second):
		t.Fatal("stream not ended")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.pushes) != 2 || r.pushes[0] != "one" || r.pushes[1] != "two" || r.ended != wire.CodeDestroyed {
		t.Fatalf("pushes %q, end %s", r.pushes, r.ended)
	}
}

type batcher struct {
	mu      sync.Mutex
	g       *mux.Group
	pending int
	replies chan wire.Header
}

func (b *batcher) Flush(buf []byte) []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pending > 0 {
		var off int
		buf, off = wire.StartFrame(buf, wire.Header{Op: wire.OpPing, Request: b.g.Request(uint32(b.pending))})
		buf = wire.FinishFrame(buf, off)
		b.pending = 0
	}
	return buf
}
func (b *batcher) Reply(hd wire.Header, p []byte) { b.replies <- hd }
func (b *batcher) Stopped(error)                  {}

// TestGroupFlushesBeforeTheWriteAndGetsItsReplies: a Group's Flusher
// appends its frame when kicked, and replies to its request ids come back
// to it, not to the call table.
func TestGroupFlushesBeforeTheWriteAndGetsItsReplies(t *testing.T) {
	c, p := pipe(t, mux.Config{})
	b := &batcher{replies: make(chan wire.Header, 1)}
	g, err := c.NewGroup(b)
	if err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	b.g, b.pending = g, 3
	b.mu.Unlock()
	c.Kick()
	hd, _ := p.next()
	if hd.Op != wire.OpPing || hd.Request != g.Request(3) {
		t.Fatalf("peer got %s request %#x, want the group's frame %#x", hd.Op, hd.Request, g.Request(3))
	}
	p.write(wire.Header{Op: wire.OpPing.Reply(), Request: hd.Request}, nil)
	select {
	case got := <-b.replies:
		if got.Request != g.Request(3) {
			t.Fatalf("reply %#x", got.Request)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no reply routed to the group")
	}
	g.Close()
}

// TestStopFailsCallsWithTheConfiguredError: when the peer goes away every
// call in flight fails with Config.Stopped's error, and later Starts too.
func TestStopFailsCallsWithTheConfiguredError(t *testing.T) {
	errGone := errors.New("gone")
	c, p := pipe(t, mux.Config{Stopped: func(cause error) error {
		if cause == nil {
			return io.ErrClosedPipe
		}
		return errGone
	}})
	cl := c.NewCall()
	if err := c.Start(cl, wire.OpPing, 0, func(b []byte) []byte { return b }); err != nil {
		t.Fatal(err)
	}
	p.next()
	p.nc.Close()
	if err := c.Await(context.Background(), cl); !errors.Is(err, errGone) {
		t.Fatalf("Await after the peer left: %v", err)
	}
	<-c.Done()
	if err := c.Start(c.NewCall(), wire.OpPing, 0, func(b []byte) []byte { return b }); !errors.Is(err, errGone) {
		t.Fatalf("Start after the end: %v", err)
	}
}
