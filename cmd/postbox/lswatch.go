package main

// ls --watch: the ls table again every --interval, until Ctrl-C. On a
// terminal each table replaces the last (clear screen, then redraw, as
// watch(1) does); into a file or a pipe each table follows the last
// after a blank line and a timestamp line, so the output stays a log
// (with -o json, after the blank line alone; with -o yaml, each table is
// a YAML document after "---").

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

// errWatchInterval is a --interval too short to watch at.
var errWatchInterval = errors.New("postbox: --interval must be at least 100ms")

// watchable gives cmd the flags --watch and --interval: with --watch,
// cmd's RunE runs every interval until the command's context ends (Ctrl-C),
// and the command then exits 0 (130 after SIGINT: main.go). A failed run (the broker unreachable, say)
// is reported on stderr and the next one tried; an invalid argument ends
// the watch at once.
func watchable(cmd *cobra.Command) {
	var watch bool
	var interval time.Duration
	cmd.Flags().BoolVar(&watch, "watch", false, "print the table again every --interval until Ctrl-C")
	cmd.Flags().DurationVar(&interval, "interval", 2*time.Second, "time between tables with --watch")
	once := cmd.RunE
	cmd.RunE = func(c *cobra.Command, args []string) error {
		if !watch {
			return once(c, args)
		}
		if interval < 100*time.Millisecond {
			return usageError{errWatchInterval}
		}
		w := watcher{out: os.Stdout, errs: os.Stderr, clear: fileIsTerminal(os.Stdout), interval: interval,
			title: c.CommandPath()}
		if o := c.Flags().Lookup("output"); o != nil {
			w.format = o.Value.String()
		}
		return w.run(c.Context(), func() error { return once(c, args) })
	}
}

// watcher runs a command's output again and again.
type watcher struct {
	out, errs io.Writer
	clear     bool   // out is a terminal: clear it before each table
	format    string // the command's -o: json and yaml get separators their readers skip
	interval  time.Duration
	title     string
}

func (w watcher) run(ctx context.Context, once func() error) error {
	tick := time.NewTicker(w.interval)
	defer tick.Stop()
	for n := 0; ; n++ {
		now := time.Now()
		switch {
		case w.clear:
			fmt.Fprintf(w.out, "\x1b[H\x1b[2J%s, every %v: %s\n\n", w.title, w.interval, now.Format("15:04:05"))
		case w.format == "json": // a JSON reader skips blank lines
			if n > 0 {
				fmt.Fprintln(w.out)
			}
		case w.format == "yaml": // one YAML document per table
			fmt.Fprintln(w.out, "---")
		case n > 0:
			fmt.Fprintf(w.out, "\n--- %s\n", now.Format(time.RFC3339))
		default:
			fmt.Fprintf(w.out, "--- %s\n", now.Format(time.RFC3339))
		}
		if err := once(); err != nil {
			var ue usageError
			if errors.As(err, &ue) {
				return err
			}
			if ctx.Err() != nil {
				return nil
			}
			fmt.Fprintln(w.errs, "postbox:", trimPrefix(err.Error()))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// fileIsTerminal reports whether f is a terminal.
func fileIsTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
