package main

// The fast line paths of send and recv.
//
// `producer | postbox send q --lines` reads stdin a buffer at a time and
// sends every complete line read so far in one SendBatch (up to
// wire.MaxBatch lines a frame), with one batch in flight: while the broker
// works on it, the producer refills the pipe, so the next batch is as big
// as the rate demands. Exactly one batch in flight is what makes the
// guarantee exact: the lines admitted are always a prefix of the input
// (a second frame in flight could be admitted after the first failed).
//
// `postbox recv q --count N | consumer` takes messages from a Consumer
// (the broker pushes them ahead, up to a window), formats them into one
// buffer and writes it with one write(2) when the buffer is large or
// nothing more is queued; only the messages whose bytes the write took
// are acked (AckNoWait: acks ride along with the next frame), so a line
// is acked only after it was written to stdout. Under --count the credit
// granted never exceeds N, so the broker never leases a message recv
// will not print.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/wire"
)

// exitEndOfStream is the exit status of a recv that ended because its
// mailbox was closed for sending and drained.
const exitEndOfStream = 4

// linesError is the failure of send --lines: how many lines were
// admitted before it, always the first ones.
type linesError struct {
	admitted int64 // lines 1..admitted are queued
	unknown  int64 // lines after those whose outcome is unknown (ErrUnknownOutcome)
	err      error
}

func (e *linesError) Error() string {
	if e.unknown > 0 {
		return fmt.Sprintf("%v: lines 1-%d were admitted, lines %d-%d may or may not have been, and no line after was sent",
			e.err, e.admitted, e.admitted+1, e.admitted+e.unknown)
	}
	return fmt.Sprintf("%v: %d lines admitted (lines 1-%d); no line after was", e.err, e.admitted, e.admitted)
}

func (e *linesError) Unwrap() error { return e.err }

// errLineTooLong: a line of send --lines is longer than a message may be.
var errLineTooLong = errors.New("line too long")

// lineBatchMax bounds the bytes of one batch (SendBatch splits it into
// frames of the broker's max frame size).
const lineBatchMax = 4 << 20

// lineSender sends a batch of lines and returns how many leading ones
// were admitted when it fails (with whether later ones may have been).
type lineSender func(ctx context.Context, lines []postbox.Outgoing) (done int, unknown bool, err error)

