package broker

import (
	"fmt"
	"time"
	"unsafe"

	"github.com/postbox-ipc/postbox/mailbox"
	"github.com/postbox-ipc/postbox/wire"
)

// Calls: CALL sends one request and waits for its reply in one round
// trip (docs/PROTOCOL.md, "CALL").
//
// A CALL is a one-message SEND whose message names the caller's own inbox
// as REPLY_TO and carries a CORRELATION_ID. The request is admitted to
// its target by the SEND path (send.go) exactly as a one-message SEND;
// the three places that would answer a SEND instead tell the call what
// happened (callAdmitted, callFailed). Meanwhile the call waits in its
// connection's table under its CORRELATION_ID, where any one-message
// SEND to that inbox with the same CORRELATION_ID claims it (claim, in
// reply.go): the message never enters the inbox, it becomes the CALL's
// reply.
//
//	state      how it gets there                  next
//	admitting  doCall put it in the table          waiting (admitted), ended
//	waiting    the request is in its mailbox       ended
//	ended      taken out of the table by a claim,  -
//	           a failed admission, CANCEL, the
//	           timeout, a disconnect, shutdown
//
// Whoever takes a call out of its connection's table (c.cmu) answers it,
// once; the others find it gone and do nothing. Ending a call without a
// reply asks the request's mailbox where the request is (withdraw): still
// queued, it is withdrawn (OUTCOME WITHDRAWN); leased, its holder is
// pushed an INTERRUPT (IN_PROGRESS); gone, it was settled (SETTLED). The
// answer is sent once the box lock is released, and, for a durable
// mailbox, once the withdrawal is on disk.
//
// Claiming costs a SEND to an inbox one atomic load while its endpoint has
// no call waiting (conn.ncalls).

// call is one CALL from its connection.
type call struct {
	c    *conn
	hd   wire.Header // the CALL's header
	corr string      // its CORRELATION_ID: aliases msg.Headers, which never change
	msg  *mailbox.Message
	box  *box  // the request's target
	end  int64 // the deadline (unix ns), 0 for none

	// Guarded by c.cmu.
	admitted bool
	seq      uint64      // the request's id in box, once admitted
	timer    *time.Timer // the timeout, armed once admitted
}

// callHeaders returns a validated headers block's REPLY_TO and
// CORRELATION_ID (nil when absent). It does not allocate.
func callHeaders(raw []byte) (replyTo, corr []byte) {
	it := wire.NewExtIter(raw)
	for f, ok := it.Next(); ok; f, ok = it.Next() {
		switch f.Tag {
		case wire.HeaderReplyTo:
			replyTo = f.Value
		case wire.HeaderCorrelationID:
			corr = f.Value
		}
	}
	return replyTo, corr
}

