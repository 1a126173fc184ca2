package main

import (
	"bytes"
	"encoding/csv"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/postbox-ipc/postbox/internal/benchfmt"
	"github.com/postbox-ipc/postbox/internal/benchplot"
	"github.com/postbox-ipc/postbox/internal/brokerbench"
)

// benchQuick are flags that make `postbox bench` take a second or so.
var benchQuick = []string{"--duration", "50ms", "--samples", "200"}

func TestCLIBenchLoadFlagsReachTheFiguresAsCSVAndAPlot(t *testing.T) {
	plot := filepath.Join(t.TempDir(), "bench.png")
	r := ok(t, nil, "", append([]string{"bench", "--size", "128", "--count", "3000", "--senders", "2", "--receivers", "3",
		"--window", "16", "-o", "csv", "--plot", plot}, benchQuick...)...)
	recs, err := csv.NewReader(strings.NewReader(r.stdout)).ReadAll()
	if err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	if len(recs) != 7 || recs[0][0] != "name" {
		t.Fatalf("want a header and 6 figures (3 throughput; 3 latency: the mailbox's, the inter-process and the in-process echo):\n%s", r.stdout)
	}
	for _, rec := range recs[1:] {
		if rec[1] != "128" {
			t.Errorf("size %s, want --size 128: %q", rec[1], rec)
		}
	}
	thr := recs[1]
	if thr[0] != "mailbox throughput (2 senders, 3 receivers, acks on)" || thr[4] == "" || thr[7] != "raw unix socket echo, one write per message" ||
		thr[8] == "" || thr[9] != "baseline: raw unix socket echo, pipelined" || !strings.Contains(thr[11], "16 sends in flight") ||
		!strings.Contains(thr[11], "3000 messages in") {
		t.Errorf("throughput record %q", thr)
	}
	if r.stderr != "" {
		t.Errorf("stderr is not a terminal, yet bench wrote %q", r.stderr)
	}
	b, err := os.ReadFile(plot)
	if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("--plot %s: %v, %d bytes", plot, err, len(b))
	}
}

func TestCLIBenchTableFitsOneHundredColumns(t *testing.T) {
	plot := filepath.Join(t.TempDir(), "bench.svg")
	r := ok(t, nil, "", append([]string{"bench", "--plot", plot}, benchQuick...)...)
	for _, l := range strings.Split(r.stdout, "\n") {
		if n := utf8.RuneCountInString(l); n > benchfmt.TableWidth {
			t.Errorf("%d columns: %q", n, l)
		}
	}
	for _, want := range []string{"VS BASELINE", "VS CEILING", "× #3", "notes:"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(strings.SplitN(r.stdout, "\n", 2)[0], "CPU") {
		t.Errorf("no figure has CPU time, yet the table has its column:\n%s", r.stdout)
	}
	b, err := os.ReadFile(plot)
	if err != nil || !bytes.HasPrefix(b, []byte("<?xml")) || !bytes.Contains(b, []byte("<svg")) {
		t.Fatalf("--plot %s: %v, %d bytes", plot, err, len(b))
	}
}

func TestCLIBenchRejectsBadLoadFlagsBeforeMeasuring(t *testing.T) {
	for _, args := range [][]string{
		{"--size", "0"},
		{"--size", "x"},
		{"--count", "-1"},
		{"--senders", "0"},
		{"--receivers", "0"},
		{"--window", "0"},
		{"--plot", "bench.jpg"},
		{"-o", "yaml"},
	} {
		r := exits(t, nil, exitUsage, append([]string{"bench"}, args...)...)
		if strings.Contains(r.stdout, "FIGURE") {
			t.Errorf("bench %v measured before rejecting its flags", args)
		}
	}
}

func TestCLIBenchShowsProgressOnATerminal(t *testing.T) {
	out := filepath.Join(t.TempDir(), "table")
	tm := startTmux(t, "'"+bin+"' bench --size 64 --duration 700ms --samples 20000 >"+out+"; echo bench-exited-$?; exec sleep 600")
	tm.waitFor(`postbox bench: 1\. throughput, 64 B \(\d+s\)`)
	tm.waitFor(`postbox bench: 2\. latency, 64 B`)
	s := tm.waitFor(`bench-exited-0`)
	if strings.Contains(s, "postbox bench:") {
		t.Errorf("the progress line stayed:\n%s", s)
	}
	if b, _ := os.ReadFile(out); !strings.Contains(string(b), "FIGURE") || strings.Contains(string(b), "postbox bench:") {
		t.Errorf("stdout:\n%s", b)
	}
}

func TestCLIBenchSubcommandsPrintCSV(t *testing.T) {
	r := ok(t, nil, "", "bench", "cli", "-n", "500", "--duration", "50ms", "-o", "csv")
	if recs, err := csv.NewReader(strings.NewReader(r.stdout)).ReadAll(); err != nil || len(recs) != 5 {
		t.Fatalf("bench cli -o csv: %v\n%s", err, r.stdout)
	}
}

func TestBenchLoadApplyNamesEachBadFlag(t *testing.T) {
	for _, c := range []struct {
		l      benchLoad
		window int
		want   error
	}{
		{benchLoad{sizes: []int{64, 0}, senders: 1, receivers: 1}, 1, errBenchSize},
		{benchLoad{count: -1, senders: 1, receivers: 1}, 1, errBenchCount},
		{benchLoad{senders: 0, receivers: 1}, 1, errBenchClients},
		{benchLoad{senders: 1, receivers: 0}, 1, errBenchClients},
		{benchLoad{senders: 1, receivers: 1}, 0, errBenchWindow},
		{benchLoad{senders: 1, receivers: 1, plot: "x.gif"}, 1, benchplot.ErrFormat},
	} {
		cfg := brokerbench.DefaultConfig()
		cfg.Window = c.window
		err := c.l.apply(&cfg)
		var ue usageError // (it has no Unwrap: look inside)
		if !errors.As(err, &ue) || !errors.Is(ue.error, c.want) {
			t.Errorf("%+v: %v, want a usage error that is %v", c.l, err, c.want)
		}
	}
	cfg := brokerbench.DefaultConfig()
	l := benchLoad{sizes: []int{256}, count: 10, senders: 2, receivers: 3, plot: "b.svg"}
	if err := l.apply(&cfg); err != nil || cfg.Count != 10 || cfg.Senders != 2 || cfg.Receivers != 3 || cfg.Sizes[0] != 256 {
		t.Errorf("apply: %v, %+v", err, cfg)
	}
}
