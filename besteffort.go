package postbox

import (
	"fmt"

	"github.com/postbox-ipc/postbox/wire"
)

// MaxBestEffortBacklog is how many bytes of this client's output may wait
// to be written before SendBestEffort drops messages instead of queueing
// them (ErrDropped): the connection is congested, because the network or
// the broker is not keeping up (a broker stops reading a connection
// whose own output the client is not reading fast enough).
const MaxBestEffortBacklog = 4 << 20

// ErrDropped is returned by SendBestEffort when the client dropped the
// message itself, its connection being congested (see
// MaxBestEffortBacklog). Messages the broker drops are not reported to
// the sender; they are counted in the mailbox's Info.Dropped.
var ErrDropped = fmt.Errorf("%w: dropped: the connection is congested", ErrFull)

// SendBestEffort sends body as a "maybe" message: for telemetry and the
// real-time cases where a late message is worth nothing. It never waits:
// it queues one frame and returns, and the broker sends no reply. The
// broker admits the message if its mailbox has room at once, else drops
// it (full or over MaxBytes, a rendezvous mailbox without a waiting
// receiver, the broker's byte limit or the sender's quota reached) and
// counts the drop in Info.Dropped, which `postbox stat` and `ls` show. A
// send the broker refuses outright (no such mailbox, permission denied)
// is dropped uncounted: best effort means nobody tells the sender.
//
// The error is only for what the client knows locally: ErrClosed, an
// invalid type or header (ErrInvalid), a message over MaxMessage
// (ErrTooLarge), and ErrDropped when the connection's output is already
// MaxBestEffortBacklog bytes behind. nil means queued, not delivered.
//
// Options: Type, Priority and the headers, as for Send. WithReceipt and
// NoWait mean nothing here (there is no reply, and it never waits):
// WithReceipt is ErrInvalid, NoWait is ignored. It is a method of its own
// rather than a Send option because it returns no Receipt and takes no
// context: it cannot block.
func (m *Mailbox) SendBestEffort(body []byte, opts ...SendOption) error {
	o := sendDefaults(opts)
	switch {
	case o.typ < 1:
		return fmt.Errorf("%w: send to %q: message type must be at least 1", ErrInvalid, m.name)
	case o.receipt:
		return fmt.Errorf("%w: send to %q: a best-effort send has no receipt", ErrInvalid, m.name)
	}
	var hdr []byte
	if !o.hdr.empty() {
		var err error
		if hdr, err = appendHeaders(nil, &o.hdr); err != nil {
			return fmt.Errorf("send to %q: %w", m.name, err)
		}
	}
	c := m.c
	if n := len(body) + len(hdr); c.link().maxMessage > 0 && n > c.link().maxMessage {
		return fmt.Errorf("%w: send to %q: message of %d bytes (body and headers) exceeds the broker's limit of %d",
			ErrTooLarge, m.name, n, c.link().maxMessage)
	}
	mc := c.conn()
	if err := mc.Err(); err != nil {
		return err
	}
	if mc.Pending() >= MaxBestEffortBacklog {
		return fmt.Errorf("send to %q: %w", m.name, ErrDropped)
	}
	msgs := [1]wire.SendMsg{{Type: o.typ, Priority: o.priority, Headers: hdr, Body: body}}
	req := wire.Send{Target: []byte(m.name), Msgs: msgs[:]}
	if !mc.Post(false, wire.Header{Op: wire.OpSend, Flags: wire.FlagBestEffort, Request: mc.NewID()}, req.Append) {
		return fmt.Errorf("send to %q: %w", m.name, ErrClosed)
	}
	return nil
}
