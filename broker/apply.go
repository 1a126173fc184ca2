package broker

import (
	"errors"
	"fmt"
	"os"

	"github.com/postbox-ipc/postbox/mailbox"
	"github.com/postbox-ipc/postbox/wire"
)

// apply carries out a mailbox core's effects. bx.mu must be held; what
// must not run under it is added to r, which the caller runs once it has
// released bx.mu (see ready.go).
//
// For a durable mailbox it also writes the journal effects to the store,
// and holds back every frame the step produces (deliveries, send
// completions) until those records are durable. It returns the last
// ticket written and whether any was, so the caller can hold back its own
// reply the same way.
func (b *Broker) apply(bx *box, effs []mailbox.Effect, r *completions) (st step) {
	var stall []*pending // consumers whose connection's backlog is full (backlog.go)
	for i := range effs {
		e := &effs[i]
		switch e.Kind {
		case mailbox.EffDeliver:
			p := e.Ref.(*pending)
			c := p.c
			if e.Lease != 0 || p.op == wire.OpRecv {
				c.pmu.Lock()
				if e.Lease != 0 {
					c.leases[e.Lease] = bx
				}
				if p.op == wire.OpRecv {
					c.unregister(p)
				}
				c.pmu.Unlock()
			}
			// A consumer's deliveries are pushed (DELIVER); a RECV's is
			// its reply.
			hd := wire.Header{Op: wire.OpDeliver, Flags: wire.FlagPush, Request: p.req}
			if p.op == wire.OpRecv {
				hd = replyHeader(p.header(nil), wire.OK)
			}
			if !st.wrote() {
				b.stats.delivered(e.Msg, c.readAt.Load()) // stats.go
				c.deliver(hd, e.Msg, e.Lease)
				if p.op == wire.OpConsume && c.overBacklog() && (len(stall) == 0 || stall[len(stall)-1] != p) {
					stall = append(stall, p)
				}
				continue
			}
			msg, lease := e.Msg, e.Lease
			b.after(r, st, func(error) {
				// Delivered even if the record failed: the message is in
				// memory and its sender was told the send failed (at least
				// once, never lost).
				b.stats.delivered(msg, b.stats.now()) // after the record: its fsync counts
				c.deliver(hd, msg, lease)
				if p.op == wire.OpConsume && c.overBacklog() {
					c.stallLocking(p) // this runs holding no lock
				}
			})
		case mailbox.EffSendDone:
			p := e.Ref.(*pending)
			bt := p.batch
			bt.admitted = append(bt.admitted, e.Msg)
			if bx.durable {
				bt.steps = append(bt.steps, st)
			}
			bt.ids = append(bt.ids, e.Msg.Seq)
			bt.msgs = bt.msgs[1:]
			bt.taken, bt.who = e.Taken, e.Receipt
			bt.st.join(st)
			if len(bt.msgs) > 0 && st.refused == nil {
				// The rest of the batch: admitting takes this box's lock.
				// (After a record refused for a full disk, no more: the
				// reply is STORAGE.)
				r.add(func() { b.continueSend(p) })
				continue
			}
			p.c.finish(p)
			b.batchDone(r, p)
		case mailbox.EffFail:
			p := e.Ref.(*pending)
			p.c.finish(p)
			if p.batch != nil {
				// Held back like the rest: a withdrawn send's removal must
				// be on disk before its sender hears it was withdrawn.
				b.batchFailed(r, p, e.Err, st)
				continue
			}
			code := codeOf(e.Err)
			hd := p.header(e.Err)
			text := fmt.Sprintf("receive from %q: %s", bx.name, code)
			b.after(r, st, func(error) { p.c.replyErr(hd, code, text) })
		case mailbox.EffDeadLetter:
			if bx.deadLetter != "" {
				b.queueDead(deadLetter{to: bx.deadLetter, from: bx.name, fromDurable: bx.durable && b.st != nil,
					msg: e.Msg, reason: reasonCode(e.Reason)})
				continue
			}
			name, seq, reason := bx.name, e.Msg.Seq, e.Reason
			r.add(func() { b.log.Info("message dropped", "mailbox", name, "id", seq, "reason", reason) })
			if bx.durable && b.st != nil {
				st.add(b.st.Ack(bx.name, e.Msg.Seq))
			}
		case mailbox.EffRelease:
			// What the message held (its descriptors: files.go) is given
			// back once this step's deliveries, which dup it, are queued.
			r.add(e.Ref.(mailbox.Releaser).Release)
		default: // journal effects
			if bx.durable && b.st != nil {
				st.add(b.journal(bx, e))
			}
		}
	}
	for _, p := range stall {
		p.c.stall(p, r)
	}
	if b.notices.nboxes.Load() > 0 {
		b.notices.depthChanged(bx) // mailbox watches (notice_box.go)
	}
	return st
}

