package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/wire"
)

// waitContext bounds one wait by --timeout (0 = no bound).
func waitContext(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	if timeout > 0 {
		return context.WithTimeout(ctx, timeout)
	}
	return context.WithCancel(ctx)
}

// dialWithin dials the broker, the connection and handshake bounded by
// --timeout too: a broker that accepts but never answers (stopped, wedged)
// must not hang a command that was told how long to wait.
func dialWithin(ctx context.Context, timeout time.Duration) (*postbox.Client, error) {
	dctx, cancel := waitContext(ctx, timeout)
	defer cancel()
	return dial(dctx)
}

// timeoutHelp is the --timeout paragraph of send's and recv's help.
const timeoutHelp = `--timeout also bounds connecting to the broker and, for recv, each ack.
When it passes, the command waits a moment longer for the broker's own
answer; a broker that does not answer (stopped or wedged) makes the
command exit 3 saying the outcome is unknown: the message may have been
sent, or received and removed.`

func newSend() *cobra.Command {
	var typ int64
	var prio uint8
	var timeout time.Duration
	var nowait, receipt, lines, bestEffort bool
	var urgent, printID bool // cancel.go
	var eof, reopen bool
	var headers []string
	var replyTo, correlationID, contentType string
	var fds []int
	cmd := &cobra.Command{
		Use:   "send NAME [BODY]",
		Short: "Send a message (the body from the argument, else stdin)",
		Long: `Send a message to a mailbox, or to an endpoint's inbox as @<id>.

The body is BODY if given, else all of stdin; with --lines every line of
stdin is one message (without its newline). A send waits while the mailbox
is full, up to --timeout; --nowait fails at once instead (exit 3).

--lines sends the lines in batches (up to 1024 a frame), one batch in
flight at a time, so the lines admitted are always the first ones: exit 0 means every line was admitted; on a failure the
error says how many were ("N lines admitted (lines 1-N)"), and no line
after them was. A line longer than the broker's largest message fails
the same way, naming it. --timeout bounds each batch's wait for space.
A line ends at "\n" (a "\r" before it is dropped too); the last line
needs no newline.

--receipt waits until a receiver has taken the message and prints who took
it; on a rendezvous mailbox that is always so.

NAME may also be a group, '#name': every member (see postbox join) gets a
copy, without waiting (a full member gets none), and "delivered to N" on
stderr says how many got it; or @* for every connected endpoint, which
only root and the broker's --broadcast-owner may use.

--best-effort sends "maybe" messages: no reply, no waiting; the broker
drops a message it cannot admit at once (mailbox full or over its max
bytes, a limit reached) and counts it in the mailbox's "dropped" (stat,
ls). The command exits 0 once its messages are written to the broker,
whether or not they were admitted; a message the client itself dropped
because the connection is congested exits 3. Not with --receipt.

Headers travel with the message and are shown by recv -o json: --header
KEY=VALUE adds a user header (repeatable; keys are case-sensitive, 1..128
bytes of A-Z a-z 0-9 - _ .; values up to 4096 bytes), --reply-to names the
mailbox or @id to answer to, --correlation-id ties a reply to its request
(1..255 bytes), --content-type describes the body. A header past its
limits fails before anything is sent (exit 1).

--urgent sends an urgent message: it is delivered ahead of everything
queued in the mailbox, whatever the priorities (first come first served
among urgent ones), it enters a full mailbox while fewer than 64 urgent
messages are queued there, and it travels ahead of queued data on the
way. --print-id prints each message's id (one line each), for
"postbox cancel NAME --id ID" to withdraw it while nobody has taken it.

--eof closes the mailbox for sending once the message (or the lines) is
sent; without BODY or --lines it sends nothing, it only closes. Receivers
then take what is queued and end with exit 4 (end of stream) instead of
waiting; a later send fails with exit 4 too. --reopen opens it for
sending again. A durable mailbox stays closed across a broker restart.

` + filesHelp + `

` + timeoutHelp + `

` + exitHelp,
		Example: "  postbox send jobs 'build #42' --priority 5\n  seq 1 1000 | postbox send jobs --lines\n  postbox send jobs --eof",
		Args:    cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if lines && len(args) == 2 {
				return usageError{errors.New("--lines reads stdin; do not also give BODY")}
			}
			ctx := cmd.Context()
			c, err := dialWithin(ctx, timeout)
			if err != nil {
				return err
			}
			defer c.Close()
			if bestEffort && receipt {
				return usageError{errors.New("--best-effort has no reply, so no --receipt")}
			}
			if bestEffort && printID {
				return usageError{errors.New("--best-effort has no reply, so no --print-id")}
			}
			mb := c.Mailbox(args[0])
			opts := []postbox.SendOption{postbox.Type(typ), postbox.Priority(prio)}
			if nowait {
				opts = append(opts, postbox.NoWait())
			}
			if receipt {
				opts = append(opts, postbox.WithReceipt())
			}
			if urgent {
				opts = append(opts, postbox.Urgent())
			}
			for _, h := range headers {
				k, v, ok := strings.Cut(h, "=")
				if !ok {
					return usageError{fmt.Errorf("--header %q: want KEY=VALUE", h)}
				}
				opts = append(opts, postbox.WithHeader(k, v))
			}
			if replyTo != "" {
				opts = append(opts, postbox.ReplyTo(replyTo))
			}
			if correlationID != "" {
				opts = append(opts, postbox.CorrelationID([]byte(correlationID)))
			}
			if contentType != "" {
				opts = append(opts, postbox.ContentType(contentType))
			}
			if len(fds) > 0 {
				if lines || bestEffort {
					return usageError{errors.New("--fd sends descriptors with one message: not with --lines or --best-effort")}
				}
				files, err := openFiles(fds) // files.go
				if err != nil {
					return err
				}
				opts = append(opts, postbox.WithFiles(files...))
			}
			send := func(body []byte) error {
				if bestEffort {
					return mb.SendBestEffort(body, opts...)
				}
				wctx, cancel := waitContext(ctx, timeout)
				defer cancel()
				if isFanOutTarget(args[0]) && !receipt {
					return sendFanOut(wctx, c, args[0], body, opts) // groups.go
				}
				r, err := mb.Send(wctx, body, opts...)
				if err != nil {
					return err
				}
				if printID {
					fmt.Println(r.ID)
				}
				if r.Taken && (receipt || cmd.Flags().Changed("receipt")) {
					fmt.Printf("taken by endpoint %d (pid %d, uid %d)\n", r.By.Endpoint, r.By.PID, r.By.UID)
				}
				return nil
			}
			sendBody := func() error {
				switch {
				case len(args) == 2:
					return send([]byte(args[1]))
				case lines:
					ls := batchSender(mb, timeout, opts)
					if bestEffort || receipt {
						ls = oneByOne(send) // one message per frame
					}
					return sendLines(ctx, os.Stdin, c.MaxMessage(), ls)
				default:
					body, err := io.ReadAll(os.Stdin)
					if err != nil {
						return fmt.Errorf("reading stdin: %w", err)
					}
					return send(body)
				}
			}
			if eof || reopen {
				return sendEOF(ctx, mb, timeout, eof, reopen, len(args) == 2 || lines, sendBody)
			}
			return sendBody()
		},
	}
	f := cmd.Flags()
	f.Int64Var(&typ, "type", 1, "message type (>= 1)")
	f.Uint8Var(&prio, "priority", 0, "priority 0-255, higher first")
	f.DurationVar(&timeout, "timeout", 0, "give up waiting for space after this long (0 = wait forever)")
	f.BoolVar(&nowait, "nowait", false, "fail at once if the mailbox is full")
	f.BoolVar(&receipt, "receipt", false, "wait until a receiver takes the message and print who")
	f.BoolVar(&lines, "lines", false, "send each line of stdin as one message")
	f.BoolVar(&bestEffort, "best-effort", false, "no reply, never wait: the broker drops (and counts) what does not fit at once")
	f.BoolVar(&eof, "eof", false, "then close the mailbox for sending: receivers drain it and end (exit 4); alone, only close")
	f.BoolVar(&reopen, "reopen", false, "open a mailbox closed with --eof for sending again (before sending BODY, if any)")
	f.StringArrayVar(&headers, "header", nil, "user header KEY=VALUE (repeatable)")
	f.StringVar(&replyTo, "reply-to", "", "REPLY_TO header: the mailbox or @id to answer to")
	f.StringVar(&correlationID, "correlation-id", "", "CORRELATION_ID header (1..255 bytes)")
	f.StringVar(&contentType, "content-type", "", "CONTENT_TYPE header, e.g. application/json")
	f.BoolVar(&urgent, "urgent", false, "urgent: delivered ahead of everything queued (see postbox cancel)")
	f.BoolVar(&printID, "print-id", false, "print each message's id, for postbox cancel --id")
	f.IntSliceVar(&fds, "fd", nil, "send this open descriptor N with the message (repeatable)")
	return cmd
}

