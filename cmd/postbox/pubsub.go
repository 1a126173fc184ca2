package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/postbox-ipc/postbox"
	"github.com/spf13/cobra"
)

// Publish/subscribe commands: pub, sub, bind, topic claim|release, and
// ls --subjects (lsSubjects).

func newPub() *cobra.Command {
	var typ int64
	var lines bool
	var headers []string
	var contentType string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "pub SUBJECT [BODY]",
		Short: "Publish to a subject",
		Long: `Publish BODY to SUBJECT (dot-separated tokens, such as orders.eu.created).
Every subscription whose pattern matches gets a copy ("postbox sub"), and
every mailbox bound to a matching pattern ("postbox bind") a message.
Prints how many subscriptions (a queue group counts once) and bindings
took it, unless --lines.

--lines publishes each line of standard input (without its newline) as
one publication, batched: every line read so far goes in one batched
PUBLISH (up to 1024 a frame), one batch in flight, so the lines published
are always the first ones: exit 0 means every line was published; on a
failure the error says how many were ("N lines admitted (lines 1-N)"),
and no line after them reached a subscriber that was full (a subscriber
with room may have the failed batch's later lines). A subscriber with
policy block that is full makes a publication wait; --timeout bounds each
batch's wait (then exit 3, timed out).
--header key=value adds a user header (repeatable).

` + exitHelp,
		Example: "  postbox pub orders.eu.created 'order 7'\n  tail -f app.log | postbox pub logs.app --lines",
		Args:    cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if lines == (len(args) == 2) {
				return usageError{errors.New("give a BODY or --lines, not both or neither")}
			}
			opts := []postbox.PublishOption{postbox.Type(typ)}
			for _, h := range headers {
				k, v, ok := strings.Cut(h, "=")
				if !ok {
					return usageError{fmt.Errorf("--header %q: want key=value", h)}
				}
				opts = append(opts, postbox.WithHeader(k, v))
			}
			if contentType != "" {
				opts = append(opts, postbox.ContentType(contentType))
			}
			c, err := dial(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			one := func(body []byte) (int, error) {
				ctx := cmd.Context()
				if timeout > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, timeout)
					defer cancel()
				}
				return c.Publish(ctx, args[0], body, opts...)
			}
			if !lines {
				n, err := one([]byte(args[1]))
				if err != nil {
					return err
				}
				fmt.Println(n)
				return nil
			}
			return sendLines(cmd.Context(), os.Stdin, c.MaxMessage(), publishLines(c, args[0], timeout, opts))
		},
	}
	cmd.Flags().Int64Var(&typ, "type", 1, "message type (>= 1)")
	cmd.Flags().BoolVar(&lines, "lines", false, "publish each line of standard input")
	cmd.Flags().StringArrayVar(&headers, "header", nil, "user header key=value (repeatable)")
	cmd.Flags().StringVar(&contentType, "content-type", "", "CONTENT_TYPE header")
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "bound each wait for a full block subscriber (0: wait as long as needed)")
	return cmd
}

// publishLines publishes a batch of lines with PublishBatch (pub
// --lines; sendLines in lines.go reads them).
func publishLines(c *postbox.Client, subject string, timeout time.Duration, opts []postbox.PublishOption) lineSender {
	var bodies [][]byte
	return func(ctx context.Context, lines []postbox.Outgoing) (int, bool, error) {
		bodies = bodies[:0]
		for i := range lines {
			bodies = append(bodies, lines[i].Body)
		}
		wctx, cancel := waitContext(ctx, timeout)
		defer cancel()
		_, err := c.PublishBatch(wctx, subject, bodies, opts...)
		if err == nil {
			return len(lines), false, nil
		}
		var be *postbox.BatchError
		if errors.As(err, &be) {
			return be.Done, errors.Is(err, postbox.ErrUnknownOutcome), be.Err
		}
		return 0, errors.Is(err, postbox.ErrUnknownOutcome), err
	}
}

