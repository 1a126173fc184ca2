package rights_test

import (
	"net"
	"os"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox/internal/framewriter"
	"github.com/postbox-ipc/postbox/internal/rights"
	"github.com/postbox-ipc/postbox/wire"
	"golang.org/x/sys/unix"
)

func socketpair(t *testing.T) (*net.UnixConn, *net.UnixConn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "sp")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c.(*net.UnixConn)
	}
	return conn(fds[0]), conn(fds[1])
}

func frame(req uint64, payload int) []byte {
	b, off := wire.StartFrame(nil, wire.Header{Op: wire.OpPing, Request: req})
	b = append(b, make([]byte, payload)...)
	return wire.FinishFrame(b, off)
}

func pipeFile(t *testing.T) *os.File {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	t.Cleanup(func() { r.Close() })
	return r
}

// readFrames reads n frames and returns, per request id, how many
// descriptors came with it.
func readFrames(t *testing.T, c *net.UnixConn, n int) map[uint64]int {
	rr := rights.NewReader(c, wire.MaxFrameFiles)
	r := wire.NewReader(rr, 1<<20, 64<<10)
	got := map[uint64]int{}
	for range n {
		start := rr.Pos() - int64(r.Buffered())
		hd, _, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		files, trunc := rr.Take(start, rr.Pos()-int64(r.Buffered()))
		if trunc {
			t.Errorf("frame %d: control buffer truncated", hd.Request)
		}
		got[hd.Request] = len(files)
		rights.CloseFiles(files)
	}
	if rr.Held() != 0 {
		t.Errorf("%d descriptors left held", rr.Held())
	}
	return got
}

// Frames written in one buffer, some with descriptors, are read back
// after all of them arrived (so the kernel glues plain bytes before each
// descriptor segment): every frame gets exactly its own.
func TestDescriptorsBelongToTheFrameTheyWereSentWith(t *testing.T) {
	a, b := socketpair(t)
	var buf []byte
	var fds []framewriter.FDFrame
	want := map[uint64]int{}
	for i := range 20 {
		off := len(buf)
		buf = append(buf, frame(uint64(i+1), i*7)...)
		if i%3 == 1 {
			var files []*os.File
			for range i%4 + 1 {
				files = append(files, pipeFile(t))
			}
			fds = append(fds, framewriter.FDFrame{Off: off, Files: files})
			want[uint64(i+1)] = len(files)
		} else {
			want[uint64(i+1)] = 0
		}
	}
	if err := framewriter.WriteFDs(a, buf, fds); err != nil {
		t.Fatal(err)
	}
	got := readFrames(t, b, 20)
	for id, n := range want {
		if got[id] != n {
			t.Errorf("frame %d: got %d descriptors, want %d", id, got[id], n)
		}
	}
}

// Descriptors sent with bytes in the middle of a frame, read by a recvmsg
// in which no frame starts, belong to no frame: they are closed, never
// handed to the next frame.
func TestStrayDescriptorsAreClosed(t *testing.T) {
	a, b := socketpair(t)
	f1 := frame(1, 100)
	if _, err := a.Write(f1[:50]); err != nil {
		t.Fatal(err)
	}
	got := make(chan map[uint64]int, 1)
	go func() { got <- readFrames(t, b, 2) }()
	// Wait until the reader took the first 50 bytes, so the descriptors
	// arrive with bytes in which no frame starts.
	raw, _ := b.SyscallConn()
	for {
		var n int
		raw.Control(func(fd uintptr) { n, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ) })
		if n == 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	p := pipeFile(t)
	if _, _, err := a.WriteMsgUnix(f1[50:60], unix.UnixRights(int(p.Fd())), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Write(append(f1[60:], frame(2, 0)...)); err != nil {
		t.Fatal(err)
	}
	if g := <-got; g[1] != 0 || g[2] != 0 {
		t.Errorf("stray descriptors handed to a frame: %v", g)
	}
}

// More descriptors than the control buffer holds: the kernel closes the
// excess and Take says so.
func TestShortControlBufferIsReported(t *testing.T) {
	a, b := socketpair(t)
	var files []int
	for range 5 {
		files = append(files, int(pipeFile(t).Fd()))
	}
	f := frame(1, 0)
	if _, _, err := a.WriteMsgUnix(f, unix.UnixRights(files...), nil); err != nil {
		t.Fatal(err)
	}
	rr := rights.NewReader(b, 2)
	r := wire.NewReader(rr, 1<<20, 64<<10)
	if _, _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	got, trunc := rr.Take(0, rr.Pos())
	rights.CloseFiles(got)
	if !trunc || len(got) > 2 {
		t.Errorf("got %d descriptors, truncated %v; want at most 2 and truncated", len(got), trunc)
	}
}
