package postbox

import (
	"context"
	"fmt"

	"github.com/postbox-ipc/postbox/wire"
)

// The urgent lane and withdrawal (docs/PROTOCOL.md 8.19).
//
// An urgent message (the SendOption Urgent) is delivered ahead of
// everything queued in its mailbox that is not urgent, whatever the
// priorities, FIFO among urgent messages; a receiver's Type still
// applies. It enters a full bounded mailbox while fewer than 64 urgent
// messages are queued there, its SEND and its deliveries travel in the
// urgent lane of their connections, and a Consumer hands it out ahead of
// the messages it has prefetched.
//
// A sender takes back messages it sent that nobody has taken yet with
// Mailbox.Withdraw (by id: the Receipt's ID) or Mailbox.WithdrawMatching
// (by CORRELATION_ID or a user header), and learns for each message what
// became of it. Only messages the caller sent (the same uid, or TLS
// name) can be withdrawn, except by the mailbox's owner; naming another
// sender's message fails the whole call with ErrPermission.

type urgentOption struct{}

func (urgentOption) applySend(o *sendOptions)           { o.urgent = true }
func (urgentOption) applyPublisher(o *publisherOptions) { o.urgent = true }

// UrgentOption is what Urgent returns: a SendOption and a PublisherOption.
type UrgentOption interface {
	SendOption
	PublisherOption
}

// Urgent (Send, SendBatch, Publisher): the message is urgent. It is
// delivered ahead of every message in the mailbox that is not urgent, may
// pass a full mailbox by a reserve of 64 urgent messages, and (Send,
// SendBatch) travels in the urgent lane, so it is not stuck behind a
// socket full of queued data. A Publisher's messages are urgent in their
// mailbox, but its frames go in the data lane, in the order it sends
// them: for one message to overtake a stream, Send it.
func Urgent() UrgentOption { return urgentOption{} }

// urgentFlags are the SEND flags Urgent asks for: the message-level
// URGENT_MSG, and the frame-class URGENT so the frame overtakes queued
// data.
func (o *sendOptions) urgentFlags() uint8 {
	if !o.urgent {
		return 0
	}
	return wire.FlagUrgentMsg | wire.FlagUrgent
}

// Urgent reports whether the message was sent Urgent.
func (m *Message) Urgent() bool { return m.flags&wire.DeliveryUrgent != 0 }

// OutcomeNoSuchMessage (a Withdrawal's Outcome): the mailbox never
// accepted a message with that id.
const OutcomeNoSuchMessage = Outcome(wire.OutcomeNoSuchMessage)

// Withdrawal is the outcome for one message: OutcomeWithdrawn (it was
// still queued; it is removed and no receiver will see it),
// OutcomeInProgress (a receiver holds it leased, Holder says who; it
// stays with that receiver), OutcomeSettled (it is no longer in the
// mailbox: delivered and acked or auto-acked, expired, dead-lettered, or
// withdrawn before) or OutcomeNoSuchMessage.
type Withdrawal struct {
	ID      uint64
	Outcome Outcome
	// Holder is the receiver holding the message (OutcomeInProgress only).
	Holder Identity
}

// Match selects messages by one header, for WithdrawMatching.
type Match struct {
	hdr wire.HeaderFields
	any bool
	err error
}

// MatchCorrelationID matches messages whose CORRELATION_ID is id.
func MatchCorrelationID(id []byte) Match {
	var m Match
	if len(id) == 0 {
		m.err = fmt.Errorf("%w: an empty correlation id matches nothing", ErrInvalid)
	}
	m.hdr.CorrelationID = id
	return m
}

// MatchHeader matches messages with the user header key set to value
// (any of its values, if it is repeated).
func MatchHeader(key, value string) Match {
	var m Match
	m.hdr.User = []wire.KV{{Key: []byte(key), Value: []byte(value)}}
	return m
}

// AnySender widens the match to every sender's messages, not only the
// caller's: for the mailbox's owner (ErrPermission for anyone else).
func (m Match) AnySender() Match { m.any = true; return m }

// Withdraw takes back the messages with the given ids (the IDs Send
// returned), if nobody has taken them yet, and returns one Withdrawal per
// id, in order. The request travels in the urgent lane. It fails with
// ErrPermission, withdrawing nothing, if an id names a message the
// mailbox holds that the caller did not send (unless the caller owns the
// mailbox).
func (m *Mailbox) Withdraw(ctx context.Context, ids ...uint64) ([]Withdrawal, error) {
	out := make([]Withdrawal, 0, len(ids))
	for len(ids) > 0 {
		n := min(len(ids), wire.MaxWithdrawIDs)
		rep, err := m.withdraw(ctx, 0, &wire.Withdraw{Name: []byte(m.name), IDs: ids[:n]})
		if err != nil {
			return out, err
		}
		out = appendWithdrawals(out, rep)
		ids = ids[n:]
	}
	return out, nil
}

// WithdrawMatching takes back the caller's messages (every sender's,
// with Match.AnySender) that the mailbox holds and that match, and
// returns a Withdrawal for each: OutcomeWithdrawn if it was queued,
// OutcomeInProgress if a receiver holds it. They come in id order.
func (m *Mailbox) WithdrawMatching(ctx context.Context, match Match) ([]Withdrawal, error) {
	if match.err != nil {
		return nil, fmt.Errorf("withdraw from %q: %w", m.name, match.err)
	}
	var flags uint8
	if match.any {
		flags = wire.FlagAnySender
	}
	req := wire.Withdraw{Name: []byte(m.name), Match: wire.AppendHeaders(nil, &match.hdr)}
	var out []Withdrawal
	for {
		rep, err := m.withdraw(ctx, flags, &req)
		if err != nil {
			return out, err
		}
		out = appendWithdrawals(out, rep)
		if !rep.More || len(rep.Outcomes) == 0 {
			return out, nil
		}
		req.After = rep.Outcomes[len(rep.Outcomes)-1].ID
	}
}

func (m *Mailbox) withdraw(ctx context.Context, flags uint8, req *wire.Withdraw) (*wire.WithdrawReply, error) {
	p, err := m.c.roundTrip(ctx, wire.OpWithdraw, flags|wire.FlagUrgent, req.Append)
	if err != nil {
		return nil, fmt.Errorf("withdraw from %q: %w", m.name, err)
	}
	var rep wire.WithdrawReply
	if err := rep.Decode(p); err != nil {
		return nil, fmt.Errorf("%w: WITHDRAW reply", ErrMalformed)
	}
	return &rep, nil
}

func appendWithdrawals(out []Withdrawal, rep *wire.WithdrawReply) []Withdrawal {
	for _, o := range rep.Outcomes {
		w := Withdrawal{ID: o.ID, Outcome: Outcome(o.Outcome)}
		if w.Outcome == OutcomeInProgress {
			w.Holder = identityOf(o.Holder)
		}
		out = append(out, w)
	}
	return out
}
