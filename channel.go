package postbox

import (
	"context"
	"fmt"
	"os"

	"github.com/postbox-ipc/postbox/internal/mux"
	"github.com/postbox-ipc/postbox/wire"
)

// Shared-memory channels are set up through the broker and then bypass
// it. The broker checks that the offering client may send to the target,
// creates the channel's memory (a memfd: nothing in /dev/shm) and hands
// each side its descriptors over the Unix socket. Package shm/shmbroker
// turns the descriptors into a shm.Chan; these calls are the protocol
// underneath.

// IsChannelOffer reports whether m is a shared-memory channel offer (see
// OfferChannel): its Body is the token to AttachChannel with.
func (m *Message) IsChannelOffer() bool { return m.flags&wire.DeliveryChannelOffer != 0 }

// ChannelFiles are one side's descriptors of a shared-memory channel: the
// segment memfd and the control socket. The caller owns and must close
// them (shm.Attach does not take ownership).
type ChannelFiles struct{ Mem, Ctl *os.File }

// Close closes both files.
func (f ChannelFiles) Close() error {
	err1, err2 := f.Mem.Close(), f.Ctl.Close()
	if err1 != nil {
		return err1
	}
	return err2
}

// OfferChannel asks the broker for a shared-memory channel to whoever
// receives the offer from target (a mailbox, or "@id" for one endpoint),
// and returns side A's files. The offer is sent like a message (of the
// SendOptions, Type, Priority and NoWait apply; headers and WithReceipt
// are refused with ErrInvalid; the caller needs write permission on
// target); ringSize 0 takes the default. Whoever receives it calls
// AttachChannel within a minute, or the offer lapses and side A sees its
// peer gone.
func (c *Client) OfferChannel(ctx context.Context, target string, ringSize uint32, opts ...SendOption) (ChannelFiles, uint64, error) {
	o := sendDefaults(opts)
	if o.receipt || !o.hdr.empty() {
		return ChannelFiles{}, 0, fmt.Errorf("%w: channel offer to %q: headers and WithReceipt do not apply", ErrInvalid, target)
	}
	if !c.conn().HasFiles() {
		return ChannelFiles{}, 0, fmt.Errorf("%w: channel offer to %q: the connection cannot pass descriptors (not a Unix socket)", ErrInvalid, target)
	}
	req := wire.Channel{Target: []byte(target), Type: o.typ, Priority: o.priority, Timeout: timeoutOf(ctx, o.nowait), RingSize: ringSize}
	cl := c.conn().NewCall()
	if _, err := c.start(ctx, cl, wire.OpChannel, 0, req.Append); err != nil {
		c.conn().Release(cl)
		return ChannelFiles{}, 0, err
	}
	err := c.wait(ctx, cl, wire.OpChannel, target)
	files := cl.Files
	var seq uint64
	if len(cl.Send.IDs) > 0 {
		seq = cl.Send.IDs[0]
	}
	cl.Files = nil
	c.conn().Release(cl)
	if err != nil {
		mux.CloseFiles(files)
		return ChannelFiles{}, 0, err
	}
	if len(files) != 2 {
		mux.CloseFiles(files)
		return ChannelFiles{}, 0, fmt.Errorf("%w: CHANNEL reply carried %d descriptors, want 2", ErrMalformed, len(files))
	}
	return ChannelFiles{Mem: files[0], Ctl: files[1]}, seq, nil
}

// AttachChannel takes side B of the channel offered by offer (a message
// for which IsChannelOffer is true). Acking the offer is up to the caller.
func (c *Client) AttachChannel(ctx context.Context, offer *Message) (ChannelFiles, error) {
	if !offer.IsChannelOffer() || len(offer.Body) != wire.TokenSize {
		return ChannelFiles{}, fmt.Errorf("%w: message %d is not a channel offer", ErrInvalid, offer.ID)
	}
	var req wire.Attach
	copy(req.Token[:], offer.Body)
	cl := c.conn().NewCall()
	if _, err := c.start(ctx, cl, wire.OpAttach, 0, req.Append); err != nil {
		c.conn().Release(cl)
		return ChannelFiles{}, err
	}
	err := c.wait(ctx, cl, wire.OpAttach, "")
	files := cl.Files
	cl.Files = nil
	c.conn().Release(cl)
	if err != nil {
		mux.CloseFiles(files)
		return ChannelFiles{}, err
	}
	if len(files) != 2 {
		mux.CloseFiles(files)
		return ChannelFiles{}, fmt.Errorf("%w: ATTACH reply carried %d descriptors, want 2", ErrMalformed, len(files))
	}
	return ChannelFiles{Mem: files[0], Ctl: files[1]}, nil
}
