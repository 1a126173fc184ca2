package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox/internal/testbroker"
)

// Pipes with real processes: every `postbox pipe` below is a process of
// its own, talking to a broker process over its Unix socket.

// proc is a postbox command running in the background.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdout io.ReadCloser // nil if collected into out
	out    *bytes.Buffer
	stderr bytes.Buffer
	done   chan struct{}
	err    error
}

// startCLI starts `postbox args... --socket` with stdin (nil: none) and,
// unless pipeOut, its stdout collected.
func startCLI(t *testing.T, p *testbroker.Process, stdin io.Reader, pipeOut bool, cred *syscall.Credential, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, append(args, "--socket", p.Socket)...)
	cmd.Stdin = stdin
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		cmd.Dir = "/"
	}
	pr := &proc{t: t, cmd: cmd, done: make(chan struct{})}
	cmd.Stderr = &pr.stderr
	if pipeOut {
		var err error
		if pr.stdout, err = cmd.StdoutPipe(); err != nil {
			t.Fatal(err)
		}
	} else {
		pr.out = new(bytes.Buffer)
		cmd.Stdout = pr.out
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		if pr.stdout == nil {
			pr.err = cmd.Wait()
		}
		close(pr.done)
	}()
	t.Cleanup(func() { cmd.Process.Kill(); pr.wait() })
	return pr
}

// wait waits (at most the hang guard) for the process and returns its
// exit status. For a process with piped stdout the caller must have read
// it to the end.
func (pr *proc) wait() int {
	if pr.stdout != nil {
		<-pr.done
		pr.err = pr.cmd.Wait()
		pr.stdout = nil
		return testbroker.ExitCode(pr.err)
	}
	select {
	case <-pr.done:
	case <-time.After(testbroker.HangGuard):
		pr.cmd.Process.Kill()
		<-pr.done
		pr.t.Fatalf("postbox %v still running after %v", pr.cmd.Args[1:], testbroker.HangGuard)
	}
	return testbroker.ExitCode(pr.err)
}

// pipeStat is `stat -o json` of a pipe.
type pipeStat struct {
	Closed    bool   `json:"closed"`
	Consumers uint32 `json:"consumers"`
	Depth     uint64 `json:"depth"`
	InFlight  uint32 `json:"in_flight"`
	Received  uint64 `json:"received"`
}