// unregister forgets a pending request and stops its timer. c.pmu must be
// held.
func (c *conn) unregister(p *pending) {
	// A nil entry is an id reserved by register for p.
	if q, ok := c.pending[p.req]; ok && (q == p || q == nil) {
		delete(c.pending, p.req)
	}
	if p.timer != nil {
		p.timer.Stop()
	}
}

// finish is unregister taking c.pmu.
func (c *conn) finish(p *pending) {
	c.pmu.Lock()
	c.unregister(p)
	c.pmu.Unlock()
}

// deliver queues a Delivery frame with header hd (in the urgent lane for
// an urgent message: withdraw.go).
func (c *conn) deliver(hd wire.Header, msg *mailbox.Message, lease uint64) {
	hd, flags := urgentDelivery(hd, msg)
	var files []*os.File
	if msg.Hold != nil {
		var ff uint8
		ff, files = c.deliveryFiles(msg) // descriptors ride with the frame (files.go)
		flags |= ff
	}
	d := wire.Delivery{
		Lease: lease, ID: msg.Seq, Type: msg.Type, Priority: msg.Priority, Reason: msg.Reason, Flags: flags,
		Redeliveries: msg.Redeliveries, Sender: wireIdentity(msg.Sender), SentUnixNano: msg.SentUnixNano,
		Headers: msg.Headers, Body: msg.Body,
	}
	name := msg.Sender.Name // a TLS sender's, after the fields (no allocation)
	enc := func(b []byte) []byte {
		b, off := wire.StartFrame(b, hd)
		return wire.FinishFrame(wire.AppendPrincipalName(d.Append(b), name), off)
	}
	if files != nil {
		c.w.AppendWithFiles(hd.Urgent(), files, enc) // the writer closes the duplicates
		return
	}
	c.w.Append(hd.Urgent(), enc)
}

// cancel ends a pending request with err (CodeTimeout, CodeCanceled,
// CodeClosed).
func (b *Broker) cancel(p *pending, err error) {
	bx := p.box
	var r completions
	bx.mu.Lock()
	before := bx.core.HeldBytes()
	if p.send != nil {
		if bt := p.batch; bt != nil && !p.send.Waiting() && bt.err == nil {
			// Between two of its messages' admissions: the continuation
			// (continueSend) ends the request with err.
			bt.err = err
		}
		bx.core.CancelSend(p.send, err)
	} else {
		bx.core.CancelReceive(p.recv, err)
	}
	b.apply(bx, bx.core.Effects(), &r)
	b.account(bx, before)
	bx.mu.Unlock()
	r.run()
}

// codeOf maps mailbox errors to wire status codes.
func codeOf(err error) wire.Code {
	switch {
	case err == nil:
		return wire.OK
	case errors.Is(err, mailbox.ErrFull):
		return wire.CodeFull
	case errors.Is(err, mailbox.ErrEmpty):
		return wire.CodeEmpty
	case errors.Is(err, mailbox.ErrDestroyed):
		return wire.CodeDestroyed
	case errors.Is(err, mailbox.ErrStaleLease):
		return wire.CodeStaleLease
	case errors.Is(err, mailbox.ErrTimeout):
		return wire.CodeTimeout
	case errors.Is(err, mailbox.ErrCanceled):
		return wire.CodeCanceled
	case errors.Is(err, mailbox.ErrClosed):
		return wire.CodeClosed
	case errors.Is(err, mailbox.ErrEndOfStream):
		return wire.CodeEndOfStream
	case errors.Is(err, errNoReader):
		return wire.CodeNoReader
	}
	return wire.CodeInternal
}
