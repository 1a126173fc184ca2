// Package wire is the postbox wire protocol: the frame header, the operation
// and status codes, and the encoding of every request and reply payload.
//
// docs/PROTOCOL.md is the normative description; this package is its Go
// implementation and both the broker and the Go client use it, so the two
// cannot drift apart. Everything is little-endian. A frame is a 16-byte
// header followed by a payload:
//
//	offset size field
//	0      4    size     bytes that follow this field (12 + payload length)
//	4      1    op       operation (requests < 0x80, replies = request|0x80)
//	5      1    flags    per-operation flags
//	6      2    status   0 in requests; a Code in replies
//	8      8    request  id chosen by the client, echoed in every reply
//
// Encoding appends to a caller-owned []byte and decoding reads from a payload
// slice without copying, so neither allocates on the message hot path: a
// decoded Send or Delivery refers into the frame buffer and is valid only
// until the next frame is read.
//
// The decoder treats every byte as hostile: lengths are checked against what
// remains before use, and a malformed payload yields ErrMalformed, never a
// panic. FuzzDecode exercises that.
package wire
