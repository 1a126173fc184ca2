package framewriter

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// gatedWriter records each Write and, while its gate is closed, blocks
// every write after the first one has started.
type gatedWriter struct {
	mu      sync.Mutex
	writes  [][]byte
	started chan struct{} // a value per Write call, sent before it blocks
	gate    chan struct{} // closed: writes proceed
	err     error
}

func newGated() *gatedWriter {
	return &gatedWriter{started: make(chan struct{}, 1000), gate: make(chan struct{})}
}

func (g *gatedWriter) Write(p []byte) (int, error) {
	g.started <- struct{}{}
	<-g.gate
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err != nil {
		return 0, g.err
	}
	g.writes = append(g.writes, bytes.Clone(p))
	return len(p), nil
}

func (g *gatedWriter) stream() []byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	return bytes.Join(g.writes, nil)
}

// frame returns a fake frame: n bytes of c.
func frame(c byte, n int) func([]byte) []byte {
	return func(b []byte) []byte {
		for range n {
			b = append(b, c)
		}
		return b
	}
}

func start(t *testing.T, w io.Writer, cfg Config) *Writer {
	t.Helper()
	fw := New(w, cfg)
	go fw.Run()
	return fw
}

func checkNoLeak(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		for range 100 {
			if runtime.NumGoroutine() <= before {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Errorf("goroutines: %d before, %d after", before, runtime.NumGoroutine())
	})
}

func TestFramesQueuedDuringAWriteGoOutInOneWrite(t *testing.T) {
	checkNoLeak(t)
	g := newGated()
	w := start(t, g, Config{})
	w.Append(false, frame('a', 4))
	<-g.started // the first write holds 'a'
	for range 100 {
		w.Append(false, frame('b', 4))
	}
	close(g.gate)
	if err := w.Close(true); err != nil {
		t.Fatal(err)
	}
	if len(g.writes) != 2 || len(g.writes[1]) != 400 {
		t.Fatalf("%d writes (%d bytes in the second), want 2 with 400", len(g.writes), len(g.writes[len(g.writes)-1]))
	}
}

func TestUrgentFramesOvertakeQueuedDataButNeverSplitOne(t *testing.T) {
	checkNoLeak(t)
	g := newGated()
	w := start(t, g, Config{})
	w.Append(false, frame('a', 3))
	<-g.started
	w.Append(false, frame('d', 5))
	w.Append(false, frame('e', 5))
	w.Append(true, frame('U', 2))
	close(g.gate)
	w.Close(true)
	if got, want := string(g.stream()), "aaaUUdddddeeeee"; got != want {
		t.Fatalf("stream %q, want %q", got, want)
	}
}

func TestWaitBlocksOverHighWaterAndWakesWhenWritten(t *testing.T) {
	checkNoLeak(t)
	g := newGated()
	w := start(t, g, Config{HighWater: 100})
	w.Append(false, frame('a', 150))
	<-g.started
	returned := make(chan bool)
	go func() { returned <- w.Wait() }()
	select {
	case <-returned:
		t.Fatal("Wait returned with 150 bytes being written over a high water of 100")
	case <-time.After(50 * time.Millisecond):
	}
	if w.Pending() != 150 {
		t.Fatalf("Pending %d, want 150", w.Pending())
	}
	close(g.gate)
	if ok := <-returned; !ok {
		t.Fatal("Wait returned false")
	}
	w.Close(true)
}

func TestWaitReturnsFalseWhenClosed(t *testing.T) {
	checkNoLeak(t)
	g := newGated()
	w := start(t, g, Config{HighWater: 10})
	w.Append(false, frame('a', 50))
	<-g.started
	returned := make(chan bool)
	go func() { returned <- w.Wait() }()
	w.Shutdown(false)
	if <-returned {
		t.Fatal("Wait returned true after Shutdown")
	}
	close(g.gate)
	w.Close(false)
}

func TestCloseFlushWritesQueuedFrames(t *testing.T) {
	checkNoLeak(t)
	var buf bytes.Buffer
	w := New(&buf, Config{})
	for range 3 {
		w.Append(false, frame('x', 2))
	}
	w.Append(true, frame('u', 1))
	go w.Run()
	if err := w.Close(true); err != nil {
		t.Fatal(err)
	}
	if buf.String() != "uxxxxxx" {
		t.Fatalf("wrote %q", buf.String())
	}
	if w.Append(false, frame('y', 1)) {
		t.Fatal("Append after Close succeeded")
	}
	if !errors.Is(w.Err(), ErrClosed) {
		t.Fatalf("Err %v", w.Err())
	}
}

