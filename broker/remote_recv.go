package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/postbox-ipc/postbox/mailbox"
	"github.com/postbox-ipc/postbox/wire"
)

// Receiving from a cluster mailbox: each RECV or CONSUME is a goroutine
// fetching from the backend, bounded by the request's timeout, its
// consumer's credit, a CANCEL and its connection. Every message it hands
// out is a lease of the connection (rm.conns), settled by ACK and NACK,
// kept alive by keepAlive, and nacked at once when the connection ends.
//
// A fetched message is handed out only while its request is still
// registered (under rm.mu); one that comes after the request ended is
// nacked, so it goes to another receiver at once.

// remoteRecv is a RECV or CONSUME on a cluster mailbox.
type remoteRecv struct {
	rb       *remoteBox
	c        *conn
	hd       wire.Header
	typ      int64
	timeout  int64
	consumer bool
	auto     bool
	ctx      context.Context
	stop     context.CancelFunc

	// credit, canceled, closed: guarded by rb.rm.mu.
	credit   uint32
	canceled bool          // by CANCEL (answered CANCELED), not by the connection's end
	closed   bool          // by Shutdown (answered CLOSED)
	more     chan struct{} // signalled when credit is added
}

// remoteFetchWait bounds one fetch of a consumer or an unbounded RECV,
// so that each goes back to check its request now and then.
const remoteFetchWait = 5 * time.Second

func (rb *remoteBox) receive(rr *receiveRequest) {
	c, hd := rr.c, rr.hd
	if rr.typ < 0 {
		c.replyErr(hd, wire.CodeInvalid, fmt.Sprintf("receive from %q: %v", rb.spec.Name, ErrClusterTypeRange))
		return
	}
	ctx, stop := context.WithCancel(context.Background())
	r := &remoteRecv{rb: rb, c: c, hd: hd, typ: rr.typ, timeout: rr.timeout, consumer: rr.consumer,
		auto: hd.Flags&wire.FlagAutoAck != 0, ctx: ctx, stop: stop, credit: rr.credit, more: make(chan struct{}, 1)}
	rm := rb.rm
	rm.mu.Lock()
	rc := rm.conn(c)
	if rc == nil || rc.recvs[hd.Request] != nil || c.gone.Load() {
		rm.mu.Unlock()
		stop()
		c.replyErr(hd, wire.CodeInvalid, fmt.Sprintf("request id %d is already in flight", hd.Request))
		return
	}
	rc.recvs[hd.Request] = r
	rm.mu.Unlock()
	rm.b.wg.Add(1)
	go r.run()
}

// conn returns c's remote state, making it. rm.mu must be held; nil
// once c is gone.
func (rm *remotes) conn(c *conn) *remoteConn {
	rc := rm.conns[c]
	if rc == nil && !c.gone.Load() {
		rc = &remoteConn{leases: make(map[uint64]RemoteLease), recvs: make(map[uint64]*remoteRecv)}
		rm.conns[c] = rc
	}
	return rc
}

func (r *remoteRecv) run() {
	rm := r.rb.rm
	defer rm.b.wg.Done()
	defer r.stop()
	err := r.loop()
	rm.mu.Lock()
	canceled, closed := r.canceled, r.closed
	if rc := rm.conns[r.c]; rc != nil && rc.recvs[r.hd.Request] == r {
		delete(rc.recvs, r.hd.Request)
	}
	rm.mu.Unlock()
	hd := wire.Header{Op: r.hd.Op, Request: r.hd.Request}
	switch {
	case canceled:
		if !r.consumer {
			hd.Flags = wire.FlagUrgent
		}
		r.c.replyErr(hd, wire.CodeCanceled, fmt.Sprintf("receive from %q: canceled", r.rb.spec.Name))
	case closed:
		r.c.replyErr(hd, wire.CodeClosed, fmt.Sprintf("receive from %q: broker closed", r.rb.spec.Name))
	case r.ctx.Err() != nil: // the connection ended or the broker stops
	case err != nil:
		r.rb.check(err)
		code := remoteCode(err)
		text := err.Error()
		if code == wire.CodeEmpty && r.timeout != 0 {
			code, text = wire.CodeTimeout, "timed out"
		}
		if r.hd.Urgent() {
			hd.Flags = wire.FlagUrgent
		}
		r.c.replyErr(hd, code, fmt.Sprintf("receive from %q: %s", r.rb.spec.Name, text))
	}
}

