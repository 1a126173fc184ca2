package broker

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/postbox-ipc/postbox/internal/framewriter"
	"github.com/postbox-ipc/postbox/mailbox"
	"github.com/postbox-ipc/postbox/wire"
)

// A connection keeps its spare output buffer between writes up to twice
// Config.MaxConnBacklog: a lane holds up to about the backlog bound (plus
// a step's deliveries) before the reader and the consumers stall, and a
// buffer dropped after each write would be regrown by doubling on the
// next, which at 4 KiB messages cost more than the messages themselves.
// The reader stops taking requests while Config.MaxConnBacklog bytes wait
// for the peer to read (backlog.go).

// maxHelloSize bounds HELLO's size field (Config.HandshakeTimeout bounds
// the wait for it).
const maxHelloSize = 4096

// maxEndpoints is how many connections one broker run can number: the
// low 32 bits of an endpoint id (its high 32 bits are the epoch).
const maxEndpoints = 1<<32 - 1

// conn is one client connection: one endpoint.
//
// Its output is a framewriter.Writer, which owns the write side: any
// goroutine appends whole frames to it (replies and deliveries, under a
// mailbox lock or not: the writer's lock is a leaf), and the writer
// goroutine (writeLoop) coalesces them into few writes, urgent frames
// first.
type conn struct {
	b       *Broker
	nc      net.Conn
	uc      *net.UnixConn // nc if it is a Unix socket, else nil
	w       *framewriter.Writer
	creds   Credentials      // its listener's credential function
	id      uint64           // endpoint id: epoch<<32 | n
	who     Principal        // who the peer is (creds, at HELLO); Endpoint = id
	ident   mailbox.Identity // who, as stamped on its messages
	caps    uint64           // capabilities granted at HELLO
	session wire.Session     // the client's session, given or assigned at HELLO
	pidf    *os.File         // the peer's pidfd; nil if the kernel gave none
	hsUID   int64            // its handshake slot's uid (accept.go)
	counted bool             // it holds a MaxConnections slot (from accept)
	noffers int              // channel offers it made not yet attached; guarded by b.omu
	// readAt is when the reader last read frames from the socket (Unix
	// ns, the handler's now): the clock of the deliveries to this
	// connection in the send-to-delivery histogram (stats.go).
	readAt atomic.Int64

	pmu     sync.Mutex // guards pending, leases, touched, stalled, slow
	pending map[uint64]*pending
	leases  map[uint64]*box // leases this endpoint holds, and their mailbox
	touched map[*box]struct{}
	stalled map[*pending]uint32 // consumers stalled by the backlog, and their credit (backlog.go)
	slow    *time.Timer         // the slow-consumer timer while any is stalled

	inbox *box // the endpoint's private inbox, from HELLO

	// The CALLs of this endpoint waiting for their replies (call.go).
	cmu     sync.Mutex       // guards calls, callReq and each call's state; a leaf
	calls   map[string]*call // by CORRELATION_ID
	callReq map[uint64]*call // by request id
	ncalls  atomic.Int32     // len(calls), read without cmu by claim

	// gone is set when cleanup starts: a SEND batch between two of its
	// messages' admissions (continueSend) then admits no more.
	gone atomic.Bool
	// stopRead is set by closeRead before it stops the reader with a
	// deadline (keepalive.go), so the reader does not move it forward.
	stopRead atomic.Bool
	done     chan struct{} // closed when the reader has cleaned up
}

// pending is a request that did not complete at once: a blocked send or
// receive, or a consumer. It is the Ref the mailbox core returns in effects.
type pending struct {
	c      *conn
	req    uint64
	op     wire.Op
	urgent bool // the request was URGENT: its replies go in the urgent lane
	box    *box
	send   *mailbox.Sender
	recv   *mailbox.Receiver
	timer  *time.Timer // nil without a timeout
	offer  *offer      // the channel a CHANNEL request offers, else nil
	batch  *sendBatch  // the SEND's messages and progress (send != nil)
}

func newConn(b *Broker, nc net.Conn, creds Credentials) *conn {
	c := &conn{
		b:       b,
		nc:      nc,
		creds:   creds,
		pending: make(map[uint64]*pending),
		leases:  make(map[uint64]*box),
		touched: make(map[*box]struct{}),
		calls:   make(map[string]*call),
		callReq: make(map[uint64]*call),
		done:    make(chan struct{}),
	}
	c.uc, _ = nc.(*net.UnixConn)
	setTCPKeepalive(nc, c.keepaliveInterval())
	cb := b.cfg.MaxConnBacklog
	c.w = framewriter.New(nc, framewriter.Config{HighWater: cb, MaxKept: 2 * cb,
		Gauge: &b.out, LowWater: cb / 2, OnLow: c.resume})
	return c
}

