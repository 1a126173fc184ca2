package integration_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/internal/testbroker"
	"github.com/postbox-ipc/postbox/internal/testcerts"
)

var listenLog = regexp.MustCompile(`listen=tls://(127\.0\.0\.1:\d+)`)

// TestTLSClientAndUnixClientExchangeMessagesThroughOneServeProcess: a
// `postbox serve --listen tls://127.0.0.1:0` process; a Go client over
// TLS and one over the Unix socket talk both ways, each seeing the
// other's identity as the broker stamped it; the CLI works over TLS too
// (acl, stat, send).
func TestTLSClientAndUnixClientExchangeMessagesThroughOneServeProcess(t *testing.T) {
	testbroker.CheckGoroutines(t)
	dir := t.TempDir()
	ca := testcerts.NewCA(t, dir, "test")
	srv := ca.Server(t, "broker")
	alice := ca.Client(t, "alice", "Example", "spiffe://example.org/alice")
	p := testbroker.StartProcess(t, cli(t), "--memory", "--listen", "tls://127.0.0.1:0",
		"--tls-cert", srv.CertFile, "--tls-key", srv.KeyFile, "--tls-client-ca", ca.CertFile)
	p.WaitLog(t, "listen=tls://")
	m := listenLog.FindStringSubmatch(p.Log())
	if m == nil {
		t.Fatalf("no TLS address in the log:\n%s", p.Log())
	}
	url := "tls://" + m[1]
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()

	local := p.Dial(t)
	remote, err := postbox.Dial(ctx, postbox.WithURL(url), postbox.WithTLS(testcerts.ClientConfig(alice, ca)))
	if err != nil {
		t.Fatal(err)
	}
	defer remote.Close()
	chat, err := local.Create(ctx, "chat", postbox.Capacity(16), postbox.Mode(0o600))
	if err != nil {
		t.Fatal(err)
	}
	// Without an entry the remote client may not send.
	if _, err := remote.Mailbox("chat").Send(ctx, []byte("x"), postbox.NoWait()); !errors.Is(err, postbox.ErrPermission) {
		t.Fatalf("send before the entry: %v", err)
	}
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(cli(t), append([]string{"--socket", p.Socket}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("postbox %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	run("acl", "chat", "--add", "spiffe://example.org/*=w")
	if out := run("stat", "chat"); !strings.Contains(out, "spiffe://example.org/*=w") {
		t.Fatalf("stat does not show the entry:\n%s", out)
	}
	if _, err := remote.Mailbox("chat").Send(ctx, []byte("hello from afar")); err != nil {
		t.Fatal(err)
	}
	got, err := chat.Receive(ctx, postbox.AutoAck())
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Body) != "hello from afar" || got.Sender.Kind != postbox.KindTLS || got.Sender.Name != "spiffe://example.org/alice" {
		t.Fatalf("local got %q from %+v", got.Body, got.Sender)
	}
	// And back, to the remote client's inbox.
	if _, err := local.Mailbox(postbox.InboxName(remote.Identity().Endpoint)).Send(ctx, []byte("hello back")); err != nil {
		t.Fatal(err)
	}
	back, err := remote.Mailbox(postbox.InboxName(remote.Identity().Endpoint)).Receive(ctx, postbox.AutoAck())
	if err != nil {
		t.Fatal(err)
	}
	if string(back.Body) != "hello back" || back.Sender != local.Identity() {
		t.Fatalf("remote got %q from %+v, want %+v", back.Body, back.Sender, local.Identity())
	}
	// The CLI over TLS: it sends as alice.
	out, err := exec.Command(cli(t), "--url", url, "--tls-cert", alice.CertFile, "--tls-key", alice.KeyFile,
		"--tls-ca", ca.CertFile, "send", "chat", "from the cli").CombinedOutput()
	if err != nil {
		t.Fatalf("postbox --url %s send: %v\n%s", url, err, out)
	}
	if got, err = chat.Receive(ctx, postbox.AutoAck()); err != nil || got.Sender.Name != "spiffe://example.org/alice" {
		t.Fatalf("cli message from %+v (%v)", got.Sender, err)
	}
	// Without a certificate the CLI is refused, saying why.
	out, err = exec.Command(cli(t), "--url", url, "--tls-ca", ca.CertFile, "ls").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "sent none") {
		t.Fatalf("postbox ls without a certificate: %v\n%s", err, out)
	}
}

// TestServeRefusesPlainTCPUnlessInsecureAndLoopback: tcp:// has no
// identity, so serve refuses it without --insecure, and on any address
// that is not loopback even with it (usage errors, status 2).
func TestServeRefusesPlainTCPUnlessInsecureAndLoopback(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--listen", "tcp://127.0.0.1:0"}, "add --insecure"},
		{[]string{"--listen", "tcp://0.0.0.0:0", "--insecure"}, "not a loopback address"},
		{[]string{"--listen", "tls://127.0.0.1:0"}, "needs a certificate"},
		{[]string{"--config", writeConfig(t, `{"listen": ["tcp://127.0.0.1:0"]}`)}, "add --insecure"},
	} {
		cmd := exec.Command(cli(t), append([]string{"serve", "--memory", "--socket", t.TempDir() + "/s.sock"}, tc.args...)...)
		out, err := cmd.CombinedOutput()
		if testbroker.ExitCode(err) != 2 || !strings.Contains(string(out), tc.want) {
			t.Fatalf("serve %v: status %d, want 2 saying %q:\n%s", tc.args, testbroker.ExitCode(err), tc.want, out)
		}
	}
	// With --insecure on loopback it serves, and its peers are anonymous.
	p := testbroker.StartProcess(t, cli(t), "--memory", "--listen", "tcp://127.0.0.1:0", "--insecure")
	p.WaitLog(t, "listen=tcp://")
	m := regexp.MustCompile(`listen=tcp://(127\.0\.0\.1:\d+)`).FindStringSubmatch(p.Log())
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	c, err := postbox.Dial(ctx, postbox.WithURL("tcp://"+m[1]))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Identity().Kind != postbox.KindUnknown {
		t.Fatalf("a plain TCP peer is %+v", c.Identity())
	}
	mb, err := c.Create(ctx, "anon", postbox.Mode(0o666))
	if err != nil {
		t.Fatal(err)
	}
	if info, err := mb.Stat(ctx); err != nil || info.OwnerKind != postbox.KindUnknown || info.UID == 0 {
		t.Fatalf("a mailbox an anonymous peer created: owner %v uid %d (%v)", info.OwnerKind, info.UID, err)
	}
}

func writeConfig(t *testing.T, json string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(p, []byte(json), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
