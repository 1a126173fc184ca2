// Command peers measures postbox side by side with its peers, each server
// its own process started by this command: `postbox serve` (built from
// this repository, a temporary data directory), nats-server core,
// nats-server with JetStream syncing every write (sync_interval: always),
// and a gRPC-go unary echo server. It runs the same workloads against
// each, interleaved over --rounds rounds, and prints one table of the
// medians with the ratio postbox ÷ peer per figure (-o json: one JSON
// object per figure, every round's value included):
//
//   - 64 B and 4 KiB, one sender → one receiver, msgs/s: postbox with
//     acks on (`postbox bench --use-socket`'s figure: a Publisher with
//     1024 sends in flight, a consumer acking every message) against
//     NATS core, which has no acks;
//   - send → receive latency of 64 B, p50 and p99, against NATS core, and
//     the p50 against the round trip of a raw Unix-socket echo in its own
//     process (what two hops cost with no broker);
//   - durable 256 B sends from 64 concurrent senders, each on its own
//     connection and waiting for its answer: postbox durable mailbox
//     (synced before the answer) against JetStream publish with PubAck,
//     and against one writer's write + fdatasync loop on the same disk;
//   - RPC round trips of 64 B at 1 and 16 callers sharing a connection:
//     postbox Mailbox.Call to a responder process against gRPC-go unary;
//   - pub/sub fan-out of 64 B and 4 KiB (--pubsub-sizes), one publisher
//     → 1, 4 and 16 subscribers (--fanouts), each on its own connection,
//     msgs/s summed over the subscribers: postbox's batched
//     TopicPublisher (--pubsub-window publications in flight, 8192; no
//     acks, but the broker answers each PUBLISH frame, and a subscriber
//     whose buffer is full blocks the publisher: as many events as fit
//     in --pubsub-buffer-bytes, 4 MiB) against NATS core (no acks, no
//     flow control: its publisher is held within 8 MiB of the slowest
//     subscriber, whose pending limit is 64 MiB); and a wildcard-heavy
//     row (--wildcard): 10,000 subscriptions (W.g.* and W.g.>) on four
//     connections, publications round 2,500 subjects each matching four
//     (postbox: TopicPublisher.PublishTo, subscriptions of the default
//     256 events). Each row's notes give the CPU time the server process
//     and the bench's clients spent per event. A gap or a dropped
//     message fails the run.
//
// Run it from this directory (it is a module of its own, so the main
// module gains no dependency): `go run .`, or from the repository root
// `go -C bench/peers run .`. It builds what it starts into a temporary
// directory and kills every process it started when it ends, is
// interrupted or fails.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const usage = `Usage: go run . [flags]   (in bench/peers; from the repository root: go -C bench/peers run . [flags])

Build and start postbox serve, nats-server (core), nats-server (JetStream,
sync_interval: always) and a gRPC-go echo server, each its own process;
run the same workloads against each, interleaved over --rounds rounds;
print the medians with the ratio postbox ÷ peer per figure. Progress goes
to stderr, the table (Markdown) or -o json (one object per figure) to
stdout. Every process started is stopped at the end, on failure and on
Ctrl-C (exit 130). Bad flags exit 2, a failed run 1.

