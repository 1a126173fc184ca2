package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// system is one server measured in a workload.
type system struct {
	key     string // postbox, nats, jetstream, grpc, raw
	measure func(context.Context) (result, error)
}

// workload is the same work done against each of its systems.
type workload struct {
	key, title string
	systems    []system
}

// plan lists the workloads, each run once per round.
func plan(cfg Config, s servers) []workload {
	var ws []workload
	for _, size := range []int{64, 4096} {
		ws = append(ws, workload{key: fmt.Sprintf("tput%d", size), title: fmt.Sprintf("%s one sender → one receiver", sizeName(size)), systems: []system{
			{"postbox", func(ctx context.Context) (result, error) { return postboxThroughput(ctx, s.postbox, size, cfg) }},
			{"nats", func(ctx context.Context) (result, error) { return natsThroughput(ctx, s.nats, size, cfg.Duration) }},
		}})
	}
	ws = append(ws, workload{key: "latency", title: "64 B send → receive latency", systems: []system{
		{"postbox", func(ctx context.Context) (result, error) { return postboxLatency(ctx, s.postbox, 64, cfg.Samples) }},
		{"nats", func(ctx context.Context) (result, error) { return natsLatency(ctx, s.nats, 64, cfg.Samples) }},
		{"raw", func(ctx context.Context) (result, error) { return rawLatency(ctx, s.raw, 64, cfg.Samples) }},
	}})
	ws = append(ws, workload{key: "durable", title: fmt.Sprintf("durable 256 B, %d senders", cfg.Senders), systems: []system{
		{"postbox", func(ctx context.Context) (result, error) {
			return postboxDurable(ctx, s.postbox, cfg.Senders, 256, cfg.Duration)
		}},
		{"jetstream", func(ctx context.Context) (result, error) {
			return jsSends(ctx, s.jetstream, cfg.Senders, 256, cfg.Duration)
		}},
		{"fsync", func(ctx context.Context) (result, error) { return rawFsync(ctx, s.dir, 256, cfg.Duration) }},
	}})
	for _, n := range cfg.Callers {
		ws = append(ws, workload{key: fmt.Sprintf("rpc%d", n), title: fmt.Sprintf("RPC 64 B, %d %s", n, callersWord(n)), systems: []system{
			{"postbox", func(ctx context.Context) (result, error) { return postboxCalls(ctx, s.postbox, n, 64, cfg.Duration) }},
			{"grpc", func(ctx context.Context) (result, error) { return grpcCalls(ctx, s.grpc, n, 64, cfg.Duration) }},
		}})
	}
	for _, size := range cfg.PubsubSizes {
		for _, n := range cfg.Fanouts {
			ws = append(ws, workload{key: pubsubKey(size, n), title: pubsubTitle(size, n), systems: []system{
				{"postbox", func(ctx context.Context) (result, error) {
					return postboxFanOut(ctx, s.postbox, s.postboxPID, n, size, cfg.PubsubWindow, subscriberBuffer(cfg, size), cfg.PubsubDuration)
				}},
				{"nats", func(ctx context.Context) (result, error) {
					return natsFanOut(ctx, s.nats, s.natsPID, n, size, cfg.PubsubDuration)
				}},
			}})
		}
	}
	if cfg.Wildcard {
		ws = append(ws, workload{key: "wildcard", title: wildcardTitle, systems: []system{
			{"postbox", func(ctx context.Context) (result, error) {
				return postboxWildcard(ctx, s.postbox, s.postboxPID, cfg.PubsubWindow, wildcardBuffer, cfg.PubsubDuration)
			}},
			{"nats", func(ctx context.Context) (result, error) {
				return natsWildcard(ctx, s.nats, s.natsPID, cfg.PubsubDuration)
			}},
		}})
	}
	return ws
}

func sizeName(size int) string {
	if size >= 1024 && size%1024 == 0 {
		return fmt.Sprintf("%d KiB", size/1024)
	}
	return fmt.Sprintf("%d B", size)
}

// Run builds and starts every server, measures cfg.Rounds rounds (each
// workload against each system; the order of the systems alternates from
// round to round) and returns the report. Every process it started has
// ended when it returns, also when ctx ends first.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	return run(ctx, cfg, nil)
}

// run is Run; started, when not nil, is told the pid of every process
// started (for the test that checks none is left).
func run(ctx context.Context, cfg Config, started *[]int) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(cfg.Dir, "postbox-peers-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	// Sockets need a short path (108 bytes at most): their own directory
	// in the system's temporary one.
	sockDir, err := os.MkdirTemp("", "pbpeers-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(sockDir)
	ps := &procs{dir: dir}
	defer func() {
		if started != nil {
			*started = ps.pids()
		}
		ps.stopAll()
	}()
	// Interrupted, stop the servers at once: measurements blocked on
	// them then fail and return.
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			ps.stopAll()
		case <-done:
		}
	}()

	progress(cfg, "building postbox, nats-server and peerserver")
	bin, err := build(ctx, cfg, dir)
	if err != nil {
		return nil, err
	}
	progress(cfg, "starting postbox serve, nats-server (core), nats-server (JetStream, sync always), gRPC-go")
	s, err := startAll(ctx, ps, bin, dir, sockDir)
	if err != nil {
		return nil, err
	}
	if err := startResponder(ctx, ps, bin, s); err != nil {
		return nil, err
	}
	ws := plan(cfg, s)
	startLoad, startTime := loadAverage(), time.Now().UTC()
	got := make(map[string]map[string][]result)
	for round := range cfg.Rounds {
		for _, w := range ws {
			order := slices.Clone(w.systems)
			if round%2 == 1 {
				slices.Reverse(order)
			}
			for _, sys := range order {
				r, err := sys.measure(ctx)
				if err != nil {
					if ctx.Err() != nil {
						return nil, fmt.Errorf("peers: interrupted: %w", ctx.Err())
					}
					return nil, fmt.Errorf("round %d, %s, %s: %w", round+1, w.title, label(sys.key), err)
				}
				if got[w.key] == nil {
					got[w.key] = make(map[string][]result)
				}
				got[w.key][sys.key] = append(got[w.key][sys.key], r)
				progress(cfg, "round %d/%d  %-45s %-36s %s", round+1, cfg.Rounds, w.title, label(sys.key), r)
			}
		}
	}
	rep := newReport(cfg, got)
	rep.Notes = append([]string{fmt.Sprintf("measured %s, postbox at %s, %d CPUs, load average %s at the start, %s at the end",
		startTime.Format("2006-01-02 15:04 MST"), repoCommit(), runtime.NumCPU(), startLoad, loadAverage())}, rep.Notes...)
	return rep, nil
}

// loadAverage is the one-minute load average, or "?".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "?"
}

// repoCommit is the repository's HEAD commit (with "+changes" when the
// work tree differs from it), or "?" outside git.
func repoCommit() string {
	mod, err := moduleDir()
	if err != nil {
		return "?"
	}
	root := filepath.Join(mod, "..", "..")
	out, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "?"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		c += "+changes"
	}
	return c
}

func progress(cfg Config, format string, args ...any) {
	if cfg.Progress != nil {
		fmt.Fprintf(cfg.Progress, format+"\n", args...)
	}
}

func (r result) String() string {
	s := ""
	if r.rate > 0 {
		s = rateText(r.rate) + "/s"
	}
	if r.p50 > 0 {
		if s != "" {
			s += ", "
		}
		s += "p50 " + durText(r.p50) + ", p99 " + durText(r.p99)
	}
	return s
}
