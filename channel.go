package postbox

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"sync"

	"golang.org/x/sys/unix"

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
// and returns side A's files. The offer is sent like a message (Type and
// Priority apply; the caller needs write permission on target); ringSize
// 0 takes the default. Whoever receives it calls AttachChannel within a
// minute, or the offer lapses and side A sees its peer gone.
func (c *Client) OfferChannel(ctx context.Context, target string, ringSize uint32, opts ...Option) (ChannelFiles, uint64, error) {
	o := options{typ: 1}
	for _, opt := range opts {
		opt(&o)
	}
	req := wire.Channel{Target: []byte(target), Type: o.typ, Priority: o.priority, Timeout: timeoutOf(ctx, o.nowait), RingSize: ringSize}
	cl, id := c.newCall(wire.OpChannel)
	if err := c.start(id, cl, wire.Header{Op: wire.OpChannel, Request: id}, req.Append); err != nil {
		putCall(cl)
		return ChannelFiles{}, 0, err
	}
	err := c.await(ctx, id, cl)
	files, seq := cl.files, cl.send.ID
	cl.files = nil
	putCall(cl)
	if err != nil {
		return ChannelFiles{}, 0, err
	}
	if len(files) != 2 {
		closeFiles(files)
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
	cl, id := c.newCall(wire.OpAttach)
	if err := c.start(id, cl, wire.Header{Op: wire.OpAttach, Request: id}, req.Append); err != nil {
		putCall(cl)
		return ChannelFiles{}, err
	}
	err := c.await(ctx, id, cl)
	files := cl.files
	cl.files = nil
	putCall(cl)
	if err != nil {
		return ChannelFiles{}, err
	}
	if len(files) != 2 {
		closeFiles(files)
		return ChannelFiles{}, fmt.Errorf("%w: ATTACH reply carried %d descriptors, want 2", ErrMalformed, len(files))
	}
	return ChannelFiles{Mem: files[0], Ctl: files[1]}, nil
}

func closeFiles(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}

// fdReader reads the broker's byte stream with recvmsg, keeping the
// descriptors that arrive (SCM_RIGHTS) in order. The broker attaches
// descriptors only to CHANNEL and ATTACH replies, so those replies take
// them from the front of the queue.
type fdReader struct {
	uc  *net.UnixConn
	oob []byte

	mu  sync.Mutex // guards fds
	fds []*os.File
}

func newFDReader(uc *net.UnixConn) *fdReader {
	return &fdReader{uc: uc, oob: make([]byte, unix.CmsgSpace(4*8))}
}

func (r *fdReader) Read(p []byte) (int, error) {
	n, oobn, _, _, err := r.uc.ReadMsgUnix(p, r.oob)
	if oobn > 0 {
		r.keep(r.oob[:oobn])
	}
	if n < 0 {
		n = 0
	}
	if n == 0 && err == nil && len(p) > 0 {
		err = io.EOF // recvmsg reports a closed stream as 0 bytes
	}
	return n, err
}

func (r *fdReader) keep(oob []byte) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return
	}
	for i := range msgs {
		fds, err := unix.ParseUnixRights(&msgs[i])
		if err != nil {
			continue
		}
		r.mu.Lock()
		for _, fd := range fds {
			unix.CloseOnExec(fd)
			r.fds = append(r.fds, os.NewFile(uintptr(fd), "postbox-channel"))
		}
		r.mu.Unlock()
	}
}

// take removes and returns the first n queued descriptors.
func (r *fdReader) take(n int) []*os.File {
	r.mu.Lock()
	defer r.mu.Unlock()
	n = min(n, len(r.fds))
	fs := append([]*os.File(nil), r.fds[:n]...)
	r.fds = r.fds[n:]
	return fs
}

// closeAll closes descriptors nobody took (the client is stopping).
func (r *fdReader) closeAll() {
	r.mu.Lock()
	fs := r.fds
	r.fds = nil
	r.mu.Unlock()
	closeFiles(fs)
}
