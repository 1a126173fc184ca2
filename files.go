package postbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/postbox-ipc/postbox/internal/mux"
	"github.com/postbox-ipc/postbox/wire"
)

// Descriptors on messages.
//
// A message may carry open file descriptors (an open file, a socket, a
// memfd...): the sender's process hands them over with WithFiles, and the
// receiving process gets its own descriptors for the same open files with
// Message.Files, as with SCM_RIGHTS, which is how they travel. Both ends
// must be on a Unix socket to the broker (not TCP or TLS), and the mailbox
// must not be durable (descriptors do not survive a restart). The broker
// keeps its own copies until the message leaves its mailbox (acked,
// expired, dead-lettered, destroyed), so a message that is nacked or
// whose receiver dies is redelivered with its descriptors. A receiver on
// a connection that cannot take descriptors gets the message without
// them (FilesWithheld).

// WithFiles sends files with the message (at most wire.MaxFrameFiles).
// The broker gets duplicates: the caller still owns files and may close
// them when Send returns. Send fails with ErrNoDescriptors where they
// cannot go and ErrTooManyFiles past the broker's limits.
func WithFiles(files ...*os.File) SendOption { return filesOption(files) }

type filesOption []*os.File

func (o filesOption) applySend(s *sendOptions) { s.files = append(s.files, o...) }

// Files returns the descriptors that came with the message, in the order
// the sender gave them; nil if none came. The caller owns them: close
// them (CloseFiles) when done. A message received again after a nack
// comes with new descriptors.
func (m *Message) Files() []*os.File {
	if m.hdr == nil {
		return nil
	}
	return m.hdr.files
}

// CloseFiles closes the message's descriptors and forgets them. It
// returns the first error.
func (m *Message) CloseFiles() error {
	if m.hdr == nil {
		return nil
	}
	var first error
	for _, f := range m.hdr.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	m.hdr.files = nil
	return first
}

// FilesWithheld reports whether the message carries descriptors that did
// not come to this client: its connection cannot take descriptors (TCP,
// TLS). The broker keeps them with the message until it leaves.
func (m *Message) FilesWithheld() bool {
	return m.flags&wire.DeliveryFiles != 0 && len(m.Files()) == 0
}

// setFiles gives a received message the descriptors of its frame.
func (m *Message) setFiles(files []*os.File) {
	if len(files) == 0 {
		return
	}
	if m.hdr == nil {
		m.hdr = &messageHeaders{}
	}
	m.hdr.files = files
}

// startWithFiles is start for a SEND whose one message carries files: it
// adds the FILES tag and sends duplicates of files with the frame (the
// connection's writer closes the duplicates; a reconnect makes new ones).
func (c *Client) startWithFiles(ctx context.Context, cl *mux.Call, flags uint8, files []*os.File, req *wire.Send) (*link, error) {
	target := string(req.Target)
	if len(files) > wire.MaxFrameFiles {
		return nil, fmt.Errorf("send to %q: %d descriptors: %w (at most %d a message)", target, len(files), ErrTooManyFiles, wire.MaxFrameFiles)
	}
	req.Ext = wire.AppendFiles(req.Ext[:0:0], []uint8{uint8(len(files))})
	for {
		lk := c.link()
		if lk.caps&wire.CapDescriptors == 0 || !lk.m.HasFiles() {
			return lk, fmt.Errorf("send to %q: %w: this connection is not a local Unix socket", target, ErrNoDescriptors)
		}
		dups, err := dupFiles(files)
		if err != nil {
			return lk, fmt.Errorf("send to %q: duplicating descriptors: %w", target, err)
		}
		err = lk.m.StartWithFiles(cl, wire.OpSend, flags, dups, req.Append)
		if err == nil || c.rc == nil {
			return lk, err
		}
		if err := c.rc.awaitNext(ctx, c, lk, "send"); err != nil {
			return lk, err
		}
	}
}

// filesError makes a broker's LIMIT on held descriptors match
// ErrTooManyFiles as well as ErrLimit.
func filesError(err error) error {
	var e *Error
	if errors.As(err, &e) && e.Code == wire.CodeLimit && strings.Contains(e.Msg, "descriptors") {
		return fmt.Errorf("%w: %w", ErrTooManyFiles, err)
	}
	return err
}

func dupFiles(files []*os.File) ([]*os.File, error) {
	dups := make([]*os.File, 0, len(files))
	for _, f := range files {
		if f == nil {
			mux.CloseFiles(dups)
			return nil, fmt.Errorf("%w: a nil *os.File", ErrInvalid)
		}
		fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			mux.CloseFiles(dups)
			return nil, err
		}
		dups = append(dups, os.NewFile(uintptr(fd), f.Name()))
	}
	return dups, nil
}
