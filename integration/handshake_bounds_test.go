package integration_test

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/postbox-ipc/postbox/internal/testbroker"
	"github.com/postbox-ipc/postbox/wire"
)

// Connections that never say HELLO are counted from accept and bounded
// (max_handshaking in total, max_handshaking_per_uid per peer uid): past
// either they are closed at once, so a flood of them cannot take the
// broker's descriptors, and a client of another uid still connects. The
// broker runs as its own process with 512 descriptors (prlimit).
func TestNeverHelloConnectionsDoNotExhaustDescriptors(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root: the client that must still get in runs as uid 65534")
	}
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("needs prlimit(1) to start the broker with 512 descriptors")
	}
	wrapper := filepath.Join(t.TempDir(), "postbox-512")
	script := "#!/bin/sh\nexec " + prlimit + " --nofile=512:512 " + cli(t) + " \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	p := testbroker.StartProcess(t, wrapper, "--memory", "--max-connections", "100",
		"--max-handshaking", "32", "--max-handshaking-per-uid", "16", "--handshake-timeout", "2s")
	pid := p.Cmd.Process.Pid
	fds := func() int {
		e, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
		return len(e)
	}
	base := fds()

	const flood = 2400
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	refused, most := 0, 0
	for range flood {
		c, err := net.Dial("unix", p.Socket)
		if err != nil {
			refused++ // the listen backlog was full for a moment
			continue
		}
		held = append(held, c) // and never a byte written
		if len(held)%200 == 0 {
			most = max(most, fds())
		}
	}
	most = max(most, fds())
	t.Logf("after %d never-HELLO connections (%d dials refused): broker descriptors %d at start, at most %d seen", len(held), refused, base, most)

	// A client of another uid still gets in and works.
	ch := startChild(t, p.Socket, nobody, "hello")
	r := ch.result(t)
	most = max(most, fds())
	t.Logf("then a uid %d client: err %q; broker descriptors at most %d", r.UID, r.ErrText, most)
	if r.Err != "" {
		t.Fatalf("a client of uid 65534 could not connect beside the flood: %s", r.ErrText)
	}
	// The base, 32 handshaking connections, the child's, and slack.
	if bound := base + 32 + 16; most > bound {
		t.Errorf("the broker had %d descriptors open, over %d", most, bound)
	}
}

// A broker out of descriptors answers CHANNEL LIMIT, saying so, not
// INVALID or INTERNAL. The broker runs with 64 descriptors and offer
// bounds above what they allow.
func TestChannelOutOfDescriptorsAnswersLimit(t *testing.T) {
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("needs prlimit(1) to start the broker with 64 descriptors")
	}
	wrapper := filepath.Join(t.TempDir(), "postbox-64")
	script := "#!/bin/sh\nexec " + prlimit + " --nofile=64:64 " + cli(t) + " \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	p := testbroker.StartProcess(t, wrapper, "--memory", "--max-offers-per-conn", "1000", "--max-offers-per-uid", "1000")
	rc := dialRaw(t, p.Socket)
	hd, pl := rc.roundTrip(t, wire.OpCreate, 0, (&wire.Create{Name: []byte("chans"), Capacity: -1, Mode: 0o666}).Append(nil))
	if hd.Status != wire.OK {
		t.Fatalf("CREATE: %s %q", hd.Status, errText(pl))
	}
	for i := range 100 {
		hd, pl := rc.roundTrip(t, wire.OpChannel, 0, (&wire.Channel{Target: []byte("chans"), Type: 1}).Append(nil))
		if hd.Status == wire.OK {
			continue
		}
		t.Logf("offer %d: %s %q", i+1, hd.Status, errText(pl))
		if hd.Status != wire.CodeLimit || !strings.Contains(errText(pl), "file descriptors") {
			t.Fatalf("offer %d with the broker out of descriptors: %s %q, want LIMIT saying so", i+1, hd.Status, errText(pl))
		}
		rc.ping(t) // and the connection still works
		return
	}
	t.Fatal("100 offers with 64 descriptors all succeeded")
}
