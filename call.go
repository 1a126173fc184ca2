package postbox

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/postbox-ipc/postbox/internal/mux"
	"github.com/postbox-ipc/postbox/wire"
)

// Request and reply (RPC): Mailbox.Call sends a request and waits for
// its reply in one round trip (the CALL frame); the server answers with
// Message.Reply, and learns from Message.Interrupted that its caller gave
// up. The broker's rules are in docs/PROTOCOL.md ("CALL", "INTERRUPT").

// Outcome says what became of a call's request when the call ended
// without a reply (CallError).
type Outcome uint8

const (
	// OutcomeUnknown: the broker did not say (no answer within the reply
	// grace, or the connection was lost): the request may have run, may
	// be running, or may never run.
	OutcomeUnknown Outcome = 0
	// OutcomeWithdrawn: the request was still queued (or waiting to be
	// admitted); the broker removed it, and no receiver will see it.
	OutcomeWithdrawn = Outcome(wire.OutcomeWithdrawn)
	// OutcomeInProgress: a receiver (CallError.Receiver) holds the
	// request; the broker interrupted it (Message.Interrupted).
	OutcomeInProgress = Outcome(wire.OutcomeInProgress)
	// OutcomeSettled: a receiver (CallError.Receiver) took the request
	// and acked it, but its reply did not come in time.
	OutcomeSettled = Outcome(wire.OutcomeSettled)
)

func (o Outcome) String() string {
	switch o {
	case OutcomeUnknown:
		return "outcome unknown"
	case OutcomeWithdrawn:
		return "withdrawn"
	case OutcomeInProgress:
		return "in progress"
	case OutcomeSettled:
		return "settled"
	case OutcomeNoSuchMessage:
		return "no such message" // withdraw.go
	}
	return fmt.Sprintf("outcome %d", uint8(o))
}

// CallError is the error of a call that ended without a reply once its
// request had been sent: cancelled, timed out, or unanswered by the
// broker. It unwraps to the cause, so errors.Is(err, ErrCanceled),
// ErrTimeout, context.Canceled, context.DeadlineExceeded and
// ErrUnknownOutcome work as for any call.
type CallError struct {
	// Outcome says where the request went.
	Outcome Outcome
	// Receiver is who holds (OutcomeInProgress) or took (OutcomeSettled)
	// the request; zero otherwise.
	Receiver Identity
	// Err is why the call ended.
	Err error
}

func (e *CallError) Error() string {
	switch e.Outcome {
	case OutcomeWithdrawn:
		return e.Err.Error() + "; the request was withdrawn: no receiver saw it"
	case OutcomeInProgress:
		return fmt.Sprintf("%v; the request is in progress at endpoint %d (pid %d), which was interrupted",
			e.Err, e.Receiver.Endpoint, e.Receiver.PID)
	case OutcomeSettled:
		return fmt.Sprintf("%v; the request was taken and settled by endpoint %d (pid %d), without a reply",
			e.Err, e.Receiver.Endpoint, e.Receiver.PID)
	}
	return e.Err.Error()
}

func (e *CallError) Unwrap() error { return e.Err }

