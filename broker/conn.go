package broker

import (
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/postbox-ipc/postbox/mailbox"
	"github.com/postbox-ipc/postbox/wire"
)

// outHighWater: the reader stops taking requests from a client while this
// many reply bytes wait for it to read, so a client that writes without
// reading cannot grow the broker's memory without bound.
const outHighWater = 8 << 20

// handshakeTimeout bounds the wait for HELLO; maxHelloSize bounds its
// size field.
const (
	handshakeTimeout = 10 * time.Second
	maxHelloSize     = 4096
)

// conn is one client connection: one endpoint.
type conn struct {
	b     *Broker
	nc    *net.UnixConn
	id    uint64 // endpoint id
	ident mailbox.Identity
	pidf  *os.File // the peer's pidfd; nil if the kernel gave none

	wmu     sync.Mutex // guards out, spare, closing; wcond waits on it
	wcond   sync.Cond
	out     []byte    // frames waiting to be written
	fds     []fdFrame // frames in out that carry descriptors
	spare   []byte    // the writer's other buffer
	closing bool      // no more writes; the writer exits when out is drained (or at once if abort)
	abort   bool

	pmu     sync.Mutex // guards pending, leases, touched
	pending map[uint64]*pending
	leases  map[uint64]*box // leases this endpoint holds, and their mailbox
	touched map[*box]struct{}

	closeOnce sync.Once
	done      chan struct{} // closed when the reader has cleaned up
}

// pending is a request that did not complete at once: a blocked send or
// receive, or a consumer. It is the Ref the mailbox core returns in effects.
type pending struct {
	c     *conn
	req   uint64
	op    wire.Op
	box   *box
	send  *mailbox.Sender
	recv  *mailbox.Receiver
	timer *time.Timer // nil without a timeout
	offer *offer      // the channel a CHANNEL request offers, else nil
}

func newConn(b *Broker, uc *net.UnixConn) *conn {
	c := &conn{
		b:       b,
		nc:      uc,
		pending: make(map[uint64]*pending),
		leases:  make(map[uint64]*box),
		touched: make(map[*box]struct{}),
		done:    make(chan struct{}),
	}
	c.wcond.L = &c.wmu
	return c
}

// readLoop runs the connection: handshake, then requests until EOF.
func (c *conn) readLoop() {
	defer c.b.wg.Done()
	defer c.cleanup()
	lim := c.b.Limits()
	r := wire.NewReader(c.nc, c.b.cfg.MaxFrame, 64<<10)
	if !c.handshake(r, lim) {
		return
	}
	if c.pidf != nil {
		// The watcher ends when cleanup closes the pidfd.
		c.b.wg.Add(1)
		go c.watchPeer(c.pidf)
	}
	var h handler
	h.c = c
	for {
		// Frames that arrived in one read share one timestamp: the
		// clock is read once per read from the socket, not per message.
		fresh := r.Buffered() < wire.HeaderSize
		hd, p, err := r.Next()
		if fresh {
			h.now = time.Now().UnixNano()
		}
		switch {
		case err == nil:
		case errors.Is(err, wire.ErrFrameTooLarge):
			// Frames that never get a reply do not get this one either:
			// its id belongs to another request still in flight.
			noReply := (hd.Op == wire.OpAck || hd.Op == wire.OpNack) && hd.Flags&wire.FlagNoReply != 0
			if hd.Op != wire.OpCredit && hd.Op != wire.OpCancel && !noReply {
				c.replyErr(hd, wire.CodeTooLarge, err.Error())
			}
			continue
		default:
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				c.b.log.Debug("connection ends", "endpoint", c.id, "pid", c.ident.PID, "err", err)
				if errors.Is(err, wire.ErrBadFrame) {
					c.replyErr(hd, wire.CodeMalformed, err.Error()+"; closing connection")
				}
			}
			return
		}
		h.handle(hd, p)
		c.throttle()
	}
}

