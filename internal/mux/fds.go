package mux

import (
	"io"
	"net"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/postbox-ipc/postbox/wire"
)

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

// closeAll closes descriptors nobody took (the connection is stopping).
func (r *fdReader) closeAll() {
	r.mu.Lock()
	fs := r.fds
	r.fds = nil
	r.mu.Unlock()
	CloseFiles(fs)
}

// CloseFiles closes fs.
func CloseFiles(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}

// pipeFiles is how many descriptors an OK PIPE_OPEN reply carries: one
// when it hands over a kernel pipe (PipeOpenReply.Direct), else none.
func pipeFiles(p []byte) int {
	var m wire.PipeOpenReply
	if m.Decode(p) == nil && m.Direct {
		return 1
	}
	return 0
}
