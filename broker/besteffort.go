package broker

import (
	"github.com/postbox-ipc/postbox/mailbox"
	"github.com/postbox-ipc/postbox/wire"
)

// Best-effort sends: SEND with BEST_EFFORT.
//
// A best-effort SEND gets no reply, whatever happens, and never waits:
// its timeout is ignored. Once its target resolves and the sender may
// send there, each of its messages is either admitted at once, exactly
// as a SEND with timeout 0 would admit it, or dropped and counted in the
// target's dropped counter (MailboxInfo DROPPED). A message is dropped
// when its mailbox is full or over MAX_BYTES (a rendezvous mailbox
// without a waiting receiver is full), when the broker's bytes limit or
// the sender's quota would be passed, when the frame breaks a rule a
// SEND would be refused for (a type below 1, a message over max
// message: the whole frame is dropped), or when a durable mailbox's
// record of it fails. Admission stops at the first message dropped: it
// and those after it are dropped, so a batch's admitted messages are
// always a prefix, in order, as a SEND's DONE says.
//
// Frames that name no mailbox, a malformed address, or a mailbox the
// sender may not send to are dropped uncounted (no mailbox to count, or
// none whose counter the sender may move), and so are frames that do not
// decode or that set RECEIPT or REPLY (which promise a reply).
//
// The sender's connection being congested is the client's concern: the
// broker stops reading a connection whose output is over its backlog
// bound (backlog.go), and the Go client then drops best-effort messages
// itself rather than queue them (postbox.Mailbox.SendBestEffort).

// doSendBestEffort carries out a SEND with BEST_EFFORT.
func (h *handler) doSendBestEffort(hd wire.Header, p []byte) {
	c, m := h.c, &h.send
	if m.Decode(p) != nil || hd.Flags&(wire.FlagReceipt|wire.FlagReply) != 0 || m.AckLease != 0 {
		return
	}
	if isFanOut(m.Target) {
		h.fanOutBestEffort(hd, m) // groups.go
		return
	}
	t, _, _ := c.b.resolve(m.Target)
	if t == nil || c.b.auth.Authorize(c.who, t.object(), ActSend) != nil {
		return
	}
	lim := c.b.limits.Load()
	var size int64
	for i := range m.Msgs {
		s := &m.Msgs[i]
		if s.Type < 1 || s.Size() > lim.MaxMessage {
			t.dropped(len(m.Msgs))
			return
		}
		size += int64(s.Size())
	}
	msgs := h.messages(m)
	for _, msg := range msgs {
		msg.Sender, msg.SentUnixNano = c.ident, h.now
		msg.Urgent = hd.Flags&wire.FlagUrgentMsg != 0 // withdraw.go
	}
	h.sreq = sendRequest{c: c, hd: hd, msgs: msgs, size: size, now: h.now, ids: &h.ids, bestEffort: true}
	t.send(&h.sreq)
	h.sreq = sendRequest{}
	h.release(msgs)
}

// dropped is target.dropped for the local queue.
func (bx *box) dropped(n int) { bx.ndropped.Add(uint64(n)) }

// sendBestEffort is box.send for a best-effort SEND: admit what fits
// now, drop and count the rest, reply nothing.
func (bx *box) sendBestEffort(sr *sendRequest) {
	c, msgs := sr.c, sr.msgs
	if len(msgs) == 1 && bx.claim(sr) {
		return // a CALL's reply, handed to it
	}
	lim := c.b.limits.Load()
	if c.b.quota.of(c.ident).fits(sr.size) != nil {
		bx.dropped(len(msgs))
		return
	}
	var r completions
	bx.mu.Lock()
	if c.b.held.Load()+c.b.out.Load()+sr.size > lim.MaxQueuedBytes {
		bx.mu.Unlock()
		bx.dropped(len(msgs))
		return
	}
	before := bx.core.HeldBytes()
	var st step
	var steps []step // durable: steps[i] is admitting msgs[i]'s records
	if bx.durable {
		steps = make([]step, 0, len(msgs))
	}
	n := 0
	for ; n < len(msgs); n++ {
		_, _, err := bx.core.Send(msgs[n], false, nil) // nil sender: ErrFull instead of a wait
		ms := c.b.apply(bx, bx.core.Effects(), &r)
		st.join(ms)
		if err != nil {
			break
		}
		if steps != nil {
			steps = append(steps, ms)
		}
		if ms.refused != nil {
			n++
			break // the disk is full: admit no more
		}
	}
	c.b.account(bx, before)
	bx.mu.Unlock()
	if n < len(msgs) {
		bx.dropped(len(msgs) - n)
	}
	if st.wrote() {
		admitted := append([]*mailbox.Message(nil), msgs[:n]...)
		c.b.after(&r, st, func(err error) {
			if err != nil {
				done := c.b.takeBackUnwritten(bx, admitted, steps)
				bx.dropped(len(admitted) - done)
			}
		})
	}
	r.run()
}
