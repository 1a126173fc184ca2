package broker

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/postbox-ipc/postbox/mailbox"
	"github.com/postbox-ipc/postbox/wire"
)

// Sending: SEND batches (and CHANNEL's offer, which travels as a
// one-message send).
//
// A SEND carries 1..wire.MaxBatch messages. All are checked before any is
// admitted (type, size, the broker's byte limit), so a bad one fails the
// frame with DONE 0. Then they are admitted in order, each as a single
// send would be: when the mailbox is full and the request may wait, the
// request becomes pending with its remaining messages (sendBatch) and
// goes on, message by message, as room appears. The OK reply lists every
// id; a failure part way is that error with DONE = the messages admitted
// (which stay queued). The request's timeout bounds its waiting from the
// moment the broker read it (now + timeout): one timer for the whole
// frame, armed at its first wait.

// sendBatch is a pending SEND's progress. It is guarded by the lock of its
// mailbox (box.mu) until the request finishes; its final reply only reads
// it.
type sendBatch struct {
	msgs     []*mailbox.Message // not yet admitted; msgs[0] is the one waiting
	admitted []*mailbox.Message // admitted so far, in order
	ids      []uint64           // their ids
	st       step               // the records the admissions wrote
	steps    []step             // durable mailbox: steps[i] is admitted[i]'s records
	receipt  bool
	taken    bool // the last message was taken at once (rendezvous, receipt)
	who      mailbox.Identity
	// err is a cancel (CANCEL, timeout, shutdown) that came while no
	// message was waiting, between one admission and the next.
	err error
}

var errInFlight = errors.New("request id already in flight")

func (h *handler) doSend(hd wire.Header, p []byte) {
	c, m := h.c, &h.send
	if hd.Flags&wire.FlagBestEffort != 0 {
		if h.files != nil || h.filesCut {
			return // no reply, and no descriptors: dropped (files.go); the reader closes them
		}
		h.doSendBestEffort(hd, p)
		return
	}
	if err := m.Decode(p); err != nil {
		c.replyErrDone(hd, wire.CodeOf(err), "SEND: "+err.Error(), 0)
		return
	}
	lim := c.b.limits.Load()
	if hd.Flags&wire.FlagReceipt != 0 && len(m.Msgs) != 1 {
		c.replyErrDone(hd, wire.CodeInvalid, fmt.Sprintf("send to %q: RECEIPT needs a batch of one message, not %d", m.Target, len(m.Msgs)), 0)
		return
	}
	if why := replyRule(hd, m); why != "" {
		c.replyErrDone(hd, wire.CodeInvalid, fmt.Sprintf("send to %q: %s", m.Target, why), 0)
		return
	}
	var size int64
	for i := range m.Msgs {
		s := &m.Msgs[i]
		switch {
		case s.Type < 1:
			c.replyErrDone(hd, wire.CodeInvalid, fmt.Sprintf("send to %q: message %d: type must be at least 1, not %d", m.Target, i, s.Type), 0)
			return
		case s.Size() > lim.MaxMessage:
			c.replyErrDone(hd, wire.CodeTooLarge, fmt.Sprintf("send to %q: message %d of %d bytes (body and headers) exceeds the limit of %d", m.Target, i, s.Size(), lim.MaxMessage), 0)
			return
		}
		size += int64(s.Size())
	}
	if h.carriesFiles(m) {
		h.sendFiles(hd, m, size) // descriptors with the messages (files.go)
	} else {
		msgs := h.messages(m)
		h.put(hd, m.Target, msgs, size, m.Timeout, nil)
		h.release(msgs)
	}
	if m.AckLease != 0 {
		h.ackLease(m.AckLease) // after the reply: reply-then-ack order
	}
}

// messages makes the mailbox messages of a decoded SEND, in the
// handler's scratch slice (give it back with release).
func (h *handler) messages(m *wire.Send) []*mailbox.Message {
	msgs := h.msgs[:0]
	for i := range m.Msgs {
		s := &m.Msgs[i]
		msg := newMessage(s.Body, s.Headers)
		msg.Type, msg.Priority = s.Type, s.Priority
		msgs = append(msgs, msg)
	}
	return msgs
}

