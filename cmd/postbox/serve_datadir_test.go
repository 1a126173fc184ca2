package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/postbox-ipc/postbox/internal/testbroker"
)

// serve opens its data directory on first need (broker/lazystore.go):
// these run `postbox serve` and the CLI as processes.

func TestServeCreatesNoDataDirectoryUntilADurableMailbox(t *testing.T) {
	p := startBroker(t) // --data <its directory>/data, which does not exist
	data := filepath.Join(filepath.Dir(p.Socket), "data")
	ok(t, p, "", "create", "plain")
	ok(t, p, "", "send", "plain", "in memory")
	if _, err := os.Lstat(data); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("serve created %s before any durable mailbox (%v)", data, err)
	}

	ok(t, p, "", "create", "disk", "--durable")
	ok(t, p, "", "send", "disk", "kept")
	ents, err := os.ReadDir(data)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if !slices.Contains(names, "RESERVE") || !slices.Contains(names, "LOCK") {
		t.Fatalf("after the first durable create %s holds %v; want LOCK and RESERVE among them", data, names)
	}

	// A second broker on it is refused now that it is in use.
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.HangGuard)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "serve", "--socket", filepath.Join(t.TempDir(), "second.sock"), "--data", data).CombinedOutput()
	if code := testbroker.ExitCode(err); code != exitError || !strings.Contains(string(out), "locked") {
		t.Fatalf("second serve on %s: exit %d, %q; want exit %d saying it is locked", data, code, out, exitError)
	}

	// Restarted, the broker recovers it.
	p.Signal(syscall.SIGTERM)
	if err := p.Wait(); err != nil {
		t.Fatalf("broker exit: %v\n%s", err, p.Log())
	}
	p2 := testbroker.StartProcessAt(t, bin, p.Socket, "--data", data)
	if got := ok(t, p2, "", "recv", "disk").stdout; strings.TrimSpace(got) != "kept" {
		t.Fatalf("after restart, recv disk: %q", got)
	}
}
