package wire

// End of stream (SHUT) and pipes (PIPE_OPEN, PIPE_CLOSE): PROTOCOL.md 8.23.

const (
	// OpShut closes a mailbox for sending (payload Name; flag
	// FlagReopen opens it again). Receivers drain what is queued, then
	// get CodeEndOfStream.
	OpShut Op = 0x2A
	// OpPipeOpen opens a pipe as its reader or a writer (payload
	// PipeOpen; flags FlagWaitReader, FlagDirect).
	OpPipeOpen Op = 0x50
	// OpPipeClose closes this connection's reader or writer end of a
	// pipe (payload PipeOpen).
	OpPipeClose Op = 0x51
)

// Status codes of end of stream and pipes.
const (
	// CodeEndOfStream: the mailbox is closed for sending and nothing the
	// receiver could take is left (RECV, CONSUME-reply), or a SEND to a
	// closed mailbox.
	CodeEndOfStream Code = 20
	// CodeNoReader: a write to a pipe whose readers are all gone (EPIPE).
	CodeNoReader Code = 21
)

// Per-operation flags of SHUT and PIPE_OPEN.
const (
	// FlagReopen (SHUT): open the mailbox for sending again.
	FlagReopen uint8 = 1 << 0
	// FlagWaitReader (PIPE_OPEN as writer): the open waits until the
	// pipe has a reader, and later writes wait for the next reader
	// instead of failing NO_READER when the pipe has none.
	FlagWaitReader uint8 = 1 << 0
	// FlagDirect (PIPE_OPEN): ask for a kernel pipe handed over with
	// SCM_RIGHTS, so that the bytes bypass the broker (needs the
	// DESCRIPTORS capability).
	FlagDirect uint8 = 1 << 1
)

// TagPipe (CREATE, critical, u32): the mailbox is a pipe with a buffer of
// this many bytes (0: the broker's default, DefaultPipeBuffer).
const TagPipe uint16 = 0x8007

// MailboxClosed (MailboxInfo flags bit 4): closed for sending (SHUT, or a
// pipe with no writer left). MailboxPipe (bit 5): the mailbox is a pipe.
const (
	MailboxClosed uint32 = 1 << 4
	MailboxPipe   uint32 = 1 << 5
)

// Pipe sizes.
const (
	// PipeAtomic is the largest write a pipe keeps whole: a SEND's
	// message (one chunk) to a pipe is at most this many bytes, and
	// chunks from different writers are never interleaved.
	PipeAtomic = 64 << 10
	// DefaultPipeBuffer is a pipe's buffer when CREATE's PIPE is 0.
	DefaultPipeBuffer = 1 << 20
)

// Chunk types of a pipe: a SEND to a pipe carries PipeData messages;
// the broker puts a PipeHandoff chunk (empty, its sender the writer) in
// the stream where a kernel pipe handed over with DIRECT takes over
// (8.23).
const (
	PipeData    int64 = 1
	PipeHandoff int64 = 2
)

// Pipe roles (PipeOpen.Role).
const (
	PipeReader uint8 = 1
	PipeWriter uint8 = 2
)

// PipeOpen is the payload of PIPE_OPEN and PIPE_CLOSE:
// `name string | role u8 | ext`.
type PipeOpen struct {
	Name []byte
	Role uint8
	Ext  []byte
}

func (m *PipeOpen) Append(b []byte) []byte {
	return append(append(AppendString(b, m.Name), m.Role), m.Ext...)
}

// Decode reads a PipeOpen. A role other than reader or writer is
// ErrInvalid.
func (m *PipeOpen) Decode(p []byte) error {
	d := NewDecoder(p)
	m.Name, m.Role, m.Ext = d.String(), d.U8(), d.Ext()
	if err := d.Err(); err != nil {
		return err
	}
	if m.Role != PipeReader && m.Role != PipeWriter {
		return ErrInvalid
	}
	return nil
}

// PipeOpenReply is PIPE_OPEN's OK reply: `direct u8 | ext`. Direct is 1
// when the reply carries one descriptor (SCM_RIGHTS): the caller's end of
// a kernel pipe (8.23).
type PipeOpenReply struct {
	Direct bool
	Ext    []byte
}

func (m *PipeOpenReply) Append(b []byte) []byte {
	v := uint8(0)
	if m.Direct {
		v = 1
	}
	return append(append(b, v), m.Ext...)
}

func (m *PipeOpenReply) Decode(p []byte) error {
	d := NewDecoder(p)
	v := d.U8()
	m.Ext = d.Ext()
	if err := d.Err(); err != nil {
		return err
	}
	if v > 1 {
		return ErrMalformed
	}
	m.Direct = v == 1
	return nil
}