// release gives the scratch slice messages returned back, dropping its
// references to the messages.
func (h *handler) release(msgs []*mailbox.Message) {
	clear(msgs)
	h.msgs = msgs[:0]
}

// put sends msgs (a SEND's messages, or a CHANNEL's offer) to the target
// name names, in order, once the Authorizer allows it. size is the
// messages' total.
func (h *handler) put(hd wire.Header, name []byte, msgs []*mailbox.Message, size, timeout int64, off *offer) {
	c := h.c
	if isFanOut(name) {
		h.fanOut(hd, name, msgs, size, off) // groups.go
		return
	}
	t, code, why := c.b.resolve(name)
	if t == nil && code == wire.CodeNotFound && hd.Flags&wire.FlagReply != 0 {
		// A reply to an inbox that is gone: its caller is too.
		h.sreq = sendRequest{c: c, hd: hd, ids: &h.ids}
		dropReply(&h.sreq)
		h.sreq = sendRequest{}
		return
	}
	if t == nil {
		c.sendErr(hd, name, off, 0, code, why)
		return
	}
	if c.b.auth.Authorize(c.who, t.object(), ActSend) != nil {
		c.sendErr(hd, name, off, 0, wire.CodePermission, "permission denied")
		return
	}
	for _, msg := range msgs {
		msg.Sender = c.ident
		msg.SentUnixNano = h.now
		msg.Urgent = hd.Op == wire.OpSend && hd.Flags&wire.FlagUrgentMsg != 0 // withdraw.go
	}
	// The request lives in the handler: a target keeps nothing of it, and
	// passing it through the interface allocates nothing.
	h.sreq = sendRequest{c: c, hd: hd, msgs: msgs, size: size, timeout: timeout, now: h.now, off: off, ids: &h.ids}
	t.send(&h.sreq)
	h.parked = h.sreq.parked
	h.sreq = sendRequest{}
}

