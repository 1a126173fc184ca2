package postbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

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

// PipeOption configures OpenPipeWriter.
type PipeOption func(*pipeOptions)

type pipeOptions struct{ waitReader bool }

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
	req := wire.PipeOpen{Name: []byte(name), Role: role}
	_, err := c.roundTrip(ctx, op, flags, req.Append)
	return err
}

// openEnd opens an end; if ctx ends while the open waits, it withdraws
// the open (PIPE_CLOSE), so that no end is left open behind the caller.
func (c *Client) openEnd(ctx context.Context, flags uint8, name string, role uint8) error {
	err := c.pipeEnd(ctx, wire.OpPipeOpen, flags, name, role)
	if err != nil && ctx.Err() != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.grace+settleGrace)
		c.pipeEnd(cctx, wire.OpPipeClose, 0, name, role)
		cancel()
	}
	return err
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
	once sync.Once
	err  error
}

// OpenPipeWriter opens name for writing. Options: WithWaitReader.
func (c *Client) OpenPipeWriter(ctx context.Context, name string, opts ...PipeOption) (*PipeWriter, error) {
	var o pipeOptions
	for _, f := range opts {
		f(&o)
	}
	var flags uint8
	if o.waitReader {
		flags |= wire.FlagWaitReader
	}
	if err := c.openEnd(ctx, flags, name, wire.PipeWriter); err != nil {
		return nil, err
	}
	return &PipeWriter{c: c, name: name, pub: c.Mailbox(name).Publisher(16)}, nil
}

// Write writes p as chunks of at most PipeAtomic bytes, waiting while the
// pipe's buffer is full.
func (w *PipeWriter) Write(p []byte) (int, error) {
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
		if err := w.pub.Flush(ctx); err != nil {
			w.err = err
		}
		w.pub.Close(ctx)
		if err := w.c.pipeEnd(ctx, wire.OpPipeClose, 0, w.name, wire.PipeWriter); err != nil && w.err == nil {
			w.err = err
		}
	})
	return w.err
}

// PipeReader is the reader end of a pipe: an io.ReadCloser (and an
// io.WriterTo). It is not safe for concurrent use.
type PipeReader struct {
	c    *Client
	name string
	cn   *Consumer
	cur  *Message // the chunk being read
	off  int      // bytes of cur already read
	err  error    // sticky: io.EOF or the stream's error
	once sync.Once
}

// OpenPipeReader opens name for reading. If another reader is active it
// waits for its turn (until ctx ends).
func (c *Client) OpenPipeReader(ctx context.Context, name string) (*PipeReader, error) {
	if err := c.openEnd(ctx, 0, name, wire.PipeReader); err != nil {
		return nil, err
	}
	cn, err := c.Mailbox(name).Consume(ctx, Prefetch(16))
	if err != nil {
		c.pipeEnd(context.WithoutCancel(ctx), wire.OpPipeClose, 0, name, wire.PipeReader)
		return nil, err
	}
	return &PipeReader{c: c, name: name, cn: cn}, nil
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
	if r.cur != nil && r.off < len(r.cur.Body) {
		ch := Chunk{Data: r.cur.Body[r.off:], Writer: r.cur.Sender}
		r.off = len(r.cur.Body)
		return ch, nil
	}
	if err := r.next(ctx); err != nil {
		return Chunk{}, err
	}
	r.off = len(r.cur.Body)
	return Chunk{Data: r.cur.Body, Writer: r.cur.Sender}, nil
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
	return nil
}

// Read reads up to len(p) bytes. A chunk is acknowledged when a Read
// needs more than what is left of it.
func (r *PipeReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for r.cur == nil || r.off == len(r.cur.Body) {
		if err := r.next(context.Background()); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.cur.Body[r.off:])
	r.off += n
	return n, nil
}

// WriteTo writes the stream to w until io.EOF (returning nil) or an
// error. Each chunk is acknowledged only once w.Write has taken it
// whole, so a chunk whose write failed goes to the next reader.
func (r *PipeReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
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
		if r.cur != nil && r.off == len(r.cur.Body) {
			r.cur.AckNoWait()
		}
		r.cur = nil
		r.cn.Close(ctx) // nacks what it had not handed out
		err = r.c.pipeEnd(ctx, wire.OpPipeClose, 0, r.name, wire.PipeReader)
	})
	return err
}
