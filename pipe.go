package postbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/postbox-ipc/postbox/wire"
)

// Pipes: named byte streams with fifo(7) rules, kept by the broker.
//
// A pipe is a mailbox kind (CreatePipe) that carries chunks of bytes. A
// PipeWriter's Write of up to PipeAtomic bytes is one chunk, never
// interleaved with another writer's; a larger Write is cut into chunks
// of PipeAtomic. A PipeReader reads the chunks in order. The rules:
//
//   - the reader blocks while writers are open and the buffer is empty,
//     and gets io.EOF once the last writer has closed and it has read
//     everything;
//   - a writer blocks while the buffer (CreatePipe's buffer bytes) is
//     full;
//   - a writer whose pipe has no reader left (one was there since it
//     opened) fails with ErrNoReader, unless it opened WithWaitReader;
//   - one reader is active at a time; another's OpenPipeReader waits for
//     its turn. When a reader goes (Close, or its process dies) the
//     chunks it had not finished go to the next reader, in order: a
//     reader resumes at the first chunk not fully read (WriteTo: not
//     fully written out) by the one before;
//   - who may read and write is the mailbox mode (r, w).

// PipeAtomic is the largest write a pipe keeps whole (64 KiB).
const PipeAtomic = wire.PipeAtomic

// PipeOption configures OpenPipeWriter and OpenPipeReader.
type PipeOption func(*pipeOptions)

type pipeOptions struct{ waitReader, direct bool }

// WithDirect asks the broker to step out of the data path (a writer's
// and the reader's option): when both ends opened WithDirect on local
// Unix sockets and this writer is the pipe's only one, the broker hands
// them a kernel pipe and the bytes no longer pass through it. Bytes in
// that kernel pipe are the taking reader's alone: if it dies they are
// lost (the writer gets ErrNoReader), where relayed chunks would go to
// the next reader. Otherwise the writer is relayed as without it.
func WithDirect() PipeOption { return func(o *pipeOptions) { o.direct = true } }

// WithWaitReader makes a writer wait for a reader instead of failing with
// ErrNoReader: OpenPipeWriter returns once the pipe has a reader, and
// writes that find none fill the buffer and wait for the next.
func WithWaitReader() PipeOption { return func(o *pipeOptions) { o.waitReader = true } }

// CreatePipe makes a pipe called name whose buffer holds buffer bytes (0:
// the broker's default, 1 MiB). Options: Mode (default 0600).
func (c *Client) CreatePipe(ctx context.Context, name string, buffer int, opts ...CreateOption) error {
	if buffer < 0 || buffer > 1<<31 {
		return fmt.Errorf("%w: create pipe %q: buffer %d bytes", ErrInvalid, name, buffer)
	}
	o := createDefaults(opts)
	req := wire.Create{Name: []byte(name), Capacity: -1, Mode: o.mode, Pipe: true, PipeBuffer: uint32(buffer)}
	_, err := c.roundTrip(ctx, wire.OpCreate, 0, req.Append)
	return err
}

func (c *Client) pipeEnd(ctx context.Context, op wire.Op, flags uint8, name string, role uint8) error {
	_, err := c.pipeCall(ctx, op, flags, name, role)
	return err
}

// pipeCall sends PIPE_OPEN or PIPE_CLOSE and returns the kernel pipe end
// a DIRECT open's reply carried, if any.
func (c *Client) pipeCall(ctx context.Context, op wire.Op, flags uint8, name string, role uint8) (*os.File, error) {
	req := wire.PipeOpen{Name: []byte(name), Role: role}
	cl := c.conn().NewCall()
	if _, err := c.start(ctx, cl, op, flags, req.Append); err != nil {
		c.conn().Release(cl)
		return nil, err
	}
	err := c.wait(ctx, cl, op, name)
	var f *os.File
	if len(cl.Files) > 0 {
		f = cl.Files[0]
		for _, g := range cl.Files[1:] {
			g.Close()
		}
	}
	cl.Files = nil
	c.conn().Release(cl)
	if err != nil && f != nil {
		f.Close()
		f = nil
	}
	if f != nil {
		f = pollable(f)
	}
	return f, err
}

// pollable returns f as a non-blocking file served by the runtime's
// poller (as os.Pipe's are), so that a goroutine blocked on the kernel
// pipe holds no thread. On failure it returns f as it is.
func pollable(f *os.File) *os.File {
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return f
	}
	if unix.SetNonblock(fd, true) != nil {
		unix.Close(fd)
		return f
	}
	name := f.Name()
	f.Close()
	return os.NewFile(uintptr(fd), name)
}

