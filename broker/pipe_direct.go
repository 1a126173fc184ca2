package broker

import (
	"os"

	"golang.org/x/sys/unix"

	"github.com/postbox-ipc/postbox/wire"
)

// Handoff: out of the data path.
//
// When a writer opens a pipe with DIRECT while its active reader opened
// with DIRECT, both have the DESCRIPTORS capability (local Unix sockets),
// and no other writer is open, the broker makes a kernel pipe (pipe2)
// and leaves the data path:
//
//  1. the writer's PIPE_OPEN reply carries the write end (Direct = 1);
//  2. a HANDOFF chunk (type wire.PipeHandoff, empty, sent by the writer)
//     goes into the pipe behind what is buffered, so the reader meets it
//     in stream order;
//  3. the reader, on that chunk, asks for the read end (PIPE_OPEN as
//     reader with DIRECT again) and reads the kernel pipe to its end of
//     file (the writer closed its end) before it acknowledges the chunk
//     and goes on with the pipe.
//
// The broker keeps the read end until a reader takes it, so a reader
// that dies before taking it leaves the bytes to the next; once taken,
// the bytes in the kernel pipe belong to that reader alone (a dead
// reader's are lost, and the writer gets EPIPE). Writers that open
// meanwhile are relayed: their chunks queue behind the HANDOFF chunk.

// handOff tries to answer a DIRECT writer's PIPE_OPEN with a kernel
// pipe; it reports false (nothing done) when the conditions are not met
// or the pipe cannot be made. bx.mu is held.
func (bx *box) handOff(c *conn, hd wire.Header, now int64, r *completions) bool {
	pp := bx.pipe
	if c.caps&wire.CapDescriptors == 0 || pp.reader == nil || !pp.readerDirect || len(pp.writers) > 0 ||
		pp.direct != nil || pp.handoff != nil {
		return false
	}
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		return false
	}
	rd, wr := os.NewFile(uintptr(fds[0]), "postbox-pipe-r"), os.NewFile(uintptr(fds[1]), "postbox-pipe-w")
	unix.FcntlInt(uintptr(fds[1]), unix.F_SETPIPE_SZ, 1<<20) // best effort: fewer wake-ups per MiB
	bx.openWriter(c, hd.Flags&wire.FlagWaitReader != 0, r)
	before := bx.core.HeldBytes()
	marker := newMessage(nil, nil)
	marker.Type, marker.Sender, marker.SentUnixNano = wire.PipeHandoff, c.ident, now
	if _, _, err := bx.core.Send(marker, false, nil); err != nil {
		rd.Close()
		wr.Close()
		return false // cannot happen: an empty chunk always fits an open pipe
	}
	c.b.apply(bx, bx.core.Effects(), r)
	c.b.account(bx, before)
	pp.direct, pp.handoff = c, rd
	h := replyHeader(hd, wire.OK)
	m := wire.PipeOpenReply{Direct: true}
	// The writer closes its copy once written: the broker keeps no write end.
	c.w.AppendWithFiles(h.Urgent(), []*os.File{wr}, func(b []byte) []byte {
		b, start := wire.StartFrame(b, h)
		return wire.FinishFrame(m.Append(b), start)
	})
	return true
}

// takeHandoff answers the active reader's DIRECT PIPE_OPEN: with the
// read end of the kernel pipe a HANDOFF chunk announced, or Direct = 0
// when there is none (another reader took it, and its bytes went with
// it). bx.mu is held.
func (bx *box) takeHandoff(c *conn, hd wire.Header) {
	pp := bx.pipe
	h := replyHeader(hd, wire.OK)
	if pp.handoff == nil || c.caps&wire.CapDescriptors == 0 {
		c.reply(h, &wire.PipeOpenReply{})
		return
	}
	rd := pp.handoff
	pp.handoff = nil
	m := wire.PipeOpenReply{Direct: true}
	c.w.AppendWithFiles(h.Urgent(), []*os.File{rd}, func(b []byte) []byte {
		b, start := wire.StartFrame(b, h)
		return wire.FinishFrame(m.Append(b), start)
	})
}
