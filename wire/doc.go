// Package wire is the postbox wire protocol, version 2: the frame header,
// the operation and status codes, and the encoding of every request,
// reply and pushed payload.
//
// docs/PROTOCOL.md is the normative description; this package is its Go
// implementation and both the broker and the Go client use it, so the two
// cannot drift apart. testdata/vectors holds language-neutral conformance
// vectors generated from this package (see its README.md). Everything is
// little-endian. A frame is a 16-byte header followed by a payload:
//
//	offset size field
//	0      4    size     bytes that follow this field (12 + payload length)
//	4      1    op       requests 0x01..0x5f; reply = request|0x80; pushed 0x60..0x7f
//	5      1    flags    bits 0..5 per op; 0x40 URGENT, 0x80 PUSH on any frame
//	6      2    status   0 in requests; a Code in replies
//	8      8    request  id chosen by the client, echoed in every reply
//
// A client routes an incoming frame by FlagPush first (a pushed frame such
// as DELIVER is never a reply), then by op and request id.
//
// Every payload is its fixed fields, then an ext tail of `tag u16 | len
// u16 | value` entries (ext.go): payloads grow without a version bump,
// and a tag with bit 0x8000 (critical) that a receiver does not know makes
// it refuse the payload. Messages carry a headers block (headers.go) that
// the broker validates and forwards byte for byte.
//
// Encoding appends to a caller-owned []byte (StartFrame, an Append method,
// FinishFrame) and decoding reads from a payload slice without copying, so
// neither allocates on the message hot path: a decoded Send or Delivery
// refers into the frame buffer and is valid only until the next frame is
// read. Decode methods that hold slices (Send.Msgs, Leases.Ranges, ...)
// reuse their backing arrays.
//
// The decoders treat every byte as hostile: lengths are checked against
// what remains before use, and a payload that does not decode yields one
// of the sentinel errors, never a panic; CodeOf maps each to the status a
// broker answers:
//
//	ErrMalformed        CodeMalformed  structure: short field, bad count, entry past the end
//	ErrUnknownCritical  CodeInvalid    an ext tag with bit 0x8000 this package does not know
//	ErrInvalidHeaders   CodeInvalid    a headers block that parses but breaks a rule or limit
//	ErrInvalid          CodeInvalid    a forbidden value (CREATE's DEAD_LETTER)
//	ErrVersion          CodeVersion    a HELLO whose version range excludes Version
//
// FuzzPayload and FuzzReader exercise that, seeded from the vectors.
package wire