func statPipe(t *testing.T, p *testbroker.Process, name string) pipeStat {
	t.Helper()
	var st pipeStat
	if err := json.Unmarshal([]byte(ok(t, p, "", "stat", name, "-o", "json").stdout), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// awaitStat polls stat until ok says yes (at most the hang guard): a
// process has reached a state the test cannot otherwise observe.
func awaitStat(t *testing.T, p *testbroker.Process, name, what string, ok func(pipeStat) bool) {
	t.Helper()
	deadline := time.Now().Add(testbroker.HangGuard)
	for !ok(statPipe(t, p, name)) {
		if time.Now().After(deadline) {
			t.Fatalf("pipe %q: never %s: %+v", name, what, statPipe(t, p, name))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCLIPipeReaderGetsEOFOnlyAfterTheLastWriter(t *testing.T) {
	p := startBroker(t)
	ok(t, p, "", "pipe", "create", "p")
	reader := startCLI(t, p, nil, false, nil, "pipe", "read", "p")
	awaitStat(t, p, "p", "open for reading", func(s pipeStat) bool { return s.Consumers == 1 })
	keepR, keepW, err := os.Pipe() // the long-lived writer's stdin
	if err != nil {
		t.Fatal(err)
	}
	defer keepR.Close()
	long := startCLI(t, p, keepR, false, nil, "pipe", "write", "p")
	if _, err := keepW.Write([]byte("first\n")); err != nil {
		t.Fatal(err)
	}
	awaitStat(t, p, "p", "given the long writer's chunk", func(s pipeStat) bool { return s.Received == 1 }) // so it is open
	ok(t, p, "second\n", "pipe", "write", "p")                                                              // opens, writes, closes: not the last writer
	awaitStat(t, p, "p", "drained by the reader", func(s pipeStat) bool { return s.Received == 2 })
	if st := statPipe(t, p, "p"); st.Closed || st.Consumers != 1 {
		t.Fatalf("with a writer still open: %+v; want open, the reader still reading", st)
	}
	keepW.Close()
	if code := long.wait(); code != 0 {
		t.Fatalf("long writer: exit %d: %s", code, long.stderr.String())
	}
	if code := reader.wait(); code != 0 {
		t.Fatalf("reader: exit %d: %s", code, reader.stderr.String())
	}
	if got := reader.out.String(); got != "first\nsecond\n" {
		t.Fatalf("reader got %q, want first then second", got)
	}
}

func TestCLIPipeWriterWithNoReaderLeftExits141(t *testing.T) {
	p := startBroker(t)
	ok(t, p, "", "pipe", "create", "p", "--buffer", "64K")
	reader := startCLI(t, p, nil, true, nil, "pipe", "read", "p")
	awaitStat(t, p, "p", "open for reading", func(s pipeStat) bool { return s.Consumers == 1 })
	src, dst, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	go func() { // an endless producer
		line := bytes.Repeat([]byte("y"), 4095)
		line = append(line, '\n')
		for {
			if _, err := dst.Write(line); err != nil {
				dst.Close()
				return
			}
		}
	}()
	writer := startCLI(t, p, src, false, nil, "pipe", "write", "p")
	if _, err := io.ReadFull(reader.stdout, make([]byte, 100<<10)); err != nil {
		t.Fatal(err)
	}
	reader.cmd.Process.Kill() // kill -9
	io.Copy(io.Discard, reader.stdout)
	reader.wait()
	if code := writer.wait(); code != exitNoReader {
		t.Fatalf("writer after its reader died: exit %d, want 141; stderr %q", code, writer.stderr.String())
	}
	if !strings.Contains(writer.stderr.String(), "no reader") {
		t.Errorf("writer stderr %q does not say no reader", writer.stderr.String())
	}
	// --wait-reader instead waits for the next reader and finishes.
	w2 := startCLI(t, p, strings.NewReader("later\n"), false, nil, "pipe", "write", "p", "--wait-reader")
	// A reader that opens before the writer is registered finds no writer
	// and ends at once (end of stream): read again until the writer's
	// bytes arrive.
	r2 := run(t, p, "", "pipe", "read", "p")
	for i := 0; i < 100 && r2.code == 0 && !strings.HasSuffix(r2.stdout, "later\n"); i++ {
		time.Sleep(20 * time.Millisecond)
		r2 = run(t, p, "", "pipe", "read", "p")
	}
	if code := w2.wait(); code != 0 || r2.code != 0 {
		t.Fatalf("--wait-reader writer exit %d (%s), reader exit %d (%s)", code, w2.stderr.String(), r2.code, r2.stderr)
	}
	if !strings.HasSuffix(r2.stdout, "later\n") {
		t.Fatalf("next reader got %d bytes ending %q", len(r2.stdout), r2.stdout[max(0, len(r2.stdout)-20):])
	}
}

func TestCLIPipeWritesUpToAtomicSizeNeverInterleave(t *testing.T) {
	const writers, records, size = 4, 8, 64 << 10
	p := startBroker(t)
	ok(t, p, "", "pipe", "create", "p", "--buffer", "256K")
	reader := startCLI(t, p, nil, false, nil, "pipe", "read", "p", "-o", "json")
	keepR, keepW, err := os.Pipe() // holds the stream open until every writer is done
	if err != nil {
		t.Fatal(err)
	}
	defer keepR.Close()
	keeper := startCLI(t, p, keepR, false, nil, "pipe", "write", "p")
	dir := t.TempDir()
	pids := map[int]byte{}
	var ws []*proc
	for i := range writers {
		letter := byte('a' + i)
		f := filepath.Join(dir, string(letter))
		if err := os.WriteFile(f, bytes.Repeat([]byte{letter}, records*size), 0o644); err != nil {
			t.Fatal(err)
		}
		in, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		defer in.Close()
		w := startCLI(t, p, in, false, nil, "pipe", "write", "p")
		pids[w.cmd.Process.Pid] = letter
		ws = append(ws, w)
	}
	for _, w := range ws {
		if code := w.wait(); code != 0 {
			t.Fatalf("writer: exit %d: %s", code, w.stderr.String())
		}
	}
	keepW.Close()
	keeper.wait()
	if code := reader.wait(); code != 0 {
		t.Fatalf("reader: exit %d: %s", code, reader.stderr.String())
	}
	count := map[byte]int{}
	dec := json.NewDecoder(reader.out)
	for dec.More() {
		var ch struct {
			Writer struct {
				PID int `json:"pid"`
			} `json:"writer"`
			Size int    `json:"size"`
			Data string `json:"data"`
		}
		if err := dec.Decode(&ch); err != nil {
			t.Fatal(err)
		}
		letter, known := pids[ch.Writer.PID]
		if !known || ch.Size != size || ch.Data != strings.Repeat(string(letter), size) {
			t.Fatalf("chunk of %d bytes from pid %d (writer %q): %q...; want %d bytes all that writer's", ch.Size, ch.Writer.PID, letter, ch.Data[:min(len(ch.Data), 8)], size)
		}
		count[letter]++
	}
	for _, letter := range pids {
		if count[letter] != records {
			t.Fatalf("chunks per writer %v, want %d each", count, records)
		}
	}
}

func TestCLIPipeKilledReaderHandsOverAtTheFirstUnwrittenChunk(t *testing.T) {
	const chunks, size = 64, 64 << 10
	p := startBroker(t)
	ok(t, p, "", "pipe", "create", "p", "--buffer", "8M")
	var input bytes.Buffer
	for i := 0; input.Len() < chunks*size; i++ {
		fmt.Fprintf(&input, "%07d\n", i)
	}
	in := filepath.Join(t.TempDir(), "in")
	if err := os.WriteFile(in, input.Bytes()[:chunks*size], 0o644); err != nil {
		t.Fatal(err)
	}
	want := input.Bytes()[:chunks*size]
	f, err := os.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := startCLI(t, p, f, false, nil, "pipe", "write", "p")
	if code := w.wait(); code != 0 { // all of it is in the pipe's buffer, the stream closed
		t.Fatalf("writer: exit %d: %s", code, w.stderr.String())
	}
	r1 := startCLI(t, p, nil, true, nil, "pipe", "read", "p")
	got1 := make([]byte, 10*size+123)
	if _, err := io.ReadFull(r1.stdout, got1); err != nil {
		t.Fatal(err)
	}
	// r1 has written 10 chunks whole, so it has acked them: wait until
	// the broker has those acks (they travel without a reply), so that
	// what follows checks where the next reader resumes, not how fast
	// acks go on a loaded machine.
	const acked = 10
	awaitStat(t, p, "p", "acked by the first reader", func(s pipeStat) bool { return chunks-s.Depth-uint64(s.InFlight) >= acked })
	r1.cmd.Process.Kill() // kill -9 mid-stream
	rest, _ := io.ReadAll(r1.stdout)
	got1 = append(got1, rest...)
	r1.wait()
	r2 := run(t, p, "", "pipe", "read", "p") // may wait for the broker to see r1 gone: then it takes over
	if r2.code != 0 {
		t.Fatalf("next reader: exit %d: %s", r2.code, r2.stderr)
	}
	got2 := []byte(r2.stdout)
	start := len(want) - len(got2)
	t.Logf("first reader wrote %d bytes; the next started at byte %d", len(got1), start)
	switch {
	case !bytes.HasPrefix(want, got1):
		t.Fatalf("first reader's %d bytes are not the start of the stream", len(got1))
	case start < 0 || !bytes.Equal(want[start:], got2):
		t.Fatalf("next reader's %d bytes are not the end of the stream", len(got2))
	case start > len(got1):
		t.Fatalf("bytes %d..%d lost: the first reader wrote %d, the next started at %d", len(got1), start, len(got1), start)
	case start%size != 0 || start < acked*size:
		// The chunks the first reader wrote whole and acked never come
		// again; one it wrote whole but whose ack had not reached the
		// broker at the kill does (at least once per chunk).
		t.Fatalf("next reader started at byte %d, the first wrote %d and acked %d chunks: want the start of a chunk not acked", start, len(got1), acked)
	}
}

func TestCLIPipePermissionsFollowTheMode(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a client as another uid")
	}
	nobody := &syscall.Credential{Uid: 65534, Gid: 65534}
	p := startBroker(t)
	ok(t, p, "", "pipe", "create", "p", "--mode", "0602") // others may write, not read
	ok(t, p, "", "pipe", "create", "closed")              // 0600: others neither
	r := startCLI(t, p, nil, false, nobody, "pipe", "read", "p")
	if code := r.wait(); code != exitPermission || !strings.Contains(r.stderr.String(), "permission denied") {
		t.Fatalf("read as uid 65534 of a 0602 pipe: exit %d, stderr %q; want 77, permission denied", code, r.stderr.String())
	}
	wc := startCLI(t, p, strings.NewReader("x"), false, nobody, "pipe", "write", "closed")
	if code := wc.wait(); code != exitPermission || !strings.Contains(wc.stderr.String(), "permission denied") {
		t.Fatalf("write as uid 65534 to a 0600 pipe: exit %d, stderr %q", code, wc.stderr.String())
	}
	w := startCLI(t, p, strings.NewReader("from nobody\n"), false, nobody, "pipe", "write", "p")
	if code := w.wait(); code != 0 {
		t.Fatalf("write as uid 65534 to a 0602 pipe: exit %d: %s", code, w.stderr.String())
	}
	got := ok(t, p, "", "pipe", "read", "p", "-o", "json").stdout
	if !strings.Contains(got, `"uid":65534`) || !strings.Contains(got, "from nobody") {
		t.Fatalf("owner's read: %q; want the chunk, written by uid 65534", got)
	}
}

func TestCLIPipeDirectHandsOffAKernelPipe(t *testing.T) {
	p := startBroker(t)
	ok(t, p, "", "pipe", "create", "p")
	reader := startCLI(t, p, nil, false, nil, "pipe", "read", "p", "--direct")
	awaitStat(t, p, "p", "open for reading", func(s pipeStat) bool { return s.Consumers == 1 })
	var input bytes.Buffer
	for i := 0; input.Len() < 4<<20; i++ {
		fmt.Fprintf(&input, "line %d\n", i)
	}
	w := startCLI(t, p, bytes.NewReader(input.Bytes()), false, nil, "pipe", "write", "p", "--direct")
	if code := w.wait(); code != 0 {
		t.Fatalf("writer: exit %d: %s", code, w.stderr.String())
	}
	if code := reader.wait(); code != 0 {
		t.Fatalf("reader: exit %d: %s", code, reader.stderr.String())
	}
	if !bytes.Equal(reader.out.Bytes(), input.Bytes()) {
		t.Fatalf("reader got %d bytes, want the %d written", reader.out.Len(), input.Len())
	}
	var st struct {
		Sent uint64 `json:"sent"`
	}
	json.Unmarshal([]byte(ok(t, p, "", "stat", "p", "-o", "json").stdout), &st)
	if st.Sent != 1 {
		t.Fatalf("the pipe carried %d chunks; want 1, the handoff, the bytes bypassing the broker", st.Sent)
	}
}

func TestCLIPipeDirectWriterExits141WhenItsReaderDies(t *testing.T) {
	p := startBroker(t)
	ok(t, p, "", "pipe", "create", "p")
	reader := startCLI(t, p, nil, true, nil, "pipe", "read", "p", "--direct")
	awaitStat(t, p, "p", "open for reading", func(s pipeStat) bool { return s.Consumers == 1 })
	src, dst, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	go func() {
		buf := bytes.Repeat([]byte("z"), 64<<10)
		for {
			if _, err := dst.Write(buf); err != nil {
				dst.Close()
				return
			}
		}
	}()
	w := startCLI(t, p, src, false, nil, "pipe", "write", "p", "--direct")
	if _, err := io.ReadFull(reader.stdout, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	reader.cmd.Process.Kill()
	io.Copy(io.Discard, reader.stdout)
	reader.wait()
	if code := w.wait(); code != exitNoReader {
		t.Fatalf("direct writer after its reader died: exit %d, want 141; stderr %q", code, w.stderr.String())
	}
}
