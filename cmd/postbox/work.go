package main

// postbox work: xargs -P over a mailbox, where a killed worker loses
// nothing. Each message is leased while its command runs; the lease is
// settled by the command's exit (ack on 0, nack otherwise), and a worker
// that dies holds no message: the broker returns its leases.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/postbox-ipc/postbox"
)

func newWork() *cobra.Command {
	var w worker
	cmd := &cobra.Command{
		Use:   "work MAILBOX [-P N] [--max-attempts K] -- CMD [ARGS...]",
		Short: "Run a command once per message, acking it when the command succeeds",
		Long: `Receive messages from a mailbox and run CMD ARGS once per message, with
the message's body on stdin: xargs -P, but a killed worker loses nothing.
A message is acked when its command exits 0 and nacked (returned to the
mailbox for another attempt, its redelivery count incremented) when it
fails: a non-zero exit, killed by a signal, or not started. The command's
stdout and stderr are this process's (with -P N they interleave, as with
xargs -P). The command's environment adds:

  POSTBOX_MAILBOX           the mailbox
  POSTBOX_ID                the message's id in it
  POSTBOX_TYPE              its type
  POSTBOX_PRIORITY          its priority
  POSTBOX_REDELIVERIES      how often it was delivered before (0 the first time)
  POSTBOX_ATTEMPT           POSTBOX_REDELIVERIES + 1
  POSTBOX_SENDER_UID, POSTBOX_SENDER_GID, POSTBOX_SENDER_PID,
  POSTBOX_SENDER_ENDPOINT   who sent it (kernel-verified)

-P N runs up to N commands at once (default 1); the broker leases this
worker at most N messages, so the others wait in the mailbox for any
worker.

--max-attempts K gives up on a message after K deliveries. The mailbox's
own rule (create --max-deliveries M, with --dead-letter) applies when it
has one at most K: the broker moves the message to its dead-letter
mailbox (reason "max deliveries reached") or drops it. When the mailbox
has no such rule, or a larger M, the worker applies K itself: after the
K-th failed delivery it sends the message (body, type, priority and
headers; the sender is then this worker, and the headers
x-postbox-failed-id and x-postbox-failed-sender say what it was) to the
mailbox's dead-letter mailbox and acks it, or, with no dead-letter
mailbox, acks it to drop it and says so on stderr. Without --max-attempts
only the mailbox's rules apply. Deliveries count every lease, also one
returned unstarted at a stop.

SIGTERM or SIGINT stops taking messages: the messages leased but not yet
started go back to the mailbox (nacked), the running commands finish and
are settled, and the worker exits 0 (130 after SIGINT). With --grace D, commands still
running D after the signal are sent SIGTERM (SIGKILL 5s later) and their
messages nacked. A second signal does nothing more; kill -9 the worker
to stop at once: its leases return to the mailbox (they count as a
delivery) and its running commands are killed (SIGKILL, as the worker
dies: Linux's parent-death signal).

When the mailbox is closed for sending and drained, the worker finishes
its running commands and exits 4 (end of stream).

` + exitHelp,
		Example: "  postbox work jobs -P 4 -- sh -c 'xargs -n1 curl -fsS >/dev/null'\n" +
			"  postbox work jobs --max-attempts 3 -- ./process-one",
		Args: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() != 1 || len(args) < 2 {
				return errors.New(`want MAILBOX -- CMD [ARGS...]`)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if w.parallel < 1 {
				return usageError{fmt.Errorf("-P %d: want at least 1", w.parallel)}
			}
			if w.maxAttempts < 0 {
				return usageError{fmt.Errorf("--max-attempts %d: want at least 1 (0: the mailbox's rules)", w.maxAttempts)}
			}
			if _, err := exec.LookPath(args[1]); err != nil {
				return usageError{fmt.Errorf("command %q: %w", args[1], err)}
			}
			ctx := cmd.Context()
			c, err := dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			w.name, w.argv = args[0], args[1:]
			return w.serve(ctx, c)
		},
	}
	f := cmd.Flags()
	f.IntVarP(&w.parallel, "parallel", "P", 1, "run up to N commands at once")
	f.IntVar(&w.maxAttempts, "max-attempts", 0, "give up on a message after this many deliveries (0: the mailbox's rules alone)")
	f.DurationVar(&w.grace, "grace", 0, "after SIGTERM, send SIGTERM to commands still running this long after (0: wait for them)")
	f.Int64Var(&w.typ, "type", 0, "msgrcv type selector: 0 any, T exactly, -T lowest <= T")
	return cmd
}

// worker runs the command for each message of one mailbox.
type worker struct {
	name        string
	argv        []string
	parallel    int
	maxAttempts int
	grace       time.Duration
	typ         int64

	// Set by serve from the mailbox's rules.
	selfLimit  bool   // the worker applies maxAttempts itself
	deadLetter string // the mailbox's dead-letter mailbox, if any
}

