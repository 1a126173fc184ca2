package wire

import (
	"errors"
	"fmt"
)

// Op is a frame's operation code.
type Op uint8

// Requests are 0x01..0x5f. The reply to request op X (any X, known or not)
// has op X|OpReply and FlagPush clear. Pushed frames use 0x60..0x7f with
// FlagPush set.
const (
	OpHello   Op = 0x01 // handshake; must be the first frame on a connection
	OpPing    Op = 0x02
	OpCreate  Op = 0x10
	OpDestroy Op = 0x11
	OpStat    Op = 0x12
	OpList    Op = 0x13
	OpChmod   Op = 0x14
	OpSend    Op = 0x20
	OpRecv    Op = 0x21
	OpConsume Op = 0x22
	OpCredit  Op = 0x23 // no reply
	OpAck     Op = 0x24
	OpNack    Op = 0x25
	OpCancel  Op = 0x26 // no reply of its own
	OpChannel Op = 0x30 // offer a shared-memory channel; the reply carries descriptors
	OpAttach  Op = 0x31 // take the other end of an offered channel; the reply carries descriptors

	// OpDeliver is pushed by the broker to a consumer (FlagPush set): one
	// Delivery, with the CONSUME request's id in the request field.
	OpDeliver Op = 0x60

	// OpPushFirst..OpPushLast are the ops of pushed frames; those after
	// OpDeliver are reserved (events, death notifications).
	OpPushFirst Op = 0x60
	OpPushLast  Op = 0x7f

	// OpReply is or-ed into a request's op to form its reply's op.
	OpReply Op = 0x80
)

var opNames = map[Op]string{
	OpHello: "HELLO", OpPing: "PING", OpCreate: "CREATE", OpDestroy: "DESTROY",
	OpStat: "STAT", OpList: "LIST", OpChmod: "CHMOD", OpSend: "SEND",
	OpRecv: "RECV", OpConsume: "CONSUME", OpCredit: "CREDIT", OpAck: "ACK",
	OpNack: "NACK", OpCancel: "CANCEL", OpDeliver: "DELIVER",
	OpChannel: "CHANNEL", OpAttach: "ATTACH", OpCall: "CALL", OpInterrupt: "INTERRUPT",
	OpWithdraw: "WITHDRAW",
	OpShut:     "SHUT", OpPipeOpen: "PIPE_OPEN", OpPipeClose: "PIPE_CLOSE",
	OpJoin: "JOIN", OpWatch: "WATCH", OpNotice: "NOTICE",
}

// Pushed reports whether o is in the range of pushed ops (0x60..0x7f).
func (o Op) Pushed() bool { return o >= OpPushFirst && o <= OpPushLast }

// Reply returns the op of the reply to request op o.
func (o Op) Reply() Op { return o | OpReply }

func (o Op) String() string {
	if n, ok := opNames[o]; ok {
		return n
	}
	if n, ok := opNames[o&^OpReply]; ok && o&OpReply != 0 {
		return n + "-REPLY"
	}
	return fmt.Sprintf("OP(0x%02x)", uint8(o))
}

// Frame flags. Bits 0..5 are per operation, meaningful only on the
// operations named; bits 6 and 7 are frame-class bits valid on every frame.
const (
	// FlagReceipt (SEND): complete the send only when a receiver has taken
	// the message, and return who took it. If the deadline passes first the
	// message is withdrawn: a receipted send is all or nothing.
	FlagReceipt uint8 = 1 << 0
	// FlagAutoAck (RECV, CONSUME): the message is removed when delivered; no
	// lease is created and it is never redelivered.
	FlagAutoAck uint8 = 1 << 1
	// FlagNoReply (ACK, NACK): do not reply, even on failure.
	FlagNoReply uint8 = 1 << 2
	// FlagReply (SEND) is defined with CALL (call.go): bit 3.

	// FlagBestEffort (SEND): a "maybe" send. It gets no reply at all,
	// never waits, and each message that cannot be admitted at once
	// (the target full or over MAX_BYTES, a byte limit or quota reached)
	// is dropped and counted in the target's MailboxInfo DROPPED. Not
	// with FlagReceipt or FlagReply (such a frame is dropped uncounted).
	FlagBestEffort uint8 = 1 << 4

	// FlagUrgent (any frame): control class. The sender writes the frame
	// ahead of every data frame it has queued (never splitting a frame);
	// the reply to an URGENT request is URGENT too. Order is FIFO within a
	// lane, unspecified between lanes.
	FlagUrgent uint8 = 1 << 6
	// FlagPush (any frame): pushed by the broker, not a reply. Only the
	// broker sets it; a client request with it set is malformed. Route an
	// incoming frame by FlagPush first, then by op.
	FlagPush uint8 = 1 << 7
)