// send is target.send for the local queue: the limit checks, the core's
// decisions message by message, and the reply.
func (bx *box) send(sr *sendRequest) {
	c, hd, msgs, off, timeout := sr.c, sr.hd, sr.msgs, sr.off, sr.timeout
	if bx.pipe != nil && !bx.pipeMayWrite(sr) {
		return
	}
	if sr.bestEffort {
		bx.sendBestEffort(sr) // no reply: none of what follows
		return
	}
	lim := c.b.limits.Load()
	fail := func(done int, code wire.Code, format string, args ...any) {
		c.sendErr(hd, []byte(bx.name), off, done, code, fmt.Sprintf(format, args...))
	}
	switch {
	case off != nil && bx.durable:
		fail(0, wire.CodeInvalid, "a channel offer cannot go to a durable mailbox")
		return
	case len(msgs) > 1 && bx.core.Config().Capacity == 0: // Config never changes after New
		// Every message to a rendezvous mailbox is receipted, and a
		// receipt names the one receiver of the one message.
		fail(0, wire.CodeInvalid, "a rendezvous mailbox (capacity 0) takes one message per SEND, not %d", len(msgs))
		return
	}
	if hd.Op == wire.OpSend && off == nil && bx.claim(sr) {
		return // a CALL's reply, handed to it
	}
	if hd.Flags&wire.FlagReply != 0 && hd.Op == wire.OpSend {
		dropReply(sr) // a reply nobody waits for any more
		return
	}
	receipt := hd.Flags&wire.FlagReceipt != 0
	if err := c.b.quota.of(c.ident).fits(sr.size); err != nil {
		fail(0, wire.CodeLimit, "%v", err) // the sender's quota, before the broker's limit
		return
	}

	var r completions
	bx.mu.Lock()
	// Checked against the total before this send is added: concurrent
	// sends to other mailboxes may pass the limit by a frame each.
	if c.b.held.Load()+c.b.out.Load()+sr.size > lim.MaxQueuedBytes { // out: backlog.go
		bx.mu.Unlock()
		fail(0, wire.CodeLimit, "the broker holds %d bytes of messages, its limit", lim.MaxQueuedBytes)
		return
	}
	before := bx.core.HeldBytes()
	ids := (*sr.ids)[:0]
	var st step
	// steps[i] is the records admitting message i wrote: a durable
	// mailbox's reply says how many leading messages were made durable.
	var steps []step
	if bx.durable {
		steps = make([]step, 0, len(msgs))
	}
	var err error
	var res mailbox.Result
	waiting := false
	for n := 0; n < len(msgs); n++ {
		msg := msgs[n]
		var done bool
		res, done, err = bx.core.Send(msg, receipt, nil)
		if err == mailbox.ErrFull && timeout != 0 {
			if !c.register(hd.Request) {
				err = errInFlight
				break
			}
			pd := &pending{c: c, req: hd.Request, op: hd.Op, urgent: hd.Urgent(), box: bx, offer: off}
			pd.send = &mailbox.Sender{Ref: pd, Endpoint: c.id}
			res, done, err = bx.core.Send(msg, receipt, pd.send)
			if err == nil && !done {
				st.join(c.b.apply(bx, bx.core.Effects(), &r))
				pd.batch = &sendBatch{msgs: slices.Clone(msgs[n:]), admitted: slices.Clone(msgs[:n]),
					ids: slices.Clone(ids), st: st, steps: steps, receipt: receipt}
				// The deadline is fixed when the request starts: it bounds
				// every wait of the batch.
				if timeout > 0 {
					timeout = max(1, sr.now+timeout-time.Now().UnixNano())
				}
				c.wait(pd, timeout)
				waiting = true
				sr.parked = true
				break
			}
			c.finish(pd)
		}
		ms := c.b.apply(bx, bx.core.Effects(), &r)
		st.join(ms)
		if err != nil {
			break
		}
		ids = append(ids, res.Seq)
		if steps != nil {
			steps = append(steps, ms)
		}
		if ms.refused != nil {
			break // the disk is full: admit no more (the reply is STORAGE)
		}
	}
	c.b.account(bx, before)
	bx.mu.Unlock()
	r.run()
	*sr.ids = ids[:0]
	if waiting {
		return
	}

	n := len(ids)
	switch {
	case err != nil && !st.wrote():
		c.sendFailed(hd, bx, off, err, n)
	case err != nil:
		admitted := slices.Clone(msgs[:n])
		c.b.after(&r, st, func(serr error) {
			if serr != nil {
				c.storageFailed(hd, bx, off, admitted, steps, serr)
				return
			}
			c.sendFailed(hd, bx, off, err, n)
		})
		r.run()
	case !st.wrote():
		c.sendDone(hd, off, ids, res.Taken, res.Receipt)
	default:
		admitted, ids := slices.Clone(msgs[:len(ids)]), slices.Clone(ids)
		taken, who := res.Taken, res.Receipt
		c.b.after(&r, st, func(serr error) {
			if serr != nil {
				c.storageFailed(hd, bx, off, admitted, steps, serr)
				return
			}
			c.sendDone(hd, off, ids, taken, who)
		})
		r.run()
	}
}

// sendErr answers a SEND (with DONE) or a CHANNEL (dropping its offer)
// with an error. target, if not nil, prefixes the text.
func (c *conn) sendErr(hd wire.Header, target []byte, off *offer, done int, code wire.Code, text string) {
	if hd.Op == wire.OpCall {
		if target != nil {
			text = fmt.Sprintf("call %q: %s", target, text)
		}
		c.callFailed(hd, code, text)
		return
	}
	if target != nil {
		text = fmt.Sprintf("send to %q: %s", target, text)
	}
	if off != nil {
		c.b.dropOffer(off)
		c.replyErr(hd, code, text)
		return
	}
	c.replyErrDone(hd, code, text, done)
}

