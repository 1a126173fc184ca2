package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/rpc/envelope"
)

func newReply() *cobra.Command {
	var parallel int
	var create bool
	cmd := &cobra.Command{
		Use:   "reply MAILBOX [-P N] -- CMD [ARGS...]",
		Short: "Serve requests by running a command once per request",
		Long: `Serve the requests sent to a mailbox (by "postbox req", package rpc or
any caller using CALL): for each one, run CMD ARGS with the request body
on stdin and send its stdout back as the reply. A shell script can be a
service:

  postbox reply upper -- tr a-z A-Z

The mailbox is created as a service if it does not exist (--create=false
refuses to). Several "postbox reply" processes on one mailbox share its
requests; "postbox ls" counts them as its servers.

A command that exits non-zero sends an error reply instead: rpc-status
Unknown, rpc-error the last line of its stderr (else "exit status N").
A command that cannot be started is rpc-status Internal. The command's
stderr is also copied to this process's stderr. The command sees:

  POSTBOX_SENDER_UID, POSTBOX_SENDER_GID, POSTBOX_SENDER_PID,
  POSTBOX_SENDER_ENDPOINT   who sent the request (kernel-verified)
  POSTBOX_METHOD            the rpc-method header, if any
  POSTBOX_REQUEST_ID        the CORRELATION_ID (an RPC request id as
                            session/sequence, else as sent, else in hex)
  POSTBOX_MAILBOX           the mailbox served

A command still running at the request's deadline, or when its caller
cancels, is killed (SIGKILL); no reply is sent then, nobody waits for one.

-P N runs up to N commands at once (default 1). SIGTERM or SIGINT stops
taking requests: requests received but not started go back to the
mailbox for another server, running commands finish and are answered,
and the command exits 0 (130 after SIGINT).

` + exitHelp,
		Example: "  postbox reply upper -- tr a-z A-Z\n  postbox reply jobs -P 4 -- sh -c 'sleep 1; wc -c'",
		Args: func(cmd *cobra.Command, args []string) error {
			at := cmd.ArgsLenAtDash()
			if at != 1 || len(args) < 2 {
				return errors.New(`want MAILBOX -- CMD [ARGS...]`)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if parallel < 1 {
				return usageError{fmt.Errorf("-P %d: want at least 1", parallel)}
			}
			ctx := cmd.Context()
			c, err := dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			name := args[0]
			if create {
				if _, err := c.Create(ctx, name, postbox.Service()); err != nil && !errors.Is(err, postbox.ErrExists) {
					return err
				}
			}
			s := &replier{name: name, argv: args[1:]}
			return s.serve(ctx, c, parallel)
		},
	}
	cmd.Flags().IntVarP(&parallel, "parallel", "P", 1, "run up to N commands at once")
	cmd.Flags().BoolVar(&create, "create", true, "create the mailbox as a service if it does not exist")
	return cmd
}

// replier runs the command for each request.
type replier struct {
	name string
	argv []string
}

// serve consumes requests until ctx ends (SIGTERM, SIGINT) or the stream
// fails, running at most n commands at once. It takes a request from the
// consumer only when a command slot is free, and the broker sends it at
// most one request ahead (prefetch 1), so requests wait in the mailbox,
// where any server can take them, rather than behind this one's busy
// commands; at the end the one sent ahead, if any, goes back.
func (s *replier) serve(ctx context.Context, c *postbox.Client, n int) error {
	cons, err := c.Mailbox(s.name).Consume(ctx, postbox.Prefetch(1))
	if err != nil {
		return err
	}
	slots := make(chan struct{}, n)
	var wg sync.WaitGroup
	var streamErr error
	for ctx.Err() == nil {
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
				break
			}
			continue
		}
		if ctx.Err() != nil { // not started: back to the mailbox
			<-slots
			nctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
			m.Nack(nctx)
			cancel()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			s.handle(c, m)
		}()
	}
	// Stop the stream first, so a request sent ahead goes back (nacked)
	// rather than wait; then let the running commands finish and answer.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	closeErr := cons.Close(cctx)
	cancel()
	wg.Wait()
	if streamErr != nil {
		return streamErr
	}
	if closeErr != nil && !errors.Is(closeErr, postbox.ErrClosed) {
		return closeErr
	}
	return nil
}

// attemptSlack is how far before an attempt's deadline an interrupt
// still counts as that attempt timing out: the caller's timer and this
// process read the same host clock, but scheduling can make either a
// little early (package rpc's server allows the same).
const attemptSlack = 2 * time.Millisecond