// loop fetches and hands out messages until the request ends; the error
// is its final reply's, nil for a RECV answered with a message.
func (r *remoteRecv) loop() error {
	rm := r.rb.rm
	ictx, cancel := context.WithTimeout(r.ctx, remoteTimeout)
	recv, err := rm.be.Receiver(ictx, r.rb.spec.Name, r.typ)
	cancel()
	if err != nil {
		return err
	}
	var deadline time.Time
	if r.timeout > 0 {
		deadline = time.Now().Add(time.Duration(r.timeout))
	}
	for {
		n := 1
		if r.consumer {
			var ok bool
			if n, ok = r.waitCredit(); !ok {
				return nil
			}
		}
		wait := r.consumer || r.timeout != 0
		fctx, cancel := context.WithTimeout(r.ctx, remoteFetchWait)
		if !deadline.IsZero() {
			cancel()
			d := time.Now().Add(remoteFetchWait)
			if deadline.Before(d) {
				d = deadline
			}
			fctx, cancel = context.WithDeadline(r.ctx, d)
		}
		ds, err := recv.Fetch(fctx, n, wait)
		cancel()
		if r.ctx.Err() != nil {
			nackAll(ds)
			return nil
		}
		if err != nil && !(errors.Is(err, ErrRemoteEmpty) && wait && (deadline.IsZero() || time.Now().Before(deadline))) {
			return err
		}
		for i := range ds {
			if ok, err := r.hand(&ds[i]); !ok {
				nackAll(ds[i+1:])
				return err
			}
		}
		if len(ds) > 0 && !r.consumer {
			return nil
		}
	}
}

// waitCredit waits until the consumer has credit; it returns how many
// to fetch, or false when the request ended.
func (r *remoteRecv) waitCredit() (int, bool) {
	rm := r.rb.rm
	for {
		rm.mu.Lock()
		n := r.credit
		rm.mu.Unlock()
		if n > 0 {
			return int(min(n, 256)), true
		}
		select {
		case <-r.more:
		case <-r.ctx.Done():
			return 0, false
		}
	}
}

// hand gives d to the request's client as a lease of its connection (or
// acked first, with AUTO_ACK), if the request is still on; else it nacks
// d and reports false, with the error that ends the request (nil if the
// request had ended already).
func (r *remoteRecv) hand(d *RemoteDelivery) (bool, error) {
	rm := r.rb.rm
	on := func() bool { // rm.mu held
		rc := rm.conns[r.c]
		return rc != nil && rc.recvs[r.hd.Request] == r && r.ctx.Err() == nil
	}
	var lease uint64
	if r.auto {
		// Removed before it is handed out (at most once), and only while
		// the request is on: one cancelled meanwhile loses it.
		rm.mu.Lock()
		ok := on()
		rm.mu.Unlock()
		if !ok {
			d.Lease.Nack()
			return false, nil
		}
		if err := d.Lease.Ack(true); err != nil {
			d.Lease.Nack()
			return false, err
		}
	} else {
		lease = rm.b.leases.NextLease()
	}
	rm.mu.Lock()
	rc := rm.conns[r.c]
	if !on() {
		rm.mu.Unlock()
		if !r.auto {
			d.Lease.Nack()
		}
		return false, nil
	}
	if lease != 0 {
		rc.leases[lease] = d.Lease
	}
	if r.consumer {
		r.credit--
	}
	rm.mu.Unlock()
	msg := &mailbox.Message{Seq: d.Seq, Type: d.Type, Sender: d.Sender, SentUnixNano: d.SentUnixNano,
		Headers: d.Headers, Body: d.Body, Redeliveries: d.Redeliveries}
	hd := wire.Header{Op: wire.OpDeliver, Flags: wire.FlagPush, Request: r.hd.Request}
	if !r.consumer {
		hd = replyHeader(r.hd, wire.OK)
	}
	r.c.deliver(hd, msg, lease)
	return true, nil
}

