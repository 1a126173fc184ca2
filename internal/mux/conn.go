package mux

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/postbox-ipc/postbox/internal/framewriter"
	"github.com/postbox-ipc/postbox/internal/rights"
	"github.com/postbox-ipc/postbox/wire"
)

// ErrNoReply is returned by Await when the caller's context ended and no
// reply came within the grace: the request's outcome is unknown.
var ErrNoReply = errors.New("mux: no reply within the grace")

// Config configures a Conn.
type Config struct {
	// MaxFrame is the largest frame the reader accepts (its size field);
	// 0: wire.DefaultMaxFrame + wire.DeliveryOverhead + wire.MaxHeaderBytes.
	MaxFrame int
	// Grace is how long Await waits for the reply after its context ended.
	Grace time.Duration
	// Stopped returns the error that calls in flight, and every later
	// Start, fail with once the connection stopped: cause is nil after
	// Close, else why the connection failed. Nil: the cause itself, or
	// io.ErrClosedPipe after Close.
	Stopped func(cause error) error
	// Keepalive: when this long passes without the client writing a
	// frame, it sends a PING (the broker's HelloReply KEEPALIVE). 0: never.
	Keepalive time.Duration
	// DeadPeer: when this long passes without a frame from the broker
	// (which answers every PING), the connection is closed as dead
	// (ErrDeadPeer). 0: never. Only with Keepalive.
	DeadPeer time.Duration
	// FirstID is the request id the connection starts after (HELLO's
	// was FirstID+1): a reconnecting client passes its last connection's
	// NextID so that ids never repeat across its connections. 0: 1.
	FirstID uint64
}

// closeFlushTimeout bounds how long Close waits to write queued frames.
const closeFlushTimeout = 5 * time.Second

// Conn is one multiplexed connection to a broker. Its methods are safe
// for concurrent use.
type Conn struct {
	nc  net.Conn
	fdr *rights.Reader // nil unless nc is a Unix socket (fds.go)
	cur []*os.File     // the descriptors of the frame being handled; only the reader goroutine
	r   *wire.Reader
	w   *framewriter.Writer
	cfg Config
	ids atomic.Uint64

	mu      sync.Mutex // guards calls, streams, groups, ngroup, push, err
	calls   map[uint64]*Call
	streams map[uint64]Stream
	groups  map[uint64]*Group
	ngroup  uint64
	push    map[wire.Op]func(wire.Header, []byte)
	err     error // why the connection stopped; nil while it runs

	amu    sync.Mutex // guards acks, ranges, leases (taken inside the writer's lock by beforeWrite)
	acks   []uint64   // leases to ack without a reply, folded into the next write
	ranges []wire.LeaseRange
	leases wire.Leases

	fmu      sync.Mutex // guards flushers (taken inside the writer's lock by beforeWrite)
	flushers []Flusher

	wrote      atomic.Bool // the writer wrote since the keepalive last looked
	heard      atomic.Bool // the reader read a frame since the keepalive last looked
	dead       atomic.Pointer[error]
	stopped    atomic.Bool // the reader stopped or Close began: AckNoWait drops
	userClosed atomic.Bool
	done       chan struct{} // closed when the connection stopped
	wg         sync.WaitGroup
	once       sync.Once
}

// New takes over nc after a successful Handshake and starts its reader
// and writer. Register push handlers before New returns frames: a Conn
// reads nothing the broker pushes before the client asks (CONSUME), so
// registering right after New is in time.
func New(nc net.Conn, cfg Config) *Conn {
	if cfg.MaxFrame <= 0 {
		cfg.MaxFrame = wire.DefaultMaxFrame + wire.DeliveryOverhead + wire.MaxHeaderBytes
	}
	c := &Conn{
		nc: nc, cfg: cfg,
		calls:   make(map[uint64]*Call),
		streams: make(map[uint64]Stream),
		groups:  make(map[uint64]*Group),
		push:    make(map[wire.Op]func(wire.Header, []byte)),
		done:    make(chan struct{}),
	}
	var src io.Reader = nc
	if uc, ok := nc.(*net.UnixConn); ok {
		c.fdr = newFrameFiles(uc)
		src = c.fdr
	}
	c.r = wire.NewReader(src, cfg.MaxFrame, 64<<10)
	c.w = framewriter.New(nc, framewriter.Config{BeforeWrite: c.beforeWrite})
	c.ids.Store(max(cfg.FirstID, 1)) // FirstID+1 (or 1) was HELLO's
	c.wg.Add(2)
	go c.runWriter()
	go c.readLoop()
	if cfg.Keepalive > 0 {
		c.wg.Add(1)
		go c.keepalive()
	}
	return c
}

