package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// postbox send --urgent --print-id and postbox cancel, as a script uses
// them: the printed id cancels the message; the exit status says whether
// everything named was withdrawn.
func TestCLISendPrintIDThenCancel(t *testing.T) {
	p := startBroker(t)
	ok(t, p, "", "create", "jobs")
	first := strings.TrimSpace(ok(t, p, "", "send", "jobs", "one", "--print-id").stdout)
	ok(t, p, "", "send", "jobs", "two", "--header", "batch=7")
	ok(t, p, "", "send", "jobs", "three", "--header", "batch=7")
	urgent := strings.TrimSpace(ok(t, p, "", "send", "jobs", "stop", "--urgent", "--print-id").stdout)
	if first != "1" || urgent != "4" {
		t.Fatalf("--print-id printed %q and %q, want 1 and 4", first, urgent)
	}
	// The urgent one comes first, and says it is urgent.
	var m struct {
		Body   string `json:"body"`
		Urgent bool   `json:"urgent"`
	}
	if err := json.Unmarshal([]byte(ok(t, p, "", "recv", "jobs", "-o", "json").stdout), &m); err != nil || m.Body != "stop" || !m.Urgent {
		t.Fatalf("first recv: %+v %v, want the urgent stop", m, err)
	}
	if out := ok(t, p, "", "cancel", "jobs", "--id", first).stdout; out != "1\twithdrawn\n" {
		t.Fatalf("cancel --id %s printed %q", first, out)
	}
	// Gone now (withdrawn), and 4 was received: exit 3, each line says.
	r := exits(t, p, 3, "cancel", "jobs", "--id", "1,4", "--id", "99")
	if want := "1\tgone\n4\tgone\n99\tno such message\n"; r.stdout != want {
		t.Fatalf("cancel of gone ids printed %q, want %q", r.stdout, want)
	}
	r = ok(t, p, "", "cancel", "jobs", "--header", "batch=7", "-o", "json")
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(lines) != 2 || !strings.Contains(lines[0], `"outcome":"withdrawn"`) {
		t.Fatalf("cancel --header printed %q", r.stdout)
	}
	exits(t, p, 3, "cancel", "jobs", "--correlation-id", "nothing")
	exits(t, p, 2, "cancel", "jobs")
	exits(t, p, 2, "cancel", "jobs", "--id", "1", "--header", "a=b")
	exits(t, p, 2, "cancel", "jobs", "--id", "x")
	exits(t, p, 2, "send", "jobs", "x", "--best-effort", "--print-id")
	exits(t, p, exitNotFound, "cancel", "nosuch", "--id", "1")
}
