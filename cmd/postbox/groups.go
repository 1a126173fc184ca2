package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/wire"
)

// Groups and watches: postbox join, leave and watch; send to '#group'
// and @* (sendFanOut, called by send).

func newJoin() *cobra.Command {
	var mailbox, out string
	var count int
	cmd := &cobra.Command{
		Use:   "join GROUP",
		Short: "Join a group (#name): print what is sent to it, or queue it in --mailbox",
		Long: `Join a group. A group is # and a mailbox name; a message sent to it
("postbox send '#name' BODY") is copied to every member.

Without --mailbox this command's own endpoint joins and prints every
message sent to the group (-o json: one JSON object per message, as recv
prints them) until interrupted or --count messages; when it exits, by any
means, kill -9 included, it is a member no more. With --mailbox M the
mailbox joins (it needs receive permission on M) and the command exits:
M stays a member until "postbox leave GROUP --mailbox M" or until it is
destroyed.

` + exitHelp,
		Example: "  postbox join '#ops'\n  postbox join '#ops' --mailbox ops-log",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(out, "text", "json"); err != nil {
				return err
			}
			ctx := cmd.Context()
			c, err := dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			if mailbox != "" {
				return c.JoinMailbox(ctx, args[0], mailbox)
			}
			// The inbox is consumed first, so nothing sent after the
			// join can be missed.
			cons, err := c.Inbox().Consume(ctx, postbox.AutoAck())
			if err != nil {
				return err
			}
			if err := c.Join(ctx, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "joined %s as endpoint %d\n", args[0], c.Identity().Endpoint)
			for n := 0; count == 0 || n < count; n++ {
				m, err := cons.Next(ctx)
				if err != nil {
					if ctx.Err() != nil {
						return nil // interrupted
					}
					return err
				}
				if out == "json" {
					if err := json.NewEncoder(os.Stdout).Encode(toJSON(m)); err != nil {
						return err
					}
					continue
				}
				fmt.Printf("%s\n", m.Body)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&mailbox, "mailbox", "", "the mailbox that joins (default: this command, printing what arrives)")
	f.StringVarP(&out, "output", "o", "text", "text (bodies) or json")
	f.IntVar(&count, "count", 0, "exit after this many messages (0: until interrupted)")
	return cmd
}

func newLeave() *cobra.Command {
	var mailbox string
	cmd := &cobra.Command{
		Use:   "leave GROUP --mailbox M",
		Short: "Take a mailbox out of a group",
		Long: `Take mailbox M out of GROUP. (An endpoint that joined with "postbox join
GROUP" leaves when that command exits.) Leaving a group one is not in is
no error.

` + exitHelp,
		Example: "  postbox leave '#ops' --mailbox ops-log",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if mailbox == "" {
				return usageError{errors.New("leave needs --mailbox: an endpoint that joined leaves when its postbox join exits")}
			}
			ctx := cmd.Context()
			c, err := dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			return c.LeaveMailbox(ctx, args[0], mailbox)
		},
	}
	cmd.Flags().StringVar(&mailbox, "mailbox", "", "the mailbox that leaves")
	return cmd
}

// noticeJSON is a notice as watch -o json prints it.
type noticeJSON struct {
	Kind        string    `json:"kind"`
	Target      string    `json:"target"`
	Endpoint    uint64    `json:"endpoint,omitempty"`
	PID         int32     `json:"pid,omitempty"`
	UID         *uint32   `json:"uid,omitempty"`
	Reason      string    `json:"reason,omitempty"`
	StatusKnown bool      `json:"status_known,omitempty"`
	ExitCode    *int      `json:"exit_code,omitempty"`
	Signal      *int      `json:"signal,omitempty"`
	Depth       *int      `json:"depth,omitempty"`
	Time        time.Time `json:"time"`
}

func noticeToJSON(n postbox.Notice) noticeJSON {
	j := noticeJSON{Kind: n.Kind.String(), Target: n.Target, Time: n.Time}
	if n.Kind == postbox.NoticeEndpointExited {
		uid := n.UID
		j.Endpoint, j.PID, j.UID, j.Reason = n.Endpoint, n.PID, &uid, n.Reason.String()
		if n.StatusKnown {
			j.StatusKnown = true
			code, sig := waitStatus(n.Status)
			if sig > 0 {
				j.Signal = &sig
			} else {
				j.ExitCode = &code
			}
		}
		return j
	}
	d := n.Depth
	j.Depth = &d
	return j
}

