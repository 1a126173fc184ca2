package postbox

import (
	"context"
	"errors"

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

func replyError(code wire.Code, p []byte) error {
	return &Error{Code: code, Msg: wire.DecodeError(p)}
}
