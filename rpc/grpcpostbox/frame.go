package grpcpostbox

import (
	"encoding/binary"
	"strconv"

	"github.com/postbox-ipc/postbox"
)

// MessageType is the postbox message type of every stream frame and of
// every reply this package sends to an inbox. The endpoint's inbox
// consumer selects it (postbox.Type), so an application may use the same
// client's inbox for messages of other types.
const MessageType int64 = 0x67727063 // "grpc"

// Header keys of stream frames (USER headers; PROTOCOL.md 13.4).
const (
	keyStream = "st-id"     // the recipient's stream id, decimal
	keyFrame  = "st-frame"  // the frame kind, below
	keySeq    = "st-seq"    // close and end: how many msg frames were sent
	keyWindow = "st-window" // open, accept: the initial window granted; window: credit added
	keyFrom   = "st-from"   // open, accept: the sender's own stream id
)

// Frame kinds: the values of st-frame.
const (
	frameOpen    = "open"    // client → service mailbox: start a stream
	frameAccept  = "accept"  // server → client: the server's stream id and window
	frameHeaders = "headers" // server → client: response headers (hd-*)
	frameMsg     = "msg"     // either way: one stream message
	frameWindow  = "window"  // either way: more credit for msg frames
	frameClose   = "close"   // client → server: the client sends no more (half-close)
	frameEnd     = "end"     // server → client: status and trailers; the stream is over
	frameCancel  = "cancel"  // either way: abandon the stream
)

// seqLen is the length of a msg frame's sequence number, before its
// message.
const seqLen = 8

// frame is a decoded stream frame.
type frame struct {
	kind   string
	stream uint64 // recipient's stream id
	seq    uint64
	window uint64
	from   uint64
	msg    *postbox.Message
}

// parseFrame reads the stream headers of m; ok is false when m is not a
// stream frame.
func parseFrame(m *postbox.Message) (f frame, ok bool) {
	h := m.Header()
	f.kind = h.Get(keyFrame)
	if f.kind == "" {
		return f, false
	}
	f.msg = m
	f.stream = parseUint(h.Get(keyStream))
	if f.kind == frameMsg {
		// A msg frame's number is its body's first 8 bytes (big
		// endian), so that every msg frame of a stream has the same
		// headers and a Publisher can pipeline them.
		if len(m.Body) >= seqLen {
			f.seq = binary.BigEndian.Uint64(m.Body)
			m.Body = m.Body[seqLen:]
		}
	} else {
		f.seq = parseUint(h.Get(keySeq))
	}
	f.window = parseUint(h.Get(keyWindow))
	f.from = parseUint(h.Get(keyFrom))
	return f, true
}

func parseUint(s string) uint64 {
	n, _ := strconv.ParseUint(s, 10, 64)
	return n
}

func fmtUint(n uint64) string { return strconv.FormatUint(n, 10) }

// frameOpts returns the send options of a frame of kind to stream id.
func frameOpts(kind string, id uint64, extra ...postbox.SendOption) []postbox.SendOption {
	opts := make([]postbox.SendOption, 0, 3+len(extra))
	opts = append(opts, postbox.Type(MessageType), postbox.WithHeader(keyFrame, kind), postbox.WithHeader(keyStream, fmtUint(id)))
	return append(opts, extra...)
}
