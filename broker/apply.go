package broker

import (
	"errors"
	"fmt"

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
			op := wire.OpDeliver
			if p.op == wire.OpRecv {
				op = wire.OpRecv | wire.OpReply
			}
			if !st.wrote() {
				c.deliver(op, p.req, e.Msg, e.Lease)
				continue
			}
			msg, lease := e.Msg, e.Lease
			b.after(r, st, func(error) {
				// Delivered even if the record failed: the message is in
				// memory and its sender was told the send failed (at least
				// once, never lost).
				c.deliver(op, p.req, msg, lease)
			})
		case mailbox.EffSendDone:
			p := e.Ref.(*pending)
			p.c.finish(p)
			msg, seq, taken, who := e.Msg, e.Msg.Seq, e.Taken, e.Receipt
			b.after(r, st, func(err error) {
				if err != nil {
					// Takes bx.mu: runs after this step released it.
					b.discard(bx, msg)
					code, text := storageError(fmt.Sprintf("send to %q", bx.name), err)
					p.c.replyErr(wire.Header{Op: wire.OpSend, Request: p.req}, code, text)
					return
				}
				p.c.sendDone(p.req, p.offer, seq, taken, who)
			})
		case mailbox.EffFail:
			p := e.Ref.(*pending)
			p.c.finish(p)
			if off := p.offer; off != nil {
				r.add(func() { b.dropOffer(off) }) // stops a timer, closes files
			}
			code := codeOf(e.Err)
			verb := "receive from"
			if p.op == wire.OpSend || p.op == wire.OpChannel {
				verb = "send to"
			}
			text := fmt.Sprintf("%s %q: %s", verb, bx.name, code)
			// Held back like the rest: a withdrawn send's removal must be
			// on disk before its sender hears it was withdrawn.
			b.after(r, st, func(error) {
				p.c.replyErr(wire.Header{Op: p.op, Request: p.req}, code, text)
			})
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
		default: // journal effects
			if bx.durable && b.st != nil {
				st.add(b.journal(bx, e))
			}
		}
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

// deliver queues a Delivery frame.
func (c *conn) deliver(op wire.Op, req uint64, msg *mailbox.Message, lease uint64) {
	d := wire.Delivery{
		Lease: lease, ID: msg.Seq, Type: msg.Type, Priority: msg.Priority, Reason: msg.Reason, Flags: msg.Flags,
		Redeliveries: msg.Redeliveries, UID: msg.Sender.UID, GID: msg.Sender.GID,
		PID: msg.Sender.PID, Endpoint: msg.Sender.Endpoint, SentUnixNano: msg.SentUnixNano,
		Body: msg.Body,
	}
	c.wmu.Lock()
	if !c.closing {
		b, off := wire.StartFrame(c.out, wire.Header{Op: op, Request: req})
		c.out = wire.FinishFrame(d.Append(b), off)
		c.wcond.Signal()
	}
	c.wmu.Unlock()
}

// sendReply queues a SEND reply.
func (c *conn) sendReply(req, seq uint64, taken bool, who mailbox.Identity) {
	r := wire.SendReply{ID: seq, Taken: taken, Receipt: wire.Receipt{Endpoint: who.Endpoint, UID: who.UID, GID: who.GID, PID: who.PID}}
	c.wmu.Lock()
	if !c.closing {
		b, off := wire.StartFrame(c.out, wire.Header{Op: wire.OpSend | wire.OpReply, Request: req})
		c.out = wire.FinishFrame(r.Append(b), off)
		c.wcond.Signal()
	}
	c.wmu.Unlock()
}

// cancel ends a pending request with err (CodeTimeout, CodeCanceled,
// CodeClosed).
func (b *Broker) cancel(p *pending, err error) {
	bx := p.box
	var r completions
	bx.mu.Lock()
	before := bx.core.HeldBytes()
	if p.send != nil {
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
	}
	return wire.CodeInternal
}
