package integration_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/internal/testbroker"
)

// nobody is the other uid the permission tests run clients as.
var nobody = &syscall.Credential{Uid: 65534, Gid: 65534, NoSetGroups: false, Groups: []uint32{}}

// needRoot skips t unless the tests run as root, which they need to start
// a client process under another uid.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the test runs a client process as uid/gid 65534 (SysProcAttr.Credential)")
	}
}

// asNobody runs a client role as uid/gid 65534.
func asNobody(t *testing.T, socket string, args ...string) roleResult {
	t.Helper()
	r := runChild(t, socket, nobody, args...)
	if r.UID != 65534 || r.GID != 65534 {
		t.Fatalf("client role ran as uid %d gid %d, want 65534", r.UID, r.GID)
	}
	if r.Err == "other" && strings.Contains(r.ErrText, "dial") {
		t.Fatalf("uid 65534 cannot reach the broker: %s", r.ErrText)
	}
	return r
}

func wantRoleErr(t *testing.T, r roleResult, want, what string) {
	t.Helper()
	if r.Err != want {
		t.Fatalf("%s as uid 65534: error %q (%s), want %q", what, r.Err, r.ErrText, want)
	}
}

func TestMode0600DeniesOtherUIDSendAndReceive(t *testing.T) {
	needRoot(t)
	b := start(t, nil)
	owner := b.Dial(t)
	mb := create(t, owner, "secret", postbox.Mode(0o600))
	send(t, mb, "for root only")

	wantRoleErr(t, asNobody(t, b.Socket, "send", "secret", "intruder"), "ErrPermission", "send to a 0600 mailbox")
	wantRoleErr(t, asNobody(t, b.Socket, "recv", "secret"), "ErrPermission", "receive from a 0600 mailbox")
	info := waitStat(t, mb, "", func(postbox.Info) bool { return true })
	if info.Depth != 1 || info.Sent != 1 || info.Received != 0 {
		t.Fatalf("denied requests changed the mailbox: %+v", info)
	}
}

func TestMode0622AllowsOtherUIDSendButNotReceive(t *testing.T) {
	needRoot(t)
	b := start(t, nil)
	owner := b.Dial(t)
	mb := create(t, owner, "dropbox", postbox.Mode(0o600))
	if err := mb.Chmod(ctxT(t), 0o622); err != nil {
		t.Fatal(err)
	}
	if info := waitStat(t, mb, "", func(postbox.Info) bool { return true }); info.Mode != 0o622 {
		t.Fatalf("mode after chmod: %#o", info.Mode)
	}
	sent := asNobody(t, b.Socket, "send", "dropbox", "from nobody")
	wantRoleErr(t, sent, "", "send to a 0622 mailbox")
	wantRoleErr(t, asNobody(t, b.Socket, "recv", "dropbox"), "ErrPermission", "receive from a 0622 mailbox")

	// The other uid's message carries its identity, as the kernel gave it.
	m := recv(t, mb)
	ack(t, m)
	want := postbox.Identity{Kind: postbox.KindUnix, UID: 65534, GID: 65534, PID: int32(sent.PID), Endpoint: sent.Endpoint}
	if string(m.Body) != "from nobody" || m.Sender != want {
		t.Fatalf("got %q from %+v, want \"from nobody\" from %+v", m.Body, m.Sender, want)
	}
}

func TestChmodAndDestroyByNonOwnerAreDenied(t *testing.T) {
	needRoot(t)
	b := start(t, nil)
	owner := b.Dial(t)
	// Even with every permission bit set, only the owner (or root) may
	// chmod or destroy.
	mb := create(t, owner, "open", postbox.Mode(0o666))
	wantRoleErr(t, asNobody(t, b.Socket, "chmod", "open", "0600"), "ErrPermission", "chmod by a non-owner")
	wantRoleErr(t, asNobody(t, b.Socket, "rm", "open"), "ErrPermission", "destroy by a non-owner")
	info := waitStat(t, mb, "", func(postbox.Info) bool { return true })
	if info.Mode != 0o666 {
		t.Fatalf("mode changed by a non-owner: %#o", info.Mode)
	}
	// The owner still can.
	if err := mb.Destroy(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}

func TestCLIPermissionDeniedExits77ForOtherUID(t *testing.T) {
	needRoot(t)
	testbroker.CheckGoroutines(t)
	p := testbroker.StartProcess(t, cli(t))
	owner := p.Dial(t)
	create(t, owner, "secret", postbox.Mode(0o600))
	for _, args := range [][]string{
		{"send", "secret", "x"},
		{"recv", "secret", "--nowait"},
		{"chmod", "0666", "secret"},
		{"rm", "secret"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
		cmd := exec.CommandContext(ctx, cli(t), append(args, "--socket", p.Socket)...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: nobody}
		cmd.Dir = "/"
		out, err := cmd.CombinedOutput()
		cancel()
		if code := testbroker.ExitCode(err); code != 77 {
			t.Errorf("postbox %s as uid 65534: exit %d (%v), want 77 (permission denied); output %q", strings.Join(args, " "), code, err, out)
			continue
		}
		if !strings.Contains(string(out), "permission denied") && !strings.Contains(string(out), "only its owner") {
			t.Errorf("postbox %s as uid 65534: output %q does not say permission denied", strings.Join(args, " "), out)
		}
		if lines := strings.Count(strings.TrimSpace(string(out)), "\n"); lines != 0 {
			t.Errorf("postbox %s: %d-line error, want one line: %q", strings.Join(args, " "), lines+1, out)
		}
	}
	if _, err := owner.Mailbox("secret").Stat(ctxT(t)); err != nil {
		t.Fatalf("mailbox after the other uid's attempts: %v", err)
	}
}
