package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox/internal/testbroker"
)

func TestCLISubPrintsWhatPubLinesPublishes(t *testing.T) {
	p := startBroker(t)
	if ls := ok(t, p, "", "ls").stdout; strings.Contains(ls, "SUBJECT") {
		t.Fatalf("ls shows a subjects table with no subscription:\n%s", ls)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.HangGuard)
	defer cancel()
	sub := exec.CommandContext(ctx, bin, "sub", "logs.>", "--count", "3", "-o", "json", "--queue", "g", "--socket", p.Socket)
	var out, errb bytes.Buffer
	sub.Stdout, sub.Stderr = &out, &errb
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until the broker lists the subscription.
	for !strings.Contains(ok(t, p, "", "ls", "--subjects").stdout, "logs.>") {
		time.Sleep(10 * time.Millisecond)
	}
	if ls := ok(t, p, "", "ls").stdout; !strings.Contains(ls, "SUBJECT") || !strings.Contains(ls, "logs.>") {
		t.Fatalf("ls does not show the subscribed subject:\n%s", ls)
	}
	ls := ok(t, p, "", "ls", "--subjects", "-o", "json").stdout
	var row map[string]any
	if err := json.Unmarshal([]byte(strings.SplitN(ls, "\n", 2)[0]), &row); err != nil || row["subscribers"] != 1.0 || row["queues"] != 1.0 {
		t.Fatalf("ls --subjects -o json: %q (%v)", ls, err)
	}
	ok(t, p, "one\ntwo\nthree\n", "pub", "logs.app", "--lines", "--header", "host=a")
	if err := sub.Wait(); err != nil {
		t.Fatalf("sub: %v, stderr %q", err, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("sub printed %q", out.String())
	}
	for i, want := range []string{"one", "two", "three"} {
		var ev struct {
			Subject string              `json:"subject"`
			Body    string              `json:"body"`
			Headers map[string][]string `json:"headers"`
		}
		if err := json.Unmarshal([]byte(lines[i]), &ev); err != nil || ev.Body != want || ev.Subject != "logs.app" || ev.Headers["host"][0] != "a" {
			t.Fatalf("line %d: %q (%v)", i, lines[i], err)
		}
	}
	if r := ok(t, p, "", "pub", "logs.app", "nobody listens"); strings.TrimSpace(r.stdout) != "0" {
		t.Fatalf("pub with no subscriber printed %q", r.stdout)
	}
}

func TestCLIBindTopicClaimAndBadInput(t *testing.T) {
	p := startBroker(t)
	ok(t, p, "", "create", "archive")
	ok(t, p, "", "bind", "orders.>", "archive")
	if r := ok(t, p, "", "pub", "orders.eu", "o1"); strings.TrimSpace(r.stdout) != "1" {
		t.Fatalf("pub to a bound subject printed %q", r.stdout)
	}
	if r := ok(t, p, "", "recv", "archive"); strings.TrimSpace(r.stdout) != "o1" {
		t.Fatalf("recv from the bound mailbox: %q", r.stdout)
	}
	ok(t, p, "", "topic", "claim", "hr.>", "--mode", "0600")
	ls := ok(t, p, "", "ls", "--subjects").stdout
	if !strings.Contains(ls, "orders.>") || !strings.Contains(ls, "archive") || !strings.Contains(ls, "hr.>") || !strings.Contains(ls, "0600") {
		t.Fatalf("ls --subjects:\n%s", ls)
	}
	ok(t, p, "", "bind", "orders.>", "archive", "--unbind")
	exits(t, p, exitNotFound, "bind", "orders.>", "archive", "--unbind") // no such binding
	exits(t, p, 2, "sub", "a", "--policy", "sometimes")
	exits(t, p, 2, "pub", "a")
	exits(t, p, exitUsage, "pub", "a.*", "x") // a pattern is no subject
	if r := ok(t, p, "", "ls"); strings.Contains(r.stdout, "SUBJECT") {
		t.Fatalf("plain ls changed: %q", r.stdout)
	}
}
