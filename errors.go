package postbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/postbox-ipc/postbox/wire"
)

// Errors returned by the client. Each matches, with errors.Is, the *Error
// the broker's reply produced.
var (
	ErrMalformed  = errors.New("postbox: malformed frame")
	ErrVersion    = errors.New("postbox: unsupported protocol version")
	ErrUnknownOp  = errors.New("postbox: unknown operation")
	ErrTooLarge   = errors.New("postbox: too large")
	ErrNotFound   = errors.New("postbox: not found")
	ErrExists     = errors.New("postbox: already exists")
	ErrPermission = errors.New("postbox: permission denied")
	ErrFull       = errors.New("postbox: mailbox is full")
	ErrEmpty      = errors.New("postbox: mailbox is empty")
	// ErrTimeout also matches context.DeadlineExceeded, and errors that
	// match it satisfy net.Error with Timeout() true.
	ErrTimeout    = errors.New("postbox: timed out")
	ErrDestroyed  = errors.New("postbox: mailbox destroyed")
	ErrStaleLease = errors.New("postbox: stale lease")
	ErrLimit      = errors.New("postbox: limit reached")
	// ErrClosed: the client was closed, or the broker closed the
	// connection or is shutting down.
	ErrClosed    = errors.New("postbox: closed")
	ErrCanceled  = errors.New("postbox: canceled")
	ErrInternal  = errors.New("postbox: broker internal error")
	ErrStorage   = errors.New("postbox: storage failure")
	ErrInvalid   = errors.New("postbox: invalid argument")
	ErrHandshake = errors.New("postbox: handshake failed")
	// ErrUnknownOutcome: the caller's context ended and the broker did
	// not answer within the client's reply grace (see WithReplyGrace),
	// so the client gave up waiting. The request may or may not have
	// taken effect at the broker: a send may have been queued, an ack may
	// have removed its message, a receive may have leased a message (which
	// the client nacks if its reply arrives later, unless it was
	// auto-acked: then it is gone). It comes with ErrTimeout (and
	// context.DeadlineExceeded) at a deadline, or context.Canceled on a
	// cancel. An error matching ErrTimeout but not ErrUnknownOutcome is
	// definite: the broker said the request timed out and nothing
	// happened.
	ErrUnknownOutcome = errors.New("postbox: outcome unknown")
	// ErrCallInFlight: the broker refused a CALL (INVALID, so it matches
	// ErrInvalid too) because another CALL of this endpoint with the
	// same CORRELATION_ID is still waiting. Nothing was sent. A late
	// copy of an earlier CALL frame (a retransmission) can hold the id
	// for a while: a caller that reuses an id on purpose, as a retried
	// RPC does, may wait and try again.
	ErrCallInFlight = errors.New("postbox: a call with this correlation id is already waiting")
	// ErrEndOfStream: the mailbox is closed for sending (Mailbox.CloseSend)
	// and nothing this receiver could take is left: the producers are
	// done. A send to a closed mailbox fails with it too. A PipeReader
	// turns it into io.EOF.
	ErrEndOfStream = errors.New("postbox: end of stream")
	// ErrNoReader: a pipe write found no reader left (EPIPE); the
	// bytes already written stay in the pipe for the next reader.
	ErrNoReader = errors.New("postbox: no reader")
	// ErrNoDescriptors: descriptors cannot go where a send asked (the
	// connection is not a local Unix socket, the mailbox is durable...);
	// the broker's NO_DESCRIPTORS. Nothing was sent.
	ErrNoDescriptors = errors.New("postbox: descriptors cannot go there")
	// ErrTooManyFiles: a send carries more descriptors than one message
	// may, or more than the broker holds for this connection or uid (its
	// LIMIT, which matches ErrLimit too).
	ErrTooManyFiles = errors.New("postbox: too many descriptors")
)

