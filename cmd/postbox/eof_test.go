package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postbox-ipc/postbox/internal/testbroker"
)

// statClosed reads `stat -o json`'s "closed".
func statClosed(t *testing.T, p *testbroker.Process, name string) bool {
	t.Helper()
	var info struct {
		Closed bool `json:"closed"`
	}
	if err := json.Unmarshal([]byte(ok(t, p, "", "stat", name, "-o", "json").stdout), &info); err != nil {
		t.Fatal(err)
	}
	return info.Closed
}

func TestCLISendEOFDrainsThenRecvExitsFour(t *testing.T) {
	p := startBroker(t)
	ok(t, p, "", "create", "q")
	ok(t, p, "a\nb\n", "send", "q", "--lines", "--eof")
	if !statClosed(t, p, "q") {
		t.Fatal("stat: not closed after send --eof")
	}
	r := run(t, p, "", "recv", "q", "--count", "5")
	if r.code != exitEndOfStream || r.stdout != "a\nb\n" {
		t.Fatalf("recv --count 5 of a closed mailbox holding 2: exit %d stdout %q stderr %q; want exit 4 after a, b", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "end of stream") {
		t.Errorf("stderr %q does not say end of stream", r.stderr)
	}
	exits(t, p, exitEndOfStream, "send", "q", "late")
	exits(t, p, exitEndOfStream, "recv", "q", "--nowait")
	ok(t, p, "", "send", "q", "--reopen", "again")
	if statClosed(t, p, "q") {
		t.Fatal("stat: still closed after send --reopen")
	}
	if got := ok(t, p, "", "recv", "q").stdout; got != "again\n" {
		t.Fatalf("recv after reopen: %q", got)
	}
}

func TestCLIWaitingRecvEndsWhenTheMailboxIsClosed(t *testing.T) {
	p := startBroker(t)
	ok(t, p, "", "create", "q")
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.HangGuard)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "recv", "q", "--count", "3", "--socket", p.Socket)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ok(t, p, "", "send", "q", "one")
	ok(t, p, "", "send", "q", "--eof") // no body: only close
	err := cmd.Wait()
	if code := testbroker.ExitCode(err); code != exitEndOfStream || out.String() != "one\n" {
		t.Fatalf("waiting recv: exit %d (%v) stdout %q stderr %q; want exit 4 after one", code, err, out.String(), errb.String())
	}
}

func TestCLIClosedDurableMailboxStaysClosedAcrossRestart(t *testing.T) {
	p := startBroker(t)
	ok(t, p, "", "create", "d", "--durable")
	ok(t, p, "", "send", "d", "kept", "--eof")
	p.Crash(t)
	p2 := testbroker.StartProcessAt(t, bin, p.Socket, "--data", filepath.Join(filepath.Dir(p.Socket), "data"))
	if !statClosed(t, p2, "d") {
		t.Fatal("durable mailbox open again after a crash")
	}
	r := run(t, p2, "", "recv", "d", "--count", "2")
	if r.code != exitEndOfStream || r.stdout != "kept\n" {
		t.Fatalf("recv after restart: exit %d stdout %q stderr %q; want kept then exit 4", r.code, r.stdout, r.stderr)
	}
	ok(t, p2, "", "send", "d", "--reopen")
	p2.Crash(t)
	p3 := testbroker.StartProcessAt(t, bin, p.Socket, "--data", filepath.Join(filepath.Dir(p.Socket), "data"))
	if statClosed(t, p3, "d") {
		t.Fatal("reopened durable mailbox closed again after a crash")
	}
}