// storageFailed answers a send whose records did not all become durable:
// STORAGE with DONE = the leading messages whose records did, which stay
// queued; the first whose record failed and those after it are taken back
// (where nobody has taken them yet) and count as not admitted. steps[i]
// is message i's records (nil for a mailbox that is not durable). It
// takes bx's lock: it runs as a completion.
func (c *conn) storageFailed(hd wire.Header, bx *box, off *offer, admitted []*mailbox.Message, steps []step, err error) {
	done := c.b.takeBackUnwritten(bx, admitted, steps)
	code, text := storageError(fmt.Sprintf("send to %q", bx.name), err)
	c.sendErr(hd, nil, off, done, code, text)
}

// takeBackUnwritten takes back the admitted messages from the first whose
// records failed on (see storageFailed) and returns how many lead it. It
// takes bx's lock: it runs as a completion.
func (b *Broker) takeBackUnwritten(bx *box, admitted []*mailbox.Message, steps []step) int {
	done := 0
	for done < len(steps) && steps[done].err() == nil {
		done++
	}
	var written []bool // of admitted[done:]: whose record is on disk all the same
	for i := done + 1; i < len(steps); i++ {
		if written == nil {
			written = make([]bool, len(admitted)-done)
		}
		written[i-done] = steps[i].err() == nil
	}
	b.discard(bx, admitted[done:], written)
	return done
}

// sendFailed answers a send that stopped at a message with err, done
// messages having been admitted.
func (c *conn) sendFailed(hd wire.Header, bx *box, off *offer, err error, done int) {
	code, text := wire.CodeInvalid, fmt.Sprintf("request id %d is already in flight", hd.Request)
	if err != errInFlight {
		code = codeOf(err)
		text = code.String()
		if code == wire.CodeFull && bx.core.Config().Capacity == 0 {
			text = "no receiver is waiting"
		}
	}
	c.sendErr(hd, []byte(bx.name), off, done, code, text)
}

// continueSend admits a pending SEND's next messages once the one it
// waited for is in. It takes p.box.mu: it runs as a completion.
func (b *Broker) continueSend(p *pending) {
	c, bx, bt := p.c, p.box, p.batch
	var r completions
	bx.mu.Lock()
	before := bx.core.HeldBytes()
	err := bt.err
	if err == nil && c.gone.Load() {
		// Its connection is going: cleanup's Disconnect, which takes this
		// lock after gone is set, would not find a sender registered
		// later.
		err = mailbox.ErrClosed
	}
	for err == nil && len(bt.msgs) > 0 {
		msg := bt.msgs[0]
		p.send = &mailbox.Sender{Ref: p, Endpoint: c.id}
		res, done, e := bx.core.Send(msg, bt.receipt, p.send)
		ms := b.apply(bx, bx.core.Effects(), &r)
		bt.st.join(ms)
		if e != nil {
			err = e
			break
		}
		if !done { // waiting again; p's timer still runs
			b.account(bx, before)
			bx.mu.Unlock()
			r.run()
			return
		}
		bt.admitted = append(bt.admitted, msg)
		if bx.durable {
			bt.steps = append(bt.steps, ms)
		}
		bt.ids = append(bt.ids, res.Seq)
		bt.msgs = bt.msgs[1:]
		bt.taken, bt.who = res.Taken, res.Receipt
		if ms.refused != nil {
			break // the disk is full: admit no more (the reply is STORAGE)
		}
	}
	c.finish(p)
	if err != nil {
		b.batchFailed(&r, p, err, step{})
	} else {
		b.batchDone(&r, p)
	}
	b.account(bx, before)
	bx.mu.Unlock()
	r.run()
}

// header is the header of p's final reply: in the urgent lane if p was
// URGENT or ended by a CANCEL. A CONSUME's final reply never is: its
// DELIVERs travel in the data lane, and the reply that ends the stream
// must stay the last frame with its id (an urgent one could overtake
// deliveries already queued, which the client would then have no
// stream for, losing auto-acked messages and stranding leases).
func (p *pending) header(err error) wire.Header {
	hd := wire.Header{Op: p.op, Request: p.req}
	if p.op != wire.OpConsume && (p.urgent || errors.Is(err, mailbox.ErrCanceled)) {
		hd.Flags = wire.FlagUrgent
	}
	return hd
}