// handshake reads HELLO and answers it. It reports whether to go on.
func (c *conn) handshake(r *wire.Reader, lim Limits) bool {
	// A peer that never completes HELLO must not hold a connection (and
	// two goroutines) for long, nor make the broker read or skip a huge
	// frame: the header is checked before anything else is read.
	c.nc.SetReadDeadline(time.Now().Add(handshakeTimeout))
	defer c.nc.SetReadDeadline(time.Time{})
	hd, size, err := r.PeekHeader()
	if err != nil {
		return false
	}
	if hd.Op != wire.OpHello || size > maxHelloSize {
		c.replyErr(hd, wire.CodeHandshake, "the first frame must be HELLO")
		return false
	}
	hd, p, err := r.Next()
	if err != nil {
		return false
	}
	var hello wire.Hello
	if err := hello.Decode(p); err != nil {
		c.replyErr(hd, wire.CodeMalformed, "HELLO: "+err.Error())
		return false
	}
	if hello.MinVersion > wire.Version || hello.MaxVersion < wire.Version {
		c.replyErr(hd, wire.CodeVersion, "this broker speaks protocol version "+strconv.Itoa(int(wire.Version)))
		return false
	}
	if n := c.b.nconns.Add(1); n > int64(lim.MaxConnections) {
		c.b.nconns.Add(-1)
		c.replyErr(hd, wire.CodeLimit, "too many connections (limit "+strconv.Itoa(lim.MaxConnections)+")")
		return false
	}
	ident, pidfd, err := peerCredentials(c.nc)
	if err != nil {
		c.b.nconns.Add(-1)
		c.replyErr(hd, wire.CodeInternal, "reading peer credentials: "+err.Error())
		return false
	}
	c.id = c.b.endpoints.Add(1)
	ident.Endpoint = c.id
	c.ident = ident
	if pidfd >= 0 {
		c.pidf = pidFile(pidfd)
	}

	// The endpoint's private inbox.
	bx := &box{name: inboxName(c.id), inbox: c.id, created: time.Now(), uid: ident.UID, gid: ident.GID, mode: 0o622}
	bx.core = mailbox.New(mailbox.Config{Capacity: lim.InboxCapacity, Leases: &c.b.leases})
	c.b.mu.Lock()
	c.b.boxes[bx.name] = bx
	c.b.mu.Unlock()
	c.touched[bx] = struct{}{}

	c.b.log.Debug("connected", "endpoint", c.id, "uid", ident.UID, "gid", ident.GID, "pid", ident.PID, "client", string(hello.Client))
	reply := wire.HelloReply{
		Version: wire.Version, Endpoint: c.id, UID: ident.UID, GID: ident.GID, PID: ident.PID,
		MaxFrame: uint32(c.b.cfg.MaxFrame), MaxMessage: uint32(lim.MaxMessage), Server: []byte(c.b.cfg.Name),
	}
	c.wmu.Lock()
	b, off := wire.StartFrame(c.out, wire.Header{Op: wire.OpHello | wire.OpReply, Request: hd.Request})
	c.out = wire.FinishFrame(reply.Append(b), off)
	c.wcond.Signal()
	c.wmu.Unlock()
	return true
}

func inboxName(id uint64) string { return "@" + strconv.FormatUint(id, 10) }

// throttle blocks the reader while too many reply bytes are unread.
func (c *conn) throttle() {
	c.wmu.Lock()
	for len(c.out) > outHighWater && !c.closing {
		c.wcond.Wait()
	}
	c.wmu.Unlock()
}

// writeLoop writes whatever frames accumulate, many per write.
func (c *conn) writeLoop() {
	defer c.b.wg.Done()
	c.wmu.Lock()
	for {
		for len(c.out) == 0 && !c.closing {
			c.wcond.Wait()
		}
		if c.abort || (c.closing && len(c.out) == 0) {
			for _, f := range c.fds {
				for _, file := range f.files {
					file.Close()
				}
			}
			c.fds = nil
			c.wmu.Unlock()
			c.nc.Close()
			return
		}
		buf, fds := c.out, c.fds
		c.out, c.fds = c.spare[:0], nil
		c.wmu.Unlock()
		var err error
		if fds == nil {
			_, err = c.nc.Write(buf)
		} else {
			err = c.writeWithFDs(buf, fds)
		}
		c.wmu.Lock()
		if cap(buf) <= maxKeptBuffer {
			c.spare = buf[:0]
		} else {
			c.spare = nil // do not keep a huge buffer for good
		}
		c.wcond.Broadcast() // wake a throttled reader
		if err != nil {
			c.closing, c.abort = true, true
			c.out = c.out[:0]
			for _, f := range c.fds {
				for _, file := range f.files {
					file.Close()
				}
			}
			c.fds = nil
			c.wmu.Unlock()
			// The peer stopped reading (it closed, or is closing). Requests
			// it sent before that, such as fire-and-forget acks, may still
			// be unread: let the reader take them up to EOF instead of
			// discarding them with the socket, then close it.
			c.nc.CloseWrite()
			<-c.done
			c.nc.Close()
			return
		}
	}
}

