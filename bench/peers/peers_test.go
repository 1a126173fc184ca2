package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// tinyConfig runs every workload with counts too small to mean anything:
// it proves the whole bench works, not how fast anything is.
func tinyConfig(t *testing.T) Config {
	return Config{Rounds: 2, Duration: 100 * time.Millisecond, PubsubDuration: 100 * time.Millisecond, PubsubWindow: 64, PubsubBufferBytes: 256 * 64, PubsubSizes: []int{64, 1024}, Samples: 50, Window: 64, Senders: 4,
		Callers: []int{1, 2}, Fanouts: []int{1, 2}, Wildcard: true, Dir: t.TempDir()}
}

// gone reports whether no process has pid any more (they were reaped).
func gone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

func TestRunMeasuresEveryFigureBesideItsPeerAndLeavesNoProcess(t *testing.T) {
	cfg := tinyConfig(t)
	var pids []int
	rep, err := run(context.Background(), cfg, &pids)
	if err != nil {
		t.Fatal(err)
	}
	if len(pids) != 5 { // postbox, nats core, jetstream, grpc+raw, responder
		t.Errorf("started %d processes, want 5", len(pids))
	}
	for _, pid := range pids {
		if !gone(pid) {
			t.Errorf("process %d still there after Run", pid)
		}
	}
	if left, _ := os.ReadDir(cfg.Dir); len(left) != 0 {
		t.Errorf("left %d entries in %s", len(left), cfg.Dir)
	}
	if want := len(figures(cfg)); len(rep.Rows) != want {
		t.Fatalf("%d rows, want %d", len(rep.Rows), want)
	}
	pubsubRows := 0
	for _, row := range rep.Rows {
		if strings.HasPrefix(row.Figure, "pub/sub ") {
			pubsubRows++
		}
	}
	if pubsubRows != len(cfg.Fanouts)*len(cfg.PubsubSizes)+1 { // and the wildcard-heavy row
		t.Errorf("%d pub/sub rows, want one per fan-out (%v) and size (%v)", pubsubRows, cfg.Fanouts, cfg.PubsubSizes)
	}
	for _, row := range rep.Rows {
		if row.Postbox <= 0 || row.PeerValue <= 0 || row.Ratio <= 0 {
			t.Errorf("%s: postbox %v, %s %v, ratio %v: want all positive", row.Figure, row.Postbox, row.Peer, row.PeerValue, row.Ratio)
		}
		if len(row.PostboxRounds) != cfg.Rounds || len(row.PeerRounds) != cfg.Rounds {
			t.Errorf("%s: %d and %d rounds, want %d", row.Figure, len(row.PostboxRounds), len(row.PeerRounds), cfg.Rounds)
		}
	}

	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"(acks on)", "(no acks)", "NATS core", "JetStream, sync_interval: always", "gRPC-go unary", "raw Unix socket round trip", "raw write + fdatasync loop",
		"pub/sub 64 B, one publisher → 1 subscriber", "pub/sub 64 B, one publisher → 2 subscribers", "pub/sub 1 KiB, one publisher → 2 subscribers",
		"(64 publications in flight)", "buffer (256 events)", "credit back every 64 events", "buffer (16 events)", "wildcard-heavy: 10,000 subscriptions", "PublishTo round 2500 subjects", "within 8 MiB of the slowest subscriber", "CPU per event: server "} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(js.String()), "\n")
	if len(lines) != len(rep.Rows) {
		t.Fatalf("%d JSON lines, want %d", len(lines), len(rep.Rows))
	}
	for _, l := range lines {
		var row Row
		if err := json.Unmarshal([]byte(l), &row); err != nil || row.Figure == "" || row.Ratio <= 0 {
			t.Errorf("JSON line %s: %+v, %v", l, row, err)
		}
	}
}

// cancelOn is a progress writer that cancels once a line contains s.
type cancelOn struct {
	s      string
	cancel context.CancelFunc
	mu     sync.Mutex
}

func (c *cancelOn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if bytes.Contains(p, []byte(c.s)) {
		c.cancel()
	}
	return len(p), nil
}