func newSub() *cobra.Command {
	var queue, policy, out string
	var buffer, count int
	var filterType string
	var headers, present []string
	cmd := &cobra.Command{
		Use:   "sub PATTERN",
		Short: "Subscribe to subjects",
		Long: `Subscribe to PATTERN and print each publication: its body and a newline
(-o text), or one JSON object per event (-o json: subject, type, sender,
sent, body or body_base64, headers, missed). "*" matches one token, ">"
the rest; subjects under $SYS. (the broker's events) need a pattern that
starts with $SYS and root or the broker's user.

--queue GROUP shares the publications among the group's members, one copy
each. --buffer N bounds the events held for this subscriber (default 256);
--policy says what happens when it is full: block (the publisher waits),
drop-oldest, drop-newest (both print a gap notice to standard error, or
"missed" in JSON), or disconnect (the subscription ends, exit 1). --count
N stops after N publications; otherwise it runs until interrupted.
--type MIN:MAX, --header key=value and --has key filter in the broker.

` + exitHelp,
		Example: "  postbox sub 'orders.*.created'\n  postbox sub 'jobs.>' --queue workers -o json\n  postbox sub '$SYS.>' -o json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(out, "text", "json"); err != nil {
				return err
			}
			pol, err := postbox.ParsePolicy(policy)
			if err != nil {
				return usageError{err}
			}
			opts := []postbox.SubscribeOption{postbox.Queue(queue), postbox.Buffer(buffer), postbox.WithPolicy(pol)}
			if filterType != "" {
				lo, hi, ok := strings.Cut(filterType, ":")
				a, err1 := strconv.ParseInt(lo, 10, 64)
				b, err2 := strconv.ParseInt(hi, 10, 64)
				if !ok || err1 != nil || err2 != nil {
					return usageError{fmt.Errorf("--type %q: want MIN:MAX", filterType)}
				}
				opts = append(opts, postbox.FilterType(a, b))
			}
			for _, h := range headers {
				k, v, ok := strings.Cut(h, "=")
				if !ok {
					return usageError{fmt.Errorf("--header %q: want key=value", h)}
				}
				opts = append(opts, postbox.FilterHeader(k, v))
			}
			for _, k := range present {
				opts = append(opts, postbox.FilterHeaderPresent(k))
			}
			c, err := dial(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			s, err := c.Subscribe(cmd.Context(), args[0], opts...)
			if err != nil {
				return err
			}
			defer s.Close()
			w := bufio.NewWriter(os.Stdout)
			defer w.Flush()
			enc := json.NewEncoder(w)
			for n := 0; count <= 0 || n < count; {
				ev, err := s.Next(cmd.Context())
				if err != nil {
					if cmd.Context().Err() != nil {
						return nil // interrupted
					}
					return err
				}
				if out == "json" {
					enc.Encode(jsonEvent(ev))
				} else {
					if ev.Missed > 0 {
						fmt.Fprintf(os.Stderr, "postbox: missed %d publications (buffer full)\n", ev.Missed)
					}
					if !ev.Gap {
						w.Write(ev.Body)
						w.WriteByte('\n')
					}
				}
				if !ev.Gap {
					n++
				}
				if err := w.Flush(); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&queue, "queue", "", "join this queue group")
	cmd.Flags().StringVar(&policy, "policy", "block", "when the buffer is full: block, drop-oldest, drop-newest or disconnect")
	cmd.Flags().IntVar(&buffer, "buffer", 256, "events held for this subscriber (1..65536)")
	cmd.Flags().IntVar(&count, "count", 0, "stop after this many publications (0: until interrupted)")
	cmd.Flags().StringVarP(&out, "output", "o", "text", "output: text or json")
	cmd.Flags().StringVar(&filterType, "type", "", "only types in MIN:MAX")
	cmd.Flags().StringArrayVar(&headers, "header", nil, "only publications with user header key=value (repeatable)")
	cmd.Flags().StringArrayVar(&present, "has", nil, "only publications with this user header (repeatable)")
	return cmd
}

// jsonEvent is an event as sub -o json prints it.
func jsonEvent(ev *postbox.Event) map[string]any {
	m := map[string]any{"missed": ev.Missed}
	if ev.Gap {
		m["gap"] = true
		return m
	}
	m["subject"], m["type"], m["sent"] = ev.Subject, ev.Type, ev.SentAt.Format(time.RFC3339Nano)
	// The sender as recv -o json prints it (senderJS, sendrecv.go).
	m["sender"] = senderJS{ev.Sender.Kind.String(), ev.Sender.UID, ev.Sender.GID, ev.Sender.PID, ev.Sender.Endpoint}
	if utf8.Valid(ev.Body) {
		m["body"] = string(ev.Body)
	} else {
		m["body_base64"] = ev.Body
	}
	if h := ev.Header(); len(h) > 0 {
		m["headers"] = h
	}
	if ct := ev.ContentType(); ct != "" {
		m["content_type"] = ct
	}
	return m
}

func newBind() *cobra.Command {
	var unbind bool
	cmd := &cobra.Command{
		Use:   "bind PATTERN MAILBOX",
		Short: "Route publications into a mailbox",
		Long: `Bind PATTERN to MAILBOX: every publication whose subject matches is sent
into the mailbox as a best-effort message from its publisher (queued at
once, or dropped and counted in the mailbox's DROPPED when it is full),
so a receiver that is not running yet finds it there, with all of a
mailbox's rules (leases, redelivery, typed receive). A durable mailbox's
bindings survive a broker restart; a binding ends with its mailbox.
Needs w on the mailbox. --unbind removes the binding.

` + exitHelp,
		Example: "  postbox create orders-archive --durable\n  postbox bind 'orders.>' orders-archive",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := dial(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			if unbind {
				return c.Unbind(cmd.Context(), args[0], args[1])
			}
			return c.Bind(cmd.Context(), args[0], args[1])
		},
	}
	cmd.Flags().BoolVar(&unbind, "unbind", false, "remove the binding")
	return cmd
}

func newTopic() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "topic",
		Example: "  postbox topic claim 'orders.>' --mode 0640\n  postbox topic release 'orders.>'",
		Short:   "Claims on subjects",
		Long: `Subjects have owners and modes like mailboxes: "topic claim PATTERN
--mode 0640" makes you the owner of the subjects PATTERN matches, with w =
may publish, r = may subscribe (owner, group, other). An unclaimed subject
is open to all; under claims the most specific one decides, and a wildcard
subscription needs r on every claim it reaches. A claim may not overlap
another user's (root may claim anything). Claims survive a restart of a
broker with a data directory. "postbox ls --subjects" lists them.`,
	}
	var mode string
	claim := &cobra.Command{
		Use:     "claim PATTERN",
		Example: "  postbox topic claim 'orders.>' --mode 0640",
		Short:   "Claim a subject pattern",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := strconv.ParseUint(mode, 8, 32)
			if err != nil || m > 0o777 {
				return usageError{fmt.Errorf("--mode %q: want an octal mode such as 0640", mode)}
			}
			c, err := dial(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			return c.Claim(cmd.Context(), args[0], os.FileMode(m))
		},
	}
	claim.Flags().StringVar(&mode, "mode", "0644", "permission bits: r = subscribe, w = publish")
	release := &cobra.Command{
		Use:     "release PATTERN",
		Example: "  postbox topic release 'orders.>'",
		Short:   "Release your claim on a pattern",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := dial(cmd.Context())
			if err != nil {
				return err
			}
			defer c.Close()
			return c.ReleaseClaim(cmd.Context(), args[0])
		},
	}
	cmd.AddCommand(claim, release)
	return cmd
}