// Call sends body to the mailbox as a request and waits for the reply, in
// one round trip (CALL). ReplyTo is the caller's inbox; CorrelationID is
// generated (16 bytes, unique on this client) unless given. The context
// bounds the whole call, the request's admission included; its deadline
// also becomes the MessageDeadline header unless one is given. Options:
// Type, Priority, CorrelationID, ContentType, WithHeader, MessageDeadline.
//
// The reply is the message the server answered with (Message.Reply, or
// any one-message send to this client's inbox with the request's
// CorrelationID); its ID is 0, as it never entered a mailbox, and it has
// no lease. If the call ends without one after the request was sent, the
// error is a *CallError saying what became of the request. An error
// before that (ErrNotFound, ErrPermission, ErrFull...) is the broker's
// refusal: the request was not admitted. Call is safe for concurrent use;
// concurrent calls on one client each get their own reply.
func (m *Mailbox) Call(ctx context.Context, body []byte, opts ...CallOption) (*Message, error) {
	o := sendOptions{typ: 1}
	for _, opt := range opts {
		opt.applyCall(&o)
	}
	if o.typ < 1 {
		return nil, fmt.Errorf("%w: call %q: message type must be at least 1", ErrInvalid, m.name)
	}
	c := m.c
	if ctx.Err() != nil {
		return nil, contextEnded(ctx, fmt.Sprintf("call %q", m.name))
	}
	timeout := timeoutOf(ctx, false)
	if timeout == 0 {
		return nil, contextEnded(ctx, fmt.Sprintf("call %q", m.name)) // the deadline passed
	}
	var corr [16]byte
	if o.hdr.correlationID == nil {
		c.newCorrelation(&corr)
		o.hdr.correlationID = corr[:]
	}
	if o.hdr.deadline.IsZero() {
		o.hdr.deadline, _ = ctx.Deadline()
	}
	cl := c.conn().NewCall()
	var lk *link
	for {
		// REPLY_TO is the inbox of the connection the call goes on: after
		// a reconnect, the new one's.
		lk = c.link()
		o.hdr.replyTo = lk.inbox
		// Room for REPLY_TO, CORRELATION_ID and DEADLINE: one allocation.
		hdr, err := appendHeaders(make([]byte, 0, 4+len(lk.inbox)+4+len(o.hdr.correlationID)+12+32), &o.hdr)
		if err != nil {
			lk.m.Release(cl)
			return nil, fmt.Errorf("call %q: %w", m.name, err)
		}
		msgs := [1]wire.SendMsg{{Type: o.typ, Priority: o.priority, Headers: hdr, Body: body}}
		req := wire.Send{Target: []byte(m.name), Timeout: timeout, Msgs: msgs[:]}
		err = lk.m.Start(cl, wire.OpCall, 0, req.Append)
		if err == nil {
			break
		}
		if c.rc != nil {
			err = c.rc.awaitNext(ctx, c, lk, fmt.Sprintf("call %q", m.name))
		}
		if err != nil || c.rc == nil {
			lk.m.Release(cl)
			return nil, err
		}
	}
	err := lk.m.Await(ctx, cl)
	var msg *Message
	switch {
	case errors.Is(err, mux.ErrNoReply):
		err = &CallError{Err: &ctxError{op: fmt.Sprintf("call %q", m.name), cause: ctx.Err(), unknown: true, grace: c.grace}}
	case err != nil:
		err = &CallError{Err: err} // the connection was lost
	case cl.Status == wire.OK:
		var rep wire.CallReply
		if rep.Decode(cl.Payload) != nil {
			err = fmt.Errorf("%w: call %q: undecodable reply", ErrMalformed, m.name)
		} else if msg = c.messageOf(&rep.Delivery, lk.inbox); msg == nil {
			err = fmt.Errorf("%w: call %q: undecodable reply headers", ErrMalformed, m.name)
		}
	default:
		err = c.callError(ctx, cl)
	}
	c.conn().Release(cl)
	if err != nil {
		return nil, err
	}
	return msg, nil
}

// callError is the error of a CALL's error reply.
func (c *Client) callError(ctx context.Context, cl *mux.Call) error {
	var err error = &Error{Code: cl.Status, Msg: cl.Msg}
	if cl.Status == wire.CodeCanceled && ctx.Err() != nil {
		// Cancelled on our CANCEL: say why the context ended.
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = &Error{Code: wire.CodeTimeout, Msg: cl.Msg + " (deadline)"}
		} else {
			err = fmt.Errorf("%w: %w", err, ctx.Err())
		}
	}
	outcome, who, _, derr := wire.CallOutcome(cl.Ext)
	if derr != nil || outcome == 0 {
		// Not admitted: the broker's refusal.
		if cl.Status == wire.CodeInvalid && strings.Contains(cl.Msg, callInFlightText) {
			return &callInFlightError{err.(*Error)}
		}
		return err
	}
	return &CallError{Outcome: Outcome(outcome), Receiver: identityWithName(who, cl.Ext), Err: err}
}

// callInFlightText is how the broker's INVALID refusal of a CALL says
// that a call with its CORRELATION_ID is already waiting on the endpoint
// (broker/call.go, conn.addCall): the status alone does not tell this
// refusal from the other INVALID ones.
const callInFlightText = "a call with this CORRELATION_ID is already waiting"

