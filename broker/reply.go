package broker

import (
	"fmt"

	"github.com/postbox-ipc/postbox/mailbox"
	"github.com/postbox-ipc/postbox/wire"
)

// Replies: the SEND side of a call. A one-message SEND to an inbox whose
// endpoint has a CALL waiting with the message's CORRELATION_ID is
// claimed by that CALL (claim); a SEND with the REPLY flag that nobody
// claims is dropped, never queued (dropReply); ACK_LEASE acks the
// request's lease after the reply (ackLease). See call.go for the CALL.

// claim hands a one-message SEND to bx, an inbox, to the CALL of bx's
// endpoint waiting with the message's CORRELATION_ID, if there is one:
// the message is that CALL's reply and never enters the inbox. It
// answers the SEND (taken, by the caller) and reports true, or reports
// false and does nothing.
func (bx *box) claim(sr *sendRequest) bool {
	o := bx.owner
	if o == nil || o.ncalls.Load() == 0 || len(sr.msgs) != 1 {
		return false
	}
	msg := sr.msgs[0]
	_, corr := callHeaders(msg.Headers)
	if corr == nil {
		return false
	}
	o.cmu.Lock()
	cl := o.calls[string(corr)]
	var seq uint64
	if cl != nil {
		o.takeCallLocked(cl)
		seq = cl.seq
	}
	o.cmu.Unlock()
	if cl == nil {
		return false
	}
	if seq == 0 {
		// Answered before the SEND path told the call its request was in
		// (a fast server): the request's id is in its mailbox.
		cl.box.mu.Lock()
		seq = cl.msg.Seq
		cl.box.mu.Unlock()
	}
	o.callReply(cl.hd, seq, msg)
	if sr.bestEffort {
		return true // a best-effort SEND has no reply
	}
	ids := append((*sr.ids)[:0], 0)
	sr.c.sendReply(sr.hd, ids, true, o.ident)
	*sr.ids = ids[:0]
	return true
}

// dropReply answers a REPLY send that no CALL claimed: dropped, never
// queued.
func dropReply(sr *sendRequest) {
	ids := append((*sr.ids)[:0], 0)
	sr.c.sendReply(sr.hd, ids, false, mailbox.Identity{})
	*sr.ids = ids[:0]
}

// callReply queues a CALL's OK reply: the request's id and the reply.
func (c *conn) callReply(hd wire.Header, seq uint64, msg *mailbox.Message) {
	rep := wire.CallReply{Request: seq, Delivery: wire.Delivery{
		Type: msg.Type, Priority: msg.Priority, Sender: wireIdentity(msg.Sender), SentUnixNano: msg.SentUnixNano,
		Headers: msg.Headers, Body: msg.Body, Ext: wire.AppendPrincipalName(nil, msg.Sender.Name),
	}}
	h := replyHeader(hd, wire.OK)
	c.w.Append(h.Urgent(), func(b []byte) []byte {
		b, off := wire.StartFrame(b, h)
		return wire.FinishFrame(rep.Append(b), off)
	})
}

// replyRule says why a SEND breaks the REPLY flag's rules ("" if it
// does not): REPLY takes one message to an inbox, and ACK_LEASE needs
// REPLY.
func replyRule(hd wire.Header, m *wire.Send) string {
	reply := hd.Flags&wire.FlagReply != 0
	switch {
	case reply && len(m.Msgs) != 1:
		return fmt.Sprintf("REPLY needs a batch of one message, not %d", len(m.Msgs))
	case reply && (len(m.Target) == 0 || m.Target[0] != '@'):
		return "REPLY goes to an inbox (@id), the caller's"
	case reply && hd.Flags&wire.FlagReceipt != 0:
		return "REPLY and RECEIPT do not go together: a reply is taken or dropped at once"
	case m.AckLease != 0 && !reply:
		return "ACK_LEASE goes with the REPLY flag"
	}
	return ""
}

// ackLease acks a lease of this connection after a REPLY send (ACK_LEASE),
// as an ACK with NOREPLY would: a stale lease is ignored.
func (h *handler) ackLease(lease uint64) {
	c := h.c
	c.pmu.Lock()
	bx := c.leases[lease]
	delete(c.leases, lease)
	c.pmu.Unlock()
	if bx == nil {
		c.b.rm.settle(c, wire.OpAck, lease, false) // a cluster mailbox's lease (remote_recv.go), if it is one
		return
	}
	boxes := append(h.boxes[:0], bx)
	c.b.quota.settled(c.ident, boxes)
	clear(boxes)
	h.boxes = boxes[:0]
	var st step
	var r completions
	ids := append(h.ids[:0], lease)
	_, h.failed = bx.settle(c, wire.OpAck, true, ids, h.failed[:0], &st, &r)
	h.failed = h.failed[:0]
	h.ids = ids[:0]
	c.b.retryStalled(c.ident)
}
