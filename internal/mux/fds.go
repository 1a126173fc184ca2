package mux

import (
	"net"
	"os"

	"github.com/postbox-ipc/postbox/internal/rights"
	"github.com/postbox-ipc/postbox/wire"
)

// Descriptors (SCM_RIGHTS) both ways on a Unix socket.
//
// The reader reads with recvmsg (package rights) and gives each frame the
// descriptors that came with its first byte (PROTOCOL.md 8.24): a
// CHANNEL or ATTACH reply's, a DIRECT PIPE_OPEN reply's (8.23), and a Delivery's (RECV reply or pushed
// DELIVER) with wire.DeliveryFiles. A handler on the reader goroutine
// takes them with TakeFiles while it handles the frame; the reader closes
// those nobody took. StartWithFiles sends descriptors with a request.

// newFrameFiles returns the reader's source on uc.
func newFrameFiles(uc *net.UnixConn) *rights.Reader {
	return rights.NewReader(uc, wire.MaxFrameFiles)
}

// framePos is the stream position of the next byte r hands out.
func (c *Conn) framePos() int64 {
	if c.fdr == nil {
		return 0
	}
	return c.fdr.Pos() - int64(c.r.Buffered())
}

// takeFrame sets the current frame's descriptors (the frame began at
// start and was just read).
func (c *Conn) takeFrame(start int64) {
	if c.fdr != nil {
		c.cur, _ = c.fdr.Take(start, c.framePos())
	}
}

// dropFrame closes the current frame's descriptors that nobody took.
func (c *Conn) dropFrame() {
	if c.cur != nil {
		CloseFiles(c.cur)
		c.cur = nil
	}
}

// TakeFiles returns the descriptors that came with the frame being
// handled, and hands them to the caller, who then owns them. It may only
// be called by a push handler or Stream method, on the reader goroutine,
// while it handles its frame.
func (c *Conn) TakeFiles() []*os.File {
	fs := c.cur
	c.cur = nil
	return fs
}

// StartWithFiles is Start for a request that carries descriptors: files
// travel with the frame's first byte (SCM_RIGHTS). The connection's
// writer closes them once written: pass duplicates of files the caller
// keeps. If it fails they are already closed.
func (c *Conn) StartWithFiles(cl *Call, op wire.Op, flags uint8, files []*os.File, enc func([]byte) []byte) error {
	return c.start(cl, op, flags, files, enc)
}

// CloseFiles closes fs.
func CloseFiles(fs []*os.File) { rights.CloseFiles(fs) }
