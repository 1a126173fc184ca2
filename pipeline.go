package postbox

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/postbox-ipc/postbox/internal/mux"
	"github.com/postbox-ipc/postbox/wire"
)

// pipeline is the window and frame queue that a Publisher (SEND) and a
// TopicPublisher (batched PUBLISH) share. Items are encoded into pend as
// whole frames but for their size, request id and item count, which
// flushFrames patches in under the connection writer's lock; the low
// pubCountBits of a frame's request id carry its item count minus 1, so
// a reply settles that many items with no table of frames in flight.
//
// Besides the window (items sent and not yet answered), a publisher
// waits while pendMax bytes are encoded and not yet taken by the writer:
// a window of large items would otherwise pile up tens of MiB in pend,
// regrown (and page-faulted) by doubling while the socket drains.
type pipeline struct {
	g        *mux.Group
	window   int // items in flight at most
	maxSize  int // the frame size a batch stays under
	maxBatch int // items per frame: a quarter of the window, so frames pipeline
	countAt  int // offset of a frame's u16 item count

	mu       sync.Mutex // guards everything below; cond waits on it
	cond     sync.Cond
	pend     []byte     // frames encoded, waiting for the writer
	batches  []pubBatch // how pend divides into frames
	seq      uint32     // frames sent
	inflight int        // items queued or sent, not yet settled
	err      error
	sent     uint64
	frames   uint64
}

// pendMax bounds pend: an item is queued while pend holds less (so one
// larger than it still goes, alone).
const pendMax = 2 << 20

// pubBatch is one frame's worth of pend: pend[off:end], n items.
type pubBatch struct{ off, end, n int }

// pubCountBits: the low bits of a pipelined frame's request id carry its
// item count minus 1.
const pubCountBits = 10 // wire.MaxBatch == 1<<pubCountBits

func (p *pipeline) init(window, maxSize int) {
	p.window = max(window, 1)
	p.maxSize = maxSize
	p.cond.L = &p.mu
	// A frame of the whole window would leave the publisher waiting for
	// its one reply with nothing in flight; a quarter keeps about four
	// frames going, the broker working on one while the next fills.
	p.maxBatch = min(wire.MaxBatch, max(1, p.window/4))
}

// reserve locks p.mu and waits until the window and pend have room, until ctx
// ends (the error names the mailbox or subject to), or returns the error
// that failed the publisher. It returns nil with p.mu held, else with it
// released. A function, not a method, to take to as a string or bytes
// without converting it for every item.
func reserve[S ~string | ~[]byte](p *pipeline, ctx context.Context, to S) error {
	p.mu.Lock()
	for (p.inflight >= p.window || len(p.pend) >= pendMax) && p.err == nil {
		if ctx.Done() == nil {
			p.cond.Wait()
			continue
		}
		if !p.waitCtx(ctx) {
			p.mu.Unlock()
			return contextEnded(ctx, fmt.Sprintf("publish to %q: window full", to))
		}
	}
	if p.err != nil {
		err := p.err
		p.mu.Unlock()
		return err
	}
	return nil
}

// frameFor makes room for an item of size bytes: start appends a new
// frame's header and fixed fields to pend when no frame is queued, the
// last one is full, or alone asks for a frame of its own. It reports
// whether the writer must be kicked (no frame was queued). p.mu is held.
func (p *pipeline) frameFor(size int, alone bool, start func([]byte) []byte) (kick bool) {
	kick = len(p.batches) == 0
	if kick || alone || p.batches[len(p.batches)-1].n >= p.maxBatch ||
		p.batches[len(p.batches)-1].end-p.batches[len(p.batches)-1].off+size > p.maxSize {
		off := len(p.pend)
		p.pend = start(p.pend)
		p.batches = append(p.batches, pubBatch{off: off, end: len(p.pend)})
	}
	return kick
}

// added counts the item just appended to pend. p.mu is held.
func (p *pipeline) added() {
	last := &p.batches[len(p.batches)-1]
	last.end = len(p.pend)
	last.n++
	p.inflight++
	p.sent++
}

// flushFrames appends the queued frames to the writer's buffer b
// (mux.Flusher), under the writer's lock, patching in each frame's size,
// request id and count; if b is empty the two buffers trade places
// instead of pend being copied (the writer owns what it returns; the
// publisher keeps the writer's empty buffer as its next pend).
func (p *pipeline) flushFrames(b []byte) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.batches) == 0 {
		return b
	}
	for _, bt := range p.batches {
		p.seq++
		id := p.g.Request((p.seq&(1<<(32-pubCountBits)-1))<<pubCountBits | uint32(bt.n-1))
		frame := p.pend[bt.off:bt.end]
		wire.FinishFrame(frame, 0)
		binary.LittleEndian.PutUint64(frame[8:], id)
		binary.LittleEndian.PutUint16(frame[p.countAt:], uint16(bt.n))
		p.frames++
	}
	p.batches = p.batches[:0]
	if len(p.pend) >= pendMax {
		p.cond.Broadcast() // publishers wait for pend to empty
	}
	if len(b) == 0 {
		b, p.pend = p.pend, b[:0]
		return b
	}
	b = append(b, p.pend...)
	p.pend = p.pend[:0]
	if cap(p.pend) > 4<<20 {
		p.pend = nil
	}
	return b
}

// replyCount is how many items the frame answered by hd carried.
func replyCount(hd wire.Header) int { return int(hd.Request&(1<<pubCountBits-1)) + 1 }

// batchReplyError is the error of a pipelined frame's failed reply.
func batchReplyError(hd wire.Header, pl []byte) error {
	if msg, done := wire.DecodeError(pl); done > 0 {
		return &BatchError{Done: int(done), Err: &Error{Code: hd.Status, Msg: msg}}
	}
	return replyError(hd.Status, pl)
}

// waitCtx waits on p.cond until signalled or ctx ends; p.mu is held. It
// reports false if ctx ended.
func (p *pipeline) waitCtx(ctx context.Context) bool {
	stop := context.AfterFunc(ctx, func() {
		p.mu.Lock()
		p.cond.Broadcast()
		p.mu.Unlock()
	})
	p.cond.Wait()
	stop()
	return ctx.Err() == nil
}

// settle records the reply to n items (err nil for success). p.mu is held.
func (p *pipeline) settleLocked(n int, err error) {
	p.inflight = max(p.inflight-n, 0)
	if err != nil && p.err == nil {
		p.err = err
	}
	p.cond.Broadcast()
}

// fail ends the publisher (the client stopped).
func (p *pipeline) fail(err error) {
	p.mu.Lock()
	if p.err == nil {
		p.err = err
	}
	p.inflight = 0
	p.batches, p.pend = p.batches[:0], p.pend[:0]
	p.cond.Broadcast()
	p.mu.Unlock()
}

// flush waits until every item is settled and returns the first error;
// what names the publisher and unit its items in the error when ctx ends
// first.
func (p *pipeline) flush(ctx context.Context, what, unit string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.inflight > 0 {
		if !p.waitCtx(ctx) {
			if p.err != nil {
				return p.err
			}
			return &ctxError{op: fmt.Sprintf("flush %s: %d %s unsettled", what, p.inflight, unit),
				cause: ctx.Err(), unknown: true}
		}
	}
	return p.err
}

// counts returns sent and frames.
func (p *pipeline) counts() (sent, frames uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent, p.frames
}

// close flushes and forgets the publisher.
func (p *pipeline) close(ctx context.Context, what, unit string) error {
	err := p.flush(ctx, what, unit)
	if p.g != nil {
		p.g.Close()
	}
	return err
}
