package broker_test

import (
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/postbox-ipc/postbox/wire"
)

// Descriptors on SEND, spoken by hand (PROTOCOL.md 8.24): what the broker
// refuses, and that it closes every descriptor it does not keep.

func countFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// wantFDs waits (the broker closes asynchronously) until this process has
// at most want descriptors open and the broker holds none for messages.
func wantFDs(t *testing.T, tb *testBroker, want int) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for countFDs(t) > want || tb.HeldFiles() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d descriptors open, want %d; broker holds %d", countFDs(t), want, tb.HeldFiles())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sendWith writes a SEND frame with fds attached to its first byte and
// returns the reply.
func (rc *rawConn) sendWith(t *testing.T, m wire.Send, fds ...int) (wire.Header, []byte) {
	t.Helper()
	b, id := rc.frame(wire.OpSend, 0, m.Append(nil))
	uc := rc.nc.(*net.UnixConn)
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	if _, _, err := uc.WriteMsgUnix(b, oob, nil); err != nil {
		t.Fatal(err)
	}
	return rc.reply(t, id)
}

func tmpFD(t *testing.T) int {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "fd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return int(f.Fd())
}

func filesSend(target string, counts ...uint8) wire.Send {
	m := wire.Send{Target: []byte(target), Msgs: make([]wire.SendMsg, len(counts))}
	for i := range m.Msgs {
		m.Msgs[i] = wire.SendMsg{Type: 1, Body: []byte("m")}
	}
	m.Ext = wire.AppendFiles(nil, counts)
	return m
}

func mustText(t *testing.T, what string, hd wire.Header, p []byte, code wire.Code, text string) {
	t.Helper()
	must(t, what, hd, p, code)
	if msg, _ := wire.DecodeError(p); !strings.Contains(msg, text) {
		t.Fatalf("%s: %q does not say %q", what, msg, text)
	}
}

func TestSendRefusesDescriptorsThatDoNotAddUp(t *testing.T) {
	tb := startBroker(t, nil)
	rc := dialRaw(t, tb.socket)
	rc.create(t, wire.Create{Name: []byte("q"), Capacity: -1, Mode: 0o600})
	fd := tmpFD(t)
	base := countFDs(t)

	hd, p := rc.sendWith(t, filesSend("q", 2), fd)
	mustText(t, "FILES 2 with one descriptor", hd, p, wire.CodeNoDescriptors, "add up to 2")
	hd, p = rc.sendWith(t, filesSend("q", 1), fd, fd)
	mustText(t, "FILES 1 with two descriptors", hd, p, wire.CodeNoDescriptors, "add up to 1")
	plain := wire.Send{Target: []byte("q"), Msgs: []wire.SendMsg{{Type: 1, Body: []byte("m")}}}
	hd, p = rc.sendWith(t, plain, fd)
	mustText(t, "descriptors without FILES", hd, p, wire.CodeNoDescriptors, "no FILES tag")
	bad := plain
	bad.Ext = wire.AppendExt(nil, wire.TagFiles, []byte{1, 1}) // two counts, one message
	hd, p = rc.sendWith(t, bad, fd)
	must(t, "FILES of the wrong length", hd, p, wire.CodeMalformed)
	hd, p = rc.sendWith(t, filesSend("nosuch", 1), fd)
	must(t, "to no mailbox", hd, p, wire.CodeNotFound)
	// Descriptors on a frame that is not a SEND are closed.
	b, id := rc.frame(wire.OpPing, 0, nil)
	if _, _, err := rc.nc.(*net.UnixConn).WriteMsgUnix(b, unix.UnixRights(fd), nil); err != nil {
		t.Fatal(err)
	}
	hd, p = rc.reply(t, id)
	must(t, "PING with a descriptor", hd, p, wire.OK)
	d := rc.sendOK(t, "q", "still fine")
	if len(d) != 1 {
		t.Fatal("the connection did not survive")
	}
	wantFDs(t, tb, base)
}

func TestSendRefusesDescriptorsWithoutTheCapability(t *testing.T) {
	tb := startBroker(t, nil)
	rc := dialRaw0(t, tb.socket)
	rc.handshake(t, 0)
	rc.create(t, wire.Create{Name: []byte("q"), Capacity: -1, Mode: 0o600})
	tcp := dialTCP(t, serveTCP(t, tb, nil))
	fd := tmpFD(t)
	base := countFDs(t)
	hd, p := rc.sendWith(t, filesSend("q", 1), fd)
	mustText(t, "no CapDescriptors", hd, p, wire.CodeNoDescriptors, "DESCRIPTORS capability")

	b, id := tcp.frame(wire.OpSend, 0, func() []byte { m := filesSend("q", 1); return m.Append(nil) }())
	tcp.write(t, b)
	hd, p = tcp.reply(t, id)
	mustText(t, "FILES over TCP", hd, p, wire.CodeNoDescriptors, "Unix socket")
	wantFDs(t, tb, base)
}

// A batch: each message holds its own descriptors, delivered with it.
func TestBatchMessagesCarryTheirOwnDescriptors(t *testing.T) {
	tb := startBroker(t, nil)
	rc := dialRaw(t, tb.socket)
	rc.create(t, wire.Create{Name: []byte("q"), Capacity: -1, Mode: 0o600})
	a, b := tmpFD(t), tmpFD(t)
	hd, p := rc.sendWith(t, filesSend("q", 0, 2, 1), a, b, a)
	must(t, "batch with descriptors", hd, p, wire.OK)
	if tb.HeldFiles() != 3 {
		t.Fatalf("broker holds %d, want 3", tb.HeldFiles())
	}
	for i, want := range []int{0, 2, 1} {
		d := rc.recv(t, "q", wire.FlagAutoAck)
		if got := d.Flags&wire.DeliveryFiles != 0; got != (want > 0) {
			t.Fatalf("message %d: DeliveryFiles %v", i, got)
		}
	}
	// (The raw reader reads without recvmsg: the kernel closes what it
	// was sent. The counts per frame are checked by the Go client tests.)
	deadline := time.Now().Add(hangGuard)
	for tb.HeldFiles() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("auto-acked messages still hold %d descriptors", tb.HeldFiles())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
