package postbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/postbox-ipc/postbox/wire"
)

// Identity is who a process is, as the kernel told the broker: the sender
// of a message, or the receiver named by a receipt.
type Identity struct {
	UID, GID uint32
	PID      int32
	// Endpoint is the broker-assigned id of the connection; its inbox is
	// "@<Endpoint>".
	Endpoint uint64
}

// Client is a connection to a broker. It is safe for concurrent use.
type Client struct {
	nc         net.Conn
	fdr        *fdReader // nil unless nc is a Unix socket
	self       Identity
	maxMessage int
	grace      time.Duration // see WithReplyGrace
	ids        atomic.Uint64

	wmu     sync.Mutex // guards out, spare, acks, closing, abort; wcond waits on it
	wcond   sync.Cond
	out     []byte
	spare   []byte
	acks    []uint64 // leases to ack without a reply, sent with the next write
	closing bool     // no new frames; the writer drains what is queued, then exits
	abort   bool     // the connection is gone: the writer exits without writing

	pmu       sync.Mutex // guards calls, consumers, pubs, npub, err
	calls     map[uint64]*call
	consumers map[uint64]*Consumer
	pubs      map[uint64]*Publisher
	npub      uint64
	err       error // why the client stopped; nil while it runs

	done       chan struct{} // closed when the reader stops
	writerDone chan struct{} // closed when the writer stops
	wg         sync.WaitGroup
	once       sync.Once
}

// DialOption configures Dial.
type DialOption func(*dialOptions)

type dialOptions struct {
	socket string
	name   string
	grace  time.Duration
}

func dialDefaults() dialOptions {
	return dialOptions{socket: DefaultSocketPath(), name: filepath.Base(os.Args[0]), grace: DefaultReplyGrace}
}

// WithSocket dials path instead of DefaultSocketPath().
func WithSocket(path string) DialOption { return func(o *dialOptions) { o.socket = path } }

// WithName names the client in the broker's logs.
func WithName(name string) DialOption { return func(o *dialOptions) { o.name = name } }

// DefaultReplyGrace is how long a call waits for the broker's reply after
// its context ended, unless WithReplyGrace says otherwise.
//
// The broker is told each request's timeout and answers CANCEL at once,
// so its definite reply ("timed out, nothing happened", or the request's
// result if it completed first) normally arrives within microseconds of
// the deadline: the broker's clock started when it read the request, a
// little after the client's. A quarter of a second covers that on a
// loaded machine (scheduling delays, garbage collection, a busy broker)
// many times over, while a call to a broker that is stopped or wedged
// returns at most that long after its context ended, with
// ErrUnknownOutcome.
const DefaultReplyGrace = 250 * time.Millisecond

// WithReplyGrace sets how long a call waits for the broker's reply after
// its context ended before giving up with ErrUnknownOutcome (default
// DefaultReplyGrace). A longer grace turns more give-ups into definite
// answers from a slow broker; a shorter one returns sooner from a dead one.
func WithReplyGrace(d time.Duration) DialOption {
	return func(o *dialOptions) { o.grace = max(d, 0) }
}

