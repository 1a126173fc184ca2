package main

import (
	"os"
	"os/exec"

	"github.com/spf13/cobra"

	"github.com/postbox-ipc/postbox/broker"
	"github.com/postbox-ipc/postbox/internal/rpcbench"
)

// peerCommand is the hidden subcommand `postbox bench rpc` re-executes
// itself with to run its servers in a process of their own.
const peerCommand = "rpc-peer-server"

func newBenchRPC() *cobra.Command {
	var out string
	var useSocket bool
	cfg := rpcbench.DefaultConfig()
	cmd := &cobra.Command{
		Use:     "rpc",
		Example: "  postbox bench rpc --callers 1,16 --size 1024",
		Short:   "Measure RPC calls against gRPC-go over unix:// and a raw socket, in one run",
		Long: `Measure, in one run, unary calls with 64-byte payloads at 1 and 16
concurrent callers: postbox RPC for each semantics (maybe, at-least-once,
exactly-once) through a broker to an echo service; gRPC-go unary calls
over a Unix socket (unix://) to an echo server; a raw Unix-socket
request/response round trip; and the bare CALL primitive without the rpc
layer (Mailbox.Call to a consumer answering with Message.Reply). Every server (the postbox service, the gRPC
server, the raw echo) runs in a second process, this binary re-executed;
the callers share one connection (postbox, gRPC) or have one each (raw).
Each row gives calls/s, p50 and p99, and its ratio to the gRPC row with
the same number of callers.

--rounds N measures every row N times, the rows interleaved, and reports
each figure's median: on a busy machine one disturbed round then moves
no figure. The broker runs in this process unless --use-socket measures
the one at --socket; the in-process broker runs with serve's collector
settings.

-o json prints one JSON object per row: name, semantics, concurrency,
size, calls, calls_per_sec, p50_ns, p99_ns, and on rows compared with
the gRPC row: baseline (its name), calls_ratio, p50_ratio.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(out, "table", "json"); err != nil {
				return err
			}
			if useSocket {
				cfg.Socket = socketPath()
			} else {
				tuneGC(broker.DefaultConfig())
			}
			self, err := os.Executable()
			if err != nil {
				return err
			}
			cfg.Peer = func(args []string) *exec.Cmd {
				return exec.Command(self, append([]string{"bench", peerCommand}, args...)...)
			}
			rows, err := rpcbench.Run(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			if out == "json" {
				return rpcbench.WriteJSON(os.Stdout, rows)
			}
			return rpcbench.WriteTable(os.Stdout, rows)
		},
	}
	outputFlag(cmd, &out, "table", "table or json")
	cmd.Flags().DurationVar(&cfg.Duration, "duration", cfg.Duration, "how long each row runs")
	cmd.Flags().IntSliceVar(&cfg.Concurrency, "callers", cfg.Concurrency, "numbers of concurrent callers")
	cmd.Flags().IntVar(&cfg.Size, "size", cfg.Size, "request and reply size in bytes")
	cmd.Flags().IntVar(&cfg.Rounds, "rounds", 1, "measure every row this many times, interleaved, and report the medians")
	cmd.Flags().BoolVar(&useSocket, "use-socket", false, "measure the running broker at --socket instead of one in this process")
	return cmd
}

// newBenchRPCPeer is the peer of bench rpc: it serves until its stdin
// closes.
func newBenchRPCPeer() *cobra.Command {
	var pc rpcbench.PeerConfig
	cmd := &cobra.Command{
		Use:    peerCommand,
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return rpcbench.RunPeer(cmd.Context(), pc, os.Stdin, os.Stdout)
		},
	}
	f := cmd.Flags()
	f.StringVar(&pc.GRPC, "grpc", "", "gRPC echo server socket")
	f.StringVar(&pc.Raw, "raw", "", "raw echo server socket")
	f.StringVar(&pc.Broker, "broker", "", "broker socket")
	f.StringVar(&pc.Service, "service", "", "postbox echo service")
	f.IntVar(&pc.Size, "size", 64, "request size")
	return cmd
}
