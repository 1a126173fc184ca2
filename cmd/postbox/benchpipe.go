package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/broker"
	"github.com/postbox-ipc/postbox/internal/benchfmt"
)

// postbox bench pipe: a postbox pipe, relayed and handed off, beside a
// kernel pipe and a Unix socket, in one run.

const (
	benchKernelPipe = "baseline: kernel pipe"
	benchKernelBig  = "kernel pipe, 1 MiB buffer"
	benchUnixSocket = "unix socket"
	benchRelayed    = "postbox pipe, relayed"
	benchHandedOff  = "postbox pipe, handed off (--direct)"
)

func newBenchPipe() *cobra.Command {
	var out string
	var total string
	var runs int
	cmd := &cobra.Command{
		Use:     "pipe",
		Example: "  postbox bench pipe --bytes 64M --runs 1",
		Short:   "Measure postbox pipes against a kernel pipe and a Unix socket, in one run",
		Long: `Measure, in one run, one writer and one reader moving --bytes through:
a kernel pipe (the baseline; and one with the 1 MiB buffer a handed-off
pipe gets), a Unix socket, a postbox pipe relayed by
the broker, and a postbox pipe handed off (both ends --direct: the
broker passes them a kernel pipe and leaves the data path), at 64 KiB
and 4 KiB writes. The broker runs in this process, its clients in
goroutines talking to it over its Unix socket. Each row has its
writes per second, bytes per second and the ratio to the kernel pipe
with the same write size.

-o json prints one JSON object per figure: name, size, bytes_per_sec,
msgs_per_sec (writes), baseline, ratio.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(out, "table", "json", "csv"); err != nil {
				return err
			}
			n, err := parseSize(total)
			if err != nil {
				return usageError{fmt.Errorf("--bytes: %w", err)}
			}
			tuneGC(broker.DefaultConfig())
			if runs < 1 {
				return usageError{fmt.Errorf("--runs %d: want at least 1", runs)}
			}
			rows, err := runBenchPipe(cmd.Context(), int64(n), runs)
			if err != nil {
				return err
			}
			return writeBench(os.Stdout, rows, out, "") // benchload.go
		},
	}
	outputFlag(cmd, &out, "table", "table, csv or json")
	cmd.Flags().StringVar(&total, "bytes", "256M", "bytes each run of a figure moves (K, M suffixes)")
	cmd.Flags().IntVar(&runs, "runs", 3, "runs of each figure, interleaved; the best is reported (the machine is shared)")
	return cmd
}

func runBenchPipe(ctx context.Context, total int64, runs int) ([]benchfmt.Row, error) {
	dir, err := os.MkdirTemp("", "postbox-bench-pipe-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "postbox.sock")
	l, err := broker.Listen(sock, 0o600)
	if err != nil {
		return nil, err
	}
	cfg := broker.DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	b := broker.New(cfg)
	done := make(chan struct{})
	go func() { b.Serve(l); close(done) }()
	defer func() { b.Close(); <-done }()

	var rows []benchfmt.Row
	for _, size := range []int{64 << 10, 4 << 10} {
		figures := []struct {
			name string
			run  func(size int, total int64) (time.Duration, error)
		}{
			{benchKernelPipe, benchKernel},
			{benchKernelBig, benchKernelSized},
			{benchUnixSocket, benchSocket},
			{benchRelayed, func(size int, total int64) (time.Duration, error) {
				return benchPostboxPipe(ctx, sock, size, total, false)
			}},
			{benchHandedOff, func(size int, total int64) (time.Duration, error) {
				return benchPostboxPipe(ctx, sock, size, total, true)
			}},
		}
		best := make([]time.Duration, len(figures))
		for range runs { // interleaved, so that a noisy moment hurts every figure alike
			for i, f := range figures {
				d, err := f.run(size, total)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", f.name, err)
				}
				if best[i] == 0 || d < best[i] {
					best[i] = d
				}
			}
		}
		for i, f := range figures {
			writes := float64(total/int64(size)) / best[i].Seconds()
			r := benchfmt.Row{Name: f.name, Size: size, MsgsPerSec: writes, BytesPerSec: writes * float64(size),
				Note: fmt.Sprintf("best of %d", runs)}
			if f.name != benchKernelPipe {
				r.Baseline = benchKernelPipe
			}
			rows = append(rows, r)
		}
	}
	benchfmt.Fill(rows)
	return rows, nil
}

// benchCopy writes total bytes in size-byte writes to w while a reader
// goroutine drains r (size-byte reads), and returns how long until the
// reader has them all. close ends the writer's side.
func benchCopy(w io.Writer, close func() error, r io.Reader, size int, total int64) (time.Duration, error) {
	got := make(chan error, 1)
	go func() {
		buf := make([]byte, size)
		var n int64
		for n < total {
			k, err := r.Read(buf)
			n += int64(k)
			if err != nil {
				if err == io.EOF && n >= total {
					break
				}
				got <- fmt.Errorf("read after %d bytes: %w", n, err)
				return
			}
		}
		got <- nil
	}()
	buf := make([]byte, size)
	start := time.Now()
	for sent := int64(0); sent < total; sent += int64(size) {
		if _, err := w.Write(buf); err != nil {
			close()
			<-got
			return 0, err
		}
	}
	if err := close(); err != nil {
		return 0, err
	}
	if err := <-got; err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

func benchKernel(size int, total int64) (time.Duration, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer r.Close()
	return benchCopy(w, w.Close, r, size, total)
}

// benchKernelSized is a kernel pipe with the 1 MiB buffer (F_SETPIPE_SZ)
// the broker gives a handed-off pipe.
func benchKernelSized(size int, total int64) (time.Duration, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer r.Close()
	unix.FcntlInt(w.Fd(), unix.F_SETPIPE_SZ, 1<<20)
	return benchCopy(w, w.Close, r, size, total)
}

func benchSocket(size int, total int64) (time.Duration, error) {
	dir, err := os.MkdirTemp("", "postbox-bench-sock-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	l, err := net.Listen("unix", filepath.Join(dir, "s"))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	wc, err := net.Dial("unix", filepath.Join(dir, "s"))
	if err != nil {
		return 0, err
	}
	rc := <-accepted
	if rc == nil {
		wc.Close()
		return 0, errors.New("accept failed")
	}
	defer rc.Close()
	return benchCopy(wc, wc.Close, rc, size, total)
}

func benchPostboxPipe(ctx context.Context, sock string, size int, total int64, direct bool) (time.Duration, error) {
	wcl, err := postbox.Dial(ctx, postbox.WithSocket(sock))
	if err != nil {
		return 0, err
	}
	defer wcl.Close()
	rcl, err := postbox.Dial(ctx, postbox.WithSocket(sock))
	if err != nil {
		return 0, err
	}
	defer rcl.Close()
	name := fmt.Sprintf("bench-pipe-%d-%d-%v", os.Getpid(), size, direct)
	if err := wcl.CreatePipe(ctx, name, 4<<20); err != nil {
		return 0, err
	}
	defer wcl.Mailbox(name).Destroy(context.Background())
	var opts []postbox.PipeOption
	if direct {
		opts = append(opts, postbox.WithDirect())
	}
	r, err := rcl.OpenPipeReader(ctx, name, opts...)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	w, err := wcl.OpenPipeWriter(ctx, name, opts...)
	if err != nil {
		return 0, err
	}
	if direct && !w.Direct() {
		w.Close()
		return 0, errors.New("the broker did not hand off a kernel pipe")
	}
	return benchCopy(w, w.Close, r, size, total)
}