// Dial connects to the broker and performs the handshake, both bounded by
// ctx (at its deadline the error matches ErrTimeout).
func Dial(ctx context.Context, opts ...DialOption) (*Client, error) {
	o := dialDefaults()
	for _, opt := range opts {
		opt(&o)
	}
	var d net.Dialer
	nc, err := dialSocket(ctx, &d, o.socket) // default paths are checked: see socket.go
	if err != nil {
		return nil, err
	}
	c, err := handshake(ctx, nc, o)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

// NewClient performs the handshake over an established connection (any
// net.Conn speaking the postbox protocol to a broker), bounded by ctx, and
// returns a Client that owns it. Of the options, WithName and
// WithReplyGrace apply.
func NewClient(ctx context.Context, nc net.Conn, opts ...DialOption) (*Client, error) {
	o := dialDefaults()
	for _, opt := range opts {
		opt(&o)
	}
	return handshake(ctx, nc, o)
}

func handshake(ctx context.Context, nc net.Conn, o dialOptions) (*Client, error) {
	rep, r, fdr, err := hello(ctx, nc, o.name)
	if err != nil {
		return nil, err
	}
	c := &Client{
		nc:         nc,
		fdr:        fdr,
		self:       Identity{UID: rep.UID, GID: rep.GID, PID: rep.PID, Endpoint: rep.Endpoint},
		maxMessage: int(rep.MaxMessage),
		grace:      o.grace,
		calls:      make(map[uint64]*call),
		consumers:  make(map[uint64]*Consumer),
		pubs:       make(map[uint64]*Publisher),
		done:       make(chan struct{}),
		writerDone: make(chan struct{}),
	}
	c.ids.Store(1)
	c.wcond.L = &c.wmu
	c.wg.Add(2)
	go c.readLoop(r)
	go c.writeLoop()
	return c, nil
}

// hello exchanges HELLO frames over nc, within ctx: when ctx ends, the
// connection's deadline is moved to the past, which ends a blocked read or
// write at once.
func hello(ctx context.Context, nc net.Conn, name string) (rep wire.HelloReply, r *wire.Reader, fdr *fdReader, err error) {
	var mu sync.Mutex // guards finished, so a late AfterFunc does not touch the deadline after hello returns
	finished := false
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		if !finished {
			nc.SetDeadline(time.Unix(1, 0))
		}
		mu.Unlock()
	})
	defer func() {
		stop()
		mu.Lock()
		finished = true
		nc.SetDeadline(time.Time{})
		mu.Unlock()
		if err != nil && ctx.Err() != nil {
			err = contextEnded(ctx, "handshake: no answer from the broker")
		}
	}()
	h := wire.Hello{MinVersion: wire.Version, MaxVersion: wire.Version, Client: []byte(name)}
	b, off := wire.StartFrame(nil, wire.Header{Op: wire.OpHello, Request: 1})
	if _, err := nc.Write(wire.FinishFrame(h.Append(b), off)); err != nil {
		return rep, nil, nil, fmt.Errorf("postbox: handshake: %w", err)
	}
	var src io.Reader = nc
	if uc, ok := nc.(*net.UnixConn); ok {
		fdr = newFDReader(uc)
		src = fdr
	}
	r = wire.NewReader(src, 0, 64<<10)
	hd, p, err := r.Next()
	if err != nil {
		return rep, nil, nil, fmt.Errorf("postbox: handshake: %w", err)
	}
	if hd.Status != wire.OK {
		return rep, nil, nil, replyError(hd.Status, p)
	}
	if hd.Op != wire.OpHello|wire.OpReply || rep.Decode(p) != nil {
		return rep, nil, nil, fmt.Errorf("%w: unexpected handshake reply %s", ErrHandshake, hd.Op)
	}
	return rep, r, fdr, nil
}

// Identity returns this client's identity as the broker sees it.
func (c *Client) Identity() Identity { return c.self }

// MaxMessage is the largest body the broker accepts.
func (c *Client) MaxMessage() int { return c.maxMessage }

// Close closes the connection. Frames already queued are written first
// (within 5 s): fire-and-forget acks take effect, and so may requests
// whose callers are still waiting, though those callers get ErrClosed.
// Messages received but not acked go back to their mailboxes. Close waits
// for the client's goroutines and is idempotent.
func (c *Client) Close() error {
	c.once.Do(func() {
		c.wmu.Lock()
		c.closing = true
		c.wcond.Broadcast()
		c.wmu.Unlock()
		// Frames already queued (fire-and-forget acks, nacks, credit)
		// still go out, within a bound in case the broker stopped reading.
		c.nc.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
		<-c.writerDone
		c.nc.Close()
	})
	c.wg.Wait()
	return nil
}

// closeFlushTimeout bounds how long Close waits to write queued frames.
const closeFlushTimeout = 5 * time.Second

// Done is closed when the client stops (Close, or the connection failed).
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns why the client stopped, or nil while it runs.
func (c *Client) Err() error {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	return c.err
}

// call is one request waiting for its reply. Calls are pooled.
type call struct {
	done   chan struct{} // receives one value when the reply is in
	op     wire.Op
	status wire.Code
	errMsg string
	buf    []byte         // the reply payload (generic replies)
	send   wire.SendReply // SEND replies
	msg    *Message       // RECV replies
	files  []*os.File     // CHANNEL and ATTACH replies
	mbox   string         // SEND, RECV: the mailbox; RECV: the name for the Message
	closed error          // set instead of a reply when the client stops
}