func TestRunInterruptedStopsEveryProcess(t *testing.T) {
	cfg := tinyConfig(t)
	cfg.Rounds = 50
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg.Progress = &cancelOn{s: "round 1/", cancel: cancel}
	var pids []int
	_, err := run(ctx, cfg, &pids)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("run = %v, want context.Canceled", err)
	}
	if len(pids) == 0 {
		t.Fatal("no process was started")
	}
	for _, pid := range pids {
		if !gone(pid) {
			t.Errorf("process %d still there after an interrupted Run", pid)
		}
	}
}

func TestRunThatFailsStopsWhatItStarted(t *testing.T) {
	cfg := tinyConfig(t)
	cfg.NatsServer = "false" // postbox serve starts, then nats-server exits at once
	var pids []int
	_, err := run(context.Background(), cfg, &pids)
	if !errors.Is(err, errExited) || !strings.Contains(err.Error(), "nats-core") {
		t.Fatalf("run = %v, want errExited naming nats-core", err)
	}
	if len(pids) != 2 {
		t.Fatalf("started %d processes, want 2 (postbox, nats-server)", len(pids))
	}
	for _, pid := range pids {
		if !gone(pid) {
			t.Errorf("process %d still there after a failed Run", pid)
		}
	}
}

func TestConfigValidateNamesTheBadFlag(t *testing.T) {
	for _, c := range []struct {
		flag string
		bad  func(*Config)
	}{
		{"--rounds", func(c *Config) { c.Rounds = 0 }},
		{"--duration", func(c *Config) { c.Duration = 0 }},
		{"--samples", func(c *Config) { c.Samples = 0 }},
		{"--window", func(c *Config) { c.Window = 0 }},
		{"--senders", func(c *Config) { c.Senders = 0 }},
		{"--callers", func(c *Config) { c.Callers = []int{1, 0} }},
		{"--fanouts", func(c *Config) { c.Fanouts = []int{4, 0} }},
		{"--fanouts", func(c *Config) { c.Fanouts = nil }},
		{"--pubsub-duration", func(c *Config) { c.PubsubDuration = 0 }},
		{"--pubsub-window", func(c *Config) { c.PubsubWindow = 0 }},
		{"--pubsub-buffer-bytes", func(c *Config) { c.PubsubBufferBytes = 0 }},
		{"--pubsub-sizes", func(c *Config) { c.PubsubSizes = nil }},
		{"--pubsub-sizes", func(c *Config) { c.PubsubSizes = []int{64, 0} }},
		{"--pubsub-sizes", func(c *Config) { c.PubsubSizes = []int{1<<20 + 1} }},
		{"--pubsub-duration", func(c *Config) { c.PubsubDuration = -time.Second }},
	} {
		cfg := DefaultConfig()
		c.bad(&cfg)
		err := cfg.Validate()
		if !errors.Is(err, errInvalid) || !strings.Contains(err.Error(), c.flag) {
			t.Errorf("%s: Validate = %v, want errInvalid naming it", c.flag, err)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("DefaultConfig: %v", err)
	}
}

func TestCommandRejectsABadFlagWithExit2(t *testing.T) {
	// Built once, so that each case runs the program itself and its exit
	// status is the program's.
	bin := filepath.Join(t.TempDir(), "peers")
	if err := goBuild(context.Background(), ".", bin, "."); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--rounds", "0"}, "peers: invalid flag: --rounds 0"},
		{[]string{"--fanouts", "1,x"}, `peers: invalid flag: --fanouts "1,x"`},
		{[]string{"--fanouts", ""}, `peers: invalid flag: --fanouts ""`},
		{[]string{"--fanouts", "4,0"}, "peers: invalid flag: --fanouts 0: at least 1"},
		{[]string{"--fanouts", "-2"}, "peers: invalid flag: --fanouts -2: at least 1"},
		{[]string{"--pubsub-duration", "0s"}, "peers: invalid flag: --pubsub-duration 0s: must be positive"},
		{[]string{"--pubsub-duration", "-1s"}, "peers: invalid flag: --pubsub-duration -1s: must be positive"},
		{[]string{"--pubsub-sizes", "64,k"}, `peers: invalid flag: --pubsub-sizes "64,k"`},
		{[]string{"--pubsub-sizes", "0"}, "peers: invalid flag: --pubsub-sizes 0: 1 to 1048576 bytes"},
		{[]string{"--pubsub-buffer-bytes", "0"}, "peers: invalid flag: --pubsub-buffer-bytes 0: at least 1"},
		{[]string{"--duration", "0s", "--pubsub-duration", "1s"}, "peers: invalid flag: --duration 0s"},
	} {
		out, err := exec.Command(bin, c.args...).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("peers %v: %v, want exit status 2\n%s", c.args, err, out)
			continue
		}
		if !strings.Contains(string(out), c.want) {
			t.Errorf("peers %v: output lacks %q:\n%s", c.args, c.want, out)
		}
	}
}