// lsSubjects is "ls --subjects": the subscribed patterns with their
// subscribers, queue groups, delivered and dropped counts, then the
// bindings and the claims.
func lsSubjects(ctx context.Context, w io.Writer, out string, noHeaders bool) error {
	c, err := dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	info, err := c.Topics(ctx)
	if err != nil {
		return err
	}
	return printTopics(w, info, out, true, noHeaders)
}

// printTopics prints what TOPICS returned: the subscribed subjects, and
// with all the bindings and claims too.
func printTopics(w io.Writer, info postbox.TopicsInfo, out string, all, noHeaders bool) error {
	if structured(out) {
		enc := newRecordEncoder(w, out)
		for _, s := range info.Subjects {
			enc.Encode(map[string]any{"pattern": s.Pattern, "subscribers": s.Subscribers, "queues": s.Queues,
				"delivered": s.Delivered, "dropped": s.Dropped})
		}
		for _, b := range info.Bindings {
			enc.Encode(map[string]any{"pattern": b.Pattern, "bound_to": b.Mailbox})
		}
		for _, cl := range info.Claims {
			enc.Encode(map[string]any{"pattern": cl.Pattern, "claim_uid": cl.UID, "claim_gid": cl.GID, "mode": fmt.Sprintf("%04o", uint32(cl.Mode))})
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	header(tw, noHeaders, "SUBJECT\tSUBSCRIBERS\tQUEUE GROUPS\tDELIVERED\tDROPPED")
	for _, s := range info.Subjects {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\n", s.Pattern, s.Subscribers, s.Queues, s.Delivered, s.Dropped)
	}
	if len(info.Bindings) > 0 && all {
		header(tw, noHeaders, "\nBOUND PATTERN\tMAILBOX")
		for _, b := range info.Bindings {
			fmt.Fprintf(tw, "%s\t%s\n", b.Pattern, b.Mailbox)
		}
	}
	if len(info.Claims) > 0 && all {
		header(tw, noHeaders, "\nCLAIMED PATTERN\tUID\tGID\tMODE")
		for _, cl := range info.Claims {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%04o\n", cl.Pattern, cl.UID, cl.GID, uint32(cl.Mode))
		}
	}
	return tw.Flush()
}