var callPool = sync.Pool{New: func() any { return &call{done: make(chan struct{}, 1)} }}

func (c *Client) newCall(op wire.Op) (*call, uint64) {
	cl := callPool.Get().(*call)
	cl.op, cl.status, cl.errMsg, cl.buf, cl.msg, cl.closed, cl.files, cl.mbox = op, 0, "", cl.buf[:0], nil, nil, nil, ""
	id := c.ids.Add(1)
	return cl, id
}

// what names cl's request in an error.
func (cl *call) what() string {
	switch cl.op {
	case wire.OpSend:
		return fmt.Sprintf("send to %q", cl.mbox)
	case wire.OpRecv:
		return fmt.Sprintf("receive from %q", cl.mbox)
	}
	return strings.ToLower(cl.op.String())
}

func putCall(cl *call) {
	if cap(cl.buf) > 64<<10 {
		cl.buf = nil
	}
	cl.msg = nil
	callPool.Put(cl)
}

// start registers cl under id and queues the frame built by enc.
func (c *Client) start(id uint64, cl *call, hd wire.Header, enc func([]byte) []byte) error {
	c.pmu.Lock()
	if c.err != nil {
		err := c.err
		c.pmu.Unlock()
		return err
	}
	c.calls[id] = cl
	c.pmu.Unlock()
	c.wmu.Lock()
	if c.closing {
		c.wmu.Unlock()
		c.pmu.Lock()
		_, still := c.calls[id]
		delete(c.calls, id)
		c.pmu.Unlock()
		if !still {
			// stop took the call first and completes it: wait, so the
			// call is not pooled while stop still writes to it.
			<-cl.done
		}
		return ErrClosed
	}
	b, off := wire.StartFrame(c.out, hd)
	c.out = wire.FinishFrame(enc(b), off)
	c.wcond.Signal()
	c.wmu.Unlock()
	return nil
}

// await waits for cl's reply. If ctx ends first it cancels the request at
// the broker and waits up to the reply grace for the reply, which says
// whether the request took effect after all: normally it arrives at once
// (the broker knows the request's timeout, and answers CANCEL promptly).
// If it does not, the broker is stuck or unreachable: await takes the call
// out of the table, so that a late reply finds nothing to write into
// (calls are pooled), and reports that the outcome is unknown.
func (c *Client) await(ctx context.Context, id uint64, cl *call) error {
	select {
	case <-cl.done:
		return c.result(ctx, cl)
	case <-ctx.Done():
	}
	c.post(wire.Header{Op: wire.OpCancel, Request: id}, nil)
	t := time.NewTimer(c.grace)
	defer t.Stop()
	select {
	case <-cl.done:
		return c.result(ctx, cl)
	case <-t.C:
	}
	c.pmu.Lock()
	_, still := c.calls[id]
	delete(c.calls, id)
	c.pmu.Unlock()
	if !still {
		// The reader (or stop) took the call first and is completing it:
		// the reply is in after all, and the call is not pooled while it
		// is still written to.
		<-cl.done
		return c.result(ctx, cl)
	}
	return &ctxError{op: cl.what(), cause: ctx.Err(), unknown: true, grace: c.grace}
}

// result is the error cl's reply (or the client's end) says.
func (c *Client) result(ctx context.Context, cl *call) error {
	if cl.closed != nil {
		return cl.closed
	}
	if cl.status != wire.OK {
		err := &Error{Code: cl.status, Msg: cl.errMsg}
		if cl.status == wire.CodeCanceled && ctx.Err() != nil {
			// The broker withdrew the request on our CANCEL: nothing
			// happened, and the caller learns why it was cancelled.
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return &Error{Code: wire.CodeTimeout, Msg: cl.errMsg + " (deadline)"}
			}
			return fmt.Errorf("%w: %w", err, ctx.Err())
		}
		return err
	}
	return nil
}