// RegisterPush makes h handle pushed frames of op that belong to no
// stream. h runs on the reader goroutine; p is valid until it returns.
func (c *Conn) RegisterPush(op wire.Op, h func(hd wire.Header, p []byte)) {
	c.mu.Lock()
	c.push[op] = h
	c.mu.Unlock()
}

// NewID returns a fresh request id (for frames without a Call, such as a
// stream's).
func (c *Conn) NewID() uint64 { return c.ids.Add(1) }

// LastID returns the last request id handed out (Config.FirstID for the
// next connection).
func (c *Conn) LastID() uint64 { return c.ids.Load() }

// Post queues a frame that has no reply of its own (CONSUME, CREDIT,
// CANCEL, ACK with NOREPLY). It reports false if the connection is
// closing.
func (c *Conn) Post(urgent bool, hd wire.Header, enc func([]byte) []byte) bool {
	return c.w.Append(urgent, func(b []byte) []byte {
		b, off := wire.StartFrame(b, hd)
		if enc != nil {
			b = enc(b)
		}
		return wire.FinishFrame(b, off)
	})
}

// Kick makes the writer run its flushers (and fold queued acks) soon.
func (c *Conn) Kick() { c.w.Kick() }

// Done is closed when the connection stopped.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns why the connection stopped (Config.Stopped's error), nil
// while it runs.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Grace returns Config.Grace.
func (c *Conn) Grace() time.Duration { return c.cfg.Grace }

// HasFiles reports whether the connection can receive descriptors.
func (c *Conn) HasFiles() bool { return c.fdr != nil }

// Close writes what is queued (within 5 s: fire-and-forget acks take
// effect), closes the connection and waits for the reader and writer.
// Calls in flight fail with Config.Stopped(nil). It is idempotent.
func (c *Conn) Close() {
	c.once.Do(func() {
		c.userClosed.Store(true)
		c.nc.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
		c.w.Close(true)
		c.stopped.Store(true)
		c.nc.Close()
	})
	c.wg.Wait()
}

func (c *Conn) runWriter() {
	defer c.wg.Done()
	c.w.Run()
	// A write error (or the end) must also end the reader.
	c.nc.Close()
}

// stopErr returns the error a stopped connection reports.
func (c *Conn) stopErrLocked() error {
	if c.err != nil {
		return c.err
	}
	return c.stoppedErr(nil)
}

func (c *Conn) stoppedErr(cause error) error {
	if c.cfg.Stopped != nil {
		return c.cfg.Stopped(cause)
	}
	if cause == nil {
		return io.ErrClosedPipe
	}
	return cause
}

// stop fails everything in flight once the connection is gone.
func (c *Conn) stop(cause error) {
	c.stopped.Store(true)
	c.w.Shutdown(false)
	c.nc.Close()
	if c.userClosed.Load() {
		cause = nil
	} else if cause == nil {
		cause = io.EOF
	}
	err := c.stoppedErr(cause)
	c.mu.Lock()
	c.err = err
	calls, streams, groups := c.calls, c.streams, c.groups
	c.calls, c.streams, c.groups = map[uint64]*Call{}, map[uint64]Stream{}, map[uint64]*Group{}
	c.mu.Unlock()
	for _, g := range groups {
		g.h.Stopped(err)
	}
	for _, cl := range calls {
		cl.closed = err
		cl.done <- struct{}{}
	}
	for _, s := range streams {
		s.Stopped(err)
	}
	if c.fdr != nil {
		c.dropFrame()
		c.fdr.CloseAll()
	}
	close(c.done)
}