// batchDone answers a pending SEND whose messages are all admitted, once
// their records are durable. p is finished; bx.mu may be held.
func (b *Broker) batchDone(r *completions, p *pending) {
	bt := p.batch
	hd := p.header(nil)
	b.after(r, bt.st, func(err error) {
		if err != nil {
			b.batchStorage(p, hd, err)
			return
		}
		p.c.sendDone(hd, p.offer, bt.ids, bt.taken, bt.who)
	})
}

// batchFailed answers a pending SEND that ended with err, once the
// records of the messages it admitted (and st, the current step's) are
// durable. p is finished; bx.mu may be held.
func (b *Broker) batchFailed(r *completions, p *pending, err error, st step) {
	bt := p.batch
	if off := p.offer; off != nil {
		r.add(func() { b.dropOffer(off) }) // stops a timer, closes files
	}
	all := bt.st
	all.join(st)
	hd := p.header(err)
	code := codeOf(err)
	text := fmt.Sprintf("send to %q: %s", p.box.name, code)
	b.after(r, all, func(serr error) {
		if serr != nil {
			b.batchStorage(p, hd, serr)
			return
		}
		switch {
		case p.op == wire.OpCall:
			p.c.callFailed(hd, code, text)
		case p.offer != nil:
			p.c.replyErr(hd, code, text)
		default:
			p.c.replyErrDone(hd, code, text, len(bt.ids))
		}
	})
}

// batchStorage answers a pending SEND whose records failed (see
// storageFailed). It takes the box's lock: it runs as a completion.
func (b *Broker) batchStorage(p *pending, hd wire.Header, err error) {
	p.c.storageFailed(hd, p.box, p.offer, p.batch.admitted, p.batch.steps, err)
}

// discard takes messages whose records could not be written back out of
// their mailbox, if nobody has taken them yet: their sender is told they
// were not admitted, so they should not be delivered. (One already
// delivered stays delivered: at least once.) written[i], if given, says
// msgs[i]'s own record reached the disk although an earlier one of its
// batch did not: its removal is recorded too, or a restart would bring it
// back. It takes bx.mu, so it runs as a completion, never under a mailbox
// lock.
func (b *Broker) discard(bx *box, msgs []*mailbox.Message, written []bool) {
	var r completions
	bx.mu.Lock()
	before := bx.core.HeldBytes()
	for i, msg := range msgs {
		if bx.core.Discard(msg) {
			b.apply(bx, bx.core.Effects(), &r)
			if written != nil && written[i] && bx.durable && b.st != nil && !bx.core.Destroyed() {
				b.st.Ack(bx.name, msg.Seq)
			}
		}
	}
	b.account(bx, before)
	bx.mu.Unlock()
	r.run()
}

// sendDone answers a completed SEND, or a CHANNEL whose offer was placed.
func (c *conn) sendDone(hd wire.Header, off *offer, ids []uint64, taken bool, who mailbox.Identity) {
	if hd.Op == wire.OpCall {
		c.callAdmitted(hd.Request, ids[0])
		return
	}
	if off != nil {
		c.channelReply(hd, ids[0], off)
		return
	}
	c.sendReply(hd, ids, taken, who)
}

// sendReply queues a SEND's OK reply.
func (c *conn) sendReply(hd wire.Header, ids []uint64, taken bool, who mailbox.Identity) {
	m := wire.SendReply{IDs: ids, Taken: taken, Receipt: wireIdentity(who)}
	if taken {
		m.Ext = wire.AppendPrincipalName(nil, who.Name)
	}
	h := replyHeader(hd, wire.OK)
	c.w.Append(h.Urgent(), func(b []byte) []byte {
		b, off := wire.StartFrame(b, h)
		return wire.FinishFrame(m.Append(b), off)
	})
}
