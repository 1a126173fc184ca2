package framewriter

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
)

// Defaults for Config's zero fields.
const (
	DefaultHighWater = 8 << 20
	DefaultMaxKept   = 8 << 20
	DefaultMaxWrite  = 256 << 10
)

// ErrClosed is returned by Err after a Close or Shutdown with no write
// error.
var ErrClosed = errors.New("framewriter: closed")

// FDFrame is a frame in a buffer given to Config.WriteFDs that must carry
// descriptors: Off is the offset of its first byte in the buffer.
type FDFrame struct {
	Off   int
	Files []*os.File
}

// Config configures a Writer. The zero value works for a connection that
// passes no descriptors.
type Config struct {
	// HighWater: Wait blocks while more unwritten bytes than this are
	// queued or being written (0: DefaultHighWater).
	HighWater int
	// MaxKept: a buffer that grew larger than this is released after its
	// write instead of being reused (0: DefaultMaxKept).
	MaxKept int
	// WriteFDs writes buf, sending each FDFrame's files with SCM_RIGHTS
	// along with the frame at its offset. It must not close the files (the
	// writer does). Nil: if the io.Writer is a *net.UnixConn, a built-in
	// sender; else frames with files fail the write.
	WriteFDs func(buf []byte, fds []FDFrame) error
	// MaxWrite: the data lane is written in pieces of at most this many
	// bytes (cut at frame boundaries, at least one frame a piece), and
	// urgent frames queued meanwhile go out between pieces, so an urgent
	// frame waits behind at most this much data rather than behind the
	// whole backlog taken for one write (0: DefaultMaxWrite). A data lane
	// holding frames with files is written whole.
	MaxWrite int
	// BeforeWrite, if set, is called under the writer's lock right before
	// a write (and after Kick) with the data lane's buffer; it returns the
	// buffer with any frames it appends (the client folds its queued
	// fire-and-forget acks into ACK frames here).
	BeforeWrite func(b []byte) []byte
	// Gauge, if set, follows the backlog: the writer adds the bytes of
	// each frame appended and subtracts them once written or dropped, so
	// several writers can share one total (the broker's output gauge).
	Gauge *atomic.Int64
	// OnLow, if set, is called by Run, holding no lock of the writer's,
	// once the backlog has fallen to LowWater or below after ArmLow
	// returned true, unless the writer is closing by then. It may take
	// other locks and call the Writer.
	OnLow    func()
	LowWater int
}

// lane is one queue of frames: its buffer, the frames in it that carry
// files, and the spare buffer it swaps with while a write is in progress.
type lane struct {
	buf   []byte
	fds   []FDFrame
	spare []byte
}

// Writer is a coalescing frame writer; see the package comment.
type Writer struct {
	w   io.Writer
	cfg Config

	mu       sync.Mutex // guards every field below
	wake     sync.Cond  // Run waits on it for frames
	space    sync.Cond  // Wait waits on it for the backlog to drain
	urgent   lane
	data     lane
	inflight int  // bytes taken by the write in progress
	kicked   bool // Kick was called since the last write
	armed    bool // ArmLow was called: call OnLow once at LowWater
	closing  bool // no more appends; Run exits once drained (at once if abort)
	abort    bool // drop what is queued
	err      error

	vec  net.Buffers
	vecs [2][]byte
	done chan struct{}
}

// New returns a Writer of frames to w. Start its loop with go w.Run().
func New(w io.Writer, cfg Config) *Writer {
	if cfg.HighWater <= 0 {
		cfg.HighWater = DefaultHighWater
	}
	if cfg.MaxKept <= 0 {
		cfg.MaxKept = DefaultMaxKept
	}
	if cfg.MaxWrite <= 0 {
		cfg.MaxWrite = DefaultMaxWrite
	}
	if cfg.WriteFDs == nil {
		if uc, ok := w.(*net.UnixConn); ok {
			cfg.WriteFDs = func(buf []byte, fds []FDFrame) error { return WriteFDs(uc, buf, fds) }
		}
	}
	wr := &Writer{w: w, cfg: cfg, done: make(chan struct{})}
	wr.wake.L, wr.space.L = &wr.mu, &wr.mu
	return wr
}

func (w *Writer) lane(urgent bool) *lane {
	if urgent {
		return &w.urgent
	}
	return &w.data
}

// Append appends one frame: fn appends its bytes to the buffer it is
// given and returns it. fn runs under the writer's lock and must append
// exactly one whole frame (or nothing). Append returns false, without
// calling fn, once the writer is closing or has failed.
func (w *Writer) Append(urgent bool, fn func(b []byte) []byte) bool {
	w.mu.Lock()
	if w.closing {
		w.mu.Unlock()
		return false
	}
	l := w.lane(urgent)
	n := len(l.buf)
	l.buf = fn(l.buf)
	w.gauge(len(l.buf) - n)
	w.mu.Unlock()
	w.wake.Signal()
	return true
}