func (h *handler) doCall(hd wire.Header, p []byte) {
	c, m := h.c, &h.send
	fail := func(code wire.Code, format string, args ...any) {
		c.replyErr(hd, code, fmt.Sprintf(format, args...))
	}
	if err := m.Decode(p); err != nil {
		fail(wire.CodeOf(err), "CALL: %v", err)
		return
	}
	lim := c.b.limits.Load()
	switch {
	case len(m.Msgs) != 1:
		fail(wire.CodeInvalid, "call %q: a CALL carries one message, not %d", m.Target, len(m.Msgs))
		return
	case hd.Flags&(wire.FlagReceipt|wire.FlagReply) != 0:
		fail(wire.CodeInvalid, "call %q: RECEIPT and REPLY are SEND flags; a CALL's request is taken when it is answered", m.Target)
		return
	case m.AckLease != 0:
		fail(wire.CodeInvalid, "call %q: ACK_LEASE goes with a REPLY send, not a CALL", m.Target)
		return
	case m.Timeout == 0:
		fail(wire.CodeInvalid, "call %q: timeout 0: a CALL waits for its reply (-1 for ever, or a positive bound)", m.Target)
		return
	case m.Timeout < -1:
		fail(wire.CodeInvalid, "call %q: timeout %d: -1 or positive", m.Target, m.Timeout)
		return
	}
	s := &m.Msgs[0]
	switch {
	case s.Type < 1:
		fail(wire.CodeInvalid, "call %q: type must be at least 1, not %d", m.Target, s.Type)
		return
	case s.Size() > lim.MaxMessage:
		fail(wire.CodeTooLarge, "call %q: a request of %d bytes (body and headers) exceeds the limit of %d", m.Target, s.Size(), lim.MaxMessage)
		return
	}
	replyTo, corr := callHeaders(s.Headers)
	switch {
	case replyTo == nil || string(replyTo) != c.inbox.name:
		fail(wire.CodeInvalid, "call %q: REPLY_TO must be the caller's own inbox %q", m.Target, c.inbox.name)
		return
	case corr == nil:
		fail(wire.CodeInvalid, "call %q: a CALL needs a CORRELATION_ID", m.Target)
		return
	}
	t, code, why := c.b.resolve(m.Target)
	if t == nil {
		fail(code, "call %q: %s", m.Target, why)
		return
	}
	bx, ok := t.(*box)
	if !ok {
		fail(wire.CodeInvalid, "call %q: only a mailbox takes calls", m.Target)
		return
	}
	if c.b.auth.Authorize(c.who, t.object(), ActSend) != nil {
		fail(wire.CodePermission, "call %q: permission denied", m.Target)
		return
	}

	msg := newMessage(s.Body, s.Headers)
	msg.Type, msg.Priority = s.Type, s.Priority
	msg.Sender, msg.SentUnixNano = c.ident, h.now
	_, corr = callHeaders(msg.Headers) // the message's own copy, alive as long as the call
	cl := &call{c: c, hd: hd, corr: unsafe.String(unsafe.SliceData(corr), len(corr)), msg: msg, box: bx}
	if m.Timeout > 0 {
		cl.end = h.now + m.Timeout
	}
	if why := c.addCall(cl); why != "" {
		fail(wire.CodeInvalid, "call %q: %s", m.Target, why)
		return
	}
	msgs := append(h.msgs[:0], msg)
	h.sreq = sendRequest{c: c, hd: hd, msgs: msgs, size: int64(s.Size()), timeout: m.Timeout, now: h.now, ids: &h.ids}
	bx.send(&h.sreq)
	h.sreq = sendRequest{}
	clear(msgs)
	h.msgs = msgs[:0]
}

// addCall enters cl in its connection's table, or says why it cannot.
func (c *conn) addCall(cl *call) string {
	c.cmu.Lock()
	defer c.cmu.Unlock()
	if _, dup := c.callReq[cl.hd.Request]; dup {
		return fmt.Sprintf("request id %d is already in flight", cl.hd.Request)
	}
	if _, dup := c.calls[cl.corr]; dup {
		// The Go client matches this text (postbox.ErrCallInFlight).
		return "a call with this CORRELATION_ID is already waiting on this endpoint"
	}
	c.calls[cl.corr] = cl
	c.callReq[cl.hd.Request] = cl
	c.ncalls.Add(1)
	c.b.calls.Add(1)
	return ""
}

// takeCallLocked takes cl out of the table: the caller now answers it.
// c.cmu must be held.
func (c *conn) takeCallLocked(cl *call) {
	delete(c.calls, cl.corr)
	delete(c.callReq, cl.hd.Request)
	c.ncalls.Add(-1)
	c.b.calls.Add(-1)
	if cl.timer != nil {
		cl.timer.Stop()
	}
}

// callAdmitted is the SEND path telling the CALL of request req that its
// request is in its mailbox with id seq: the call waits for its reply,
// until its deadline.
func (c *conn) callAdmitted(req, seq uint64) {
	c.cmu.Lock()
	defer c.cmu.Unlock()
	cl := c.callReq[req]
	if cl == nil {
		return // claimed or cancelled meanwhile
	}
	cl.admitted, cl.seq = true, seq
	if cl.end != 0 {
		d := max(1, cl.end-time.Now().UnixNano())
		cl.timer = time.AfterFunc(time.Duration(d), func() { c.b.endCall(cl, wire.CodeTimeout) })
	}
}