// readLoop runs the connection: handshake, then requests until EOF.
func (c *conn) readLoop() {
	defer c.b.wg.Done()
	defer c.cleanup()
	lim := c.b.Limits()
	// On a Unix socket frames are read with recvmsg, so that the
	// descriptors a SEND carries reach its handler; the loop closes those
	// of every other frame (files.go).
	src, fr := c.frameSource()
	if fr != nil {
		defer fr.CloseAll()
	}
	r := wire.NewReader(src, c.b.cfg.MaxFrame, 64<<10)
	ok := c.handshake(r, lim)
	c.b.hs.release(c.hsUID)
	if !ok {
		return
	}
	if c.pidf != nil {
		// The watcher ends when cleanup closes the pidfd.
		c.b.wg.Add(1)
		go c.watchPeer(c.pidf)
	}
	var h handler
	h.c = c
	defer h.dropFiles()
	closed := false // the writer is closed or failed
	rd := readDeadline{c: c, d: c.deadPeer()}
	for {
		// Frames that arrived in one read share one timestamp: the
		// clock is read once per read from the socket, not per message.
		fresh := r.Buffered() < wire.HeaderSize
		rd.arm()
		h.dropFiles() // the last frame's, if its handler did not take them
		start := framePos(fr, r)
		hd, p, err := r.Next()
		h.takeFrameFiles(fr, r, start)
		if fresh {
			h.now = time.Now().UnixNano()
			c.readAt.Store(h.now) // stats.go
		}
		switch {
		case err == nil:
		case errors.Is(err, wire.ErrFrameTooLarge):
			// Frames that never get a reply do not get this one either:
			// its id belongs to another request still in flight.
			if !noReply(hd) {
				c.replyErr(hd, wire.CodeTooLarge, err.Error())
			}
			continue
		default:
			// A size field below the header's (wire.ErrBadFrame) leaves
			// the stream out of sync: the connection closes without a
			// reply, as the protocol says.
			if rd.expired(err) {
				c.b.log.Info("dead peer: nothing read for the dead-peer time; closing, its leases return",
					"endpoint", c.id, "remote", c.nc.RemoteAddr().String(), "dead_peer", rd.d)
				return
			}
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				c.b.log.Debug("connection ends", "endpoint", c.id, "pid", c.ident.PID, "err", err)
			}
			return
		}
		if closed && !outlivesConn(hd.Op) {
			// The writer is closed or failed: nothing more reaches the
			// peer. What it wrote before is still applied where the
			// effect outlives the connection (a SEND, acks); the rest
			// (PING, LIST, RECV...) is not, or a peer that flooded
			// requests would keep the reader busy on replies dropped.
			continue
		}
		h.handle(hd, p)
		closed = !c.w.Wait() // the backlog limit (a closing writer returns at once)
	}
}

// outlivesConn reports whether a request of op has an effect beyond its
// connection and reply: one carried out even when no reply can reach the
// peer any more.
func outlivesConn(op wire.Op) bool {
	switch op {
	case wire.OpSend, wire.OpAck, wire.OpNack, wire.OpCreate, wire.OpDestroy, wire.OpChmod, wire.OpACL:
		return true
	case wire.OpPublish, wire.OpBind, wire.OpClaim:
		return true
	}
	return false
}