func (w *Writer) gauge(d int) {
	if w.cfg.Gauge != nil && d != 0 {
		w.cfg.Gauge.Add(int64(d))
	}
}

// ArmLow asks for one call of Config.OnLow once the backlog is at
// Config.LowWater or below. It returns false, arming nothing, if that is
// already so (or the writer is closing): the caller acts itself.
func (w *Writer) ArmLow() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closing || w.backlog() <= w.cfg.LowWater {
		return false
	}
	w.armed = true
	return true
}

// DropData drops the frames queued in the data lane (not the write in
// progress), so that an urgent frame appended next is the last thing the
// peer reads.
func (w *Writer) DropData() {
	w.mu.Lock()
	l := &w.data
	w.gauge(-l.len())
	closeFDs(l.fds)
	l.buf, l.fds = l.buf[:0], nil
	w.mu.Unlock()
}

// AppendWithFiles is Append for a frame that carries descriptors: files
// are sent with the frame's first bytes, and closed by the writer once
// written or dropped. The writer owns files from the call on: if it
// returns false they are already closed.
func (w *Writer) AppendWithFiles(urgent bool, files []*os.File, fn func(b []byte) []byte) bool {
	w.mu.Lock()
	if w.closing {
		w.mu.Unlock()
		closeFiles(files)
		return false
	}
	l := w.lane(urgent)
	off := len(l.buf)
	l.buf = fn(l.buf)
	w.gauge(len(l.buf) - off)
	if len(files) > 0 {
		l.fds = append(l.fds, FDFrame{Off: off, Files: files})
	}
	w.mu.Unlock()
	w.wake.Signal()
	return true
}

// Kick makes Run call Config.BeforeWrite soon even if no frame is queued.
func (w *Writer) Kick() {
	w.mu.Lock()
	w.kicked = true
	w.mu.Unlock()
	w.wake.Signal()
}

// Wait blocks while the unwritten backlog exceeds Config.HighWater. It
// returns false if the writer is closing or failed (at once, or when that
// happens while waiting).
func (w *Writer) Wait() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for !w.closing && w.backlog() > w.cfg.HighWater {
		w.space.Wait()
	}
	return !w.closing
}

func (w *Writer) backlog() int { return w.urgent.len() + w.data.len() + w.inflight }

// Pending returns the unwritten backlog in bytes: queued, and being
// written.
func (w *Writer) Pending() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.backlog()
}

// Done is closed when Run has returned.
func (w *Writer) Done() <-chan struct{} { return w.done }

// Err returns the first write error; ErrClosed if the writer was closed
// without one; nil while it runs.
func (w *Writer) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil && w.closing {
		return ErrClosed
	}
	return w.err
}

// Shutdown starts stopping the writer without waiting: from now on Append
// returns false and Wait returns false. With flush, Run writes what is
// queued (calling BeforeWrite once more) and then returns; without, queued
// frames are dropped and Run returns after the write in progress, if any.
func (w *Writer) Shutdown(flush bool) {
	w.mu.Lock()
	w.closing = true
	if !flush {
		w.abort = true
	}
	w.mu.Unlock()
	w.wake.Broadcast()
	w.space.Broadcast()
}

