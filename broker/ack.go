package broker

import (
	"slices"

	"github.com/postbox-ipc/postbox/wire"
)

// Settling leases: ACK and NACK carry lease ranges; the reply (unless
// NOREPLY) is an AckReply with status OK listing the leases that failed
// and why. A non-OK status fails the frame as a whole (MALFORMED, or
// STORAGE: nothing confirmed).

func (h *handler) doAck(hd wire.Header, p []byte) {
	c, m := h.c, &h.leases
	noReply := hd.Flags&wire.FlagNoReply != 0
	if err := m.Decode(p); err != nil {
		if !noReply {
			c.replyErr(hd, wire.CodeOf(err), hd.Op.String()+": "+err.Error())
		}
		return
	}
	var done uint32
	failed := h.failed[:0]
	var st step
	var r completions
	// One pass over this connection's lease table (a lease is settled
	// either way: applied, or stale), then one lock per run of leases in
	// the same mailbox.
	boxes, ids := h.boxes[:0], h.ids[:0]
	c.pmu.Lock()
	for id := range m.All() {
		boxes = append(boxes, c.leases[id])
		ids = append(ids, id)
		delete(c.leases, id)
	}
	c.pmu.Unlock()
	c.b.quota.settled(c.ident, boxes)
	if !noReply && c.b.rm.takesAll(boxes) {
		// Leases of cluster mailboxes only: confirmed off the reader
		// (remote_recv.go), which goes on with the next frame.
		c.b.rm.settleAsync(c, hd, slices.Clone(ids))
		clear(boxes)
		h.boxes, h.ids = boxes[:0], ids[:0]
		return
	}
	lazy := noReply && hd.Op == wire.OpAck // a NACK may deliver: never lazy
	for i := 0; i < len(ids); {
		j := i + 1
		for j < len(ids) && boxes[j] == boxes[i] {
			j++
		}
		if bx := boxes[i]; bx != nil {
			var n uint32
			n, failed = bx.settle(c, hd.Op, lazy, ids[i:j], failed, &st, &r)
			done += n
		} else {
			for _, id := range ids[i:j] {
				if code, ok := c.b.rm.settle(c, hd.Op, id, !noReply); ok && code == wire.OK { // a cluster mailbox's (remote_recv.go)
					done++
				} else if ok {
					failed = append(failed, wire.LeaseFailure{Lease: id, Status: code})
				} else {
					failed = append(failed, wire.LeaseFailure{Lease: id, Status: wire.CodeStaleLease})
				}
			}
		}
		i = j
	}
	clear(boxes)
	c.b.retryStalled(c.ident) // its receivers may lease again
	h.boxes, h.ids = boxes[:0], ids[:0]
	h.failed = failed[:0]
	if noReply {
		return
	}
	verb := hd.Op.String()
	hd = replyHeader(hd, wire.OK)
	if !st.wrote() {
		c.ackReply(hd, done, failed)
		return
	}
	// An ACK is confirmed only once its removal is durable: a confirmed
	// ack is never undone by a crash.
	failed = slices.Clone(failed)
	c.b.after(&r, st, func(serr error) {
		if serr != nil {
			code, text := storageError(verb, serr)
			c.replyErr(hd, code, text)
			return
		}
		c.ackReply(hd, done, failed)
	})
	r.run()
}

// settle acks (or nacks, by op) leases of bx held by c, in order, under
// one hold of bx.mu: lazy is an ACK nobody waits for. It returns how many
// were settled, failed with those that were not appended, and adds the
// records written to st.
func (bx *box) settle(c *conn, op wire.Op, lazy bool, leases []uint64, failed []wire.LeaseFailure, st *step, r *completions) (uint32, []wire.LeaseFailure) {
	var done uint32
	bx.mu.Lock()
	before := bx.core.HeldBytes()
	bx.lazyAck = lazy
	for _, id := range leases {
		var err error
		if op == wire.OpAck {
			err = bx.core.Ack(c.id, id)
		} else {
			err = bx.core.Nack(c.id, id)
		}
		st.join(c.b.apply(bx, bx.core.Effects(), r))
		if err == nil {
			done++
		} else {
			failed = append(failed, wire.LeaseFailure{Lease: id, Status: codeOf(err)})
		}
	}
	bx.lazyAck = false
	c.b.account(bx, before)
	bx.mu.Unlock()
	r.run()
	return done, failed
}

// ackReply queues an AckReply with header h.
func (c *conn) ackReply(h wire.Header, done uint32, failed []wire.LeaseFailure) {
	m := wire.AckReply{Done: done, Failed: failed}
	c.w.Append(h.Urgent(), func(b []byte) []byte {
		b, off := wire.StartFrame(b, h)
		return wire.FinishFrame(m.Append(b), off)
	})
}
