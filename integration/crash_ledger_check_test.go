package integration_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The crash harness passes only if its checks can fail: each of these
// ledgers breaks one rule and must be caught.
func TestCrashLedgerCatchesBrokenPromises(t *testing.T) {
	const send = "P 100\nT crash.free c1s0:0 4 1\nS crash.free c1s0:0 4 1 1\nT crash.free c1s0:1 4 2\nS crash.free c1s0:1 4 2 2\n"
	for _, tc := range []struct {
		name, recv string
		drain      []delivery
		wantIn     func(v verdict) []string
	}{
		{"loss", "P 200\nR crash.free c1s0:0 4 1 0 1 100\na crash.free c1s0:0\nA crash.free c1s0:0\n", nil,
			func(v verdict) []string { return v.losses }},
		{"resurrection", "P 200\nR crash.free c1s0:0 4 1 0 1 100\nA crash.free c1s0:0\nR crash.free c1s0:1 4 2 0 2 100\nA crash.free c1s0:1\n",
			[]delivery{{body: "c1s0:0", mailbox: "crash.free", priority: 4, typ: 1, redeliveries: 1, id: 1, senderPID: 100}},
			func(v verdict) []string { return v.resurrections }},
		{"reorder", "P 200\nR crash.free c1s0:1 4 2 0 2 100\nA crash.free c1s0:1\nR crash.free c1s0:0 4 1 0 1 100\nA crash.free c1s0:0\n", nil,
			func(v verdict) []string { return v.reordered }},
		{"redelivery count kept across a crash", "P 200\nR crash.free c1s0:0 4 1 0 1 100\nH crash.free c1s0:0\nR crash.free c1s0:1 4 2 0 2 100\nA crash.free c1s0:1\n",
			[]delivery{{body: "c1s0:0", mailbox: "crash.free", priority: 4, typ: 1, redeliveries: 0, id: 1, senderPID: 100}},
			func(v verdict) []string { return v.redeliveryTooLow }},
		{"wrong identity", "P 200\nR crash.free c1s0:0 4 1 0 1 999\nA crash.free c1s0:0\nR crash.free c1s0:1 4 2 0 2 100\nA crash.free c1s0:1\n", nil,
			func(v verdict) []string { return v.mismatched }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			sf, rf := filepath.Join(dir, "s"), filepath.Join(dir, "r")
			os.WriteFile(sf, []byte(send), 0o644)
			os.WriteFile(rf, []byte(tc.recv), 0o644)
			l := newLedger()
			if err := l.readSender(sf, "c1s0"); err != nil {
				t.Fatal(err)
			}
			if err := l.readReceiver(rf, "c1r0", 1); err != nil {
				t.Fatal(err)
			}
			l.streamList = append(l.streamList, "drain")
			for _, d := range tc.drain {
				d.cycle, d.stream = 2, "drain"
				l.deliver(d)
				l.confirm(d)
			}
			v := l.check()
			if len(tc.wantIn(v)) == 0 {
				t.Fatalf("not caught; failures: %s", strings.Join(v.failures(), "; "))
			}
			if n := len(v.failures()); n != len(tc.wantIn(v)) {
				t.Errorf("caught, but also other failures: %s", strings.Join(v.failures(), "; "))
			}
		})
	}
}