// post queues a frame that has no reply.
func (c *Client) post(hd wire.Header, payload []byte) {
	c.wmu.Lock()
	if !c.closing {
		c.out = append(wire.AppendHeader(c.out, hd, len(payload)), payload...)
		c.wcond.Signal()
	}
	c.wmu.Unlock()
}

// roundTrip sends a request with a generic reply and returns the reply
// payload (valid until the next roundTrip with the same call).
func (c *Client) roundTrip(ctx context.Context, op wire.Op, flags uint8, enc func([]byte) []byte) ([]byte, error) {
	cl, id := c.newCall(op)
	if err := c.start(id, cl, wire.Header{Op: op, Flags: flags, Request: id}, enc); err != nil {
		putCall(cl)
		return nil, err
	}
	err := c.await(ctx, id, cl)
	p := cl.buf
	cl.buf = nil // the caller keeps it
	putCall(cl)
	return p, err
}

// timeoutOf converts ctx's deadline into a request timeout: -1 none.
func timeoutOf(ctx context.Context, nowait bool) int64 {
	if nowait {
		return 0
	}
	dl, ok := ctx.Deadline()
	if !ok {
		return -1
	}
	d := time.Until(dl)
	if d <= 0 {
		return 0
	}
	return int64(d)
}

func (c *Client) writeLoop() {
	defer c.wg.Done()
	defer close(c.writerDone)
	var ackFrame wire.Leases
	c.wmu.Lock()
	for {
		for len(c.out) == 0 && len(c.acks) == 0 && !c.closing {
			c.wcond.Wait()
		}
		if c.abort || (c.closing && len(c.out) == 0 && len(c.acks) == 0) {
			c.wmu.Unlock()
			return
		}
		buf := c.out
		for len(c.acks) > 0 {
			n := min(len(c.acks), wire.MaxLeasesPerFrame)
			ackFrame.IDs = c.acks[:n]
			b, off := wire.StartFrame(buf, wire.Header{Op: wire.OpAck, Flags: wire.FlagNoReply})
			buf = wire.FinishFrame(ackFrame.Append(b), off)
			c.acks = c.acks[n:]
		}
		c.acks = c.acks[:0]
		c.out = c.spare[:0]
		c.wmu.Unlock()
		_, err := c.nc.Write(buf)
		c.wmu.Lock()
		if cap(buf) <= maxKeptBuffer {
			c.spare = buf[:0]
		} else {
			c.spare = nil
		}
		if err != nil {
			c.closing, c.abort = true, true
			c.wmu.Unlock()
			c.nc.Close()
			return
		}
	}
}

func (c *Client) readLoop(r *wire.Reader) {
	defer c.wg.Done()
	var err error
	// The publisher of the last reply: replies to one publisher come in
	// runs, so this saves a locked map lookup per reply.
	var lastPub *Publisher
	for {
		var hd wire.Header
		var p []byte
		hd, p, err = r.Next()
		if err != nil {
			break
		}
		if hd.Op == wire.OpDeliver {
			c.pmu.Lock()
			cons := c.consumers[hd.Request]
			c.pmu.Unlock()
			if cons != nil {
				cons.push(p)
			}
			continue
		}
		if hd.Request&pubBit != 0 {
			pub := lastPub
			if num := hd.Request &^ pubBit >> 32; pub == nil || pub.num != num {
				c.pmu.Lock()
				pub = c.pubs[num]
				c.pmu.Unlock()
				lastPub = pub
			}
			if pub != nil {
				var err error
				if hd.Status != wire.OK {
					err = replyError(hd.Status, p)
				}
				pub.settle(err)
			}
			continue
		}
		c.pmu.Lock()
		cl := c.calls[hd.Request]
		delete(c.calls, hd.Request)
		cons := c.consumers[hd.Request]
		if cons != nil && hd.Op == wire.OpConsume|wire.OpReply {
			delete(c.consumers, hd.Request)
		}
		c.pmu.Unlock()
		if cons != nil && hd.Op == wire.OpConsume|wire.OpReply {
			cons.end(replyError(hd.Status, p))
		}
		if cl == nil {
			c.discard(hd, p)
			continue
		}
		cl.status = hd.Status
		switch {
		case hd.Status != wire.OK:
			cl.errMsg = wire.DecodeError(p)
		case hd.Op == wire.OpSend|wire.OpReply:
			if cl.send.Decode(p) != nil {
				cl.status, cl.errMsg = wire.CodeMalformed, "undecodable SEND reply"
			}
		case hd.Op == wire.OpChannel|wire.OpReply || hd.Op == wire.OpAttach|wire.OpReply:
			if c.fdr != nil {
				cl.files = c.fdr.take(2)
			}
			if hd.Op == wire.OpChannel|wire.OpReply && cl.send.Decode(p) != nil {
				cl.status, cl.errMsg = wire.CodeMalformed, "undecodable CHANNEL reply"
			}
		case hd.Op == wire.OpRecv|wire.OpReply:
			cl.msg = c.decodeMessage(p, cl.mbox)
			if cl.msg == nil {
				cl.status, cl.errMsg = wire.CodeMalformed, "undecodable delivery"
			}
		default:
			cl.buf = append(cl.buf[:0], p...)
		}
		cl.done <- struct{}{}
	}
	c.stop(err)
}