func (c *Conn) readLoop() {
	defer c.wg.Done()
	var err error
	var last *Group // replies to one group come in runs: this saves a locked lookup per reply
	for {
		var hd wire.Header
		var p []byte
		c.dropFrame() // the last frame's descriptors nobody took
		start := c.framePos()
		hd, p, err = c.r.Next()
		c.takeFrame(start)
		c.heard.Store(true)
		if errors.Is(err, wire.ErrFrameTooLarge) {
			c.tooLarge(hd)
			continue
		}
		if err != nil {
			break
		}
		if hd.Push() {
			c.mu.Lock()
			s := c.streams[hd.Request]
			h := c.push[hd.Op]
			c.mu.Unlock()
			switch {
			case s != nil && (hd.Op == wire.OpDeliver || h == nil):
				// A stream's pushed frames: DELIVER for a CONSUME, EVENT for
				// a SUBSCRIBE, any op no handler was registered for.
				s.Push(hd, p)
			case h != nil:
				h(hd, p)
			}
			continue
		}
		if hd.Op&wire.OpReply == 0 {
			// Neither pushed nor a reply (a pushed op without the PUSH
			// bit, say): nothing waits for it.
			continue
		}
		if hd.Request&groupBit != 0 {
			g := last
			if num := hd.Request &^ groupBit >> 32; g == nil || g.num != num {
				c.mu.Lock()
				g = c.groups[num]
				c.mu.Unlock()
				last = g
			}
			if g != nil {
				g.h.Reply(hd, p)
			}
			continue
		}
		c.mu.Lock()
		cl := c.calls[hd.Request]
		delete(c.calls, hd.Request)
		s := c.streams[hd.Request]
		if s != nil {
			delete(c.streams, hd.Request)
		}
		c.mu.Unlock()
		if s != nil {
			s.End(hd, p)
		}
		if cl == nil {
			c.discard(hd, p)
			continue
		}
		c.fill(cl, hd, p)
		cl.done <- struct{}{}
	}
	if d := c.dead.Load(); d != nil {
		err = *d // the keepalive closed it: say why
	}
	c.stop(err)
}

// tooLarge completes the call whose reply the reader had to skip.
func (c *Conn) tooLarge(hd wire.Header) {
	if hd.Push() {
		return
	}
	c.mu.Lock()
	cl := c.calls[hd.Request]
	delete(c.calls, hd.Request)
	c.mu.Unlock()
	if cl != nil {
		cl.Status, cl.Msg = wire.CodeTooLarge, fmt.Sprintf("reply frame larger than the client's limit of %d bytes", c.cfg.MaxFrame)
		cl.done <- struct{}{}
	}
}

// fill decodes a reply into its call.
func (c *Conn) fill(cl *Call, hd wire.Header, p []byte) {
	cl.Status = hd.Status
	if hd.Status != wire.OK {
		var e wire.ErrorReply
		if e.Decode(p) == nil {
			cl.Msg, cl.Done, cl.HasDone = string(e.Message), e.Done, e.HasDone
			if len(e.Ext) > 0 {
				cl.Ext = append(cl.Ext[:0], e.Ext...)
			}
		}
		return
	}
	switch hd.Op {
	case wire.OpSend.Reply():
		if cl.Send.Decode(p) != nil {
			cl.Status, cl.Msg = wire.CodeMalformed, "undecodable SEND reply"
		} else if len(cl.Send.Ext) > 0 {
			// The receipt's PRINCIPAL_NAME: kept past the read buffer.
			cl.Ext = append(cl.Ext[:0], cl.Send.Ext...)
			cl.Send.Ext = cl.Ext
		}
	case wire.OpChannel.Reply(), wire.OpAttach.Reply():
		cl.Files = c.TakeFiles()
		if hd.Op == wire.OpChannel.Reply() && cl.Send.Decode(p) != nil {
			cl.Status, cl.Msg = wire.CodeMalformed, "undecodable CHANNEL reply"
		}
	case wire.OpPipeOpen.Reply(): // a DIRECT one carries one descriptor (PROTOCOL.md 8.23)
		cl.Files = c.TakeFiles()
		cl.Payload = append(cl.Payload[:0], p...)
	case wire.OpRecv.Reply():
		cl.Files = c.TakeFiles() // a Delivery with DeliveryFiles
		cl.Payload = append(cl.Payload[:0], p...)
	default:
		cl.Payload = append(cl.Payload[:0], p...)
	}
}

// discard disposes of a reply nobody waits for: its caller gave up (see
// Await). Descriptors it carried are closed by the reader (nobody takes
// them); a message it leased goes back to its mailbox.
func (c *Conn) discard(hd wire.Header, p []byte) {
	if hd.Status != wire.OK {
		return
	}
	switch hd.Op {
	case wire.OpRecv.Reply():
		var d wire.Delivery
		if d.Decode(p) == nil && d.Lease != 0 {
			c.Nack([]uint64{d.Lease})
		}
	}
}

// Pending returns the bytes queued for writing and not yet written: how
// far the broker (or the network) is behind this client's output.
func (c *Conn) Pending() int { return c.w.Pending() }