// shutdown ends the connection from the broker's side. Waiting requests
// fail with CodeClosed; with flush, frames already queued are written
// before the socket closes.
func (c *conn) shutdown(flush bool) {
	c.failPending(mailbox.ErrClosed)
	c.wmu.Lock()
	c.closing = true
	if !flush {
		c.abort = true
	}
	c.wcond.Broadcast()
	c.wmu.Unlock()
	if !flush {
		c.nc.Close()
	} else {
		// Stop reading new requests; the writer closes the socket once
		// the output is drained.
		c.nc.CloseRead()
	}
}

// failPending ends every waiting request of this connection with err.
func (c *conn) failPending(err error) {
	c.pmu.Lock()
	ps := make([]*pending, 0, len(c.pending))
	for _, p := range c.pending {
		if p != nil {
			ps = append(ps, p)
		}
	}
	c.pmu.Unlock()
	for _, p := range ps {
		c.b.cancel(p, err)
	}
}

// cleanup runs once when the reader stops: the endpoint is gone. Its
// leases return to their mailboxes, its waiters are dropped and its inbox
// destroyed.
func (c *conn) cleanup() {
	c.wmu.Lock()
	c.closing = true
	c.wcond.Broadcast()
	c.wmu.Unlock()
	c.nc.CloseRead()

	c.pmu.Lock()
	var offers []*offer
	for _, p := range c.pending {
		if p != nil && p.timer != nil {
			p.timer.Stop()
		}
		if p != nil && p.offer != nil {
			offers = append(offers, p.offer) // a CHANNEL still waiting to place its offer
		}
	}
	touched := make([]*box, 0, len(c.touched))
	for bx := range c.touched {
		touched = append(touched, bx)
	}
	c.pmu.Unlock()
	for _, off := range offers {
		c.b.dropOffer(off)
	}

	if c.id != 0 {
		for _, bx := range touched {
			if bx.inbox == c.id {
				c.b.destroy(bx, mailbox.ErrDestroyed)
				continue
			}
			var r completions
			bx.mu.Lock()
			before := bx.core.HeldBytes()
			bx.core.Disconnect(c.id)
			c.b.apply(bx, bx.core.Effects(), &r)
			c.b.account(bx, before)
			bx.mu.Unlock()
			r.run()
		}
		c.b.nconns.Add(-1)
		c.b.log.Debug("disconnected", "endpoint", c.id, "pid", c.ident.PID)
	}
	if c.pidf != nil {
		c.pidf.Close()
	}
	c.b.forget(c)
	close(c.done)
}

// replyErr queues an error reply to the request in hd.
func (c *conn) replyErr(hd wire.Header, code wire.Code, msg string) {
	c.wmu.Lock()
	if !c.closing {
		b, off := wire.StartFrame(c.out, wire.Header{Op: hd.Op | wire.OpReply, Status: code, Request: hd.Request})
		c.out = wire.FinishFrame(wire.AppendError(b, msg), off)
		c.wcond.Signal()
	}
	c.wmu.Unlock()
}

// replyEmpty queues a successful reply with no payload.
func (c *conn) replyEmpty(hd wire.Header) {
	c.wmu.Lock()
	if !c.closing {
		c.out = wire.AppendHeader(c.out, wire.Header{Op: hd.Op | wire.OpReply, Request: hd.Request}, 0)
		c.wcond.Signal()
	}
	c.wmu.Unlock()
}

// appender is a payload that can encode itself.
type appender interface{ Append([]byte) []byte }

// reply queues a successful reply carrying m.
func (c *conn) reply(op wire.Op, req uint64, m appender) {
	c.wmu.Lock()
	if !c.closing {
		b, off := wire.StartFrame(c.out, wire.Header{Op: op, Request: req})
		c.out = wire.FinishFrame(m.Append(b), off)
		c.wcond.Signal()
	}
	c.wmu.Unlock()
}

// maxKeptBuffer is the largest output buffer a connection keeps between
// writes. Larger ones (a burst of big messages) are dropped after use;
// keeping up to this much saves reallocating it on every write while
// large messages stream.
const maxKeptBuffer = 8 << 20