Flags:
`

// errInvalid is a bad flag value.
var errInvalid = errors.New("peers: invalid flag")

// Config says what to measure and for how long.
type Config struct {
	Rounds   int           // each figure is measured this many times, interleaved
	Duration time.Duration // each throughput, durable and RPC measurement
	Samples  int           // each latency measurement
	Window   int           // postbox Publisher sends in flight
	Senders  int           // concurrent durable senders
	Callers  []int         // concurrent RPC callers, one figure each
	Fanouts  []int         // subscribers of one publisher, one figure each
	// PubsubDuration is each pub/sub fan-out measurement (after a warm-up
	// of a fifth of it).
	PubsubDuration time.Duration
	// PubsubWindow is the postbox TopicPublisher's publications in
	// flight; PubsubBufferBytes sets each postbox subscriber's buffer to
	// as many events as fit (subscriberBuffer).
	PubsubWindow, PubsubBufferBytes int
	PubsubSizes                     []int // publication sizes, one figure per size and fan-out
	Wildcard                        bool  // the wildcard-heavy pub/sub figure too
	// Dir holds the temporary directory: the disk the durable figures
	// measure. Empty is the system's temporary directory.
	Dir string
	// Postbox and NatsServer are prebuilt binaries; empty builds them.
	Postbox, NatsServer string
	// Progress, when not nil, gets a line per measurement.
	Progress io.Writer
}

// DefaultConfig measures three rounds of about 40 s each.
func DefaultConfig() Config {
	return Config{Rounds: 3, Duration: 2 * time.Second, PubsubDuration: 2 * time.Second, PubsubWindow: 8192, PubsubBufferBytes: 4 << 20,
		PubsubSizes: []int{64, 4096}, Wildcard: true, Samples: 10000, Window: 1024,
		Senders: 64, Callers: []int{1, 16}, Fanouts: []int{1, 4, 16}}
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case c.Rounds < 1:
		return fmt.Errorf("%w: --rounds %d: at least 1", errInvalid, c.Rounds)
	case c.Duration <= 0:
		return fmt.Errorf("%w: --duration %v: must be positive", errInvalid, c.Duration)
	case c.Samples < 1:
		return fmt.Errorf("%w: --samples %d: at least 1", errInvalid, c.Samples)
	case c.Window < 1:
		return fmt.Errorf("%w: --window %d: at least 1", errInvalid, c.Window)
	case c.Senders < 1:
		return fmt.Errorf("%w: --senders %d: at least 1", errInvalid, c.Senders)
	case c.PubsubWindow < 1:
		return fmt.Errorf("%w: --pubsub-window %d: at least 1", errInvalid, c.PubsubWindow)
	case c.PubsubBufferBytes < 1:
		return fmt.Errorf("%w: --pubsub-buffer-bytes %d: at least 1", errInvalid, c.PubsubBufferBytes)
	case len(c.PubsubSizes) == 0:
		return fmt.Errorf("%w: --pubsub-sizes: at least one number", errInvalid)
	case c.PubsubDuration <= 0:
		return fmt.Errorf("%w: --pubsub-duration %v: must be positive", errInvalid, c.PubsubDuration)
	case len(c.Callers) == 0:
		return fmt.Errorf("%w: --callers: at least one number", errInvalid)
	case len(c.Fanouts) == 0:
		return fmt.Errorf("%w: --fanouts: at least one number", errInvalid)
	}
	for _, n := range c.Callers {
		if n < 1 {
			return fmt.Errorf("%w: --callers %d: at least 1", errInvalid, n)
		}
	}
	for _, n := range c.PubsubSizes {
		if n < 1 || n > 1<<20 {
			return fmt.Errorf("%w: --pubsub-sizes %d: 1 to %d bytes", errInvalid, n, 1<<20)
		}
	}
	for _, n := range c.Fanouts {
		if n < 1 {
			return fmt.Errorf("%w: --fanouts %d: at least 1", errInvalid, n)
		}
	}
	return nil
}

func main() {
	cfg := DefaultConfig()
	out := "table"
	flag.IntVar(&cfg.Rounds, "rounds", cfg.Rounds, "measure every figure this many times, interleaved, and report the medians")
	flag.DurationVar(&cfg.Duration, "duration", cfg.Duration, "how long each throughput, durable and RPC measurement runs")
	flag.IntVar(&cfg.Samples, "samples", cfg.Samples, "samples per latency measurement")
	flag.IntVar(&cfg.Window, "window", cfg.Window, "postbox sends in flight in the throughput figures")
	flag.IntVar(&cfg.PubsubWindow, "pubsub-window", cfg.PubsubWindow, "postbox publications in flight in the pub/sub figures")
	flag.IntVar(&cfg.PubsubBufferBytes, "pubsub-buffer-bytes", cfg.PubsubBufferBytes, "each postbox subscriber's buffer in the pub/sub figures: as many events as fit in this many bytes")
	flag.BoolVar(&cfg.Wildcard, "wildcard", cfg.Wildcard, "measure the wildcard-heavy pub/sub figure (10,000 subscriptions, 4 matching each publication)")
	sizes := flag.String("pubsub-sizes", "64,4096", "publication sizes in bytes of the pub/sub figures, comma-separated: one figure per size and fan-out")
	flag.IntVar(&cfg.Senders, "senders", cfg.Senders, "concurrent senders in the durable figure")
	callers := flag.String("callers", "1,16", "concurrent RPC callers, comma-separated: one figure each")
	fanouts := flag.String("fanouts", "1,4,16", "subscribers of the one pub/sub publisher, comma-separated: one figure each")
	flag.DurationVar(&cfg.PubsubDuration, "pubsub-duration", cfg.PubsubDuration, "how long each pub/sub fan-out measurement runs; when not given, --duration's value")
	flag.StringVar(&cfg.Dir, "dir", "", "directory for the temporary files and data (the disk measured); default the temp directory")
	flag.StringVar(&cfg.Postbox, "postbox", "", "postbox binary to run instead of building ./cmd/postbox")
	flag.StringVar(&cfg.NatsServer, "nats-server", "", "nats-server binary to run instead of building it")
	flag.StringVar(&out, "o", out, "output: table or json")
	quiet := flag.Bool("q", false, "no progress lines on stderr")
	flag.Usage = func() {
		fmt.Fprint(flag.CommandLine.Output(), usage)
		flag.PrintDefaults()
	}
	flag.Parse()
	if !*quiet {
		cfg.Progress = os.Stderr
	}
	var err error
	pubsubSet := false
	flag.Visit(func(f *flag.Flag) { pubsubSet = pubsubSet || f.Name == "pubsub-duration" })
	if !pubsubSet {
		cfg.PubsubDuration = cfg.Duration
	}
	cfg.Callers, err = parseInts("--callers", *callers)
	if err == nil {
		cfg.Fanouts, err = parseInts("--fanouts", *fanouts)
	}
	if err == nil {
		cfg.PubsubSizes, err = parseInts("--pubsub-sizes", *sizes)
	}
	if err == nil {
		err = cfg.Validate()
	}
	if err == nil && out != "table" && out != "json" {
		err = fmt.Errorf("%w: -o %q: table or json", errInvalid, out)
	}
	if err == nil && flag.NArg() > 0 {
		err = fmt.Errorf("%w: unexpected argument %q", errInvalid, flag.Arg(0))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		if ctx.Err() != nil {
			os.Exit(130)
		}
		os.Exit(1)
	}
	if out == "json" {
		err = rep.WriteJSON(os.Stdout)
	} else {
		err = rep.WriteTable(os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// parseInts reads flag's comma-separated numbers.
func parseInts(flag, s string) ([]int, error) {
	var ns []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("%w: %s %q: %v", errInvalid, flag, s, err)
		}
		ns = append(ns, n)
	}
	return ns, nil
}
