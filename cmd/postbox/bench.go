package main

import (
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/broker"
	"github.com/postbox-ipc/postbox/internal/benchfmt"
	"github.com/postbox-ipc/postbox/internal/brokerbench"
	"github.com/postbox-ipc/postbox/shm/shmbench"
)

func newBench() *cobra.Command {
	var out string
	cfg := brokerbench.DefaultConfig()
	var useSocket bool
	cmd := &cobra.Command{
		Use:     "bench",
		Example: "  postbox bench\n  postbox bench --duration 5s -o json",
		Short:   "Measure the broker against a raw Unix socket, in one run",
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

-o json prints one JSON object per figure: name, size, p50_ns, p99_ns,
msgs_per_sec, bytes_per_sec, baseline, ratio.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(out, "table", "json"); err != nil {
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
			rows, err := brokerbench.Run(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			if out == "json" {
				return benchfmt.WriteJSON(os.Stdout, rows)
			}
			return benchfmt.WriteTable(os.Stdout, rows)
		},
	}
	cmd.AddCommand(newBenchDurable(), newBenchShm(), newBenchRPC(), newBenchRPCPeer())
	cmd.AddCommand(newBenchPipe())
	cmd.AddCommand(newBenchCLI())
	cmd.AddCommand(newBenchPubSub()) // benchpubsub.go
	outputFlag(cmd, &out, "table", "table or json")
	cmd.Flags().DurationVar(&cfg.Duration, "duration", 2*time.Second, "how long each throughput figure runs")
	cmd.Flags().IntVar(&cfg.Samples, "samples", cfg.Samples, "latency samples per figure")
	cmd.Flags().IntVar(&cfg.Window, "window", cfg.Window, "sends in flight in the throughput figures")
	cmd.Flags().BoolVar(&useSocket, "use-socket", false, "measure the running broker at --socket instead of one in this process")
	return cmd
}

func newBenchDurable() *cobra.Command {
	var out, dir string
	var quick bool
	cmd := &cobra.Command{
		Use:     "durable",
		Example: "  postbox bench durable --dir /var/tmp --quick",
		Short:   "Measure durable sends against raw write+fdatasync, in one run",
		Long: `Measure, in one run, on the disk holding --dir: durable appends to the
store with 1, 16 and 64 concurrent writers at 256 B and 4 KiB (records/s,
records per fsync, p50/p99), beside a raw write+fdatasync loop and a run
without fsync; then whole sends through a broker to a durable mailbox with
1, 16 and 64 concurrent senders, beside the same sends to a non-durable
mailbox.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(out, "table", "json"); err != nil {
				return err
			}
			if dir == "" {
				dir = os.TempDir()
			}
			tuneGC(broker.DefaultConfig()) // the brokers measured run in this process
			rows, err := brokerbench.RunDurable(cmd.Context(), dir, quick)
			if err != nil {
				return err
			}
			if out == "json" {
				return benchfmt.WriteJSON(os.Stdout, rows)
			}
			return benchfmt.WriteTable(os.Stdout, rows)
		},
	}
	outputFlag(cmd, &out, "table", "table or json")
	cmd.Flags().StringVar(&dir, "dir", "", "directory on the disk to measure (default the temp directory)")
	cmd.Flags().BoolVar(&quick, "quick", false, "short runs (figures are rougher)")
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
			if err := checkOutput(out, "table", "json"); err != nil {
				return err
			}
			rows, err := shmbench.Run(cmd.Context(), shmbench.Config{Quick: quick})
			if err != nil {
				return err
			}
			if out == "json" {
				return benchfmt.WriteJSON(os.Stdout, rows)
			}
			return benchfmt.WriteTable(os.Stdout, rows)
		},
	}
	outputFlag(cmd, &out, "table", "table or json")
	cmd.Flags().BoolVar(&quick, "quick", false, "short runs (figures are rougher)")
	return cmd
}
