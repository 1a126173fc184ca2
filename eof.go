package postbox

import (
	"context"

	"github.com/postbox-ipc/postbox/wire"
)

// CloseSend closes the mailbox for sending: the producers are done.
// Receivers take what is queued and then get ErrEndOfStream (Receive, a
// Consumer's Next) instead of waiting; a Send fails with ErrEndOfStream.
// A receiver with a type selector ends once nothing it could take is
// left, queued or leased. A durable mailbox stays closed across a broker
// restart. It needs send permission and does nothing to a mailbox already
// closed. ReopenSend undoes it.
func (m *Mailbox) CloseSend(ctx context.Context) error {
	return m.shut(ctx, 0)
}

// ReopenSend opens a mailbox closed by CloseSend for sending again.
// Receivers that already got ErrEndOfStream are done; those still
// waiting go on.
func (m *Mailbox) ReopenSend(ctx context.Context) error {
	return m.shut(ctx, wire.FlagReopen)
}

func (m *Mailbox) shut(ctx context.Context, flags uint8) error {
	req := wire.Name{Name: []byte(m.name)}
	_, err := m.c.roundTrip(ctx, wire.OpShut, flags, req.Append)
	return err
}