// handshake reads HELLO and answers it. It reports whether to go on.
func (c *conn) handshake(r *wire.Reader, lim Limits) bool {
	// A peer that never completes HELLO must not hold a connection (and
	// two goroutines) for long, nor make the broker read or skip a huge
	// frame: the header is checked before anything else is read.
	c.nc.SetReadDeadline(time.Now().Add(c.b.cfg.HandshakeTimeout))
	defer c.nc.SetReadDeadline(time.Time{})
	if tc, ok := c.nc.(*tls.Conn); ok {
		// The TLS handshake first, within the same deadline: a client
		// without a certificate the client CAs verify is refused here
		// (with a TLS alert saying why), before it can send anything.
		tc.SetWriteDeadline(time.Now().Add(c.b.cfg.HandshakeTimeout))
		err := tc.Handshake()
		tc.SetWriteDeadline(time.Time{})
		if err != nil {
			// Anyone who can reach the port can make these: at most one
			// at Info per warnEvery, the rest at Debug.
			level := slog.LevelDebug
			if c.b.warnTLS.ok() {
				level = slog.LevelInfo
			}
			c.b.log.Log(context.Background(), level, "TLS handshake refused", "remote", c.nc.RemoteAddr().String(), "err", err)
			return false
		}
	}
	hd, size, err := r.PeekHeader()
	if err != nil || size < wire.HeaderSize-4 {
		return false // a bad size field: closed without a reply
	}
	if hd.Op != wire.OpHello || size > maxHelloSize {
		c.replyErr(hd, wire.CodeHandshake, "the first frame must be HELLO")
		return false
	}
	hd, p, err := r.Next()
	if err != nil {
		return false
	}
	if hd.Push() {
		c.replyErr(hd, wire.CodeMalformed, "HELLO: a client frame must not set the PUSH flag")
		return false
	}
	var hello wire.Hello
	if err := hello.Decode(p); err != nil {
		if errors.Is(err, wire.ErrVersion) {
			c.replyErr(hd, wire.CodeVersion, "this broker speaks protocol version "+strconv.Itoa(int(wire.Version)))
			return false
		}
		c.replyErr(hd, wire.CodeOf(err), "HELLO: "+err.Error())
		return false
	}
	if !c.counted { // counted at accept (accept.go); cleanup gives the slot back
		c.replyErr(hd, wire.CodeLimit, "too many connections (limit "+strconv.Itoa(lim.MaxConnections)+")")
		return false
	}
	n := c.b.endpoints.Add(1)
	if n > maxEndpoints {
		c.replyErr(hd, wire.CodeLimit, "this broker run has numbered 2^32-1 connections, its limit; restart it")
		return false
	}
	who, err := c.creds(c.nc)
	if err != nil {
		c.replyErr(hd, wire.CodeInternal, "reading peer credentials: "+err.Error())
		return false
	}
	if !c.b.admitQuota(c, hd, who) {
		return false
	}
	c.id = c.b.epoch<<32 | n
	who.Endpoint = c.id
	c.who, c.pidf = who, who.PIDFD
	c.ident = mailbox.Identity{Kind: uint8(who.Kind), UID: who.UID, GID: who.GID, PID: who.PID, Endpoint: c.id, Name: who.Name()}
	ident := c.ident
	if c.uc != nil {
		c.caps = hello.Caps & wire.CapDescriptors
	}
	c.session = hello.Session
	if c.session == (wire.Session{}) {
		rand.Read(c.session[:])
	}

	// The endpoint's private inbox.
	bx := newBox(inboxName(c.id), c.id, ident, 0o622)
	bx.owner, c.inbox = c, bx
	bx.core = mailbox.New(mailbox.Config{Capacity: lim.InboxCapacity, Leases: &c.b.leases, Charge: c.b.quota.charge, TryLease: c.b.quota.leaser(bx)})
	c.b.mu.Lock()
	c.b.boxes[bx.name] = bx
	c.b.mu.Unlock()
	c.touched[bx] = struct{}{}

	c.b.log.Debug("connected", "endpoint", c.id, "session", hex.EncodeToString(c.session[:]), "kind", ident.Kind,
		"uid", ident.UID, "gid", ident.GID, "pid", ident.PID, "name", ident.Name, "client", string(hello.Client))
	reply := wire.HelloReply{
		Version: wire.Version, Endpoint: c.id, Caps: c.caps, Epoch: c.b.epoch, Session: c.session,
		Principal: wireIdentity(ident), MaxFrame: uint32(c.b.cfg.MaxFrame), MaxMessage: uint32(lim.MaxMessage),
		Server:    []byte(c.b.cfg.Name),
		Keepalive: int64(c.keepaliveInterval()), DeadPeer: int64(c.deadPeer()),
		Ext: wire.AppendPrincipalName(nil, ident.Name),
	}
	c.reply(wire.Header{Op: wire.OpHello | wire.OpReply, Request: hd.Request}, &reply)
	c.b.ps.connEvent(c, "opened")
	return true
}

func inboxName(id uint64) string { return "@" + strconv.FormatUint(id, 10) }

// wireIdentity is id as the protocol encodes it.
func wireIdentity(id mailbox.Identity) wire.Identity {
	return wire.Identity{Kind: id.Kind, UID: id.UID, GID: id.GID, PID: id.PID, Endpoint: id.Endpoint}
}

