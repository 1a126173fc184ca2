package broker

import (
	"fmt"

	"github.com/postbox-ipc/postbox/mailbox"
	"github.com/postbox-ipc/postbox/wire"
)

// WITHDRAW: a sender takes back messages it sent that nobody has taken
// yet, by id or by a header match (docs/PROTOCOL.md 8.19), and hears
// what became of each (mailbox.WithdrawIDs, WithdrawMatching).
//
// Who may withdraw what: the Authorizer is asked ActWithdraw on the
// mailbox. A principal it allows (ModeAuthorizer: the owner, root, an
// inbox's endpoint) may withdraw anybody's messages by id, and by a match
// with ANY_SENDER. Anyone else may withdraw only messages it sent itself
// (mailbox.SameSender: the same uid, TLS name, or endpoint): an id naming
// a held message of another sender refuses the whole request with
// PERMISSION, and a match only ever looks at its own messages.
//
// Withdrawals are journaled like acks; the reply waits until they are on
// disk. A withdrawn offer (a rendezvous or receipted send still waiting)
// fails that send with CANCELED.

// withdrawer is a target whose queued messages can be withdrawn. The
// local queue is one; a target that is not answers INVALID.
type withdrawer interface {
	withdraw(c *conn, hd wire.Header, m *wire.Withdraw, owner bool)
}

var _ withdrawer = (*box)(nil)

func (h *handler) doWithdraw(hd wire.Header, p []byte) {
	c := h.c
	var m wire.Withdraw
	if !h.decode(hd, p, &m) {
		return
	}
	t, code, why := c.b.resolve(m.Name)
	if t == nil {
		c.replyErr(hd, code, fmt.Sprintf("withdraw from %q: %s", m.Name, why))
		return
	}
	w, ok := t.(withdrawer)
	if !ok {
		c.replyErr(hd, wire.CodeInvalid, fmt.Sprintf("withdraw from %q: this target holds no messages to withdraw", m.Name))
		return
	}
	owner := c.b.auth.Authorize(c.who, t.object(), ActWithdraw) == nil
	if hd.Flags&wire.FlagAnySender != 0 && !owner {
		c.replyErr(hd, wire.CodePermission, fmt.Sprintf("withdraw from %q: ANY_SENDER is for its owner (%s)", m.Name, ownerText(t.object())))
		return
	}
	w.withdraw(c, hd, &m, owner)
}

// withdraw is withdrawer.withdraw for the local queue.
func (bx *box) withdraw(c *conn, hd wire.Header, m *wire.Withdraw, owner bool) {
	var r completions
	var outs []mailbox.Withdrawal
	var more bool
	var err error
	bx.mu.Lock()
	before := bx.core.HeldBytes()
	if len(m.IDs) > 0 {
		outs, err = bx.core.WithdrawIDs(c.ident, owner, m.IDs, nil)
	} else {
		anySender := owner && hd.Flags&wire.FlagAnySender != 0
		match := func(msg *mailbox.Message) bool { return wire.MatchHeaders(m.Match, msg.Headers) }
		outs, more, err = bx.core.WithdrawMatching(c.ident, anySender, m.After, wire.MaxWithdrawIDs, match, nil)
	}
	var st step
	if err == nil {
		st = c.b.apply(bx, bx.core.Effects(), &r)
	}
	c.b.account(bx, before)
	bx.mu.Unlock()
	r.run()
	switch {
	case err == mailbox.ErrNotSender:
		c.replyErr(hd, wire.CodePermission, fmt.Sprintf("withdraw from %q: a message named is not yours to withdraw (its owner %s may)", bx.name, ownerText(bx.object())))
		return
	case err == mailbox.ErrDestroyed:
		c.replyErr(hd, wire.CodeNotFound, fmt.Sprintf("withdraw from %q: no such mailbox", bx.name))
		return
	case err != nil:
		c.replyErr(hd, codeOf(err), fmt.Sprintf("withdraw from %q: %v", bx.name, err))
		return
	}
	rep := wire.WithdrawReply{Outcomes: make([]wire.WithdrawOutcome, len(outs)), More: more}
	for i, o := range outs {
		rep.Outcomes[i] = wire.WithdrawOutcome{ID: o.Seq, Outcome: wireOutcome(o.Outcome)}
		if o.Outcome == mailbox.InProgress {
			rep.Outcomes[i].Holder = wireIdentity(o.Holder)
		}
	}
	if n := withdrawn(outs); n > 0 {
		c.b.log.Info("messages withdrawn", "mailbox", bx.name, "count", n, "by", c.ident.Name, "uid", c.ident.UID)
	}
	c.b.after(&r, st, func(serr error) {
		if serr != nil {
			code, text := storageError(fmt.Sprintf("withdraw from %q", bx.name), serr)
			c.replyErr(hd, code, text)
			return
		}
		h := replyHeader(hd, wire.OK)
		c.w.Append(h.Urgent(), func(b []byte) []byte {
			b, off := wire.StartFrame(b, h)
			return wire.FinishFrame(rep.Append(b), off)
		})
	})
	r.run()
}

// wireOutcome is a withdrawal outcome as the protocol numbers it.
func wireOutcome(o mailbox.Outcome) uint8 {
	switch o {
	case mailbox.Withdrawn:
		return wire.OutcomeWithdrawn
	case mailbox.InProgress:
		return wire.OutcomeInProgress
	case mailbox.Gone:
		return wire.OutcomeSettled
	}
	return wire.OutcomeNoSuchMessage
}

func withdrawn(outs []mailbox.Withdrawal) int {
	n := 0
	for _, o := range outs {
		if o.Outcome == mailbox.Withdrawn {
			n++
		}
	}
	return n
}

// urgentDelivery returns the header and Delivery flags of a delivery of
// msg: an urgent message's travels in the urgent lane, flagged
// DeliveryUrgent.
func urgentDelivery(hd wire.Header, msg *mailbox.Message) (wire.Header, uint8) {
	if !msg.Urgent {
		return hd, msg.Flags
	}
	hd.Flags |= wire.FlagUrgent
	return hd, msg.Flags | wire.DeliveryUrgent
}