// Close is Shutdown followed by waiting for Run to return. It returns the
// first write error, or nil. Run must have been started (or be started
// concurrently): Close waits for it.
func (w *Writer) Close(flush bool) error {
	w.Shutdown(flush)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Run writes queued frames until the writer is closed or a write fails.
// Call it once, usually as go w.Run(); stop it with Close.
func (w *Writer) Run() {
	defer close(w.done)
	w.mu.Lock()
	for {
		for !w.closing && !w.kicked && len(w.urgent.buf) == 0 && len(w.data.buf) == 0 {
			w.wake.Wait()
		}
		if w.abort {
			w.dropLocked()
			w.mu.Unlock()
			return
		}
		if w.cfg.BeforeWrite != nil {
			n := len(w.data.buf)
			w.data.buf = w.cfg.BeforeWrite(w.data.buf)
			w.gauge(len(w.data.buf) - n)
		}
		w.kicked = false
		if len(w.urgent.buf) == 0 && len(w.data.buf) == 0 {
			if w.closing {
				w.mu.Unlock()
				return
			}
			continue
		}
		u, ufds := w.urgent.take()
		d, dfds := w.data.take()
		w.inflight = len(u) + len(d)
		w.mu.Unlock()

		var err error
		if dfds == nil && len(d) > w.cfg.MaxWrite {
			err = w.writePieces(u, ufds, d)
			u = nil // writePieces gave it back to the urgent lane
		} else {
			err = w.write(u, ufds, d, dfds)
			closeFDs(ufds)
		}
		closeFDs(dfds)

		w.mu.Lock()
		w.urgent.keep(u, w.cfg.MaxKept)
		w.data.keep(d, w.cfg.MaxKept)
		w.gauge(-w.inflight)
		w.inflight = 0
		if err != nil && w.err == nil {
			w.err = err
			w.closing, w.abort = true, true
			w.wake.Broadcast()
		}
		w.space.Broadcast()
		if w.armed && !w.closing && w.backlog() <= w.cfg.LowWater {
			w.armed = false
			if w.cfg.OnLow != nil {
				w.mu.Unlock()
				w.cfg.OnLow()
				w.mu.Lock()
			}
		}
	}
}

// writePieces writes u, then d in pieces of at most MaxWrite bytes cut at
// frame boundaries; before each piece after the first it takes whatever
// urgent frames were queued meanwhile and writes them first. It closes
// the files of every urgent frame it wrote (or failed to write) and
// gives their buffers back to the urgent lane. It stops early, dropping
// the rest of d, once the writer is aborting.
func (w *Writer) writePieces(u []byte, ufds []FDFrame, d []byte) error {
	for {
		n := frameCut(d, w.cfg.MaxWrite)
		err := w.write(u, ufds, d[:n], nil)
		closeFDs(ufds)
		d = d[n:]
		w.mu.Lock()
		if u != nil {
			w.urgent.keep(u, w.cfg.MaxKept)
			w.inflight -= len(u)
			w.gauge(-len(u))
			u, ufds = nil, nil
		}
		w.inflight -= n
		w.gauge(-n)
		if err != nil || len(d) == 0 || w.abort {
			w.mu.Unlock()
			return err
		}
		if w.urgent.len() > 0 {
			u, ufds = w.urgent.take()
			w.inflight += len(u)
		}
		w.mu.Unlock()
		w.space.Broadcast()
	}
}

// frameCut returns the length of the leading whole frames of d that fit
// in max bytes (at least one frame), reading each frame's size field. If
// d does not parse as frames it returns len(d): the buffer goes out whole.
func frameCut(d []byte, max int) int {
	end := 0
	for end < len(d) {
		if len(d)-end < 4 {
			return len(d)
		}
		n := 4 + int(binary.LittleEndian.Uint32(d[end:]))
		if n < 16 || n > len(d)-end {
			return len(d)
		}
		if end > 0 && end+n > max {
			return end
		}
		end += n
	}
	return end
}

func (l *lane) len() int { return len(l.buf) }

// take returns the lane's frames and gives it its spare buffer.
func (l *lane) take() ([]byte, []FDFrame) {
	buf, fds := l.buf, l.fds
	l.buf, l.fds, l.spare = l.spare[:0], nil, nil
	return buf, fds
}

// keep makes buf the lane's spare unless it grew too large.
func (l *lane) keep(buf []byte, maxKept int) {
	if cap(buf) <= maxKept && cap(buf) > cap(l.spare) {
		l.spare = buf[:0]
	}
}

func (w *Writer) dropLocked() {
	for _, l := range []*lane{&w.urgent, &w.data} {
		w.gauge(-l.len())
		closeFDs(l.fds)
		l.buf, l.fds = l.buf[:0], nil
	}
}

// write writes the urgent lane's frames, then the data lane's.
func (w *Writer) write(u []byte, ufds []FDFrame, d []byte, dfds []FDFrame) error {
	if ufds != nil || dfds != nil {
		for _, p := range []struct {
			buf []byte
			fds []FDFrame
		}{{u, ufds}, {d, dfds}} {
			if err := w.writeLane(p.buf, p.fds); err != nil {
				return err
			}
		}
		return nil
	}
	switch {
	case len(u) == 0:
		_, err := w.w.Write(d)
		return err
	case len(d) == 0:
		_, err := w.w.Write(u)
		return err
	}
	w.vecs = [2][]byte{u, d}
	w.vec = w.vecs[:]
	_, err := w.vec.WriteTo(w.w)
	w.vecs = [2][]byte{}
	return err
}

var errNoFDWriter = errors.New("framewriter: frame with descriptors but no Config.WriteFDs")

func (w *Writer) writeLane(buf []byte, fds []FDFrame) error {
	if len(buf) == 0 {
		return nil
	}
	if fds == nil {
		_, err := w.w.Write(buf)
		return err
	}
	if w.cfg.WriteFDs == nil {
		return errNoFDWriter
	}
	return w.cfg.WriteFDs(buf, fds)
}

func closeFDs(fds []FDFrame) {
	for _, f := range fds {
		closeFiles(f.Files)
	}
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}