// openEnd opens an end; if ctx ends while the open waits, it withdraws
// the open (PIPE_CLOSE), so that no end is left open behind the caller.
func (c *Client) openEnd(ctx context.Context, flags uint8, name string, role uint8) (*os.File, error) {
	f, err := c.pipeCall(ctx, wire.OpPipeOpen, flags, name, role)
	if err != nil && ctx.Err() != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.grace+settleGrace)
		c.pipeEnd(cctx, wire.OpPipeClose, 0, name, role)
		cancel()
	}
	return f, err
}

// pipeFlags are the PIPE_OPEN flags of o; DIRECT only where descriptors
// can pass.
func (c *Client) pipeFlags(o pipeOptions) uint8 {
	var flags uint8
	if o.waitReader {
		flags |= wire.FlagWaitReader
	}
	if o.direct && c.conn().HasFiles() {
		flags |= wire.FlagDirect
	}
	return flags
}

// settleGrace bounds the PIPE_CLOSE that withdraws an abandoned open.
const settleGrace = 5 * time.Second

// PipeWriter is a writer end of a pipe: an io.WriteCloser. Writes are
// pipelined (several chunks in flight): an error the broker returns for
// one (ErrNoReader) is returned by a later Write or by Close. It is not
// safe for concurrent use.
type PipeWriter struct {
	c    *Client
	name string
	pub  *Publisher
	file *os.File // a kernel pipe's write end (WithDirect), else nil
	once sync.Once
	err  error
}

// OpenPipeWriter opens name for writing. Options: WithWaitReader.
func (c *Client) OpenPipeWriter(ctx context.Context, name string, opts ...PipeOption) (*PipeWriter, error) {
	var o pipeOptions
	for _, f := range opts {
		f(&o)
	}
	file, err := c.openEnd(ctx, c.pipeFlags(o), name, wire.PipeWriter)
	if err != nil {
		return nil, err
	}
	w := &PipeWriter{c: c, name: name, file: file}
	if file == nil {
		w.pub = c.Mailbox(name).Publisher(64)
	}
	return w, nil
}

// Direct reports whether the writer holds a kernel pipe (WithDirect):
// its bytes bypass the broker.
func (w *PipeWriter) Direct() bool { return w.file != nil }

// Write writes p as chunks of at most PipeAtomic bytes, waiting while the
// pipe's buffer is full.
func (w *PipeWriter) Write(p []byte) (int, error) {
	if w.file != nil {
		n, err := w.file.Write(p)
		if errors.Is(err, syscall.EPIPE) {
			err = fmt.Errorf("write to pipe %q: %w (the reader holding the kernel pipe is gone)", w.name, ErrNoReader)
		}
		return n, err
	}
	n := 0
	for len(p) > 0 {
		k := min(len(p), PipeAtomic)
		if err := w.pub.Send(context.Background(), p[:k]); err != nil {
			return n, err
		}
		n, p = n+k, p[k:]
	}
	return n, nil
}

// Close waits until every chunk written is in the pipe, then closes this
// writer end: when it was the last, the reader gets io.EOF after the
// buffer. It returns the first error of a write.
func (w *PipeWriter) Close() error {
	w.once.Do(func() {
		ctx := context.Background()
		if w.file != nil {
			w.err = w.file.Close() // the reader sees end of file, then the pipe goes on
		} else {
			if err := w.pub.Flush(ctx); err != nil {
				w.err = err
			}
			w.pub.Close(ctx)
		}
		if err := w.c.pipeEnd(ctx, wire.OpPipeClose, 0, w.name, wire.PipeWriter); err != nil && w.err == nil {
			w.err = err
		}
	})
	return w.err
}

// PipeReader is the reader end of a pipe: an io.ReadCloser (and an
// io.WriterTo). It is not safe for concurrent use.
type PipeReader struct {
	c      *Client
	name   string
	flags  uint8
	direct *os.File // the kernel pipe a HANDOFF chunk announced, while it is read
	cn     *Consumer
	cur    *Message // the chunk being read (the HANDOFF chunk while direct is read)
	off    int      // bytes of cur already read
	buf    []byte   // ReadChunk's buffer for a kernel pipe
	err    error    // sticky: io.EOF or the stream's error
	once   sync.Once
}

// OpenPipeReader opens name for reading. If another reader is active it
// waits for its turn (until ctx ends). Options: WithDirect.
func (c *Client) OpenPipeReader(ctx context.Context, name string, opts ...PipeOption) (*PipeReader, error) {
	var o pipeOptions
	for _, f := range opts {
		f(&o)
	}
	flags := c.pipeFlags(o) &^ wire.FlagWaitReader
	if _, err := c.openEnd(ctx, flags, name, wire.PipeReader); err != nil {
		return nil, err
	}
	cn, err := c.Mailbox(name).Consume(ctx, Prefetch(64))
	if err != nil {
		c.pipeEnd(context.WithoutCancel(ctx), wire.OpPipeClose, 0, name, wire.PipeReader)
		return nil, err
	}
	return &PipeReader{c: c, name: name, cn: cn, flags: flags}, nil
}

