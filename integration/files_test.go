package integration_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/broker"
	"github.com/postbox-ipc/postbox/internal/testbroker"
)

// Descriptors on messages (issue 11, item 3), between real processes: the
// CLI's send --fd and recv --exec, and the Go API in this process.

// shell runs script with sh, $PB being the postbox CLI and
// POSTBOX_SOCKET the broker's socket, and returns its exit code and
// combined output.
func shell(t *testing.T, socket, script string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", script)
	cmd.Env = append(os.Environ(), "PB="+cli(t), "POSTBOX_SOCKET="+socket)
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("script still running after %v: %s\n%s", hangGuard, script, out)
	}
	return testbroker.ExitCode(err), string(out)
}

// openFDs counts this process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// settleFDs waits until this process has want open descriptors and the
// broker holds none for messages (closing is asynchronous: a delivery's
// duplicates close once written), failing t after the hang guard.
func settleFDs(t *testing.T, b *testbroker.Broker, want int) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for {
		n, held := openFDs(t), b.HeldFiles()
		if n <= want && held == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("descriptors leaked: %d open (want %d), broker holds %d for messages", n, want, held)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// A file opened by one process (send --fd 3 3<file) is read by another
// (recv --exec), which gets it as fd 3 with POSTBOX_FDS set.
func TestFilePassedBetweenProcessesIsReadThere(t *testing.T) {
	b := start(t, nil)
	c := b.Dial(t)
	create(t, c, "fdq")
	base := openFDs(t)
	path := writeFile(t, "data", "the file's contents\n")
	if code, out := shell(t, b.Socket, `"$PB" send fdq job --fd 3 3<`+path); code != 0 {
		t.Fatalf("send --fd: exit %d\n%s", code, out)
	}
	code, out := shell(t, b.Socket, `"$PB" recv fdq --exec -- sh -c 'echo "fds=$POSTBOX_FDS body=$(cat)"; cat <&3'`)
	if code != 0 {
		t.Fatalf("recv --exec: exit %d\n%s", code, out)
	}
	if want := "fds=3 body=job\nthe file's contents\n"; out != want {
		t.Fatalf("recv --exec printed %q, want %q", out, want)
	}
	settleFDs(t, b, base)
}

// recv prints the numbers of the descriptors that came, on stderr in text
// and in "fds" with -o json.
func TestRecvPrintsTheDescriptorsThatCame(t *testing.T) {
	b := start(t, nil)
	c := b.Dial(t)
	create(t, c, "fdprint")
	path := writeFile(t, "data", "x")
	shell(t, b.Socket, `"$PB" send fdprint one --fd 3 --fd 4 3<`+path+` 4<`+path)
	code, out := shell(t, b.Socket, `"$PB" recv fdprint -o json`)
	if code != 0 || !strings.Contains(out, `"fds":[`) || strings.Count(strings.SplitN(out, `"fds":[`, 2)[1], ",") < 1 {
		t.Fatalf("recv -o json: exit %d, want two fds listed:\n%s", code, out)
	}
	shell(t, b.Socket, `"$PB" send fdprint two --fd 3 3<`+path)
	code, out = shell(t, b.Socket, `"$PB" recv fdprint`)
	if code != 0 || !strings.Contains(out, "two\n") || !strings.Contains(out, "came with descriptors") {
		t.Fatalf("recv: exit %d:\n%s", code, out)
	}
}

// One end of a socketpair, sent by this process, is used by a receiving
// process to talk to this one.
func TestSocketPassedToAnotherProcessCarriesAConversation(t *testing.T) {
	b := start(t, nil)
	c := b.Dial(t)
	mb := create(t, c, "sockq")
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	mine, theirs := os.NewFile(uintptr(fds[0]), "mine"), os.NewFile(uintptr(fds[1]), "theirs")
	defer mine.Close()
	send(t, mb, "talk to me", postbox.WithFiles(theirs))
	theirs.Close() // the broker holds its own copy
	done := make(chan string, 1)
	go func() {
		_, out := shell(t, b.Socket, `"$PB" recv sockq --exec -- sh -c 'echo ping >&3; read answer <&3; echo "got $answer"'`)
		done <- out
	}()
	r := bufio.NewReader(mine)
	line, err := r.ReadString('\n')
	if err != nil || line != "ping\n" {
		t.Fatalf("read %q, %v from the passed socket", line, err)
	}
	fmt.Fprintln(mine, "pong")
	if out := <-done; out != "got pong\n" {
		t.Fatalf("the receiver printed %q", out)
	}
}

// A memfd's contents reach the receiving process.
func TestMemfdContentsReachTheReceiver(t *testing.T) {
	b := start(t, nil)
	c := b.Dial(t)
	mb := create(t, c, "memq")
	fd, err := unix.MemfdCreate("postbox-test", unix.MFD_CLOEXEC)
	if err != nil {
		t.Skipf("memfd_create: %v", err)
	}
	mf := os.NewFile(uintptr(fd), "memfd")
	mf.WriteString("in memory only")
	send(t, mb, "m", postbox.WithFiles(mf))
	mf.Close()
	code, out := shell(t, b.Socket, `"$PB" recv memq --exec -- cat /proc/self/fd/3`)
	if code != 0 || out != "in memory only" {
		t.Fatalf("exit %d, read %q", code, out)
	}
}

// Descriptors cannot go over TCP: the client refuses before sending
// (ErrNoDescriptors). A receiver over TCP gets the message with its
// descriptors withheld; they stay with the message until it leaves.
func TestDescriptorsAreRefusedOverTCPAndWithheldFromATCPReceiver(t *testing.T) {
	b := start(t, nil)
	tc := testbroker.DialTCP(t, b.ServeTCP(t))
	uc := b.Dial(t)
	create(t, uc, "tcpq", postbox.Mode(0o666))
	base := openFDs(t)
	f, _ := os.Open(writeFile(t, "f", "x"))
	_, err := tc.Mailbox("tcpq").Send(ctxT(t), []byte("m"), postbox.WithFiles(f))
	if !errors.Is(err, postbox.ErrNoDescriptors) {
		t.Fatalf("send over TCP: %v, want ErrNoDescriptors", err)
	}
	send(t, uc.Mailbox("tcpq"), "m", postbox.WithFiles(f))
	f.Close()
	m := recv(t, tc.Mailbox("tcpq"))
	if !m.FilesWithheld() || m.Files() != nil {
		t.Fatalf("TCP receiver: withheld %v, files %v", m.FilesWithheld(), m.Files())
	}
	if b.HeldFiles() != 1 {
		t.Fatalf("broker holds %d descriptors, want 1 (withheld, not closed)", b.HeldFiles())
	}
	if err := m.Nack(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	// A Unix receiver still gets them after the TCP one gave it back.
	m = recv(t, uc.Mailbox("tcpq"))
	if len(m.Files()) != 1 {
		t.Fatalf("Unix receiver after a withheld delivery: %d files", len(m.Files()))
	}
	m.CloseFiles()
	ack(t, m)
	settleFDs(t, b, base)
}

// A durable mailbox refuses descriptors (NO_DESCRIPTORS), and the broker
// closes what it was sent.
func TestDurableMailboxRefusesDescriptors(t *testing.T) {
	b := start(t, limits(func(c *broker.Config) { c.DataDir, c.NoSync = t.TempDir(), true }))
	c := b.Dial(t)
	mb := create(t, c, "durq", postbox.Durable())
	base := openFDs(t)
	f, _ := os.Open(writeFile(t, "f", "x"))
	_, err := mb.Send(ctxT(t), []byte("m"), postbox.WithFiles(f))
	f.Close()
	var pe *postbox.Error
	if !errors.Is(err, postbox.ErrNoDescriptors) || !errors.As(err, &pe) || !strings.Contains(pe.Msg, "durable") {
		t.Fatalf("send to a durable mailbox: %v, want ErrNoDescriptors saying why", err)
	}
	if _, err := mb.Receive(ctxT(t), postbox.NoWait()); !errors.Is(err, postbox.ErrEmpty) {
		t.Fatalf("a refused message was queued: %v", err)
	}
	code, out := shell(t, b.Socket, `"$PB" send durq m --fd 0`)
	if code != 1 || !strings.Contains(out, "durable") {
		t.Fatalf("send --fd to a durable mailbox: exit %d\n%s", code, out)
	}
	settleFDs(t, b, base)
}

// Nacked, and after its receiving process is killed, a message comes back
// with its descriptors; acked, the broker's copies are closed.
func TestRedeliveryKeepsTheDescriptors(t *testing.T) {
	b := start(t, nil)
	c := b.Dial(t)
	mb := create(t, c, "redq")
	base := openFDs(t)
	f, _ := os.Open(writeFile(t, "f", "still here"))
	send(t, mb, "m", postbox.WithFiles(f))
	f.Close()

	m := recv(t, mb)
	if len(m.Files()) != 1 {
		t.Fatalf("%d files", len(m.Files()))
	}
	m.CloseFiles()
	if err := m.Nack(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	// The receiving process dies while it holds the message.
	code, _ := shell(t, b.Socket, `"$PB" recv redq --exec -- sh -c 'kill -9 $PPID; sleep 5'`)
	if code == 0 {
		t.Fatal("the killed receiver exited 0")
	}
	code, out := shell(t, b.Socket, `"$PB" recv redq -o json --exec -- sh -c 'cat /proc/self/fd/3'`)
	if code != 0 || out != "still here" {
		t.Fatalf("third delivery: exit %d, %q", code, out)
	}
	settleFDs(t, b, base)
}

// Every way a message leaves closes the broker's copies: auto-ack, expiry,
// dead letter, destroy; so do refused and malformed sends.
func TestNoDescriptorLeakInTheBroker(t *testing.T) {
	b := start(t, nil)
	c := b.Dial(t)
	ctx := ctxT(t)
	base := openFDs(t)
	path := writeFile(t, "f", "x")
	withFile := func(mb *postbox.Mailbox) {
		t.Helper()
		f, _ := os.Open(path)
		defer f.Close()
		send(t, mb, "m", postbox.WithFiles(f, f))
	}
	auto := create(t, c, "auto")
	withFile(auto)
	m := recv(t, auto, postbox.AutoAck())
	if len(m.Files()) != 2 {
		t.Fatalf("an auto-acked message came with %d descriptors, want 2", len(m.Files()))
	}
	m.CloseFiles()

	ttl := create(t, c, "ttl", postbox.TTL(time.Millisecond))
	withFile(ttl)
	create(t, c, "dead")
	dl := create(t, c, "dlmax", postbox.MaxDeliveries(1), postbox.DeadLetter("dead"))
	withFile(dl)
	m = recv(t, dl)
	m.CloseFiles()
	m.Nack(ctx)
	dead := recv(t, c.Mailbox("dead"))
	if dead.Files() != nil || dead.FilesWithheld() {
		t.Fatal("a dead letter kept its descriptors")
	}
	ack(t, dead)

	gone := create(t, c, "gone")
	withFile(gone)
	withFile(gone)
	m = recv(t, gone)
	m.CloseFiles()
	if err := gone.Destroy(ctx); err != nil {
		t.Fatal(err)
	}

	full := create(t, c, "full", postbox.Capacity(1))
	withFile(full)
	f, _ := os.Open(path)
	if _, err := full.Send(ctx, []byte("m"), postbox.WithFiles(f), postbox.NoWait()); !errors.Is(err, postbox.ErrFull) {
		t.Fatalf("send to a full mailbox: %v", err)
	}
	if _, err := c.Mailbox("nosuch").Send(ctx, []byte("m"), postbox.WithFiles(f)); !errors.Is(err, postbox.ErrNotFound) {
		t.Fatalf("send to no mailbox: %v", err)
	}
	f.Close()
	if err := full.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	// TTL expiry is the housekeeper's: wait for the mailbox to be empty.
	deadline := time.Now().Add(hangGuard)
	for {
		info, err := ttl.Stat(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.Depth == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the message never expired")
		}
		time.Sleep(10 * time.Millisecond)
	}
	settleFDs(t, b, base)
}

// Held descriptors count against --max-files-per-conn and
// --max-files-per-uid: past either a send fails with LIMIT
// (ErrTooManyFiles); once a message leaves, its count comes back.
func TestDescriptorLimits(t *testing.T) {
	b := start(t, limits(func(c *broker.Config) { c.MaxFilesPerConn, c.MaxFilesPerUID = 2, 3 }))
	c1, c2 := b.Dial(t), b.Dial(t)
	create(t, c1, "lim")
	f, _ := os.Open(writeFile(t, "f", "x"))
	defer f.Close()
	send(t, c1.Mailbox("lim"), "a", postbox.WithFiles(f, f))
	_, err := c1.Mailbox("lim").Send(ctxT(t), []byte("b"), postbox.WithFiles(f))
	if !errors.Is(err, postbox.ErrTooManyFiles) || !errors.Is(err, postbox.ErrLimit) {
		t.Fatalf("past the per-connection limit: %v", err)
	}
	send(t, c2.Mailbox("lim"), "c", postbox.WithFiles(f))
	_, err = c2.Mailbox("lim").Send(ctxT(t), []byte("d"), postbox.WithFiles(f))
	if !errors.Is(err, postbox.ErrTooManyFiles) || !strings.Contains(err.Error(), "uid") {
		t.Fatalf("past the per-uid limit: %v", err)
	}
	m := recv(t, c1.Mailbox("lim"))
	m.CloseFiles()
	ack(t, m)
	send(t, c2.Mailbox("lim"), "e", postbox.WithFiles(f))
	if _, err := c1.Mailbox("lim").Send(ctxT(t), []byte("f"), postbox.WithFiles(make([]*os.File, 65)...)); !errors.Is(err, postbox.ErrTooManyFiles) {
		t.Fatalf("65 files in one message: %v", err)
	}
}

// A consumer's pushed deliveries carry their descriptors too, each
// message its own.
func TestConsumerDeliveriesCarryTheirDescriptors(t *testing.T) {
	b := start(t, nil)
	c := b.Dial(t)
	mb := create(t, c, "consq")
	base := openFDs(t)
	for i := range 5 {
		f, _ := os.Open(writeFile(t, "f", fmt.Sprintf("file %d", i)))
		send(t, mb, fmt.Sprint(i), postbox.WithFiles(f))
		f.Close()
	}
	send(t, mb, "none")
	cn, err := mb.Consume(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		m, err := cn.Next(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Files()) != 1 {
			t.Fatalf("message %s: %d descriptors", m.Body, len(m.Files()))
		}
		got, _ := io.ReadAll(m.Files()[0])
		if want := fmt.Sprintf("file %d", i); string(got) != want {
			t.Fatalf("message %s: read %q, want %q", m.Body, got, want)
		}
		m.CloseFiles()
		ack(t, m)
	}
	m, err := cn.Next(ctxT(t))
	if err != nil || m.Files() != nil || m.FilesWithheld() {
		t.Fatalf("a plain message after them: %v, files %v", err, m.Files())
	}
	ack(t, m)
	cn.Close(ctxT(t))
	settleFDs(t, b, base)
}

// Bad --fd and --exec uses are usage errors (exit 2) that send nothing.
func TestFdFlagsBadUse(t *testing.T) {
	b := start(t, nil)
	c := b.Dial(t)
	mb := create(t, c, "fdbad")
	for _, script := range []string{
		`"$PB" send fdbad x --fd 9`,                  // not open
		`"$PB" send fdbad --lines --fd 0 </dev/null`, // one message only
		`"$PB" recv fdbad --exec`,                    // no command
		`"$PB" recv fdbad extra`,                     // a command without --exec
	} {
		if code, out := shell(t, b.Socket, script); code != 2 {
			t.Errorf("%s: exit %d, want 2\n%s", script, code, out)
		}
	}
	if _, err := mb.Receive(ctxT(t), postbox.NoWait()); !errors.Is(err, postbox.ErrEmpty) {
		t.Fatalf("a bad use sent something: %v", err)
	}
}
