package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

// TestCLISendBestEffortDropsAndStatShowsIt: --best-effort into a full
// mailbox exits 0 without waiting; stat and ls show the drops.
func TestCLISendBestEffortDropsAndStatShowsIt(t *testing.T) {
	p := startBroker(t)
	ok(t, p, "", "create", "metrics", "--capacity", "2")
	ok(t, p, "a\nb\nc\nd\ne\n", "send", "metrics", "--lines", "--best-effort")
	st := ok(t, p, "", "stat", "metrics")
	if !regexp.MustCompile(`(?m)^dropped: +3 `).MatchString(st.stdout) || !regexp.MustCompile(`(?m)^depth: +2 messages`).MatchString(st.stdout) {
		t.Fatalf("stat after 5 best-effort sends into capacity 2:\n%s", st.stdout)
	}
	ls := ok(t, p, "", "ls", "-o", "json")
	var info struct {
		Name    string `json:"name"`
		Dropped uint64 `json:"dropped"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(ls.stdout)), &info); err != nil || info.Name != "metrics" || info.Dropped != 3 {
		t.Fatalf("ls -o json: %q (%v)", ls.stdout, err)
	}
	table := ok(t, p, "", "ls")
	if !strings.Contains(table.stdout, "DROPPED") {
		t.Fatalf("ls has no DROPPED column:\n%s", table.stdout)
	}
	exits(t, p, 2, "send", "metrics", "x", "--best-effort", "--receipt")
}