func TestCloseAbortDropsQueuedFrames(t *testing.T) {
	checkNoLeak(t)
	g := newGated()
	w := start(t, g, Config{})
	w.Append(false, frame('a', 1))
	<-g.started
	w.Append(false, frame('b', 1))
	w.Shutdown(false)
	close(g.gate) // the write in progress completes; 'b' is dropped
	w.Close(false)
	if got := string(g.stream()); got != "a" {
		t.Fatalf("stream %q, want %q", got, "a")
	}
}

func TestFirstWriteErrorStopsTheWriter(t *testing.T) {
	checkNoLeak(t)
	g := newGated()
	g.err = errors.New("broken pipe")
	close(g.gate)
	w := start(t, g, Config{})
	w.Append(false, frame('a', 1))
	<-w.Done()
	if w.Err() != g.err {
		t.Fatalf("Err %v", w.Err())
	}
	if w.Append(false, frame('b', 1)) || w.Wait() {
		t.Fatal("Append or Wait succeeded after a write error")
	}
	if err := w.Close(true); err != g.err {
		t.Fatalf("Close %v", err)
	}
}

func TestBeforeWriteFoldsFramesInAndKickWakes(t *testing.T) {
	checkNoLeak(t)
	var mu sync.Mutex
	var acks []byte
	var buf lockedBuffer
	w := start(t, &buf, Config{BeforeWrite: func(b []byte) []byte {
		mu.Lock()
		defer mu.Unlock()
		b = append(b, acks...)
		acks = acks[:0]
		return b
	}})
	mu.Lock()
	acks = append(acks, "ACK"...)
	mu.Unlock()
	w.Kick()
	for w.Pending() > 0 || buf.Len() == 0 {
		time.Sleep(time.Millisecond)
	}
	mu.Lock()
	acks = append(acks, "ack"...)
	mu.Unlock()
	w.Close(true) // the last BeforeWrite runs on the flush
	if buf.String() != "ACKack" {
		t.Fatalf("wrote %q", buf.String())
	}
}

func TestFilesTravelWithTheirFrameOverASocketpair(t *testing.T) {
	checkNoLeak(t)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	wf := os.NewFile(uintptr(fds[0]), "w")
	nc, err := net.FileConn(wf)
	wf.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	defer unix.Close(fds[1])

	tmp, err := os.CreateTemp(t.TempDir(), "fd")
	if err != nil {
		t.Fatal(err)
	}
	tmp.WriteString("passed")
	w := New(nc, Config{}) // the built-in sender for a *net.UnixConn
	w.Append(false, frame('a', 16))
	w.AppendWithFiles(false, []*os.File{tmp}, frame('F', 16))
	w.Append(false, frame('z', 16))
	go w.Run()
	if err := w.Close(true); err != nil {
		t.Fatal(err)
	}
	if _, err := tmp.Stat(); err == nil {
		t.Error("the writer did not close the passed file")
	}

	// Read the stream back with recvmsg a frame at a time, as a receiver
	// reads headers: the descriptor arrives with the 'F' frame, at offset
	// 16.
	var got []byte
	var passed []int
	at := -1
	oob := make([]byte, unix.CmsgSpace(4))
	for len(got) < 48 {
		p := make([]byte, 16-len(got)%16)
		n, oobn, _, _, err := unix.Recvmsg(fds[1], p, oob, 0)
		if err != nil || n == 0 {
			t.Fatalf("recvmsg: %d %v", n, err)
		}
		if oobn > 0 {
			msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
			for _, m := range msgs {
				rights, _ := unix.ParseUnixRights(&m)
				passed = append(passed, rights...)
			}
			at = len(got)
		}
		got = append(got, p[:n]...)
	}
	if want := slices.Concat(bytes.Repeat([]byte{'a'}, 16), bytes.Repeat([]byte{'F'}, 16), bytes.Repeat([]byte{'z'}, 16)); !bytes.Equal(got, want) {
		t.Fatalf("stream %q", got)
	}
	if len(passed) != 1 || at != 16 {
		t.Fatalf("descriptors %v received at offset %d, want one at 16", passed, at)
	}
	f := os.NewFile(uintptr(passed[0]), "passed")
	defer f.Close()
	b := make([]byte, 6)
	if n, _ := f.ReadAt(b, 0); string(b[:n]) != "passed" {
		t.Fatalf("passed file reads %q", b[:n])
	}
}