// callFailed is the SEND path telling the CALL in hd that its request was
// not admitted (code, text). A CALL whose admission was cancelled or
// timed out says its request was withdrawn.
func (c *conn) callFailed(hd wire.Header, code wire.Code, text string) {
	c.cmu.Lock()
	cl := c.callReq[hd.Request]
	if cl != nil {
		c.takeCallLocked(cl)
	}
	c.cmu.Unlock()
	if cl == nil {
		return
	}
	var outcome uint8
	if code == wire.CodeCanceled || code == wire.CodeTimeout {
		outcome = wire.OutcomeWithdrawn
	}
	c.callErr(cl.hd, code, text, outcome, nil)
}

// cancelCall ends the CALL with request id req on a CANCEL, if it waits.
func (c *conn) cancelCall(req uint64) {
	c.cmu.Lock()
	cl := c.callReq[req]
	c.cmu.Unlock()
	if cl != nil {
		c.b.endCall(cl, wire.CodeCanceled)
	}
}

// endCall ends cl without a reply (CANCEL or its timeout: code), telling
// the caller where its request went, and interrupting the receiver that
// holds it.
func (b *Broker) endCall(cl *call, code wire.Code) {
	c := cl.c
	c.cmu.Lock()
	if c.callReq[cl.hd.Request] != cl {
		c.cmu.Unlock()
		return
	}
	c.takeCallLocked(cl)
	c.cmu.Unlock()
	var r completions
	outcome, who, lease, st := b.withdraw(cl, &r)
	if outcome == wire.OutcomeInProgress {
		b.interrupt(who.Endpoint, lease, code)
	}
	text := fmt.Sprintf("call %q: %s", cl.box.name, code)
	var receiver *wire.Identity
	if outcome != wire.OutcomeWithdrawn {
		w := wireIdentity(who)
		receiver = &w
	}
	b.after(&r, st, func(error) {
		// A withdrawal that did not reach the disk: the request may come
		// back after a crash, but not in this run (at least once).
		c.callErrFrom(cl.hd, code, text, outcome, receiver, who.Name)
	})
	r.run()
}

// withdraw takes cl's request out of its mailbox if it is still queued,
// and says where it is: withdrawn (also when it left without being
// taken: expired, or its mailbox destroyed), in progress (leased: who
// holds it, under which lease) or settled (who took it). It returns the
// records of the withdrawal. It takes the box's lock.
func (b *Broker) withdraw(cl *call, r *completions) (outcome uint8, who mailbox.Identity, lease uint64, st step) {
	bx := cl.box
	bx.mu.Lock()
	before := bx.core.HeldBytes()
	switch {
	case bx.core.Withdraw(cl.msg):
		outcome = wire.OutcomeWithdrawn
		st = b.apply(bx, bx.core.Effects(), r)
	case bx.core.Destroyed():
		outcome = wire.OutcomeWithdrawn
	default:
		var taken, leased bool
		who, taken = cl.msg.Taker()
		lease, leased = cl.msg.Leased()
		switch {
		case leased:
			outcome = wire.OutcomeInProgress
		case taken:
			outcome = wire.OutcomeSettled
		default:
			outcome = wire.OutcomeWithdrawn
		}
	}
	b.account(bx, before)
	bx.mu.Unlock()
	r.run()
	return outcome, who, lease, st
}