// waitStatus splits a wait status into an exit code, or the signal that
// ended the process (> 0).
func waitStatus(s int32) (code, sig int) {
	if s&0x7f != 0 {
		return 0, int(s & 0x7f)
	}
	return int(s>>8) & 0xff, 0
}

func noticeText(n postbox.Notice) string {
	switch n.Kind {
	case postbox.NoticeEndpointExited:
		s := fmt.Sprintf("%s %s pid %d uid %d: %s", n.Kind, n.Target, n.PID, n.UID, n.Reason)
		if n.StatusKnown {
			if code, sig := waitStatus(n.Status); sig > 0 {
				s += fmt.Sprintf(" (killed by signal %d)", sig)
			} else {
				s += fmt.Sprintf(" (exit code %d)", code)
			}
		}
		return s
	default:
		return fmt.Sprintf("%s %s depth %d", n.Kind, n.Target, n.Depth)
	}
}

func newWatch() *cobra.Command {
	var out string
	var count int
	cmd := &cobra.Command{
		Use:   "watch @ENDPOINT|MAILBOX",
		Short: "Print notices about an endpoint (its exit) or a mailbox (created, destroyed, non-empty, below capacity)",
		Long: `Watch an endpoint or a mailbox and print a line per notice (-o json: one
JSON object per notice, with kind, target and, for an endpoint, pid, uid,
reason and the exit code or signal when the broker learnt it).

@ENDPOINT (an endpoint id, as recv -o json shows a sender's) gets exactly
one notice, endpoint-exited, when that endpoint's process exits or its
connection ends; the reason says which ("process exited", "disconnected",
"broker shutdown"). The command then exits 0. An endpoint not connected
is "not found" (exit 66). Anyone may watch an endpoint.

A MAILBOX gets a notice each time it is created, destroyed, becomes
non-empty (its queue goes from no messages to some) or falls below its
capacity (from full to not), until interrupted or --count notices. It
needs receive permission on the mailbox; one that does not exist yet may
be watched for its creation.

"watching TARGET" is written to stderr once the broker has the watch in
place.

` + exitHelp,
		Example: "  postbox watch @11400714785074694145\n  postbox watch jobs -o json --count 1",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(out, "text", "json"); err != nil {
				return err
			}
			ctx := cmd.Context()
			c, err := dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			w, err := c.Watch(ctx, args[0])
			if err != nil {
				return err
			}
			defer w.Close(context.Background())
			a := w.Armed()
			switch {
			case strings.HasPrefix(args[0], "@"):
				fmt.Fprintf(os.Stderr, "watching %s (pid %d, uid %d)\n", args[0], a.PID, a.UID)
			case a.Exists:
				fmt.Fprintf(os.Stderr, "watching %s (%d queued)\n", args[0], a.Depth)
			default:
				fmt.Fprintf(os.Stderr, "watching %s (does not exist yet)\n", args[0])
			}
			for n := 0; count == 0 || n < count; n++ {
				nt, err := w.Next(ctx)
				switch {
				case errors.Is(err, postbox.ErrWatchEnded) && isPlainEnd(err):
					return nil // the endpoint's notice was the last
				case err != nil && ctx.Err() != nil:
					return nil // interrupted
				case err != nil:
					return err
				}
				if out == "json" {
					if err := json.NewEncoder(os.Stdout).Encode(noticeToJSON(nt)); err != nil {
						return err
					}
					continue
				}
				fmt.Println(noticeText(nt))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&out, "output", "o", "text", "text or json")
	f.IntVar(&count, "count", 0, "exit after this many notices (0: until the watch ends or interrupted)")
	return cmd
}

// isPlainEnd reports whether a watch ended because the broker said it
// was done (after an endpoint's exit notice), not for an error.
func isPlainEnd(err error) bool {
	var e *postbox.Error
	return !errors.As(err, &e) && !errors.Is(err, postbox.ErrClosed) && !errors.Is(err, postbox.ErrCanceled)
}

// sendFanOut sends body to a group or to @* and prints how many got it.
// send calls it for such a target.
func sendFanOut(ctx context.Context, c *postbox.Client, target string, body []byte, opts []postbox.SendOption) error {
	var n int
	var err error
	if wire.IsBroadcast(target) {
		n, err = c.Broadcast(ctx, body, opts...)
	} else {
		n, err = c.Multicast(ctx, target, body, opts...)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "delivered to %d\n", n)
	return nil
}

// isFanOutTarget reports whether send's target is a group or @*.
func isFanOutTarget(name string) bool { return wire.IsGroup(name) || wire.IsBroadcast(name) }
