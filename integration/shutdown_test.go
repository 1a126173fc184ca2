package integration_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/broker"
	"github.com/postbox-ipc/postbox/internal/testbroker"
	"github.com/postbox-ipc/postbox/wire"
)

func TestShutdownFailsBlockedRequestsWithClosedAndServeReturnsServerClosed(t *testing.T) {
	b := start(t, nil)
	c := b.Dial(t)
	empty := create(t, c, "empty")
	full := create(t, c, "full", postbox.Capacity(1))
	send(t, full, "x")
	ctx := ctxT(t)
	r := async(func() (*postbox.Message, error) { return empty.Receive(ctx) })
	s := async(func() (postbox.Receipt, error) { return full.Send(ctx, []byte("y")) })
	waitStat(t, empty, "Receivers == 1", func(i postbox.Info) bool { return i.Receivers == 1 })
	waitStat(t, full, "BlockedSenders == 1", func(i postbox.Info) bool { return i.BlockedSenders == 1 })

	if err := b.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	// The broker answers with status CLOSED (a *postbox.Error), not just
	// by dropping the connection, which the client also reports as
	// ErrClosed.
	for what, err := range map[string]error{
		"blocked receive": await(t, r, "blocked receive").err,
		"blocked send":    await(t, s, "blocked send").err,
	} {
		var pe *postbox.Error
		if !errors.As(err, &pe) || pe.Code != wire.CodeClosed {
			t.Errorf("%s at shutdown: %v, want a CLOSED reply from the broker", what, err)
		}
		wantErr(t, err, postbox.ErrClosed, what+" at shutdown")
	}
	if err := b.Served(); !errors.Is(err, broker.ErrServerClosed) {
		t.Fatalf("Serve returned %v, want ErrServerClosed", err)
	}
	select {
	case <-c.Done():
	case <-ctx.Done():
		t.Fatal("client not closed by the broker's shutdown")
	}
	if _, err := postbox.Dial(ctx, postbox.WithSocket(b.Socket)); err == nil {
		t.Fatal("dial after shutdown succeeded")
	}
}

func TestServeProcessExitsZeroOnSIGTERMAndRemovesSocket(t *testing.T) {
	testbroker.CheckGoroutines(t)
	p := testbroker.StartProcess(t, cli(t))
	c := p.Dial(t)
	mb := create(t, c, "q")
	r := async(func() (*postbox.Message, error) { return mb.Receive(ctxT(t)) })
	waitStat(t, mb, "Receivers == 1", func(i postbox.Info) bool { return i.Receivers == 1 })

	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	wantErr(t, await(t, r, "blocked receive").err, postbox.ErrClosed, "blocked receive when the broker gets SIGTERM")
	if err := p.Wait(); err != nil {
		t.Fatalf("broker exit: %v (want status 0)\n%s", err, p.Log())
	}
	if _, err := os.Lstat(p.Socket); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket file after exit: %v, want it removed", err)
	}
}

func TestServeProcessReloadsMaxMailboxesOnSIGHUP(t *testing.T) {
	testbroker.CheckGoroutines(t)
	conf := filepath.Join(t.TempDir(), "postbox.json")
	if err := os.WriteFile(conf, []byte(`{"max_mailboxes": 100}`), 0o644); err != nil {
		t.Fatal(err)
	}
	p := testbroker.StartProcess(t, cli(t), "--config", conf)
	c := p.Dial(t)
	create(t, c, "a")
	create(t, c, "b")

	if err := os.WriteFile(conf, []byte(`{"max_mailboxes": 2}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.WaitLog(t, "configuration reloaded")
	if log := p.Log(); !strings.Contains(log, "100 -> 2") {
		t.Errorf("reload log does not say max_mailboxes 100 -> 2:\n%s", log)
	}
	_, err := c.Create(ctxT(t), "c")
	wantErr(t, err, postbox.ErrLimit, "create after SIGHUP lowered max_mailboxes to 2")

	// Raising it again takes effect the same way.
	if err := os.WriteFile(conf, []byte(`{"max_mailboxes": 100}`), 0o644); err != nil {
		t.Fatal(err)
	}
	before := strings.Count(p.Log(), "configuration reloaded")
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "second reload logged", func() bool { return strings.Count(p.Log(), "configuration reloaded") > before })
	create(t, c, "c")
}

func TestServeProcessKeepsLimitsWhenSIGHUPConfigIsInvalid(t *testing.T) {
	testbroker.CheckGoroutines(t)
	conf := filepath.Join(t.TempDir(), "postbox.json")
	if err := os.WriteFile(conf, []byte(`{"max_mailboxes": 100}`), 0o644); err != nil {
		t.Fatal(err)
	}
	p := testbroker.StartProcess(t, cli(t), "--config", conf)
	c := p.Dial(t)
	for _, bad := range []string{`{"max_mailboxes": 0}`, `{not json`} {
		if err := os.WriteFile(conf, []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		before := strings.Count(p.Log(), "configuration not reloaded")
		if err := p.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "rejection of "+bad+" logged", func() bool { return strings.Count(p.Log(), "configuration not reloaded") > before })
	}
	create(t, c, "still-works")
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(); err != nil {
		t.Fatalf("exit after rejected reloads: %v\n%s", err, p.Log())
	}
}