var _ = base64.StdEncoding // body_base64 is encoded by encoding/json as base64

func newRecv() *cobra.Command {
	var typ int64
	var count int
	var timeout time.Duration
	var nowait, follow, peek, execCmd bool
	var out string
	cmd := &cobra.Command{
		Use:   "recv NAME [--exec -- CMD ARGS...]",
		Short: "Receive messages",
		Long: `Receive messages from a mailbox (or your own inbox).

Each message is printed, then acknowledged (so it is gone from the
mailbox). By default the body is printed followed by a newline (-o text);
-o raw prints bodies exactly, -o json prints one JSON object per message
with id, type, priority, the sender's kind/uid/gid/pid/endpoint, sent
time, redelivery count, body ("body_base64" when the body is not UTF-8)
and the headers the sender set: reply_to, correlation_id
("correlation_id_base64" when not UTF-8), content_type, deadline and the
user headers as "headers": {"key": ["value", ...]}.

--type follows SysV msgrcv: 0 any, T > 0 exactly type T, T < 0 the lowest
type <= |T|. --count N receives N messages (default 1); --follow receives
until interrupted, or until its output is closed (recv q --follow | head
-3 ends when head does; a message it received but could not print is
nacked, never acked). --timeout bounds each wait; --nowait fails at once
when nothing is there (exit 3).

With --count N (N > 1) or --follow, recv lets the broker push up to 1024
messages ahead (never more than N in all under --count), writes them to
stdout in large writes, and acks a message only once the write that
carries it has succeeded. Messages pushed ahead but not printed when recv
stops (interrupted, its output closed) go back to the mailbox, counted as
a redelivery. When the mailbox is closed for sending and drained, recv
exits 4 (end of stream) before its --count, and --follow ends normally
(exit 0; stopped by Ctrl-C, 130).

--peek lists up to --count of the messages queued now, in the order
receivers would take them (with --type: the messages that type selects),
without taking them: no lease, no delivery counted, so peeking never
moves a message towards --max-deliveries or its dead-letter mailbox.
Messages in flight (leased to a receiver) are not listed. It does not
wait: an empty mailbox is exit 3.

` + recvFilesHelp + `

` + timeoutHelp + `

` + exitHelp,
		Example: "  postbox recv jobs --count 10 -o json\n  postbox recv jobs --follow --type -3\n  postbox recv jobs --peek --count 20 -o json\n  postbox recv files --exec -- sh -c 'cat <&3'",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case execCmd && len(args) < 2:
				return usageError{errors.New("--exec needs a command: postbox recv NAME --exec -- CMD ARGS...")}
			case !execCmd && len(args) > 1:
				return usageError{fmt.Errorf("recv takes one mailbox name, not %d arguments (a command goes after --exec --)", len(args))}
			case execCmd && peek:
				return usageError{errors.New("--peek takes nothing, so there is nothing to --exec")}
			}
			if err := checkOutput(out, "text", "raw", "json"); err != nil {
				return err
			}
			if count < 1 {
				return usageError{fmt.Errorf("--count %d: want at least 1", count)}
			}
			if peek && follow {
				return usageError{errors.New("--peek lists what is queued now; it cannot --follow")}
			}
			ctx, watch, err := watchOutput(cmd.Context(), int(os.Stdout.Fd()))
			if err != nil {
				return err
			}
			defer watch.stop()
			c, err := dialWithin(ctx, timeout)
			if err != nil {
				return err
			}
			defer c.Close()
			mb := c.Mailbox(args[0])
			w := bufio.NewWriter(os.Stdout)
			defer w.Flush()
			print := printer(w, out)
			if peek {
				return peekMessages(ctx, mb, typ, count, timeout, w, print)
			}
			if !nowait && (follow || count > 1) {
				// A stream of messages: the prefetching consumer.
				return recvLines(ctx, c, mb, recvSpec{typ: typ, count: int64(count), follow: follow, timeout: timeout, out: out}, os.Stdout, watch)
			}
			opts := []postbox.ReceiveOption{postbox.Type(typ)}
			if nowait {
				opts = append(opts, postbox.NoWait())
			}
			for n := 0; follow || n < count; n++ {
				wctx, cancel := waitContext(ctx, timeout)
				m, err := mb.Receive(wctx, opts...)
				cancel()
				if err != nil {
					if watch.gone() {
						return nil // nobody reads any more: the normal end of a pipeline
					}
					if follow && ctx.Err() != nil {
						return nil // interrupted: the normal end of --follow
					}
					return err
				}
				// Print before acking: a message is never lost between the
				// two, at worst it is seen again. One that cannot be
				// printed (the output went away) is nacked.
				// Settled even if ctx ended meanwhile (interrupted, output
				// gone): what was printed is acked, the rest nacked.
				actx, cancel := waitContext(context.WithoutCancel(ctx), cmp.Or(timeout, settleTimeout))
				if execCmd {
					// The command stands in for printing (files.go).
					err := runExec(ctx, m, args[1:])
					m.CloseFiles()
					if err != nil {
						m.Nack(actx)
						cancel()
						return err
					}
					err = m.Ack(actx)
					cancel()
					if err != nil {
						return err
					}
					continue
				}
				if out != "json" {
					noteFiles(m) // on stderr (files.go)
				}
				if watch.gone() {
					m.Nack(actx)
					cancel()
					return nil
				}
				print(m)
				if err := w.Flush(); err != nil {
					m.Nack(actx)
					cancel()
					if watch.gone() || errors.Is(err, syscall.EPIPE) {
						return nil
					}
					return err
				}
				err = m.Ack(actx)
				cancel()
				m.CloseFiles()
				if err != nil {
					return err
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.Int64Var(&typ, "type", 0, "msgrcv type selector: 0 any, T exactly, -T lowest <= T")
	f.IntVarP(&count, "count", "n", 1, "receive this many messages (with --peek: list at most this many)")
	f.BoolVarP(&follow, "follow", "f", false, "keep receiving until interrupted")
	f.DurationVar(&timeout, "timeout", 0, "give up waiting for a message after this long (0 = wait forever)")
	f.BoolVar(&nowait, "nowait", false, "fail at once if no message is there")
	f.BoolVar(&peek, "peek", false, "list queued messages (up to --count) without taking them or counting a delivery")
	f.BoolVar(&execCmd, "exec", false, "run the command after -- for each message, with its descriptors as fd 3, 4, ...")
	outputFlag(cmd, &out, "text", "text, raw or json")
	return cmd
}

// settleTimeout bounds an ack or nack when --timeout does not.
const settleTimeout = 10 * time.Second

// printer returns the function printing one message in format out.
func printer(w *bufio.Writer, out string) func(*postbox.Message) {
	enc := json.NewEncoder(w)
	return func(m *postbox.Message) {
		switch out {
		case "json":
			enc.Encode(toJSON(m))
		case "raw":
			w.Write(m.Body)
		default:
			w.Write(m.Body)
			w.WriteByte('\n')
		}
	}
}

// peekMessages prints up to count queued messages with Browse, taking
// none of them.
func peekMessages(ctx context.Context, mb *postbox.Mailbox, typ int64, count int, timeout time.Duration,
	w *bufio.Writer, print func(*postbox.Message)) error {
	cursor, n := "", 0
	for n < count {
		bctx, cancel := waitContext(ctx, timeout)
		msgs, next, err := mb.Browse(bctx, cursor, min(count-n, wire.MaxBrowseLimit), postbox.Type(typ))
		cancel()
		if err != nil {
			return err
		}
		for _, m := range msgs {
			print(m)
		}
		n += len(msgs)
		if err := w.Flush(); err != nil {
			if errors.Is(err, syscall.EPIPE) {
				return nil
			}
			return err
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if n == 0 {
		return fmt.Errorf("%w: nothing queued in %q", postbox.ErrEmpty, mb.Name())
	}
	return nil
}
