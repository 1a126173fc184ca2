package integration_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/broker"
	"github.com/postbox-ipc/postbox/internal/testbroker"
	"github.com/postbox-ipc/postbox/store"
)

// serveOnce runs `postbox serve` expecting it to refuse to start, and
// returns its exit code and output.
func serveOnce(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	out, err := exec.CommandContext(ctx, cli(t), append([]string{"serve"}, args...)...).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("postbox serve %q still running after %v: it should have refused to start\n%s", args, hangGuard, out)
	}
	return testbroker.ExitCode(err), string(out)
}

func TestSecondBrokerOnTheSameDataDirectoryIsRefused(t *testing.T) {
	dir := t.TempDir()
	cfg := durableConfig(dir)
	b := start(t, cfg)
	mb := create(t, b.Dial(t), "mine", postbox.Durable())
	send(t, mb, "still here")

	second, err := broker.Open(*cfg)
	if !errors.Is(err, store.ErrLocked) {
		if second != nil {
			second.Close()
		}
		t.Fatalf("second broker.Open on %s: %v, want store.ErrLocked", dir, err)
	}
	if !strings.Contains(err.Error(), dir) {
		t.Errorf("error %q does not name the directory %s", err, dir)
	}

	// A `postbox serve` process is refused too, before it touches its
	// socket.
	sock := filepath.Join(t.TempDir(), "second.sock")
	code, out := serveOnce(t, "--socket", sock, "--data", dir)
	if code != 1 || !strings.Contains(out, dir) || !strings.Contains(out, "locked") {
		t.Errorf("second postbox serve on %s: exit %d, output %q; want exit 1 naming the directory and saying it is locked", dir, code, out)
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("refused broker created its socket %s (%v)", sock, err)
	}

	// The first broker is unaffected.
	if got := recvAck(t, mb); got != "still here" {
		t.Fatalf("first broker after the refusals: %q", got)
	}
}

func TestSecondServeProcessOnTheSameDataDirectoryIsRefused(t *testing.T) {
	testbroker.CheckGoroutines(t)
	dir := t.TempDir()
	p := testbroker.StartProcess(t, cli(t), "--data", dir)
	code, out := serveOnce(t, "--socket", filepath.Join(t.TempDir(), "second.sock"), "--data", dir)
	if code != 1 || !strings.Contains(out, dir) || !strings.Contains(out, "locked") {
		t.Errorf("second postbox serve on %s: exit %d, output %q; want exit 1 naming the directory and saying it is locked", dir, code, out)
	}
	// In-process, the lock held by another process is refused the same way.
	if b, err := broker.Open(*durableConfig(dir)); !errors.Is(err, store.ErrLocked) {
		if b != nil {
			b.Close()
		}
		t.Errorf("broker.Open on a directory a serve process holds: %v, want store.ErrLocked", err)
	}
	if err := p.Dial(t).Ping(ctxT(t)); err != nil {
		t.Fatalf("first broker after the refusals: %v", err)
	}
}

func TestDurableMailboxNeedsADataDirectory(t *testing.T) {
	eachMemoryBroker(t, func(t *testing.T, c *postbox.Client) {
		_, err := c.Create(ctxT(t), "disk", postbox.Durable())
		wantErr(t, err, postbox.ErrInvalid, "durable create without a data directory")
		if err != nil && !strings.Contains(err.Error(), "data directory") {
			t.Errorf("error %q does not say a data directory is needed", err)
		}
		if _, err := c.Mailbox("disk").Stat(ctxT(t)); !errors.Is(err, postbox.ErrNotFound) {
			t.Errorf("refused durable mailbox exists anyway: %v", err)
		}
		create(t, c, "disk") // a plain mailbox of that name is fine
	})
}

// eachMemoryBroker runs body against an in-process broker without a data
// directory and a `postbox serve --memory` process.
func eachMemoryBroker(t *testing.T, body func(t *testing.T, c *postbox.Client)) {
	t.Run("in-process", func(t *testing.T) {
		body(t, start(t, nil).Dial(t))
	})
	t.Run("process", func(t *testing.T) {
		testbroker.CheckGoroutines(t)
		body(t, testbroker.StartProcess(t, cli(t), "--memory").Dial(t))
	})
}