// writeLoop runs the connection's writer until it is closed or a write
// fails, then closes the socket.
func (c *conn) writeLoop() {
	defer c.b.wg.Done()
	c.w.Run()
	if err := c.w.Err(); err != nil && !errors.Is(err, framewriter.ErrClosed) {
		// The peer stopped reading (it closed, or is closing). Requests
		// it sent before that, such as fire-and-forget acks, may still
		// be unread: let the reader take them up to EOF instead of
		// discarding them with the socket, then close it.
		if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		<-c.done
	}
	c.nc.Close()
}

// closeRead stops the reader: it sees EOF.
func (c *conn) closeRead() {
	if cr, ok := c.nc.(interface{ CloseRead() error }); ok {
		cr.CloseRead()
		return
	}
	c.stopRead.Store(true)
	c.nc.SetReadDeadline(time.Unix(1, 0))
}

// shutdown ends the connection from the broker's side. Waiting requests
// fail with CodeClosed; with flush, frames already queued are written
// before the socket closes.
func (c *conn) shutdown(flush bool) {
	c.failPending(mailbox.ErrClosed)
	c.w.Shutdown(flush)
	if !flush {
		c.nc.Close()
	} else {
		// Stop reading new requests; the writer closes the socket once
		// the output is drained.
		c.closeRead()
	}
}

// failPending ends every waiting request of this connection with err,
// and every waiting CALL with its code.
func (c *conn) failPending(err error) {
	defer c.failCalls(codeOf(err))
	c.b.ps.disconnect(c, codeOf(err)) // subscriptions and waiting publications (pubsub_sub.go)
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
	c.gone.Store(true)
	c.w.Shutdown(true)
	c.closeRead()

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
	if c.slow != nil {
		c.slow.Stop()
		c.slow = nil
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
		// Its watchers learn it is gone (notice_exit.go).
		c.b.endpointGone(c)
		c.dropCalls() // before the inbox goes: a reply in flight is then dropped, not claimed
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
			bx.pipeLeft(c, &r) // pipe.go
			c.b.account(bx, before)
			bx.mu.Unlock()
			r.run()
		}
		c.b.releaseQuota(c)
		c.b.rm.connGone(c) // its cluster leases are nacked at once (remote_recv.go)
		c.b.ps.disconnect(c, wire.OK)
		c.b.ps.connEvent(c, "closed")
		c.b.log.Debug("disconnected", "endpoint", c.id, "pid", c.ident.PID)
	}
	if c.counted {
		c.b.nconns.Add(-1)
	}
	if c.pidf != nil {
		c.pidf.Close()
	}
	c.b.forget(c)
	close(c.done)
}

// replyHeader is the header of the reply to the request in hd: op|0x80,
// PUSH clear, in the urgent lane if the request was.
func replyHeader(hd wire.Header, code wire.Code) wire.Header {
	return wire.Header{Op: hd.Op | wire.OpReply, Flags: hd.Flags & wire.FlagUrgent, Status: code, Request: hd.Request}
}

// replyErr queues an error reply to the request in hd.
func (c *conn) replyErr(hd wire.Header, code wire.Code, msg string) {
	if code == wire.CodeLimit {
		c.b.ps.limitReached(c, hd.Op, msg) // $SYS.limit.reached (pubsub_admin.go)
	}
	h := replyHeader(hd, code)
	c.w.Append(h.Urgent(), func(b []byte) []byte {
		b, off := wire.StartFrame(b, h)
		return wire.FinishFrame(wire.AppendError(b, msg), off)
	})
}

// replyErrDone queues an error reply to a SEND that says how many of its
// messages were admitted (ext DONE).
func (c *conn) replyErrDone(hd wire.Header, code wire.Code, msg string, done int) {
	if code == wire.CodeLimit {
		c.b.ps.limitReached(c, hd.Op, msg)
	}
	h := replyHeader(hd, code)
	c.w.Append(h.Urgent(), func(b []byte) []byte {
		b, off := wire.StartFrame(b, h)
		return wire.FinishFrame(wire.AppendErrorDone(b, msg, uint32(done)), off)
	})
}

// replyEmpty queues a successful reply with an empty payload.
func (c *conn) replyEmpty(hd wire.Header) {
	h := replyHeader(hd, wire.OK)
	c.w.Append(h.Urgent(), func(b []byte) []byte { return wire.AppendHeader(b, h, 0) })
}

// appender is a payload that can encode itself.
type appender interface{ Append([]byte) []byte }

// reply queues a frame with header h carrying m (not on the hot paths:
// m escapes).
func (c *conn) reply(h wire.Header, m appender) {
	c.w.Append(h.Urgent(), func(b []byte) []byte {
		b, off := wire.StartFrame(b, h)
		return wire.FinishFrame(m.Append(b), off)
	})
}
