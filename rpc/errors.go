package rpc

import (
	"context"
	"errors"
	"fmt"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/rpc/envelope"
)

// Error is an RPC status: a code (gRPC's code set) and a message. Calls
// return one for every failure, whether the handler returned it, the
// server decided it (no such method, a duplicate with other arguments) or
// the client did (the deadline passed, no server): CodeOf reads the code
// of any error. It unwraps to its cause when there is one, such as the
// *postbox.CallError that says what became of a cancelled call.
type Error struct {
	Code    envelope.Code
	Message string
	err     error
}

// ErrServerClosed is returned by Server.Start after Shutdown or Close.
var ErrServerClosed = errors.New("rpc: server closed")

// Errorf returns an *Error with code and the formatted message. A %w
// verb wraps its operand, as with fmt.Errorf.
func Errorf(code envelope.Code, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return &Error{Code: code, Message: err.Error(), err: errors.Unwrap(err)}
}

func (e *Error) Error() string {
	return fmt.Sprintf("rpc error: code = %v desc = %s", e.Code, e.Message)
}

// Unwrap returns the cause, if any.
func (e *Error) Unwrap() error { return e.err }

// Is makes a DeadlineExceeded status match context.DeadlineExceeded and
// a Canceled one context.Canceled, whoever decided it (the caller's
// client, or the handler returning its context's error).
func (e *Error) Is(target error) bool {
	return e.Code == envelope.DeadlineExceeded && target == context.DeadlineExceeded ||
		e.Code == envelope.Canceled && target == context.Canceled
}

// CodeOf returns the status code of err: OK for nil, the Code of an
// *Error in its chain, else the code a postbox or context error maps to
// (Unknown if none does).
func CodeOf(err error) envelope.Code {
	if err == nil {
		return envelope.OK
	}
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Code
	}
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, postbox.ErrCanceled):
		return envelope.Canceled
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, postbox.ErrTimeout):
		return envelope.DeadlineExceeded
	case errors.Is(err, postbox.ErrNotFound):
		return envelope.NotFound
	case errors.Is(err, postbox.ErrExists):
		return envelope.AlreadyExists
	case errors.Is(err, postbox.ErrPermission):
		return envelope.PermissionDenied
	case errors.Is(err, postbox.ErrInvalid):
		return envelope.InvalidArgument
	case errors.Is(err, postbox.ErrTooLarge), errors.Is(err, postbox.ErrFull), errors.Is(err, postbox.ErrLimit):
		return envelope.ResourceExhausted
	case errors.Is(err, postbox.ErrStaleLease):
		return envelope.FailedPrecondition
	case errors.Is(err, postbox.ErrDestroyed), errors.Is(err, postbox.ErrClosed),
		errors.Is(err, postbox.ErrHandshake), errors.Is(err, postbox.ErrVersion):
		return envelope.Unavailable
	case errors.Is(err, postbox.ErrUnknownOp):
		return envelope.Unimplemented
	case errors.Is(err, postbox.ErrInternal), errors.Is(err, postbox.ErrMalformed):
		return envelope.Internal
	case errors.Is(err, postbox.ErrStorage):
		return envelope.DataLoss
	}
	return envelope.Unknown
}

// asError returns err as an *Error: itself if it is one, else one with
// CodeOf(err) that wraps it.
func asError(err error) *Error {
	if e, ok := errors.AsType[*Error](err); ok {
		return e
	}
	return &Error{Code: CodeOf(err), Message: err.Error(), err: err}
}

// OutcomeOf says what became of the request of a call that ended without
// a reply (cancelled, timed out): withdrawn before any server took it, in
// progress at a server (which was interrupted), or settled without a
// reply. OutcomeUnknown when err carries no such answer from the broker.
func OutcomeOf(err error) postbox.Outcome {
	if ce, ok := errors.AsType[*postbox.CallError](err); ok {
		return ce.Outcome
	}
	return postbox.OutcomeUnknown
}
