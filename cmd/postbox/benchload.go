package main

// postbox bench's load flags (--size, --count, --senders, --receivers),
// its progress line, its output formats and --plot.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/postbox-ipc/postbox/internal/benchfmt"
	"github.com/postbox-ipc/postbox/internal/benchplot"
	"github.com/postbox-ipc/postbox/internal/brokerbench"
)

// Errors of bench's load flags.
var (
	errBenchSize    = errors.New("postbox: bench: --size must be at least 1 byte")
	errBenchCount   = errors.New("postbox: bench: --count must not be negative")
	errBenchClients = errors.New("postbox: bench: --senders and --receivers must be at least 1")
	errBenchWindow  = errors.New("postbox: bench: --window must be at least 1")
)

// benchLoad holds the load flags until they are applied to a Config.
type benchLoad struct {
	sizes              []int
	count              int
	senders, receivers int
	plot               string
}

func (l *benchLoad) flags(cmd *cobra.Command) {
	cmd.Flags().IntSliceVar(&l.sizes, "size", nil, "message sizes in bytes, e.g. 64,4096 (default 64 and 4096 for throughput, 64 for latency)")
	cmd.Flags().IntVar(&l.count, "count", 0, "messages per throughput figure, instead of --duration (0: use --duration)")
	cmd.Flags().IntVar(&l.senders, "senders", 1, "sending clients in the throughput figures")
	cmd.Flags().IntVar(&l.receivers, "receivers", 1, "receiving clients in the throughput figures")
	cmd.Flags().StringVar(&l.plot, "plot", "", "also draw the figures into FILE (.svg or .png)")
}

// apply checks the flags and puts them into cfg.
func (l *benchLoad) apply(cfg *brokerbench.Config) error {
	for _, s := range l.sizes {
		if s < 1 {
			return usageError{fmt.Errorf("%w (got %d)", errBenchSize, s)}
		}
	}
	switch {
	case l.count < 0:
		return usageError{errBenchCount}
	case l.senders < 1 || l.receivers < 1:
		return usageError{errBenchClients}
	case cfg.Window < 1:
		return usageError{errBenchWindow}
	}
	if l.plot != "" {
		if _, err := benchplot.FormatOf(l.plot); err != nil {
			return usageError{err}
		}
	}
	cfg.Sizes, cfg.Count, cfg.Senders, cfg.Receivers = l.sizes, l.count, l.senders, l.receivers
	return nil
}

// compareWithReadmeBaselines compares mailbox throughput with the raw
// socket doing one write per message, the broker-less figure the README
// sets beside it, and keeps the pipelined raw socket as the ceiling.
func compareWithReadmeBaselines(rows []benchfmt.Row) {
	for i := range rows {
		r := &rows[i]
		if r.Baseline != brokerbench.NameRawThroughput {
			continue
		}
		switch {
		case strings.HasPrefix(r.Name, "mailbox throughput"):
			r.Baseline, r.Ceiling = brokerbench.NameRawPerWrite, brokerbench.NameRawThroughput
		case r.Name == brokerbench.NameRawPerWrite: // a baseline itself
			r.Baseline, r.Ceiling = "", brokerbench.NameRawThroughput
		}
	}
	benchfmt.Fill(rows)
}

// writeBench prints rows as out says and, with a plot file, draws them.
func writeBench(w io.Writer, rows []benchfmt.Row, out, plot string) error {
	var err error
	switch out {
	case "json":
		err = benchfmt.WriteJSON(w, rows)
	case "csv":
		err = benchfmt.WriteCSV(w, rows)
	default:
		err = benchfmt.WriteTable(w, rows)
	}
	if err != nil || plot == "" {
		return err
	}
	return benchplot.WriteFile(plot, rows)
}

// benchProgress shows on f, if it is a terminal, the figure being
// measured and for how long; cfg.Progress is set to feed it. stop
// clears the line.
func benchProgress(f *os.File, cfg *brokerbench.Config) (stop func()) {
	if !fileIsTerminal(f) {
		return func() {}
	}
	var mu sync.Mutex // guards what, since, step
	var what string
	var since time.Time
	step := 0
	show := func() {
		fmt.Fprintf(f, "\r\x1b[Kpostbox bench: %d. %s (%s)", step, what, time.Since(since).Round(time.Second))
	}
	cfg.Progress = func(figure string) {
		mu.Lock()
		defer mu.Unlock()
		step, what, since = step+1, figure, time.Now()
		show()
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				mu.Lock()
				if step > 0 {
					show()
				}
				mu.Unlock()
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
		fmt.Fprint(f, "\r\x1b[K")
	}
}
