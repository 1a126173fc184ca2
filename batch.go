package postbox

import (
	"context"
	"fmt"
	"time"

	"github.com/postbox-ipc/postbox/wire"
)

// Outgoing is one message of a SendBatch. Zero fields take the batch's
// options (Type, Priority and the headers given to SendBatch), then the
// defaults (type 1, priority 0, no headers).
type Outgoing struct {
	Body     []byte
	Type     int64
	Priority uint8

	ReplyTo       string
	CorrelationID []byte
	ContentType   string
	Deadline      time.Time
	Header        Header
}

// BatchError is the error of a SendBatch that failed part way: the first
// Done messages were queued (and stay queued), the rest were not. It
// unwraps to the cause, so errors.Is(err, ErrFull) and friends work.
// After an error matching ErrUnknownOutcome, Done counts the messages
// known to be queued; some after them may be too.
type BatchError struct {
	Done int
	Err  error
}

func (e *BatchError) Error() string {
	return fmt.Sprintf("%v (batch: the first %d messages were queued, the rest were not)", e.Err, e.Done)
}

func (e *BatchError) Unwrap() error { return e.Err }

// Bodies makes a batch of messages with these bodies (for SendBatch).
func Bodies(bodies ...[]byte) []Outgoing {
	out := make([]Outgoing, len(bodies))
	for i, b := range bodies {
		out[i].Body = b
	}
	return out
}

// SendBatch puts msgs into the mailbox in order, with one SEND frame per
// wire.MaxBatch messages (and per MaxFrame bytes), and returns their ids.
// Options: Type, Priority, NoWait and the headers, applying to every
// message whose own field is zero; WithReceipt is refused (ErrInvalid).
// Every message is checked before any is sent (ErrInvalid). If a message
// cannot be queued (the mailbox is full with NoWait, ctx ends, ...) the
// error is a *BatchError saying how many were (Done). The ids returned
// are those of the frames answered in full, so on a partial failure there
// may be fewer than Done: the broker's error reply does not carry the ids
// of the messages of its frame that it admitted. Bodies may be reused
// when SendBatch returns.
func (m *Mailbox) SendBatch(ctx context.Context, msgs []Outgoing, opts ...SendOption) ([]uint64, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	o := sendDefaults(opts)
	if o.receipt {
		return nil, fmt.Errorf("%w: send batch to %q: WithReceipt applies to one message (use Send)", ErrInvalid, m.name)
	}
	// Encode every message's headers into one arena, then slice it.
	wm := make([]wire.SendMsg, len(msgs))
	var arena []byte
	offs := make([]int, len(msgs)+1)
	base := o.hdr
	for i := range msgs {
		g := &msgs[i]
		typ := g.Type
		if typ == 0 {
			typ = o.typ
		}
		if typ < 1 {
			return nil, fmt.Errorf("%w: send batch to %q: message %d: type must be at least 1", ErrInvalid, m.name, i)
		}
		prio := g.Priority
		if prio == 0 {
			prio = o.priority
		}
		h := outHeaders{replyTo: g.ReplyTo, correlationID: g.CorrelationID, contentType: g.ContentType, deadline: g.Deadline, user: g.Header.sorted()}
		if h.replyTo == "" {
			h.replyTo = base.replyTo
		}
		if h.correlationID == nil {
			h.correlationID = base.correlationID
		}
		if h.contentType == "" {
			h.contentType = base.contentType
		}
		if h.deadline.IsZero() {
			h.deadline = base.deadline
		}
		if h.user == nil {
			h.user = base.user
		}
		offs[i] = len(arena)
		if !h.empty() {
			var err error
			if arena, err = appendHeaders(arena, &h); err != nil {
				return nil, fmt.Errorf("send batch to %q: message %d: %w", m.name, i, err)
			}
		}
		wm[i] = wire.SendMsg{Type: typ, Priority: prio, Body: g.Body}
	}
	offs[len(msgs)] = len(arena)
	for i := range wm {
		if offs[i+1] > offs[i] {
			wm[i].Headers = arena[offs[i]:offs[i+1]:offs[i+1]]
		}
	}
	ids := make([]uint64, 0, len(msgs))
	c := m.c
	limit := c.link().maxFrame
	if limit <= 0 {
		limit = wire.DefaultMaxFrame
	}
	for len(wm) > 0 {
		// As many messages as one frame carries; at least one (a message
		// too large for any frame is the broker's to refuse).
		n, size := 0, wire.HeaderSize+2+len(m.name)+8+2
		for n < len(wm) && n < wire.MaxBatch {
			s := 8 + 1 + 4 + len(wm[n].Headers) + 4 + len(wm[n].Body)
			if n > 0 && size+s > limit {
				break
			}
			size += s
			n++
		}
		got, done, err := m.sendFrame(ctx, wm[:n], o.nowait, o.urgentFlags())
		if err != nil {
			return ids, &BatchError{Done: len(ids) + done, Err: err}
		}
		ids = append(ids, got...)
		wm = wm[n:]
	}
	return ids, nil
}

// sendFrame sends one SEND frame of msgs and returns the ids of the
// messages admitted, or, with an error, how many leading ones were (the
// error's DONE).
func (m *Mailbox) sendFrame(ctx context.Context, msgs []wire.SendMsg, nowait bool, flags uint8) ([]uint64, int, error) {
	c := m.c
	cl := c.conn().NewCall()
	defer c.conn().Release(cl)
	req := wire.Send{Target: []byte(m.name), Timeout: timeoutOf(ctx, nowait), Msgs: msgs}
	if _, err := c.start(ctx, cl, wire.OpSend, flags, req.Append); err != nil {
		return nil, 0, err
	}
	err := c.wait(ctx, cl, wire.OpSend, m.name)
	if err != nil {
		if cl.HasDone {
			return nil, min(int(cl.Done), len(msgs)), err
		}
		return nil, 0, err
	}
	return append([]uint64(nil), cl.Send.IDs...), 0, nil
}