// Chunk is one write as the pipe kept it.
type Chunk struct {
	Data []byte
	// Writer is who wrote it: the writer's uid, gid, pid and endpoint
	// as the broker knows them.
	Writer Identity
}

// ReadChunk returns the next chunk whole (after any bytes Read left of
// the current one), or io.EOF at the end of the stream. The chunk before
// it is acknowledged: it will not be given to another reader.
func (r *PipeReader) ReadChunk(ctx context.Context) (Chunk, error) {
	for {
		if r.direct != nil {
			// A kernel pipe: each read is a chunk, all from the writer
			// the HANDOFF chunk names (the only one while it lasts).
			if r.buf == nil {
				r.buf = make([]byte, PipeAtomic)
			}
			n, err := r.direct.Read(r.buf)
			if n > 0 {
				return Chunk{Data: r.buf[:n], Writer: r.cur.Sender}, nil
			}
			if err != nil {
				r.endDirect()
			}
			continue
		}
		if r.cur != nil && r.off < len(r.cur.Body) {
			ch := Chunk{Data: r.cur.Body[r.off:], Writer: r.cur.Sender}
			r.off = len(r.cur.Body)
			return ch, nil
		}
		if err := r.next(ctx); err != nil {
			return Chunk{}, err
		}
	}
}

// endDirect closes a kernel pipe read to its end (or broken); the
// HANDOFF chunk is acknowledged by the next call of next.
func (r *PipeReader) endDirect() {
	r.direct.Close()
	r.direct = nil
}

// next acknowledges the current chunk and waits for the next one.
func (r *PipeReader) next(ctx context.Context) error {
	if r.cur != nil {
		r.cur.AckNoWait()
		r.cur = nil
	}
	if r.err != nil {
		return r.err
	}
	m, err := r.cn.Next(ctx)
	if err != nil {
		if errors.Is(err, ErrEndOfStream) {
			err = io.EOF
		} else {
			err = fmt.Errorf("read from pipe %q: %w", r.name, err)
		}
		r.err = err
		return err
	}
	r.cur, r.off = m, 0
	if m.Type == wire.PipeHandoff {
		// The bytes that follow come through a kernel pipe: take its
		// read end (none if another reader took it, and its bytes).
		f, err := r.c.pipeCall(ctx, wire.OpPipeOpen, wire.FlagDirect, r.name, wire.PipeReader)
		if err != nil {
			r.err = fmt.Errorf("read from pipe %q: taking the kernel pipe: %w", r.name, err)
			return r.err
		}
		r.direct = f
	}
	return nil
}

// Read reads up to len(p) bytes. A chunk is acknowledged when a Read
// needs more than what is left of it.
func (r *PipeReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if r.direct != nil {
			n, err := r.direct.Read(p)
			if n > 0 {
				return n, nil
			}
			if err != nil {
				r.endDirect()
			}
			continue
		}
		if r.cur != nil && r.off < len(r.cur.Body) {
			n := copy(p, r.cur.Body[r.off:])
			r.off += n
			return n, nil
		}
		if err := r.next(context.Background()); err != nil {
			return 0, err
		}
	}
}

// WriteTo writes the stream to w until io.EOF (returning nil) or an
// error. Each chunk is acknowledged only once w.Write has taken it
// whole, so a chunk whose write failed goes to the next reader.
func (r *PipeReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if r.direct != nil {
			n, err := io.Copy(w, r.direct)
			total += n
			if err != nil {
				return total, err
			}
			r.endDirect()
			continue
		}
		if r.cur == nil || r.off == len(r.cur.Body) {
			if err := r.next(context.Background()); err != nil {
				if err == io.EOF {
					return total, nil
				}
				return total, err
			}
		}
		n, err := w.Write(r.cur.Body[r.off:])
		total += int64(n)
		r.off += n
		if err != nil {
			return total, err
		}
	}
}

// Close closes the reader end: the chunks not acknowledged go back to the
// pipe, in order, for the next reader.
func (r *PipeReader) Close() error {
	var err error
	r.once.Do(func() {
		ctx := context.Background()
		if r.direct != nil {
			r.direct.Close() // the HANDOFF chunk goes back: nobody can take its pipe any more
		} else if r.cur != nil && r.off == len(r.cur.Body) {
			r.cur.AckNoWait()
		}
		r.cur = nil
		r.cn.Close(ctx) // nacks what it had not handed out
		err = r.c.pipeEnd(ctx, wire.OpPipeClose, 0, r.name, wire.PipeReader)
	})
	return err
}
