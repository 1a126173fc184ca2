package main

// postbox top: a full-screen live view of the broker's mailboxes and
// subscribed subjects. The model (rates, sorting, layout) is topmodel.go;
// this file is the shell around it: a refresh loop that reads LIST and
// TOPICS, and a terminal that shows the model's lines and feeds it keys.
//
// The terminal library is github.com/gdamore/tcell/v2. top needs cells,
// keys, resize events and a screen restored on exit, which is what tcell
// is; it is one module with a small dependency tree, has a simulation
// screen, and puts no architecture on the program. bubbletea's
// model/update/view loop would be a second model around the one in
// topmodel.go, and it brings its styling and terminal packages with it.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gdamore/tcell/v2"
	"github.com/spf13/cobra"

	"github.com/postbox-ipc/postbox"
)

// Errors of top.
var (
	errTopInterval   = errors.New("postbox: top: --interval must be at least 100ms")
	errTopNoTerminal = errors.New("postbox: top needs a terminal (ls --watch prints a plain table)")
)

func newTop() *cobra.Command {
	var interval time.Duration
	var all bool
	cmd := &cobra.Command{
		Use:   "top",
		Short: "Show mailboxes and subjects live, full screen",
		Long: `Show the broker's mailboxes (depth, bytes, send and receive rates,
messages in flight, consumers, waiting receivers, blocked senders) and,
behind Tab, its subscribed subjects (subscribers, queue groups, delivery
and drop rates), refreshed every --interval. Rates are the change of the
sent, received, delivered and dropped counters between two refreshes.

Keys: q, Escape or Ctrl-C quit; Tab switches between mailboxes and
subjects; s and S move the sort column right and left; 1-9 sort by that
column (again: reverse); r reverses the order; the arrows (or j and k)
scroll a table longer than the screen.

When the broker cannot be reached, top says so and keeps retrying.`,
		Example: "  postbox top --interval 500ms",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if interval < 100*time.Millisecond {
				return usageError{errTopInterval}
			}
			opts, err := dialOptions()
			if err != nil {
				return err
			}
			m := &topModel{Where: brokerWhere(), Interval: interval, All: all}
			return runTop(cmd.Context(), m, append(opts, postbox.WithName("postbox-top")))
		},
	}
	cmd.Flags().DurationVarP(&interval, "interval", "n", time.Second, "time between refreshes")
	cmd.Flags().BoolVarP(&all, "all", "a", false, "include endpoints' inboxes")
	return cmd
}

// brokerWhere names the broker for the title line.
func brokerWhere() string {
	switch {
	case urlFlag != "":
		return urlFlag
	case socketFlag != "":
		return socketFlag
	}
	return "default broker"
}

// runTop owns the screen until a quit key or ctx ends it, and restores
// the terminal before it returns.
func runTop(ctx context.Context, m *topModel, dial []postbox.DialOption) error {
	scr, err := tcell.NewScreen()
	if err != nil {
		return fmt.Errorf("%w: %v", errTopNoTerminal, err)
	}
	if err := scr.Init(); err != nil {
		return fmt.Errorf("%w: %v", errTopNoTerminal, err)
	}
	defer scr.Fini()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := make(chan tcell.Event, 16)
	quitEvents := make(chan struct{})
	go scr.ChannelEvents(events, quitEvents)
	defer func() {
		close(quitEvents)
		for range events { // until ChannelEvents returns
		}
	}()

	snaps := make(chan topFetch, 1)
	r := &topRefresher{dial: dial, timeout: max(m.Interval, 2*time.Second)}
	defer r.close()
	fetching := true
	go func() { snaps <- r.fetch(ctx) }()
	defer func() { // before r.close: the refresh in flight ends with ctx
		cancel()
		if fetching {
			<-snaps
		}
	}()
	tick := time.NewTicker(m.Interval)
	defer tick.Stop()
	draw := func() {
		w, h := scr.Size()
		drawTop(scr, m.Lines(w, h))
	}
	draw()
	for {
		select {
		case <-ctx.Done():
			return nil
		case f := <-snaps:
			fetching = false
			if f.err != nil {
				m.Fail(f.err, f.snap.At)
			} else {
				m.Observe(f.snap)
			}
			draw()
		case <-tick.C:
			if !fetching {
				fetching = true
				go func() { snaps <- r.fetch(ctx) }()
			}
		case ev, ok := <-events:
			if !ok { // the screen stopped under us
				return nil
			}
			switch ev := ev.(type) {
			case *tcell.EventResize:
				scr.Sync()
			case *tcell.EventKey:
				k := ev.Rune()
				switch ev.Key() {
				case tcell.KeyCtrlC, tcell.KeyEscape:
					k = 'q'
				case tcell.KeyTab, tcell.KeyBacktab:
					k = '\t'
				case tcell.KeyDown:
					k = 'j'
				case tcell.KeyUp:
					k = 'k'
				case tcell.KeyRune:
				default:
					k = 0
				}
				if m.Key(k) {
					return nil
				}
			}
			draw()
		}
	}
}

// drawTop copies the model's lines to the screen.
func drawTop(scr tcell.Screen, lines []topLine) {
	scr.Clear()
	plain := tcell.StyleDefault
	for y, l := range lines {
		st := plain
		switch {
		case l.Alert:
			st = plain.Foreground(tcell.ColorRed).Bold(true)
		case l.Header:
			st = plain.Reverse(true)
		}
		x := 0
		for _, r := range l.Text {
			scr.SetContent(x, y, r, nil, st)
			x++
		}
		if l.Header {
			w, _ := scr.Size()
			for ; x < w; x++ {
				scr.SetContent(x, y, ' ', nil, st)
			}
		}
	}
	scr.Show()
}

// topFetch is one refresh's outcome; snap.At is set either way.
type topFetch struct {
	snap topSnapshot
	err  error
}

// topRefresher reads snapshots over one connection, dialling again after
// a failure. Only one fetch runs at a time (runTop sees to it).
type topRefresher struct {
	dial    []postbox.DialOption
	timeout time.Duration
	c       *postbox.Client // nil until dialled, and after a failure
}

func (r *topRefresher) fetch(ctx context.Context) topFetch {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	snap, err := r.read(ctx)
	snap.At = time.Now()
	if err != nil {
		r.close()
	}
	return topFetch{snap, err}
}

func (r *topRefresher) read(ctx context.Context) (topSnapshot, error) {
	var snap topSnapshot
	if r.c == nil {
		c, err := postbox.Dial(ctx, r.dial...)
		if err != nil {
			return snap, err
		}
		r.c = c
	}
	infos, err := r.c.List(ctx)
	if err != nil {
		return snap, err
	}
	topics, err := r.c.Topics(ctx)
	if err != nil {
		return snap, err
	}
	snap.Mailboxes, snap.Subjects = infos, topics.Subjects
	return snap, nil
}

func (r *topRefresher) close() {
	if r.c != nil {
		r.c.Close()
		r.c = nil
	}
}