// serve consumes until ctx ends (SIGTERM, SIGINT) or the stream ends,
// running at most parallel commands at once. The consumer has credit for
// parallel messages and gets one more each time a command is settled, so
// every message it holds is running or about to.
func (w *worker) serve(ctx context.Context, c *postbox.Client) error {
	mb := c.Mailbox(w.name)
	info, err := mb.Stat(ctx)
	if err != nil {
		return err
	}
	w.deadLetter = info.DeadLetter
	if w.maxAttempts > 0 && (info.MaxDeliveries == 0 || uint32(w.maxAttempts) < info.MaxDeliveries) {
		w.selfLimit = true
	}
	cons, err := mb.Consume(ctx, postbox.Type(w.typ), postbox.Prefetch(uint32(w.parallel)), postbox.ManualCredit())
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	// stop ends when running commands are to be sent SIGTERM: grace
	// after ctx ended.
	stop, stopNow := context.WithCancel(context.Background())
	defer stopNow()
	slots := make(chan struct{}, w.parallel)
	var wg sync.WaitGroup
	var streamErr error
	for ctx.Err() == nil && streamErr == nil {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			continue
		}
		m, err := cons.Next(ctx)
		if err != nil {
			<-slots
			if ctx.Err() == nil {
				streamErr = err
			}
			continue
		}
		if ctx.Err() != nil { // not started: back to the mailbox
			<-slots
			w.settle(c, m, false, nil)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := w.run(stop, m)
			w.settle(c, m, err == nil, err)
			<-slots
			cons.Credit(1)
		}()
	}
	// Stop the stream first, so a message leased but not started goes
	// back now; then let the running commands finish.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	closeErr := cons.Close(cctx)
	cancel()
	if w.grace > 0 && ctx.Err() != nil {
		t := time.AfterFunc(w.grace, stopNow)
		defer t.Stop()
	}
	wg.Wait()
	if streamErr != nil {
		return streamErr
	}
	if closeErr != nil && !errors.Is(closeErr, postbox.ErrClosed) && !errors.Is(closeErr, postbox.ErrCanceled) {
		return closeErr
	}
	return nil
}

// run runs the command for m. stop ending sends it SIGTERM.
func (w *worker) run(stop context.Context, m *postbox.Message) error {
	cmd := exec.CommandContext(stop, w.argv[0], w.argv[1:]...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	// The command dies with the worker: a killed worker's messages go
	// back to the mailbox, so a command left running would be a second,
	// concurrent attempt.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stdin = bytes.NewReader(m.Body)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	cmd.Env = append(os.Environ(),
		"POSTBOX_MAILBOX="+w.name,
		"POSTBOX_ID="+u(m.ID),
		"POSTBOX_TYPE="+strconv.FormatInt(m.Type, 10),
		"POSTBOX_PRIORITY="+u(uint64(m.Priority)),
		"POSTBOX_REDELIVERIES="+u(uint64(m.Redeliveries)),
		"POSTBOX_ATTEMPT="+u(uint64(m.Redeliveries)+1),
		"POSTBOX_SENDER_UID="+u(uint64(m.Sender.UID)),
		"POSTBOX_SENDER_GID="+u(uint64(m.Sender.GID)),
		"POSTBOX_SENDER_PID="+strconv.FormatInt(int64(m.Sender.PID), 10),
		"POSTBOX_SENDER_ENDPOINT="+u(m.Sender.Endpoint),
	)
	return cmd.Run()
}

// settle acks m (its command succeeded) or, after a failure (cause; nil:
// not started), nacks it, dead-lettering it itself when the worker
// applies --max-attempts and this was the last attempt.
func (w *worker) settle(c *postbox.Client, m *postbox.Message, done bool, cause error) {
	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	defer cancel()
	attempt := int(m.Redeliveries) + 1
	var err error
	switch {
	case done:
		err = m.Ack(ctx)
	case cause == nil:
		err = m.Nack(ctx)
	default:
		w.logf("message %d (attempt %d): %v", m.ID, attempt, cause)
		if w.selfLimit && attempt >= w.maxAttempts {
			err = w.giveUp(ctx, c, m)
		} else {
			err = m.Nack(ctx)
		}
	}
	if err != nil && !errors.Is(err, postbox.ErrStaleLease) {
		w.logf("settling message %d: %v", m.ID, errorText(nil, err))
	}
}

// giveUp ends a message that failed --max-attempts times where the
// mailbox's own rules would not: to the dead-letter mailbox, else
// dropped. The ack follows the send, so a failure in between leaves a
// copy in both rather than in neither.
func (w *worker) giveUp(ctx context.Context, c *postbox.Client, m *postbox.Message) error {
	if w.deadLetter == "" {
		w.logf("message %d failed %d attempts: dropped (%q has no dead-letter mailbox)", m.ID, w.maxAttempts, w.name)
		return m.Ack(ctx)
	}
	opts := []postbox.SendOption{postbox.Type(m.Type), postbox.Priority(m.Priority),
		postbox.WithHeader("x-postbox-failed-id", strconv.FormatUint(m.ID, 10)),
		postbox.WithHeader("x-postbox-failed-sender", fmt.Sprintf("uid=%d gid=%d pid=%d endpoint=%d",
			m.Sender.UID, m.Sender.GID, m.Sender.PID, m.Sender.Endpoint))}
	if v := m.ReplyTo(); v != "" {
		opts = append(opts, postbox.ReplyTo(v))
	}
	if v := m.CorrelationID(); v != nil {
		opts = append(opts, postbox.CorrelationID(v))
	}
	if v := m.ContentType(); v != "" {
		opts = append(opts, postbox.ContentType(v))
	}
	if v := m.Deadline(); !v.IsZero() {
		opts = append(opts, postbox.MessageDeadline(v))
	}
	for k, vs := range m.Header() {
		for _, v := range vs {
			opts = append(opts, postbox.WithHeader(k, v))
		}
	}
	if _, err := c.Mailbox(w.deadLetter).Send(ctx, m.Body, opts...); err != nil {
		m.Nack(ctx)
		return fmt.Errorf("moving message %d to dead-letter mailbox %q: %w", m.ID, w.deadLetter, err)
	}
	w.logf("message %d failed %d attempts: moved to %q", m.ID, w.maxAttempts, w.deadLetter)
	return m.Ack(ctx)
}

func (w *worker) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "postbox: work %q: %s\n", w.name, fmt.Sprintf(format, args...))
}
