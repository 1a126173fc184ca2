// Package rights reads a Unix stream socket with recvmsg and gives each
// frame the descriptors (SCM_RIGHTS) that were sent with it.
//
// # The rule (PROTOCOL.md 8.24)
//
// A sender sends a frame's descriptors in one sendmsg whose data is the
// frame's first bytes (its header, at most 16 bytes), and nothing else of
// the stream in that call. On Linux a recvmsg returns the descriptors of
// at most one such sendmsg, and stops reading right after its bytes: the
// bytes it returns may begin with earlier data (glued), but they end
// inside, or at the end of, the descriptors' segment. So, for a recvmsg
// that returned the stream's bytes [a, b) with descriptors:
//
//	the descriptors belong to the last frame that starts in [a, b);
//	if no frame starts there, they belong to none and are closed.
//
// A frame [s, e) therefore owns the arrival [a, b) when a <= s < b <= e
// (b <= e: no later frame starts before b). The reader must use a control
// buffer for every descriptor a frame may carry (ControlSize): the kernel
// closes those that do not fit and sets MSG_CTRUNC.
//
// Reader counts the bytes it returned (Pos); a frame reader that buffers
// (wire.Reader) knows a frame's start and end as Pos minus what it holds
// buffered, before and after reading the frame.
package rights

import (
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// ControlSize is the control buffer size Reader uses: room for max
// descriptors in one message.
func ControlSize(max int) int { return unix.CmsgSpace(4 * max) }

// Arrival is the descriptors one recvmsg returned, with the stream
// positions of the bytes it returned.
type arrival struct {
	start, end int64
	files      []*os.File
	truncated  bool // MSG_CTRUNC: some were closed by the kernel
}

// Reader is an io.Reader over a Unix socket that keeps the descriptors
// that arrive. Read and Take are called by one goroutine (the frame
// reader's); CloseAll may be called by any.
type Reader struct {
	uc  *net.UnixConn
	oob []byte
	pos int64 // bytes returned by Read so far; only the reading goroutine

	mu      sync.Mutex   // guards pending, held
	pending []arrival    // in stream order
	held    int          // descriptors in pending
	npend   atomic.Int32 // len(pending), read by Take without the lock
}

// NewReader returns a Reader over uc whose control buffer holds max
// descriptors.
func NewReader(uc *net.UnixConn, max int) *Reader {
	return &Reader{uc: uc, oob: make([]byte, ControlSize(max))}
}

// Read reads with recvmsg (MSG_CMSG_CLOEXEC), keeping the descriptors.
func (r *Reader) Read(p []byte) (int, error) {
	n, oobn, flags, _, err := r.uc.ReadMsgUnix(p, r.oob)
	if n < 0 {
		n = 0
	}
	if oobn > 0 || flags&unix.MSG_CTRUNC != 0 {
		r.keep(r.oob[:oobn], int64(n), flags&unix.MSG_CTRUNC != 0)
	}
	r.pos += int64(n)
	if n == 0 && err == nil && len(p) > 0 {
		err = io.EOF // recvmsg reports a closed stream as 0 bytes
	}
	return n, err
}

func (r *Reader) keep(oob []byte, n int64, truncated bool) {
	a := arrival{start: r.pos, end: r.pos + n, truncated: truncated}
	if msgs, err := unix.ParseSocketControlMessage(oob); err == nil {
		for i := range msgs {
			fds, err := unix.ParseUnixRights(&msgs[i])
			if err != nil {
				continue
			}
			for _, fd := range fds {
				unix.CloseOnExec(fd)
				a.files = append(a.files, os.NewFile(uintptr(fd), "postbox-fd"))
			}
		}
	}
	if n == 0 {
		// Descriptors with no bytes (the peer closed mid-message) belong
		// to no frame.
		CloseFiles(a.files)
		return
	}
	r.mu.Lock()
	r.pending = append(r.pending, a)
	r.held += len(a.files)
	r.npend.Store(int32(len(r.pending)))
	r.mu.Unlock()
}

// Pos returns how many stream bytes Read has returned.
func (r *Reader) Pos() int64 { return r.pos }

// Held returns how many descriptors arrived and were not yet taken.
func (r *Reader) Held() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.held
}

// Take returns the descriptors of the frame at stream bytes [start, end)
// (the rule in the package comment), and whether any were lost to a
// short control buffer. Arrivals that end within the frame but belong to
// no frame (their bytes hold no frame start) are closed. Take must be
// called for frames in stream order; without descriptors pending it only
// takes a lock.
func (r *Reader) Take(start, end int64) (files []*os.File, truncated bool) {
	if r.npend.Load() == 0 {
		return nil, false // the common case: no descriptors came
	}
	r.mu.Lock()
	i := 0
	var stray []*os.File
	for ; i < len(r.pending); i++ {
		a := &r.pending[i]
		if a.end > end {
			break // belongs to a later frame, or none yet
		}
		r.held -= len(a.files)
		if a.start <= start && start < a.end {
			files = append(files, a.files...)
			truncated = truncated || a.truncated
		} else {
			stray = append(stray, a.files...)
		}
	}
	if i > 0 {
		n := copy(r.pending, r.pending[i:])
		clear(r.pending[n:])
		r.pending = r.pending[:n]
	}
	r.npend.Store(int32(len(r.pending)))
	r.mu.Unlock()
	CloseFiles(stray)
	return files, truncated
}

// CloseAll closes every descriptor not taken (the connection ended).
func (r *Reader) CloseAll() {
	r.mu.Lock()
	p := r.pending
	r.pending, r.held = nil, 0
	r.npend.Store(0)
	r.mu.Unlock()
	for _, a := range p {
		CloseFiles(a.files)
	}
}

// CloseFiles closes fs.
func CloseFiles(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}
