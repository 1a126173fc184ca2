// Package envelope is the RPC convention on top of postbox messages: the
// headers a request and its reply carry, the request id, and the status
// codes. It is the part of docs/PROTOCOL.md section 13 ("RPC over
// postbox") that a Go program needs as constants; package rpc, the gRPC
// adapter and the CLI (postbox req, reply, call) all speak it, and a
// client in another language needs nothing but that section.
//
// A request is one message sent with CALL (PROTOCOL.md 8.16) to the
// service's mailbox. Its headers:
//
//	REPLY_TO        the caller's inbox (@id), as CALL requires
//	CORRELATION_ID  the request id: session (16 bytes) + sequence (8, big endian)
//	DEADLINE        the caller's deadline, if it has one
//	CONTENT_TYPE    the codec of the body (ContentJSON, ContentProto, ContentBytes)
//	rpc-method      the method name (USER header)
//	rpc-semantics   maybe | at-least-once | exactly-once (absent: maybe)
//	rpc-attempt     1 for the first attempt, 2 for the first retry, ...
//	rpc-attempt-deadline  the attempt's own end (retrying semantics), unix
//	                nanoseconds in decimal: an INTERRUPT from then on is the
//	                attempt timing out (a retry follows), not a cancel
//	rpc-acked       every reply of this session with a sequence below this
//	                decimal number has reached its caller (exactly-once
//	                cache release)
//	md-KEY          request metadata (gRPC metadata keys are lower case)
//
// A reply is one message sent to REPLY_TO with the reply flag (a reply
// nobody waits for is dropped), carrying the same CORRELATION_ID and:
//
//	CONTENT_TYPE    the codec of the body
//	rpc-status      the status Code in decimal; absent means OK
//	rpc-error       the error message, when rpc-status is not OK
//	rpc-cached      "1" when the reply came from the exactly-once reply cache
//	hd-KEY, tr-KEY  response header and trailer metadata
package envelope

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strconv"
)

// Header keys (USER headers) of requests and replies.
const (
	Method    = "rpc-method"
	Semantics = "rpc-semantics"
	Attempt   = "rpc-attempt"
	// AttemptDeadline: see the package comment (added by helper "rpc",
	// noted under CHANGES in design9.md).
	AttemptDeadline = "rpc-attempt-deadline"
	Acked           = "rpc-acked"
	Status          = "rpc-status"
	Error           = "rpc-error"
	Cached          = "rpc-cached"

	// Prefixes of metadata keys: request metadata, response headers and
	// response trailers.
	RequestMeta = "md-"
	HeaderMeta  = "hd-"
	TrailerMeta = "tr-"
)

// Values of the rpc-semantics header.
const (
	SemMaybe       = "maybe"
	SemAtLeastOnce = "at-least-once"
	SemExactlyOnce = "exactly-once"
)

// Content types of request and reply bodies.
const (
	ContentJSON  = "application/json"
	ContentProto = "application/protobuf"
	ContentBytes = "application/octet-stream"
)

// IDLen is the length of a request id.
const IDLen = 24

// ID is a request id: the caller's 16-byte session followed by a
// sequence number, unique within the session. Retries of one call reuse
// its id; that is how a server recognises a duplicate.
type ID [IDLen]byte

// NewID returns the id of call seq in session.
func NewID(session [16]byte, seq uint64) ID {
	var id ID
	copy(id[:16], session[:])
	binary.BigEndian.PutUint64(id[16:], seq)
	return id
}

// Session returns the session half of the id.
func (id ID) Session() [16]byte { return [16]byte(id[:16]) }

// Seq returns the sequence half of the id.
func (id ID) Seq() uint64 { return binary.BigEndian.Uint64(id[16:]) }

func (id ID) String() string {
	return hex.EncodeToString(id[:16]) + "/" + strconv.FormatUint(id.Seq(), 10)
}

// ErrBadID is returned by ParseID for a correlation id that is not a
// request id.
var ErrBadID = errors.New("envelope: correlation id is not a 24-byte request id")

// ParseID reads a request id from a CORRELATION_ID header.
func ParseID(b []byte) (ID, error) {
	if len(b) != IDLen {
		return ID{}, ErrBadID
	}
	return ID(b), nil
}
