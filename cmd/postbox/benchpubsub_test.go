package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestCLIBenchPubSubRows runs `bench pubsub` (its own in-process broker)
// with tiny durations: every row is there with a rate, the fan-outs with
// their subscriber counts, each beside its baseline; bad counts are usage
// errors.
func TestCLIBenchPubSubRows(t *testing.T) {
	r := ok(t, nil, "", "bench", "pubsub", "--duration", "50ms", "--buffer", "512", "--window", "64", "-o", "json")
	type row struct {
		Name        string  `json:"name"`
		Size        int     `json:"size"`
		Subscribers int     `json:"subscribers"`
		Rate        float64 `json:"msgs_per_sec"`
		Baseline    string  `json:"baseline"`
		Ratio       float64 `json:"ratio"`
	}
	var rows []row
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var x row
		if err := json.Unmarshal([]byte(line), &x); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		rows = append(rows, x)
	}
	// Per size: the raw socket, the mailbox, and 1, 4, 16 subscribers
	// one per frame and batched; then the two wildcard-heavy rows.
	if len(rows) != 2*8+2 {
		t.Fatalf("%d rows, want 18:\n%s", len(rows), r.stdout)
	}
	names := map[string]bool{}
	for i, x := range rows {
		names[x.Name] = true
		if x.Rate <= 0 {
			t.Errorf("row %d %q: rate %v", i, x.Name, x.Rate)
		}
		if x.Baseline != "" && x.Ratio <= 0 {
			t.Errorf("row %d %q: no ratio to %q", i, x.Name, x.Baseline)
		}
		if strings.Contains(x.Name, "fan-out to 16") && x.Subscribers != 16 || strings.Contains(x.Name, "wildcard") && x.Subscribers != 10000 {
			t.Errorf("row %d %q: %d subscribers", i, x.Name, x.Subscribers)
		}
	}
	for _, want := range []string{"baseline: unix socket stream", "mailbox send/consume", "pubsub fan-out to 4", "pubsub batched fan-out to 4",
		"pubsub wildcard-heavy", "pubsub batched wildcard-heavy"} {
		if !names[want] {
			t.Errorf("no %q row", want)
		}
	}
	for _, args := range [][]string{{"--buffer", "0"}, {"--buffer", "1048577"}, {"--buffer", "65537"}, {"--window", "0"}, {"--inflight", "0"}} {
		exits(t, nil, 2, append([]string{"bench", "pubsub"}, args...)...)
	}
}
