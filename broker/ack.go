package broker

import (
	"slices"

	"github.com/postbox-ipc/postbox/mailbox"
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
	boxes := h.boxes[:0]
	c.pmu.Lock()
	for id := range m.All() {
		boxes = append(boxes, c.leases[id])
		delete(c.leases, id)
	}
	c.pmu.Unlock()
	var cur *box
	var before int64
	release := func() {
		if cur != nil {
			cur.lazyAck = false
			c.b.account(cur, before)
			cur.mu.Unlock()
			r.run()
		}
	}
	i := 0
	for id := range m.All() {
		bx := boxes[i]
		i++
		if bx != cur {
			release()
			cur = bx
			if bx != nil {
				bx.mu.Lock()
				before = bx.core.HeldBytes()
				bx.lazyAck = noReply && hd.Op == wire.OpAck // a NACK may deliver: never lazy
			}
		}
		err := mailbox.ErrStaleLease
		if bx != nil {
			if hd.Op == wire.OpAck {
				err = bx.core.Ack(c.id, id)
			} else {
				err = bx.core.Nack(c.id, id)
			}
			st.join(c.b.apply(bx, bx.core.Effects(), &r))
		}
		if err == nil {
			done++
		} else {
			failed = append(failed, wire.LeaseFailure{Lease: id, Status: codeOf(err)})
		}
	}
	release()
	clear(boxes)
	h.boxes = boxes
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

// ackReply queues an AckReply with header h.
func (c *conn) ackReply(h wire.Header, done uint32, failed []wire.LeaseFailure) {
	m := wire.AckReply{Done: done, Failed: failed}
	c.w.Append(h.Urgent(), func(b []byte) []byte {
		b, off := wire.StartFrame(b, h)
		return wire.FinishFrame(m.Append(b), off)
	})
}
