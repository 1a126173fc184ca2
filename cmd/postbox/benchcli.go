package main

// postbox bench cli: the shell's line rates (send --lines, recv --count)
// through this binary run as subprocesses, beside the broker's own
// mailbox throughput measured in the same run.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/broker"
	"github.com/postbox-ipc/postbox/internal/benchfmt"
	"github.com/postbox-ipc/postbox/internal/brokerbench"
)

// Names of the CLI figures.
const (
	nameCLISend = "cli: send --lines < file"
	nameCLIRecv = "cli: recv --count N > file"
	nameCLIPipe = "cli: send --lines | recv --count N, at once"
)

// cliLineSize is the body size of the lines measured.
const cliLineSize = 64

func newBenchCLI() *cobra.Command {
	var out string
	var n int
	var useSocket bool
	var duration time.Duration
	cmd := &cobra.Command{
		Use:     "cli",
		Example: "  postbox bench cli --lines 100000",
		Short:   "Measure send --lines and recv --count against the broker's own throughput, in one run",
		Long: `Measure, in one run: N 64-byte lines sent by "postbox send q --lines"
from a file, then received by "postbox recv q --count N" into a file, then
both at once (the receiver started first), each command a subprocess of
this binary, timed from its start to its exit (so connecting counts);
beside them the broker's mailbox throughput for 64-byte messages (one
sender with a window of sends in flight, one consumer, acks on), measured
against the same broker, and the ratio to it. The broker runs in this
process (with serve's collector settings) unless --use-socket measures
the one at --socket.

-o json prints one JSON object per figure: name, size, msgs_per_sec,
bytes_per_sec, baseline, ratio.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(out, "table", "json", "csv"); err != nil {
				return err
			}
			if n < 1 {
				return usageError{fmt.Errorf("-n %d: want at least 1", n)}
			}
			self, err := os.Executable()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			sock := ""
			if useSocket {
				sock = socketPath()
			} else {
				tuneGC(broker.DefaultConfig())
				dir, err := os.MkdirTemp("", "postbox-bench-cli-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(dir)
				sock = filepath.Join(dir, "broker.sock")
				stop, err := serveInProcess(sock)
				if err != nil {
					return err
				}
				defer stop()
			}
			cfg := brokerbench.DefaultConfig()
			cfg.Duration = duration
			base, err := brokerbench.Throughput(ctx, sock, cliLineSize, cfg)
			if err != nil {
				return fmt.Errorf("broker throughput: %w", err)
			}
			rows, err := cliLineRates(ctx, self, sock, n)
			if err != nil {
				return err
			}
			for i := range rows {
				rows[i].Baseline = base.Name
			}
			rows = append([]benchfmt.Row{base}, rows...)
			benchfmt.Fill(rows)
			return writeBench(os.Stdout, rows, out, "") // benchload.go
		},
	}
	outputFlag(cmd, &out, "table", "table, csv or json")
	cmd.Flags().IntVarP(&n, "lines", "n", 500000, "lines moved in each CLI figure")
	cmd.Flags().DurationVar(&duration, "duration", 2*time.Second, "how long the broker figure runs")
	cmd.Flags().BoolVar(&useSocket, "use-socket", false, "measure the running broker at --socket instead of one in this process")
	return cmd
}

// serveInProcess runs a broker with the default configuration on sock.
func serveInProcess(sock string) (stop func(), err error) {
	l, err := broker.Listen(sock, 0o600)
	if err != nil {
		return nil, err
	}
	cfg := broker.DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	b := broker.New(cfg)
	done := make(chan struct{})
	go func() { b.Serve(l); close(done) }()
	return func() { b.Close(); <-done }, nil
}

// cliLineRates measures the three CLI figures with bin (the postbox
// binary) against the broker at sock, n lines each, on a fresh mailbox
// it removes afterwards. Each receive is checked: every line, in order.
func cliLineRates(ctx context.Context, bin, sock string, n int) ([]benchfmt.Row, error) {
	dir, err := os.MkdirTemp("", "postbox-bench-cli-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	c, err := postbox.Dial(ctx, postbox.WithSocket(sock))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	name := "bench-cli-" + strconv.Itoa(os.Getpid())
	mb, err := c.Create(ctx, name)
	if err != nil {
		return nil, err
	}
	defer mb.Destroy(context.WithoutCancel(ctx))

	lines := make([]byte, 0, n*(cliLineSize+1))
	for i := range n {
		lines = fmt.Appendf(lines, "%0*d\n", cliLineSize, i)
	}
	in := filepath.Join(dir, "in")
	if err := os.WriteFile(in, lines, 0o600); err != nil {
		return nil, err
	}
	outFile := filepath.Join(dir, "out")
	send := func() *exec.Cmd {
		cmd := exec.CommandContext(ctx, bin, "send", name, "--lines", "--socket", sock)
		cmd.Stdin, _ = os.Open(in)
		cmd.Stderr = os.Stderr
		return cmd
	}
	recv := func() (*exec.Cmd, error) {
		f, err := os.Create(outFile)
		if err != nil {
			return nil, err
		}
		cmd := exec.CommandContext(ctx, bin, "recv", name, "--count", strconv.Itoa(n), "--socket", sock)
		cmd.Stdout, cmd.Stderr = f, os.Stderr
		return cmd, nil
	}
	check := func() error {
		got, err := os.ReadFile(outFile)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, lines) {
			return fmt.Errorf("recv --count %d wrote %d bytes, not the %d lines sent", n, len(got), n)
		}
		return nil
	}
	row := func(name string, d time.Duration) benchfmt.Row {
		rate := float64(n) / d.Seconds()
		return benchfmt.Row{Name: name, Size: cliLineSize, MsgsPerSec: rate, BytesPerSec: rate * cliLineSize,
			Note: fmt.Sprintf("%d lines in %v", n, d.Round(time.Millisecond))}
	}
	var rows []benchfmt.Row

	d, err := timed(send())
	if err != nil {
		return nil, fmt.Errorf("send --lines: %w", err)
	}
	rows = append(rows, row(nameCLISend, d))
	rc, err := recv()
	if err != nil {
		return nil, err
	}
	if d, err = timed(rc); err != nil {
		return nil, fmt.Errorf("recv --count: %w", err)
	}
	if err := check(); err != nil {
		return nil, err
	}
	rows = append(rows, row(nameCLIRecv, d))

	// Both at once: the time from starting the receiver until both exit.
	if rc, err = recv(); err != nil {
		return nil, err
	}
	start := time.Now()
	if err := rc.Start(); err != nil {
		return nil, err
	}
	if _, err := timed(send()); err != nil {
		rc.Process.Kill()
		rc.Wait()
		return nil, fmt.Errorf("send --lines: %w", err)
	}
	if err := waitCmd(rc); err != nil {
		return nil, fmt.Errorf("recv --count: %w", err)
	}
	d = time.Since(start)
	if err := check(); err != nil {
		return nil, err
	}
	return append(rows, row(nameCLIPipe, d)), nil
}

// timed runs cmd and returns how long it took.
func timed(cmd *exec.Cmd) (time.Duration, error) {
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	err := waitCmd(cmd)
	return time.Since(start), err
}

// waitCmd waits for cmd and closes the files given it.
func waitCmd(cmd *exec.Cmd) error {
	err := cmd.Wait()
	for _, f := range []any{cmd.Stdin, cmd.Stdout} {
		if f, ok := f.(*os.File); ok {
			f.Close()
		}
	}
	return err
}