func nackAll(ds []RemoteDelivery) {
	for i := range ds {
		ds[i].Lease.Nack()
	}
}

// settle acks or nacks (by op) a lease of c on a cluster mailbox; an
// ACK that is answered (confirm) waits for the removal's confirmation.
// It reports false if c holds no such lease.
func (rm *remotes) settle(c *conn, op wire.Op, id uint64, confirm bool) (wire.Code, bool) {
	if rm == nil {
		return 0, false
	}
	rm.mu.Lock()
	var l RemoteLease
	if rc := rm.conns[c]; rc != nil {
		l = rc.leases[id]
		delete(rc.leases, id)
	}
	rm.mu.Unlock()
	if l == nil {
		return 0, false
	}
	var err error
	if op == wire.OpAck {
		if err = l.Ack(confirm); err != nil {
			l.Nack() // not known removed: offered again at once if the cluster takes it, else after its ack wait
		}
	} else {
		err = l.Nack()
	}
	if err != nil {
		return remoteCode(err), true
	}
	return wire.OK, true
}

// takesAll reports whether a frame's leases, whose local mailboxes are
// boxes, are all for rm to settle: none is a local mailbox's.
func (rm *remotes) takesAll(boxes []*box) bool {
	if rm == nil || len(boxes) == 0 {
		return false
	}
	for _, bx := range boxes {
		if bx != nil {
			return false
		}
	}
	return true
}

// settleAsync settles a frame's leases of cluster mailboxes, waiting for
// the acks' confirmations, and answers it, off the connection's reader.
func (rm *remotes) settleAsync(c *conn, hd wire.Header, ids []uint64) {
	rm.b.wg.Add(1)
	go func() {
		defer rm.b.wg.Done()
		var done uint32
		var failed []wire.LeaseFailure
		for _, id := range ids {
			code, ok := rm.settle(c, hd.Op, id, true)
			switch {
			case !ok:
				failed = append(failed, wire.LeaseFailure{Lease: id, Status: wire.CodeStaleLease})
			case code != wire.OK:
				failed = append(failed, wire.LeaseFailure{Lease: id, Status: code})
			default:
				done++
			}
		}
		c.ackReply(replyHeader(hd, wire.OK), done, failed)
	}()
}

// credit adds n to a consumer's credit; false if c has no such consumer.
func (rm *remotes) addCredit(c *conn, req uint64, n uint32) {
	if rm == nil {
		return
	}
	rm.mu.Lock()
	defer rm.mu.Unlock()
	if rc := rm.conns[c]; rc != nil {
		if r := rc.recvs[req]; r != nil && r.consumer {
			r.credit += n
			select {
			case r.more <- struct{}{}:
			default:
			}
		}
	}
}

// cancel ends c's receive req, answering it CANCELED.
func (rm *remotes) cancel(c *conn, req uint64) {
	if rm == nil {
		return
	}
	rm.mu.Lock()
	if rc := rm.conns[c]; rc != nil {
		if r := rc.recvs[req]; r != nil {
			r.canceled = true
			r.stop()
		}
	}
	rm.mu.Unlock()
}

// shutdown ends every receive, answering it CLOSED (Broker.Shutdown).
func (rm *remotes) shutdown() {
	if rm == nil {
		return
	}
	rm.mu.Lock()
	defer rm.mu.Unlock()
	for _, rc := range rm.conns {
		for _, r := range rc.recvs {
			r.closed = true
			r.stop()
		}
	}
}

// connGone ends c's receives and nacks every lease it held, at once:
// their messages go to other receivers without waiting for the
// backend's redelivery time.
func (rm *remotes) connGone(c *conn) {
	if rm == nil {
		return
	}
	rm.mu.Lock()
	rc := rm.conns[c]
	delete(rm.conns, c)
	rm.mu.Unlock()
	if rc == nil {
		return
	}
	for _, r := range rc.recvs {
		r.stop()
	}
	for _, l := range rc.leases {
		l.Nack()
	}
}