// batchSender sends lines with SendBatch.
func batchSender(mb *postbox.Mailbox, timeout time.Duration, opts []postbox.SendOption) lineSender {
	return func(ctx context.Context, lines []postbox.Outgoing) (int, bool, error) {
		wctx, cancel := waitContext(ctx, timeout)
		defer cancel()
		_, err := mb.SendBatch(wctx, lines, opts...)
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

// oneByOne sends each line with send (for --receipt and --best-effort,
// whose messages go one per frame).
func oneByOne(send func([]byte) error) lineSender {
	return func(ctx context.Context, lines []postbox.Outgoing) (int, bool, error) {
		for i := range lines {
			if err := send(lines[i].Body); err != nil {
				return i, errors.Is(err, postbox.ErrUnknownOutcome), err
			}
		}
		return len(lines), false, nil
	}
}

// sendLines sends every line of in (without its "\n", nor a "\r" before
// it) as one message, batched, and returns nil only when every line was
// admitted; otherwise a *linesError saying how many were.
func sendLines(ctx context.Context, in *os.File, maxMessage int, send lineSender) error {
	r := bufio.NewReaderSize(in, 256<<10)
	var (
		batch    []postbox.Outgoing
		arena    []byte
		admitted int64
		long     []byte // a line longer than r's buffer, so far
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		done, unknown, err := send(ctx, batch)
		admitted += int64(done)
		if err != nil {
			e := &linesError{admitted: admitted, err: err}
			if unknown {
				e.unknown = int64(len(batch) - done)
			}
			return e
		}
		clear(batch)
		batch, arena = batch[:0], arena[:0]
		return nil
	}
	for {
		line, err := r.ReadSlice('\n')
		if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
			// A read error: the lines complete so far are sent, the
			// partial one is not.
			if ferr := flush(); ferr != nil {
				return ferr
			}
			return &linesError{admitted: admitted, err: fmt.Errorf("reading stdin: %w", err)}
		}
		if err == bufio.ErrBufferFull || long != nil {
			long = append(long, line...)
			if len(long) > maxMessage+2 { // +2: a "\r\n" the body drops
				lineNo := admitted + int64(len(batch)) + 1
				if ferr := flush(); ferr != nil {
					return ferr
				}
				return &linesError{admitted: admitted, err: fmt.Errorf("%w: line %d is longer than the broker's largest message (%d bytes)",
					errLineTooLong, lineNo, maxMessage)}
			}
			if err == bufio.ErrBufferFull {
				continue
			}
			line, long = long, nil
		}
		if len(line) > 0 {
			body := line
			if body[len(body)-1] == '\n' {
				body = body[:len(body)-1]
				if len(body) > 0 && body[len(body)-1] == '\r' {
					body = body[:len(body)-1]
				}
			}
			if len(body) > maxMessage {
				lineNo := admitted + int64(len(batch)) + 1
				if ferr := flush(); ferr != nil {
					return ferr
				}
				return &linesError{admitted: admitted, err: fmt.Errorf("%w: line %d is %d bytes, longer than the broker's largest message (%d bytes)",
					errLineTooLong, lineNo, len(body), maxMessage)}
			}
			start := len(arena)
			arena = append(arena, body...)
			batch = append(batch, postbox.Outgoing{Body: arena[start:len(arena):len(arena)]})
		}
		if err == io.EOF {
			return flush()
		}
		// Send when the batch is full, or when reading on would wait:
		// lines must not sit here while the producer is quiet.
		if len(batch) >= wire.MaxBatch || len(arena) >= lineBatchMax || (r.Buffered() == 0 && !readable(in)) {
			if err := flush(); err != nil {
				return err
			}
		}
	}
}

// readable reports whether a read of f would not block (data, end of
// file or an error is there). A regular file always is.
func readable(f *os.File) bool {
	fds := []unix.PollFd{{Fd: int32(f.Fd()), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	return err != nil || n > 0
}

// recvWindow is how many messages recv lets the broker push ahead.
const recvWindow = 1024

// recvFlushAt is the buffered output at which recv writes it out.
const recvFlushAt = 64 << 10

// lineOut is recv's output buffer: the formatted messages, each message's
// end offset, and the messages, to be acked once written.
type lineOut struct {
	w     io.Writer
	buf   []byte
	ends  []int
	msgs  []*postbox.Message
	count int64 // messages written and acked
}

// flush writes the buffer in one write and acks the messages it holds in
// full. It returns how many it acked, and the write's error: the
// messages not (wholly) written are not acked, and stay leased to this
// client until it nacks them or closes.
func (o *lineOut) flush() (int, error) {
	if len(o.msgs) == 0 {
		return 0, nil
	}
	n, err := o.w.Write(o.buf)
	acked := 0
	for i, m := range o.msgs {
		if o.ends[i] > n {
			break
		}
		m.AckNoWait()
		acked++
	}
	o.count += int64(acked)
	clear(o.msgs)
	o.buf, o.ends, o.msgs = o.buf[:0], o.ends[:0], o.msgs[:0]
	return acked, err
}

// add formats m into the buffer.
func (o *lineOut) add(m *postbox.Message, format func([]byte, *postbox.Message) []byte) {
	o.buf = format(o.buf, m)
	o.ends = append(o.ends, len(o.buf))
	o.msgs = append(o.msgs, m)
}

// formatter returns the function appending one message in format out.
func formatter(out string) func([]byte, *postbox.Message) []byte {
	switch out {
	case "json":
		return func(b []byte, m *postbox.Message) []byte {
			j, err := json.Marshal(toJSON(m))
			if err != nil { // cannot happen: every field marshals
				j = []byte(`{}`)
			}
			return append(append(b, j...), '\n')
		}
	case "raw":
		return func(b []byte, m *postbox.Message) []byte { return append(b, m.Body...) }
	}
	return func(b []byte, m *postbox.Message) []byte { return append(append(b, m.Body...), '\n') }
}

// recvSpec is what recv was asked for.
type recvSpec struct {
	typ     int64
	count   int64 // with follow: unlimited
	follow  bool
	timeout time.Duration
	out     string
}

// errStopped ends the receive loop without an error to report.
var errStopped = errors.New("stopped")

// recvLines receives with a prefetching consumer and writes the messages
// to w. ctx ends on SIGINT/SIGTERM or when the output goes away (watch).
func recvLines(ctx context.Context, c *postbox.Client, mb *postbox.Mailbox, sp recvSpec, w io.Writer, watch *outputWatch) error {
	window := int64(recvWindow)
	if !sp.follow {
		window = min(window, sp.count)
	}
	cons, err := mb.Consume(ctx, postbox.Type(sp.typ), postbox.Prefetch(uint32(window)), postbox.ManualCredit())
	if err != nil {
		if watch.gone() {
			return nil
		}
		if sp.follow && ctx.Err() != nil {
			return nil
		}
		return err
	}
	out := &lineOut{w: w}
	format := formatter(sp.out)
	granted, taken := window, int64(0) // credit granted in all; messages taken from cons
	pending := int64(0)                // taken since credit was last granted
	try, cancelTry := context.WithCancel(context.Background())
	cancelTry() // Next(try) returns a queued message, else at once

	loopErr := func() error {
		for sp.follow || taken < sp.count {
			if ctx.Err() != nil {
				return errStopped
			}
			m, err := cons.Next(try)
			if err != nil && !ended(cons) {
				// Nothing queued: write out what we have before waiting.
				if _, err := out.flush(); err != nil {
					return err
				}
				wctx, cancel := waitContext(ctx, sp.timeout)
				m, err = cons.Next(wctx)
				cancel()
			}
			if err != nil {
				if ctx.Err() != nil {
					return errStopped
				}
				if errors.Is(err, postbox.ErrTimeout) && !ended(cons) {
					return fmt.Errorf("receive from %q: %w: no message within %v (%d received)", mb.Name(), err, sp.timeout, taken)
				}
				return err
			}
			taken++
			pending++
			out.add(m, format)
			// Written out in large writes, and at least once a window, so
			// that this client holds at most two windows of leases.
			if len(out.buf) >= recvFlushAt || len(out.msgs) >= recvWindow {
				if _, err := out.flush(); err != nil {
					return err
				}
			}
			if pending >= window/4 || pending >= 256 {
				n := pending
				if !sp.follow {
					n = min(n, sp.count-granted)
				}
				if n > 0 {
					cons.Credit(uint32(n))
					granted += n
				}
				pending = 0
			}
		}
		return nil
	}()
	// What was taken and not written goes back: write it out first,
	// unless the output is gone.
	var werr error
	if !watch.gone() {
		_, werr = out.flush()
	}
	settle, cancel := waitContext(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	cons.Close(settle) // the prefetched messages not taken go back (nacked)
	berr := ackBarrier(settle, c)
	switch {
	case watch.gone(), werr != nil && errors.Is(werr, unix.EPIPE):
		return nil // nobody reads any more: the normal end of a pipeline
	case werr != nil:
		return werr
	case sp.follow && errors.Is(loopErr, postbox.ErrEndOfStream):
		return berr // the producers are done: the normal end of --follow
	case loopErr == errStopped:
		if sp.follow {
			return berr // interrupted: the normal end of --follow
		}
		return fmt.Errorf("%w: receive from %q interrupted after %d messages", postbox.ErrCanceled, mb.Name(), out.count)
	case loopErr != nil:
		if errors.Is(loopErr, unix.EPIPE) {
			return nil
		}
		return loopErr
	}
	return berr
}

// ended reports whether the consumer's stream has ended.
func ended(cons *postbox.Consumer) bool {
	select {
	case <-cons.Done():
		return true
	default:
		return false
	}
}

// ackBarrier returns once the broker has applied every AckNoWait made
// before it (or fails). A queued ack goes out in the writer's next write,
// after the frames posted before that write, so the first PING may
// precede the acks it flushed; a second one, posted after the first's
// reply, follows them, and the broker handles a connection's ACK frames
// in order as it reads them.
func ackBarrier(ctx context.Context, c *postbox.Client) error {
	if err := c.Ping(ctx); err != nil {
		return err
	}
	return c.Ping(ctx)
}