func TestMedianOfRounds(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestGoBuildFailureIsErrBuild(t *testing.T) {
	err := goBuild(context.Background(), ".", filepath.Join(t.TempDir(), "x"), "./no-such-package")
	if !errors.Is(err, errBuild) {
		t.Fatalf("goBuild = %v, want errBuild", err)
	}
}

func TestServerThatExitsIsErrExited(t *testing.T) {
	ps := &procs{dir: t.TempDir()}
	defer ps.stopAll()
	pr, err := ps.start("false", "false")
	if err != nil {
		t.Fatal(err)
	}
	err = waitReady(context.Background(), pr, func(context.Context) error { return errors.New("not yet") })
	if !errors.Is(err, errExited) {
		t.Fatalf("waitReady = %v, want errExited", err)
	}
}

func TestServerThatNeverAnswersIsErrNotReady(t *testing.T) {
	old := readyTimeout
	readyTimeout = 200 * time.Millisecond
	defer func() { readyTimeout = old }()
	ps := &procs{dir: t.TempDir()}
	pr, err := ps.start("sleep", "sleep", "60")
	if err != nil {
		t.Fatal(err)
	}
	err = waitReady(context.Background(), pr, func(context.Context) error { return errors.New("not yet") })
	ps.stopAll()
	if !errors.Is(err, errNotReady) {
		t.Fatalf("waitReady = %v, want errNotReady", err)
	}
	if !gone(pr.cmd.Process.Pid) {
		t.Error("sleep still running after stopAll")
	}
}

func TestSlowNATSSubscriberIsErrDropped(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "nats-server")
	if err := goBuild(context.Background(), ".", bin, "github.com/nats-io/nats-server/v2"); err != nil {
		t.Fatal(err)
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	ps := &procs{dir: dir}
	defer ps.stopAll()
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	pr, err := ps.start("nats", bin, "-a", "127.0.0.1", "-p", strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	var nc *nats.Conn
	if err := waitReady(context.Background(), pr, func(context.Context) error {
		nc, err = nats.Connect(url)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}) // the slow consumer is the point
	block := make(chan struct{})
	defer close(block)
	sub, err := nc.Subscribe("slow", func(*nats.Msg) { <-block })
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.SetPendingLimits(1, 1<<20); err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if err := nc.Publish("slow", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := checkDropped(sub)
		if errors.Is(err, errDropped) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("checkDropped = %v after 100 messages to a blocked subscriber limited to 1, want errDropped", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestProcessCPUReadsProcStat: this process's CPU time read from
// /proc/PID/stat grows as it burns CPU, agrees with getrusage to the
// tick, and a process that is not there reads 0.
func TestProcessCPUReadsProcStat(t *testing.T) {
	before := processCPU(os.Getpid())
	for start := selfCPU(); selfCPU()-start < 100*time.Millisecond; {
	}
	after, self := processCPU(os.Getpid()), selfCPU()
	if after <= before {
		t.Errorf("CPU time %v then %v after 100 ms of spinning", before, after)
	}
	// Both count every thread; /proc in ticks of 10 ms.
	if d := self - after; d < -20*time.Millisecond || d > 100*time.Millisecond {
		t.Errorf("/proc says %v, getrusage %v", after, self)
	}
	if got := processCPU(1 << 30); got != 0 {
		t.Errorf("no such process: %v, want 0", got)
	}
}
