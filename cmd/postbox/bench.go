package main

import (
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/broker"
	"github.com/postbox-ipc/postbox/internal/brokerbench"
	"github.com/postbox-ipc/postbox/shm/shmbench"
)

func newBench() *cobra.Command {
	var out string
	cfg := brokerbench.DefaultConfig()
	var useSocket bool
	var load benchLoad // benchload.go
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the broker against a raw Unix socket, in one run",
		Long: `Measure, in one run: mailbox throughput for one sender and one receiver
(pipelined, acks on) at 64 B and 4 KiB, and send-to-receive latency p50/p99
at 64 B; beside each, a raw Unix-socket echo doing the same without a
broker, and the ratio to it. The broker runs in this process unless
--use-socket measures the one at --socket. The in-process broker (and so
the clients beside it) run with serve's collector settings (GOGC=400 and
a soft memory limit) unless $GOGC or $GOMEMLIMIT say otherwise.

With --url (tls://HOST:PORT with --tls-cert, --tls-key and --tls-ca, or
tcp://), the mailbox figures are measured again through that URL, each
beside its Unix-socket figure as the baseline. To compare the transports
of one broker, point --socket and --url at the same "postbox serve":

  postbox bench --use-socket --socket S --url tls://127.0.0.1:PORT \
      --tls-cert client.pem --tls-key client-key.pem --tls-ca ca.pem

--size, --count, --senders, --receivers and --window change the load:
the sizes measured (throughput and latency at each), a message count per
throughput figure instead of --duration (the raw-socket baselines still
run for --duration), and the clients on each side, each sender a
Publisher with --window sends in flight. Mailbox throughput is compared
with the raw socket doing one write per message (the baseline the README
quotes) and with the pipelined raw socket (the ceiling).

The table fits 100 columns: rows are numbered, a ratio names its baseline
by number, columns that apply to no figure are left out, and notes follow.
-o csv prints a header and one record per figure, -o json one object per
figure (name, size, p50_ns, p99_ns, msgs_per_sec, bytes_per_sec,
baseline, ratio, ceiling, ceiling_ratio, note; a field that does not
apply is left out). --plot FILE.svg or FILE.png draws the latency
distributions and the throughput beside their baselines.
While it runs, and stderr is a terminal, bench shows there what it is
measuring.`,
		Example: `  postbox bench
  postbox bench --size 256 --senders 4 --receivers 2 --count 200000 -o csv
  postbox bench --plot docs/img/bench.png`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(out, "table", "json", "csv"); err != nil {
				return err
			}
			if err := load.apply(&cfg); err != nil {
				return err
			}
			if urlFlag != "" {
				cfg.URL = urlFlag
				tc, err := clientTLS()
				if err != nil {
					return err
				}
				if tc == nil {
					if tc, err = postbox.ClientTLSConfigFromEnv(); err != nil {
						return err
					}
				}
				cfg.TLS = tc
			}
			if useSocket {
				cfg.Socket = socketPath()
			} else {
				// The broker runs in this process: give it the collector
				// settings `postbox serve` runs with.
				tuneGC(broker.DefaultConfig())
			}
			stop := benchProgress(os.Stderr, &cfg) // benchload.go
			rows, err := brokerbench.Run(cmd.Context(), cfg)
			stop()
			if err != nil {
				return err
			}
			compareWithReadmeBaselines(rows)
			return writeBench(os.Stdout, rows, out, load.plot)
		},
	}
	cmd.AddCommand(newBenchDurable(), newBenchShm(), newBenchRPC(), newBenchRPCPeer())
	cmd.AddCommand(newBenchPipe())
	cmd.AddCommand(newBenchCLI())
	cmd.AddCommand(newBenchPubSub()) // benchpubsub.go
	outputFlag(cmd, &out, "table", "table, csv or json")
	cmd.Flags().DurationVar(&cfg.Duration, "duration", 2*time.Second, "how long each throughput figure runs")
	cmd.Flags().IntVar(&cfg.Samples, "samples", cfg.Samples, "latency samples per figure")
	cmd.Flags().IntVar(&cfg.Window, "window", cfg.Window, "sends in flight per sender in the throughput figures")
	load.flags(cmd)
	cmd.Flags().BoolVar(&useSocket, "use-socket", false, "measure the running broker at --socket instead of one in this process")
	return cmd
}

func newBenchDurable() *cobra.Command {
	var out, dir string
	var quick, useSocket bool
	var senders int
	cmd := &cobra.Command{
		Use:     "durable",
		Example: "  postbox bench durable --dir /var/tmp --quick",
		Short:   "Measure durable sends against raw write+fdatasync, in one run",
		Long: `Measure, in one run, on the disk holding --dir: durable appends to the
store with 1, 16 and 64 concurrent writers at 256 B and 4 KiB (records/s,
records per fsync, p50/p99), beside a raw write+fdatasync loop and a run
without fsync; then whole sends through a broker to a durable mailbox with
1, 16 and 64 concurrent senders, beside the same sends to a non-durable
mailbox.

With --use-socket, only the broker figures are measured, against the
running broker at --socket (a separate process, started with a data
directory): 256 B durable sends from --senders concurrent senders, beside
the same sends to a non-durable mailbox, and one Publisher with 1024
sends in flight to a durable mailbox.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(out, "table", "json", "csv"); err != nil {
				return err
			}
			if useSocket { // perf: the durable figures through a separate broker
				rows, err := brokerbench.RunDurableSocket(cmd.Context(), socketPath(), senders, 256, 2*time.Second)
				if err != nil {
					return err
				}
				return writeBench(os.Stdout, rows, out, "") // benchload.go
			}
			if dir == "" {
				dir = os.TempDir()
			}
			tuneGC(broker.DefaultConfig()) // the brokers measured run in this process
			rows, err := brokerbench.RunDurable(cmd.Context(), dir, quick)
			if err != nil {
				return err
			}
			return writeBench(os.Stdout, rows, out, "") // benchload.go
		},
	}
	outputFlag(cmd, &out, "table", "table, csv or json")
	cmd.Flags().StringVar(&dir, "dir", "", "directory on the disk to measure (default the temp directory)")
	cmd.Flags().BoolVar(&quick, "quick", false, "short runs (figures are rougher)")
	cmd.Flags().BoolVar(&useSocket, "use-socket", false, "measure the running broker at --socket instead of brokers in this process")
	cmd.Flags().IntVar(&senders, "senders", 64, "concurrent senders with --use-socket")
	return cmd
}

func newBenchShm() *cobra.Command {
	var out string
	var quick bool
	cmd := &cobra.Command{
		Use:     "shm",
		Example: "  postbox bench shm --quick",
		Short:   "Measure shared-memory channels against a pipe and a Unix socket, in one run",
		Long: `Measure, in one run, with the peer in a separate process: one-way latency
(round trip / 2) p50/p99 for 64 B, 4 KiB, 64 KiB and 1 MiB messages, busy-poll
and default wait policies, copy and loan APIs; throughput (msgs/s, bytes/s),
batched and unbatched; and the same figures for a Go pipe and a Go Unix
socket, with ratios and the CPU time used.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(out, "table", "json", "csv"); err != nil {
				return err
			}
			rows, err := shmbench.Run(cmd.Context(), shmbench.Config{Quick: quick})
			if err != nil {
				return err
			}
			return writeBench(os.Stdout, rows, out, "") // benchload.go
		},
	}
	outputFlag(cmd, &out, "table", "table, csv or json")
	cmd.Flags().BoolVar(&quick, "quick", false, "short runs (figures are rougher)")
	return cmd
}