// interrupt pushes INTERRUPT for lease to endpoint's connection, if it is
// still there.
func (b *Broker) interrupt(endpoint, lease uint64, reason wire.Code) {
	ib := b.lookup([]byte(inboxName(endpoint)))
	if ib == nil || ib.owner == nil {
		return
	}
	m := wire.Interrupt{Lease: lease, Reason: reason}
	hd := wire.Header{Op: wire.OpInterrupt, Flags: wire.FlagPush | wire.FlagUrgent}
	ib.owner.w.Append(true, func(b []byte) []byte {
		b, off := wire.StartFrame(b, hd)
		return wire.FinishFrame(m.Append(b), off)
	})
}

// callErr queues a CALL's error reply, with OUTCOME (if not 0) and
// RECEIVER (if not nil). A cancelled call's goes in the urgent lane.
func (c *conn) callErr(hd wire.Header, code wire.Code, text string, outcome uint8, receiver *wire.Identity) {
	c.callErrFrom(hd, code, text, outcome, receiver, "")
}

// callErrFrom is callErr with the RECEIVER's principal name (a TLS
// receiver's, else "") after RECEIVER.
func (c *conn) callErrFrom(hd wire.Header, code wire.Code, text string, outcome uint8, receiver *wire.Identity, name string) {
	if receiver == nil {
		name = ""
	}
	h := replyHeader(hd, code)
	if code == wire.CodeCanceled {
		h.Flags |= wire.FlagUrgent
	}
	c.w.Append(h.Urgent(), func(b []byte) []byte {
		b, off := wire.StartFrame(b, h)
		b = wire.AppendCallError(b, text, outcome, receiver)
		return wire.FinishFrame(wire.AppendPrincipalName(b, name), off)
	})
}

// takeCalls empties the connection's table and returns the calls it held.
func (c *conn) takeCalls() []*call {
	c.cmu.Lock()
	defer c.cmu.Unlock()
	if len(c.callReq) == 0 {
		return nil
	}
	cls := make([]*call, 0, len(c.callReq))
	for _, cl := range c.callReq {
		cls = append(cls, cl)
		c.takeCallLocked(cl)
	}
	return cls
}

// failCalls ends every waiting call with code (CLOSED at shutdown).
func (c *conn) failCalls(code wire.Code) {
	for _, cl := range c.takeCalls() {
		c.callErr(cl.hd, code, fmt.Sprintf("call %q: %s", cl.box.name, code), 0, nil)
	}
}

// dropCalls ends the calls of a connection that is gone: their queued
// requests are withdrawn, the receivers of their leased ones interrupted.
// Nobody is left to answer.
func (c *conn) dropCalls() {
	for _, cl := range c.takeCalls() {
		var r completions
		outcome, who, lease, _ := c.b.withdraw(cl, &r)
		if outcome == wire.OutcomeInProgress {
			c.b.interrupt(who.Endpoint, lease, wire.CodeCanceled)
		}
	}
}

// endCallsOn ends with DESTROYED the calls whose request is still queued
// in bx, which is being destroyed: nobody will ever see those requests.
// (A call whose request a receiver holds or took goes on waiting: the
// receiver may still answer.) bx.mu is held; the replies go on r.
func (b *Broker) endCallsOn(bx *box, r *completions) {
	if b.calls.Load() == 0 {
		return
	}
	var cands []*call
	b.mu.RLock()
	for c := range b.conns {
		c.cmu.Lock()
		for _, cl := range c.callReq {
			if cl.box == bx {
				cands = append(cands, cl)
			}
		}
		c.cmu.Unlock()
	}
	b.mu.RUnlock()
	for _, cl := range cands {
		if !bx.core.Withdraw(cl.msg) {
			continue
		}
		b.apply(bx, bx.core.Effects(), r) // the mailbox's deletion follows: no record to wait for
		c := cl.c
		c.cmu.Lock()
		mine := c.callReq[cl.hd.Request] == cl
		if mine {
			c.takeCallLocked(cl)
		}
		c.cmu.Unlock()
		if mine {
			text := fmt.Sprintf("call %q: %s", bx.name, wire.CodeDestroyed)
			r.add(func() { c.callErr(cl.hd, wire.CodeDestroyed, text, 0, nil) })
		}
	}
}