func TestFilesOfDroppedFramesAreClosed(t *testing.T) {
	checkNoLeak(t)
	g := newGated()
	w := start(t, g, Config{WriteFDs: func([]byte, []FDFrame) error { return nil }})
	w.Append(false, frame('a', 1))
	<-g.started
	tmp, _ := os.CreateTemp(t.TempDir(), "fd")
	w.AppendWithFiles(false, []*os.File{tmp}, frame('F', 16))
	w.Shutdown(false)
	close(g.gate)
	w.Close(false)
	if _, err := tmp.Stat(); err == nil {
		t.Fatal("file of a dropped frame not closed")
	}
	tmp2, _ := os.CreateTemp(t.TempDir(), "fd")
	if w.AppendWithFiles(false, []*os.File{tmp2}, frame('F', 16)) {
		t.Fatal("AppendWithFiles after Close succeeded")
	}
	if _, err := tmp2.Stat(); err == nil {
		t.Fatal("file refused by AppendWithFiles not closed")
	}
}

func TestFramesWithFilesFailWithoutAnFDWriter(t *testing.T) {
	var buf bytes.Buffer
	w := start(t, &buf, Config{})
	tmp, _ := os.CreateTemp(t.TempDir(), "fd")
	w.AppendWithFiles(false, []*os.File{tmp}, frame('F', 16))
	<-w.Done()
	if !errors.Is(w.Err(), errNoFDWriter) {
		t.Fatalf("Err %v", w.Err())
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Len()
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// The steady state of Append and write allocates nothing.
func BenchmarkAppend64(b *testing.B) {
	w := New(io.Discard, Config{HighWater: 1 << 20})
	go w.Run()
	fn := frame('m', 64)
	b.SetBytes(64)
	b.ReportAllocs()
	for b.Loop() {
		w.Append(false, fn)
		w.Wait()
	}
	b.StopTimer()
	w.Close(true)
}

func TestAppendDoesNotAllocate(t *testing.T) {
	w := New(io.Discard, Config{})
	go w.Run()
	defer w.Close(true)
	fn := frame('m', 64)
	for range 1000 { // warm the buffers up
		w.Append(false, fn)
	}
	if n := testing.AllocsPerRun(1000, func() { w.Append(false, fn); w.Wait() }); n != 0 {
		t.Fatalf("%v allocations per Append", n)
	}
}

// realFrame appends a frame with a valid size field: n bytes in all,
// filled with c after the 4-byte size.
func realFrame(c byte, n int) func([]byte) []byte {
	return func(b []byte) []byte {
		b = binary.LittleEndian.AppendUint32(b, uint32(n-4))
		for range n - 4 {
			b = append(b, c)
		}
		return b
	}
}

func TestUrgentFrameWaitsBehindAtMostMaxWriteOfABacklog(t *testing.T) {
	checkNoLeak(t)
	const frameSize, frames, maxWrite = 1000, 1000, 10_000 // a 1 MB backlog
	g := newGated()
	w := start(t, g, Config{MaxWrite: maxWrite})
	w.Append(false, realFrame('a', frameSize))
	<-g.started // the first write holds one frame; the backlog queues behind it
	for range frames {
		w.Append(false, realFrame('d', frameSize))
	}
	g.gate <- struct{}{} // let the first write finish
	<-g.started          // the second write: at most maxWrite of the backlog
	w.Append(true, realFrame('U', 100))
	close(g.gate)
	if err := w.Close(true); err != nil {
		t.Fatal(err)
	}
	if len(g.writes[1]) > maxWrite {
		t.Fatalf("the second write took %d bytes, more than MaxWrite %d", len(g.writes[1]), maxWrite)
	}
	s := g.stream()
	at := bytes.IndexByte(s, 'U')
	if at < 0 {
		t.Fatal("the urgent frame was never written")
	}
	if limit := frameSize + 2*maxWrite; at > limit {
		t.Fatalf("the urgent frame went out after %d bytes of data, want at most %d", at, limit)
	}
	if (at-4)%frameSize != 0 {
		t.Fatalf("the urgent frame starts at %d, inside a data frame", at-4)
	}
	if got, want := bytes.Count(s, []byte{'d'}), frames*(frameSize-4); got != want {
		t.Fatalf("%d data bytes written, want %d", got, want)
	}
}

func TestACappedWriteNeverLosesFramesAppendedMeanwhile(t *testing.T) {
	checkNoLeak(t)
	var sink bytes.Buffer
	var mu sync.Mutex
	w := start(t, writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return sink.Write(p)
	}), Config{MaxWrite: 4096})
	var want bytes.Buffer
	for i := range 5000 {
		f := realFrame(byte('a'+i%26), 16+i%300)
		want.Write(f(nil))
		w.Append(false, f)
	}
	if err := w.Close(true); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sink.Bytes(), want.Bytes()) {
		t.Fatalf("stream differs from what was appended (%d bytes vs %d)", sink.Len(), want.Len())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
