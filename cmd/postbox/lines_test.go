package main

// Tests of send --lines and recv --count/--follow with real processes:
// the guarantees of the fast paths (exact admitted prefix, ack only what
// was written, clean stop), not their speed (see BenchmarkCLILines).

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/internal/testbroker"
)

// numbered returns lines "1".."n", each padded to width bytes, one per line.
func numbered(from, n, width int) string {
	var b strings.Builder
	for i := from; i < from+n; i++ {
		fmt.Fprintf(&b, "%0*d\n", width, i)
	}
	return b.String()
}

// stat returns the mailbox's state.
func stat(t *testing.T, c *postbox.Client, name string) postbox.Info {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.HangGuard)
	defer cancel()
	info, err := c.Mailbox(name).Stat(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// admittedRe finds send --lines' count of admitted lines in its error.
var admittedRe = regexp.MustCompile(`: (\d+) lines admitted \(lines 1-(\d+)\); no line after was`)

func admittedOf(t *testing.T, stderr string) int {
	t.Helper()
	m := admittedRe.FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("send --lines error %q does not say how many lines were admitted", stderr)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func TestCLISendLinesRoundTripsEveryLineInOrder(t *testing.T) {
	p := startBroker(t)
	ok(t, p, "", "create", "q")
	// Empty lines are messages too; "\r\n" ends a line like "\n"; the
	// last line needs no newline.
	in := "first\n\nthird\r\n" + numbered(4, 5000, 64) + "last"
	ok(t, p, in, "send", "q", "--lines")
	want := "first\n\nthird\n" + numbered(4, 5000, 64) + "last\n"
	got := ok(t, p, "", "recv", "q", "--count", "5004").stdout
	if got != want {
		t.Fatalf("recv --count 5004 printed %d bytes, want the %d sent (first difference at byte %d)", len(got), len(want), firstDiff(got, want))
	}
	if info := stat(t, p.Dial(t), "q"); info.Depth != 0 || info.InFlight != 0 || info.Redelivered != 0 {
		t.Errorf("after receiving all: %+v", info)
	}
}

func firstDiff(a, b string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestCLISendLinesOnAFullMailboxReportsTheExactAdmittedPrefix(t *testing.T) {
	p := startBroker(t)
	// 1500 does not fall on a frame boundary (1024 lines a frame at most):
	// the last frame is admitted in part.
	ok(t, p, "", "create", "q", "--capacity", "1500")
	r := run(t, p, numbered(1, 4000, 8), "send", "q", "--lines", "--nowait")
	if r.code != exitWouldBlock {
		t.Fatalf("send --lines --nowait into a full mailbox: exit %d, want 3; stderr %q", r.code, r.stderr)
	}
	if n := admittedOf(t, r.stderr); n != 1500 {
		t.Fatalf("send says %d lines admitted, want 1500: %q", n, r.stderr)
	}
	if got := ok(t, p, "", "recv", "q", "--count", "1500").stdout; got != numbered(1, 1500, 8) {
		t.Fatalf("the admitted lines are not lines 1-1500:\n%.200s", got)
	}
	exits(t, p, exitWouldBlock, "recv", "q", "--nowait")
}

func TestCLISendLinesWithATimeoutReportsTheAdmittedPrefix(t *testing.T) {
	p := startBroker(t)
	ok(t, p, "", "create", "q", "--capacity", "700")
	r := run(t, p, numbered(1, 3000, 8), "send", "q", "--lines", "--timeout", "200ms")
	if r.code != exitWouldBlock {
		t.Fatalf("send --lines --timeout into a full mailbox: exit %d, want 3; stderr %q", r.code, r.stderr)
	}
	if n := admittedOf(t, r.stderr); n != 700 {
		t.Fatalf("send says %d lines admitted, want 700: %q", n, r.stderr)
	}
	if info := stat(t, p.Dial(t), "q"); info.Depth != 700 {
		t.Fatalf("depth %d, want the 700 admitted", info.Depth)
	}
}

func TestCLISendLinesRefusesALineLongerThanTheLargestMessage(t *testing.T) {
	p := testbroker.StartProcess(t, bin, "--max-message", "1024")
	ok(t, p, "", "create", "q")
	for _, long := range []int{1025, 300 << 10} { // within and beyond the read buffer
		in := "a\nb\n" + strings.Repeat("x", long) + "\nc\n"
		r := run(t, p, in, "send", "q", "--lines")
		if r.code != exitError {
			t.Fatalf("a %d-byte line: exit %d, want 1; stderr %q", long, r.code, r.stderr)
		}
		if !strings.Contains(r.stderr, "line 3 is") || !strings.Contains(r.stderr, "longer than the broker's largest message (1024 bytes)") ||
			strings.Contains(r.stderr, "token too long") {
			t.Errorf("a %d-byte line: stderr %q does not name line 3 and the limit", long, r.stderr)
		}
		if n := admittedOf(t, r.stderr); n != 2 {
			t.Errorf("a %d-byte line: %d lines admitted, want 2", long, n)
		}
		if got := ok(t, p, "", "recv", "q", "--count", "2").stdout; got != "a\nb\n" {
			t.Errorf("a %d-byte line: queued %q, want the two lines before it", long, got)
		}
		exits(t, p, exitWouldBlock, "recv", "q", "--nowait")
	}
	// A line of exactly the largest size goes.
	ok(t, p, strings.Repeat("y", 1024)+"\n", "send", "q", "--lines")
}

func TestCLIRecvCountLeasesNoMoreThanCount(t *testing.T) {
	p := startBroker(t)
	ok(t, p, "", "create", "q")
	ok(t, p, numbered(1, 3000, 4), "send", "q", "--lines")
	if got := ok(t, p, "", "recv", "q", "--count", "10").stdout; got != numbered(1, 10, 4) {
		t.Fatalf("recv --count 10: %q", got)
	}
	// Nothing beyond the 10 was leased and nacked back: prefetching
	// stays within the count.
	info := stat(t, p.Dial(t), "q")
	if info.Depth != 2990 || info.Redelivered != 0 || info.InFlight != 0 {
		t.Fatalf("after recv --count 10: depth %d redelivered %d in flight %d, want 2990 0 0", info.Depth, info.Redelivered, info.InFlight)
	}
	if got := ok(t, p, "", "recv", "q", "--count", "2990", "-o", "raw").stdout; got != strings.ReplaceAll(numbered(11, 2990, 4), "\n", "") {
		t.Fatalf("recv --count 2990 -o raw: %.100q", got)
	}
}

func TestCLIRecvAcksOnlyWhatItWroteWhenItsOutputCloses(t *testing.T) {
	p := startBroker(t)
	ok(t, p, "", "create", "q")
	const total, width = 20000, 64
	ok(t, p, numbered(1, total, width), "send", "q", "--lines")

	// A small pipe: what recv wrote but the reader never read is at most
	// one pipe's worth.
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	pipeSize, err := unix.FcntlInt(pw.Fd(), unix.F_SETPIPE_SZ, 4096)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.HangGuard)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "recv", "q", "--count", strconv.Itoa(total), "--socket", p.Socket)
	cmd.Stdout = pw
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	const read = 100
	buf := make([]byte, read*(width+1))
	if _, err := io.ReadFull(pr, buf); err != nil {
		t.Fatal(err)
	}
	if string(buf) != numbered(1, read, width) {
		t.Fatalf("the first %d lines: %.100q", read, buf)
	}
	pr.Close() // head -100 is done
	if err := cmd.Wait(); err != nil {
		t.Fatalf("recv after its output closed: %v, want exit 0; stderr %q", err, stderr.String())
	}
	info := stat(t, p.Dial(t), "q")
	acked := total - int(info.Depth)
	maxAcked := read + pipeSize/(width+1) + 1
	if acked < read || acked > maxAcked || info.InFlight != 0 {
		t.Fatalf("recv acked %d lines (depth %d, in flight %d); it wrote %d that were read and at most %d more fit the pipe",
			acked, info.Depth, info.InFlight, read, maxAcked-read)
	}
	// The rest is there, in order, from the first line not acked.
	rest := ok(t, p, "", "recv", "q", "--count", strconv.Itoa(int(info.Depth))).stdout
	if rest != numbered(acked+1, int(info.Depth), width) {
		t.Fatalf("the lines left are not lines %d-%d (first difference at byte %d)", acked+1, total, firstDiff(rest, numbered(acked+1, int(info.Depth), width)))
	}
}

func TestCLIRecvFollowStopsCleanlyOnSIGTERM(t *testing.T) {
	p := startBroker(t)
	ok(t, p, "", "create", "q")
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.HangGuard)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "recv", "q", "--follow", "--socket", p.Socket)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	cmd.Stdout = pw
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	c := p.Dial(t)
	for i := 0; stat(t, c, "q").Consumers != 1; i++ {
		time.Sleep(time.Millisecond)
	}
	ok(t, p, numbered(1, 3000, 16), "send", "q", "--lines")
	want := numbered(1, 3000, 16)
	buf := make([]byte, len(want))
	if _, err := io.ReadFull(pr, buf); err != nil {
		t.Fatal(err)
	}
	if string(buf) != want {
		t.Fatalf("recv --follow printed %.100q", buf)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("recv --follow after SIGTERM: %v, want exit 0; stderr %q", err, stderr.String())
	}
	if rest, _ := io.ReadAll(pr); len(rest) != 0 {
		t.Errorf("recv printed %q more", rest)
	}
	info := stat(t, c, "q")
	if info.Depth != 0 || info.InFlight != 0 || info.Received != 3000 || info.Redelivered != 0 || info.Consumers != 0 {
		t.Fatalf("after recv --follow stopped: %+v", info)
	}
	// Later messages wait for the next receiver.
	ok(t, p, "a\nb\n", "send", "q", "--lines")
	if got := ok(t, p, "", "recv", "q", "--count", "2").stdout; got != "a\nb\n" {
		t.Fatalf("recv --count 2: %q", got)
	}
}