// callInFlightError is the broker's refusal of a CALL whose
// CORRELATION_ID another waiting CALL holds: it matches ErrCallInFlight,
// and through the *Error it wraps, ErrInvalid.
type callInFlightError struct{ refusal *Error }

func (e *callInFlightError) Error() string        { return e.refusal.Error() }
func (e *callInFlightError) Is(target error) bool { return target == ErrCallInFlight }
func (e *callInFlightError) Unwrap() error        { return e.refusal }

// newCorrelation fills id with a CORRELATION_ID no other call of this
// client uses: a random prefix fixed per client, and a counter.
func (c *Client) newCorrelation(id *[16]byte) {
	copy(id[:8], c.corrPrefix[:])
	binary.LittleEndian.PutUint64(id[8:], c.corrSeq.Add(1))
}

// Reply answers a request (a message with ReplyTo and CorrelationID) with
// body, using the REPLY flag: the reply reaches the caller if its call
// still waits, and is otherwise dropped (never queued); claimed reports
// which. Options: ContentType, WithHeader, AckRequest. A request whose
// ReplyTo is a named mailbox rather than an inbox (not a Call's) gets an
// ordinary send there, and claimed is true once it is queued.
//
// Reply does not settle the request: Ack it after replying (or reply
// with AckRequest), so that a server that dies before replying leaves it
// to be redelivered.
func (m *Message) Reply(ctx context.Context, body []byte, opts ...ReplyOption) (claimed bool, err error) {
	var o replyOptions
	for _, opt := range opts {
		opt.applyReply(&o)
	}
	to, corr := m.ReplyTo(), m.CorrelationID()
	if to == "" || corr == nil {
		return false, fmt.Errorf("%w: reply to message %d of %q: it has no ReplyTo and CorrelationID: not a request", ErrInvalid, m.ID, m.Mailbox)
	}
	if m.c == nil || m.browsed {
		return false, fmt.Errorf("%w: reply to message %d of %q: not a received message", ErrInvalid, m.ID, m.Mailbox)
	}
	inbox := to[0] == '@'
	if o.ack && (m.lease == 0 || !inbox || m.stale()) { // stale: the deferred Ack says ErrStaleLease
		o.ack = false // nothing to ack, or no REPLY send to carry it: Ack below
		defer func() {
			if err == nil && m.lease != 0 {
				err = m.Ack(ctx)
			}
		}()
	}
	o.hdr.correlationID = corr
	hdr, err := appendHeaders(make([]byte, 0, 4+len(corr)+32), &o.hdr)
	if err != nil {
		return false, fmt.Errorf("reply to %q: %w", to, err)
	}
	c := m.c
	var flags uint8
	req := wire.Send{Target: []byte(to), Msgs: []wire.SendMsg{{Type: 1, Headers: hdr, Body: body}}}
	if inbox {
		flags = wire.FlagReply
		if o.ack {
			req.AckLease = m.lease
		}
	} else {
		req.Timeout = timeoutOf(ctx, false)
	}
	cl := c.conn().NewCall()
	if _, err := c.start(ctx, cl, wire.OpSend, flags, req.Append); err != nil {
		c.conn().Release(cl)
		return false, err
	}
	err = c.wait(ctx, cl, wire.OpSend, to)
	claimed = err == nil && (cl.Send.Taken || !inbox)
	c.conn().Release(cl)
	if err != nil {
		return false, fmt.Errorf("reply: %w", err)
	}
	if o.ack {
		c.intr.forget(m.lease)
	}
	return claimed, nil
}

type ackRequestOption struct{}

func (ackRequestOption) applyReply(o *replyOptions) { o.ack = true }

// AckRequest (Reply) acks the request together with the reply: the
// broker acks its lease right after handling the reply (one frame, reply
// first). Do not Ack the message again after it. An ack that fails (the
// lease was lost) is ignored, as AckNoWait's.
func AckRequest() ReplyOption { return ackRequestOption{} }

// randomPrefix returns 8 random bytes for a client's correlation ids.
func randomPrefix() (p [8]byte) {
	rand.Read(p[:])
	return p
}