var codeErrors = map[wire.Code]error{
	wire.CodeMalformed:  ErrMalformed,
	wire.CodeVersion:    ErrVersion,
	wire.CodeUnknownOp:  ErrUnknownOp,
	wire.CodeTooLarge:   ErrTooLarge,
	wire.CodeNotFound:   ErrNotFound,
	wire.CodeExists:     ErrExists,
	wire.CodePermission: ErrPermission,
	wire.CodeFull:       ErrFull,
	wire.CodeEmpty:      ErrEmpty,
	wire.CodeTimeout:    ErrTimeout,
	wire.CodeDestroyed:  ErrDestroyed,
	wire.CodeStaleLease: ErrStaleLease,
	wire.CodeLimit:      ErrLimit,
	wire.CodeClosed:     ErrClosed,
	wire.CodeCanceled:   ErrCanceled,
	wire.CodeInternal:   ErrInternal,
	wire.CodeStorage:    ErrStorage,
	wire.CodeInvalid:    ErrInvalid,
	wire.CodeHandshake:  ErrHandshake,

	wire.CodeEndOfStream:   ErrEndOfStream,
	wire.CodeNoReader:      ErrNoReader,
	wire.CodeNoDescriptors: ErrNoDescriptors,
	wire.CodeUnavailable:   ErrUnavailable, // cluster.go
}

// Error is an error reply from the broker.
type Error struct {
	// Code is the wire status code (see docs/PROTOCOL.md).
	Code wire.Code
	// Msg is the broker's explanation, naming the mailbox and the cause.
	Msg string
}

func (e *Error) Error() string {
	if e.Msg == "" {
		return "postbox: " + e.Code.String()
	}
	return "postbox: " + e.Msg
}

// Is makes errors.Is(err, ErrFull) and friends work.
func (e *Error) Is(target error) bool {
	if target == codeErrors[e.Code] {
		return true
	}
	return e.Code == wire.CodeTimeout && target == context.DeadlineExceeded
}

// Timeout reports whether the error is a timeout (net.Error).
func (e *Error) Timeout() bool { return e.Code == wire.CodeTimeout }

// Temporary reports whether retrying may succeed (net.Error).
func (e *Error) Temporary() bool {
	switch e.Code {
	case wire.CodeFull, wire.CodeEmpty, wire.CodeTimeout, wire.CodeLimit:
		return true
	}
	return false
}

// ctxError is a failure the client decided on its own because the
// caller's context ended. It unwraps to the context's error; it matches
// ErrTimeout at a deadline, and ErrUnknownOutcome when a request had been
// sent and its reply never came (unknown is set).
type ctxError struct {
	op      string // what was being done, e.g. `receive from "jobs"`
	cause   error  // ctx.Err()
	unknown bool
	grace   time.Duration // how long the client waited for a reply after ctx ended
}

func (e *ctxError) Error() string {
	if e.unknown && e.grace > 0 {
		return fmt.Sprintf("postbox: %s: %v, and no reply from the broker within %v after: outcome unknown (the request may have taken effect)",
			e.op, e.cause, e.grace)
	}
	if e.unknown {
		return fmt.Sprintf("postbox: %s: %v before the broker replied: outcome unknown (the request may have taken effect)", e.op, e.cause)
	}
	return fmt.Sprintf("postbox: %s: %v", e.op, e.cause)
}

func (e *ctxError) Unwrap() error { return e.cause }

func (e *ctxError) Is(target error) bool {
	switch target {
	case ErrTimeout:
		return e.Timeout()
	case ErrUnknownOutcome:
		return e.unknown
	}
	return false
}

// Timeout reports whether the context's deadline passed (net.Error).
func (e *ctxError) Timeout() bool { return errors.Is(e.cause, context.DeadlineExceeded) }

// Temporary reports whether retrying may succeed (net.Error).
func (e *ctxError) Temporary() bool { return e.Timeout() }

// contextEnded returns the error for op when ctx ended before anything was
// asked of the broker (or nothing it did can be lost).
func contextEnded(ctx context.Context, op string) error {
	return &ctxError{op: op, cause: ctx.Err()}
}

func replyError(code wire.Code, p []byte) error {
	msg, _ := wire.DecodeError(p)
	return &Error{Code: code, Msg: msg}
}

// ErrWatchEnded: a watch (Client.Watch) ended. Alone, the broker ended
// it after its last notice (an endpoint's exit); with ErrCanceled it was
// closed; with another error (ErrClosed, ErrLimit, ErrPermission) that
// is why the broker ended it.
var ErrWatchEnded = errors.New("postbox: watch ended")