func TestCLIRecvCountTimeoutPrintsAndAcksWhatCameThenExitsThree(t *testing.T) {
	p := startBroker(t)
	ok(t, p, "", "create", "q")
	ok(t, p, "a\nb\n", "send", "q", "--lines")
	r := run(t, p, "", "recv", "q", "--count", "5", "--timeout", "100ms")
	if r.code != exitWouldBlock || r.stdout != "a\nb\n" || !strings.Contains(r.stderr, "(2 received)") {
		t.Fatalf("recv --count 5 --timeout of 2 messages: exit %d stdout %q stderr %q, want 3, both printed, and how many", r.code, r.stdout, r.stderr)
	}
	if info := stat(t, p.Dial(t), "q"); info.Depth != 0 || info.InFlight != 0 || info.Redelivered != 0 {
		t.Fatalf("the two printed are not acked: %+v", info)
	}
}

// TestCLIRecvEndsAtEndOfStream: after send --eof, recv --count drains
// the mailbox and exits 4 (end of stream) short of its count, and recv
// --follow ends normally (exit 0) once it is drained; both print every
// line and ack it.
func TestCLIRecvEndsAtEndOfStream(t *testing.T) {
	p := startBroker(t)
	ok(t, p, "", "create", "q")
	ok(t, p, "a\nb\nc\n", "send", "q", "--lines", "--eof")
	r := run(t, p, "", "recv", "q", "--count", "10")
	if r.code != exitEndOfStream || r.stdout != "a\nb\nc\n" {
		t.Fatalf("recv --count 10 of 3 then end of stream: exit %d stdout %q stderr %q, want 4 and the 3 lines", r.code, r.stdout, r.stderr)
	}
	ok(t, p, "", "send", "q", "--reopen")
	ok(t, p, "d\ne\n", "send", "q", "--lines", "--eof")
	r = run(t, p, "", "recv", "q", "--follow")
	if r.code != exitOK || r.stdout != "d\ne\n" {
		t.Fatalf("recv --follow to end of stream: exit %d stdout %q stderr %q, want 0 and the 2 lines", r.code, r.stdout, r.stderr)
	}
	if info := stat(t, p.Dial(t), "q"); info.Depth != 0 || info.InFlight != 0 || !info.Closed {
		t.Fatalf("after both: %+v, want empty, nothing in flight, closed", info)
	}
}

func TestCLISendLinesSendsEachLineWithoutWaitingForMore(t *testing.T) {
	p := startBroker(t)
	ok(t, p, "", "create", "q")
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.HangGuard)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "send", "q", "--lines", "--socket", p.Socket)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := p.Dial(t)
	// A quiet producer (tail -f): each line goes as it comes, not when a
	// batch fills or stdin ends.
	for i := 1; i <= 3; i++ {
		fmt.Fprintf(stdin, "line %d\n", i)
		eventually(t, fmt.Sprintf("line %d is queued while stdin stays open", i), func() bool { return stat(t, c, "q").Depth == uint64(i) })
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("send --lines: %v: %s", err, stderr.String())
	}
}