// discard disposes of a reply nobody waits for: its caller gave up (see
// await). Descriptors it carried are closed, so that they are not taken by
// the next CHANNEL or ATTACH reply; a message it leased goes back to its
// mailbox.
func (c *Client) discard(hd wire.Header, p []byte) {
	if hd.Status != wire.OK {
		return
	}
	switch hd.Op {
	case wire.OpChannel | wire.OpReply, wire.OpAttach | wire.OpReply:
		if c.fdr != nil {
			closeFiles(c.fdr.take(2))
		}
	case wire.OpRecv | wire.OpReply:
		var d wire.Delivery
		if d.Decode(p) == nil && d.Lease != 0 {
			c.nack([]uint64{d.Lease})
		}
	}
}

// stop fails everything in flight once the connection is gone.
func (c *Client) stop(cause error) {
	c.wmu.Lock()
	userClosed := c.closing
	c.closing, c.abort = true, true
	c.wcond.Broadcast()
	c.wmu.Unlock()
	c.nc.Close()
	err := ErrClosed
	if !userClosed && cause != nil {
		err = fmt.Errorf("%w: connection to broker lost: %v", ErrClosed, cause)
	}
	c.pmu.Lock()
	c.err = err
	calls, cons, pubs := c.calls, c.consumers, c.pubs
	c.calls, c.consumers, c.pubs = map[uint64]*call{}, map[uint64]*Consumer{}, map[uint64]*Publisher{}
	c.pmu.Unlock()
	for _, p := range pubs {
		p.fail(err)
	}
	for _, cl := range calls {
		cl.closed = err
		cl.done <- struct{}{}
	}
	for _, cn := range cons {
		cn.end(err)
	}
	if c.fdr != nil {
		c.fdr.closeAll()
	}
	close(c.done)
}

func (c *Client) decodeMessage(p []byte, mbox string) *Message {
	var d wire.Delivery
	if d.Decode(p) != nil {
		return nil
	}
	m := newMessage(d.Body)
	m.ID, m.Mailbox, m.Type, m.Priority, m.Redeliveries = d.ID, mbox, d.Type, d.Priority, d.Redeliveries
	m.Sender = Identity{UID: d.UID, GID: d.GID, PID: d.PID, Endpoint: d.Endpoint}
	m.SentAt = time.Unix(0, d.SentUnixNano)
	m.lease, m.c, m.Reason, m.flags = d.Lease, c, Reason(d.Reason), d.Flags
	return m
}

// newMessage returns a Message holding a copy of body. Small bodies share
// one allocation with the Message, halving the allocations per received
// message.
func newMessage(body []byte) *Message {
	n := len(body)
	switch {
	case n <= 64:
		x := new(struct {
			m Message
			b [64]byte
		})
		x.m.Body = x.b[:n:n]
		copy(x.m.Body, body)
		return &x.m
	case n <= 512:
		x := new(struct {
			m Message
			b [512]byte
		})
		x.m.Body = x.b[:n:n]
		copy(x.m.Body, body)
		return &x.m
	}
	return &Message{Body: append(make([]byte, 0, n), body...)}
}

// maxKeptBuffer is the largest output buffer the client keeps between
// writes (see the broker's).
const maxKeptBuffer = 8 << 20