// Capabilities, the bits of Hello.Caps (asked) and HelloReply.Caps
// (granted: the intersection of what was asked and what the broker has).
const (
	// CapDescriptors: SCM_RIGHTS descriptor passing (CHANNEL and ATTACH),
	// granted only on a Unix socket. Without it CHANNEL and ATTACH are
	// CodeInvalid.
	CapDescriptors uint64 = 1 << 0
)

// Code is a reply's status. Every Code maps one-to-one to an error of the Go
// client (see package postbox).
type Code uint16

const (
	OK             Code = 0
	CodeMalformed  Code = 1  // a payload that does not decode
	CodeVersion    Code = 2  // no protocol version in common
	CodeUnknownOp  Code = 3  // an op this broker does not know
	CodeTooLarge   Code = 4  // frame or message over the configured limit
	CodeNotFound   Code = 5  // no such mailbox or endpoint
	CodeExists     Code = 6  // mailbox name already taken
	CodePermission Code = 7  // mode bits or ownership deny the operation
	CodeFull       Code = 8  // non-blocking send to a full mailbox
	CodeEmpty      Code = 9  // non-blocking receive found nothing
	CodeTimeout    Code = 10 // the request's timeout passed
	CodeDestroyed  Code = 11 // the mailbox was destroyed while waiting
	CodeStaleLease Code = 12 // ack/nack of a lease that is not held
	CodeLimit      Code = 13 // a broker-wide limit was reached
	CodeClosed     Code = 14 // the broker is shutting down
	CodeCanceled   Code = 15 // the client cancelled the request
	CodeInternal   Code = 16 // a broker bug; the request was not applied
	CodeStorage    Code = 17 // the durable store failed the write
	CodeInvalid    Code = 18 // well-formed but invalid argument
	CodeHandshake  Code = 19 // a request before HELLO, or HELLO twice
	// Codes 20 and 21 (CodeEndOfStream, CodeNoReader) are in pipe.go.

	// CodeNoDescriptors: descriptors cannot go where a SEND asked (no
	// CapDescriptors, a durable mailbox, counts that do not match what
	// arrived); the reply's text says which (PROTOCOL.md 8.24).
	CodeNoDescriptors Code = 22

	// Code 23 (CodeUnavailable) is in cluster.go.

	codeEnd = 24
)

var codeText = [codeEnd]string{
	OK:             "ok",
	CodeMalformed:  "malformed frame",
	CodeVersion:    "unsupported protocol version",
	CodeUnknownOp:  "unknown operation",
	CodeTooLarge:   "too large",
	CodeNotFound:   "not found",
	CodeExists:     "already exists",
	CodePermission: "permission denied",
	CodeFull:       "mailbox is full",
	CodeEmpty:      "mailbox is empty",
	CodeTimeout:    "timed out",
	CodeDestroyed:  "mailbox destroyed",
	CodeStaleLease: "stale lease",
	CodeLimit:      "limit reached",
	CodeClosed:     "broker closed",
	CodeCanceled:   "canceled",
	CodeInternal:   "internal error",
	CodeStorage:    "storage failure",
	CodeInvalid:    "invalid argument",
	CodeHandshake:  "handshake required",

	CodeEndOfStream:   "end of stream", // wire/pipe.go
	CodeNoReader:      "no reader",
	CodeNoDescriptors: "descriptors cannot go there",
	CodeUnavailable:   "the cluster is unreachable", // wire/cluster.go
}

func (c Code) String() string {
	if c < codeEnd {
		return codeText[c]
	}
	return fmt.Sprintf("status %d", uint16(c))
}

// CodeOf returns the status a broker answers to a request whose payload
// failed to decode with err: CodeVersion for ErrVersion, CodeInvalid for
// ErrUnknownCritical, ErrInvalidHeaders and ErrInvalid, CodeMalformed for
// anything else.
func CodeOf(err error) Code {
	switch {
	case err == nil:
		return OK
	case errors.Is(err, ErrVersion):
		return CodeVersion
	case errors.Is(err, ErrUnknownCritical), errors.Is(err, ErrInvalidHeaders), errors.Is(err, ErrInvalid):
		return CodeInvalid
	}
	return CodeMalformed
}
