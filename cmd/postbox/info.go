package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/postbox-ipc/postbox"
)

// newInfo is `postbox info`: what the broker process is (INFO).
func newInfo() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "info",
		Short: "Show the broker's version, uptime, pid, listeners, data directory, limits, connections, memory and store size",
		Long: `Show what the broker process is: its version (from its build info), when
it started and how long it has run, its pid, the sockets and addresses it
listens on, its data directory, the limits in force, how many connections
and mailboxes it has, its memory (Go heap, what the Go runtime holds from
the system, resident set) and the size of its store on disk.

-o json prints one object (docs/OPERATIONS.md describes its fields).`,
		Example: `  postbox info
  postbox info -o json | jq .uptime_ns`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(out, "table", "json", "yaml"); err != nil {
				return err
			}
			c, err := dial(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			in, err := c.Info(cmd.Context())
			if err != nil {
				return fmt.Errorf("info: %w", err)
			}
			if structured(out) { // output.go
				return newRecordEncoder(os.Stdout, out).Encode(in)
			}
			return printInfo(os.Stdout, in)
		},
	}
	outputFlag(cmd, &out, "table", "table, json or yaml")
	return cmd
}

// printInfo writes in as a two-column table.
func printInfo(w io.Writer, in *postbox.BrokerInfo) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{k}, a...)...) }
	row("VERSION", "%s (%s)", in.Version, in.GoVersion)
	row("PID", "%d", in.PID)
	row("STARTED", "%s (up %s)", in.Started.Format(time.RFC3339), in.Uptime.Round(time.Second))
	if len(in.Listeners) == 0 {
		row("LISTENING", "-")
	}
	for i, l := range in.Listeners {
		k := ""
		if i == 0 {
			k = "LISTENING"
		}
		row(k, "%s %s", l.Network, l.Address)
	}
	if in.DataDir == "" {
		row("DATA", "none (memory only)")
	} else {
		row("DATA", "%s (store %s)", in.DataDir, sizeText(in.StoreBytes))
	}
	l := in.Limits
	row("CONNECTIONS", "%d of %d", in.Connections, l.MaxConnections)
	row("MAILBOXES", "%d of %d", in.Mailboxes, l.MaxMailboxes)
	row("LIMITS", "message %s, frame %s, queued %s, inbox %d", sizeText(l.MaxMessage), sizeText(l.MaxFrame),
		sizeText(l.MaxQueuedBytes), l.InboxCapacity)
	rss := "unknown"
	if in.RSSBytes >= 0 {
		rss = sizeText(in.RSSBytes)
	}
	row("MEMORY", "rss %s, heap %s, runtime %s, %d goroutines", rss, sizeText(in.HeapBytes), sizeText(in.SysBytes), in.Goroutines)
	return tw.Flush()
}

// sizeText is n bytes in binary units: "512 B", "4.0 KiB", "16.0 MiB".
func sizeText(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v, unit := float64(n), ""
	for _, u := range strings.Fields("KiB MiB GiB TiB PiB") {
		if v /= 1024; v < 1024 {
			unit = u
			break
		}
	}
	if unit == "" {
		unit = "EiB"
		v /= 1024
	}
	return fmt.Sprintf("%.1f %s", v, unit)
}