// handle runs the command for one request, replies, then acks.
func (s *replier) handle(c *postbox.Client, m *postbox.Message) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if d := m.Deadline(); !d.IsZero() {
		ctx, cancel = context.WithDeadline(ctx, d)
		defer cancel()
	}
	// A retried RPC attempt that timed out is interrupted too, but a
	// retry with the same request id follows and this run's reply will
	// answer it (the broker hands it to the waiting retry): run on then,
	// as package rpc's server does. Any other interrupt is the caller
	// giving up.
	attemptEnd, _ := strconv.ParseInt(m.Header().Get(envelope.AttemptDeadline), 10, 64)
	go func() {
		select {
		case <-m.Interrupted():
			if attemptEnd > 0 && time.Now().UnixNano() >= attemptEnd-int64(attemptSlack) {
				return
			}
			cancel()
		case <-ctx.Done():
		}
	}()
	body, code, msg := s.run(ctx, m)
	settle, done := context.WithTimeout(context.Background(), settleTimeout)
	defer done()
	if m.ReplyTo() != "" && m.CorrelationID() != nil && ctx.Err() == nil {
		// The reply acks the request too (one frame, reply first).
		opts := []postbox.ReplyOption{postbox.AckRequest()}
		if code != envelope.OK {
			opts = append(opts, postbox.WithHeader(envelope.Status, strconv.FormatUint(uint64(code), 10)),
				postbox.WithHeader(envelope.Error, msg))
			body = nil
		}
		if _, err := m.Reply(settle, body, opts...); err != nil {
			fmt.Fprintf(os.Stderr, "postbox: reply %q: request %d: %v\n", s.name, m.ID, errorText(nil, err))
		}
		return
	}
	// Not a request, or nobody waits for its answer any more.
	if err := m.Ack(settle); err != nil && !errors.Is(err, postbox.ErrStaleLease) {
		fmt.Fprintf(os.Stderr, "postbox: reply %q: ack of request %d: %v\n", s.name, m.ID, errorText(nil, err))
	}
}

// run runs the command with m's body on stdin and returns its stdout, or
// the status and message of an error reply.
func (s *replier) run(ctx context.Context, m *postbox.Message) ([]byte, envelope.Code, string) {
	cmd := exec.CommandContext(ctx, s.argv[0], s.argv[1:]...)
	cmd.WaitDelay = time.Second
	cmd.Stdin = bytes.NewReader(m.Body)
	var stdout bytes.Buffer
	stderr := &lastLine{}
	cmd.Stdout = &stdout
	cmd.Stderr = io.MultiWriter(os.Stderr, stderr)
	cmd.Env = append(os.Environ(),
		"POSTBOX_MAILBOX="+s.name,
		"POSTBOX_SENDER_UID="+strconv.FormatUint(uint64(m.Sender.UID), 10),
		"POSTBOX_SENDER_GID="+strconv.FormatUint(uint64(m.Sender.GID), 10),
		"POSTBOX_SENDER_PID="+strconv.FormatInt(int64(m.Sender.PID), 10),
		"POSTBOX_SENDER_ENDPOINT="+strconv.FormatUint(m.Sender.Endpoint, 10),
		"POSTBOX_METHOD="+m.Header().Get(envelope.Method),
		"POSTBOX_REQUEST_ID="+requestID(m.CorrelationID()),
	)
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return stdout.Bytes(), envelope.OK, ""
	case ctx.Err() != nil:
		return nil, envelope.DeadlineExceeded, "killed: " + ctx.Err().Error()
	case errors.As(err, &exit):
		msg := stderr.last()
		if msg == "" {
			msg = exit.String()
		}
		return nil, envelope.Unknown, msg
	default:
		return nil, envelope.Internal, err.Error()
	}
}

// requestID is how POSTBOX_REQUEST_ID shows a correlation id.
func requestID(b []byte) string {
	if id, err := envelope.ParseID(b); err == nil {
		return id.String()
	}
	if utf8.Valid(b) && !bytes.ContainsAny(b, "\x00\n") {
		return string(b)
	}
	return hex.EncodeToString(b)
}

// lastLine keeps the last non-empty line written to it (bounded).
type lastLine struct {
	mu   sync.Mutex // guards cur, prev
	cur  []byte     // the line being written
	prev string     // the last complete non-empty line
}

func (l *lastLine) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, b := range p {
		if b == '\n' {
			if s := strings.TrimSpace(string(l.cur)); s != "" {
				l.prev = s
			}
			l.cur = l.cur[:0]
			continue
		}
		if len(l.cur) < 4096 {
			l.cur = append(l.cur, b)
		}
	}
	return len(p), nil
}

func (l *lastLine) last() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s := strings.TrimSpace(string(l.cur)); s != "" {
		return s
	}
	return l.prev
}
