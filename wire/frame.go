package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Protocol constants.
const (
	// Magic opens every HELLO payload: the bytes "PBOX".
	Magic uint32 = 0x584f4250
	// Version is the protocol version this package speaks. There is no v1
	// support: a broker answers a HELLO whose range excludes 2 with
	// CodeVersion.
	Version uint16 = 2
	// HeaderSize is the size of a frame header in bytes.
	HeaderSize = 16
	// DefaultMaxFrame is the default limit on a frame's size field.
	DefaultMaxFrame = 16 << 20
)

// Errors returned by the decoders. Each maps to one status (see CodeOf):
// a broker answers a request that fails to decode with that status, a
// client treats a reply or pushed frame that fails to decode as malformed.
var (
	// ErrMalformed: the payload does not decode (a field or an ext entry runs
	// past the end, a count is out of range, bytes remain). The stream itself
	// is still in sync (the frame's length was valid), so a server can reply
	// with CodeMalformed and go on.
	ErrMalformed = errors.New("wire: malformed payload")
	// ErrUnknownCritical: the payload's ext tail holds a critical tag (bit
	// 0x8000) this package does not know. The payload is well-formed but
	// asks for something unsupported: CodeInvalid.
	ErrUnknownCritical = errors.New("wire: unknown critical extension tag")
	// ErrInvalidHeaders: a message headers block parses but breaks a rule of
	// its tags or the block's limits: CodeInvalid.
	ErrInvalidHeaders = errors.New("wire: invalid message headers")
	// ErrInvalid: a well-formed field with a value the protocol forbids
	// (CREATE's DEAD_LETTER empty or not a valid name): CodeInvalid.
	ErrInvalid = errors.New("wire: invalid field value")
	// ErrVersion: a HELLO whose version range does not include Version. Its
	// MinVersion and MaxVersion are set, nothing after them was read:
	// CodeVersion.
	ErrVersion = errors.New("wire: no protocol version in common")
	// ErrFrameTooLarge: a frame's size field exceeds the reader's limit.
	// The reader has skipped the frame's bytes, so the stream stays in sync.
	ErrFrameTooLarge = errors.New("wire: frame too large")
	// ErrBadFrame: a size field smaller than the header. The stream cannot
	// be trusted after it and the connection must be closed.
	ErrBadFrame = errors.New("wire: bad frame size")
)

// Header is a decoded frame header.
type Header struct {
	Op      Op
	Flags   uint8
	Status  Code
	Request uint64
}

// Push reports whether the frame was pushed by the broker (FlagPush): a
// client routes by this bit before looking at the op.
func (h Header) Push() bool { return h.Flags&FlagPush != 0 }

// Urgent reports whether the frame is in the urgent (control) lane.
func (h Header) Urgent() bool { return h.Flags&FlagUrgent != 0 }

// AppendHeader appends a header for a payload of payloadLen bytes.
func AppendHeader(b []byte, h Header, payloadLen int) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(HeaderSize-4+payloadLen))
	b = append(b, byte(h.Op), h.Flags)
	b = binary.LittleEndian.AppendUint16(b, uint16(h.Status))
	return binary.LittleEndian.AppendUint64(b, h.Request)
}

// StartFrame appends a header with a zero size and returns the buffer and
// the offset of the frame. Append the payload, then call FinishFrame: this
// lets a payload be encoded straight into the output buffer without knowing
// its length in advance.
func StartFrame(b []byte, h Header) ([]byte, int) {
	return AppendHeader(b, h, 0), len(b)
}

// FinishFrame patches the size field of the frame started at off.
func FinishFrame(b []byte, off int) []byte {
	binary.LittleEndian.PutUint32(b[off:], uint32(len(b)-off-4))
	return b
}

// Reader reads frames from a byte stream. It is not safe for concurrent use.
type Reader struct {
	r   *bufio.Reader
	max int
	buf []byte // holds the current frame's payload when it is not in r's buffer
}

// NewReader returns a Reader that refuses frames whose size field exceeds
// maxFrame (DefaultMaxFrame if <= 0). bufSize is the read buffer size.
func NewReader(r io.Reader, maxFrame, bufSize int) *Reader {
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrame
	}
	if bufSize <= 0 {
		bufSize = 64 << 10
	}
	return &Reader{r: bufio.NewReaderSize(r, bufSize), max: maxFrame}
}

// Buffered reports whether another frame's bytes are already buffered, so
// a caller can batch work (such as flushing replies) until the stream
// would block.
func (r *Reader) Buffered() int { return r.r.Buffered() }

// PeekHeader returns the next frame's header and size field without
// consuming anything, so a server can refuse a frame (say, before the
// handshake) without reading or skipping its payload.
func (r *Reader) PeekHeader() (Header, int, error) {
	hdr, err := r.r.Peek(HeaderSize)
	if err != nil {
		if err == io.EOF && len(hdr) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return Header{}, 0, err
	}
	h := Header{Op: Op(hdr[4]), Flags: hdr[5], Status: Code(binary.LittleEndian.Uint16(hdr[6:])), Request: binary.LittleEndian.Uint64(hdr[8:])}
	return h, int(binary.LittleEndian.Uint32(hdr)), nil
}

// Next reads the next frame. The payload is valid until the next call.
// On ErrFrameTooLarge the header is valid and the frame has been skipped.
func (r *Reader) Next() (Header, []byte, error) {
	var h Header
	hdr, err := r.r.Peek(HeaderSize)
	if err != nil {
		if err == io.EOF && len(hdr) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return h, nil, err
	}
	size := int(binary.LittleEndian.Uint32(hdr))
	h.Op = Op(hdr[4])
	h.Flags = hdr[5]
	h.Status = Code(binary.LittleEndian.Uint16(hdr[6:]))
	h.Request = binary.LittleEndian.Uint64(hdr[8:])
	if size < HeaderSize-4 {
		return h, nil, fmt.Errorf("%w: %d", ErrBadFrame, size)
	}
	if _, err := r.r.Discard(HeaderSize); err != nil {
		return h, nil, err
	}
	n := size - (HeaderSize - 4)
	if size > r.max {
		if _, err := r.r.Discard(n); err != nil {
			return h, nil, unexpected(err)
		}
		return h, nil, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, size, r.max)
	}
	if n <= r.r.Size() {
		// Common case: the payload fits the buffer; return a view of it.
		p, err := r.r.Peek(n)
		if err != nil {
			return h, nil, unexpected(err)
		}
		r.r.Discard(n)
		if cap(r.buf) > maxKeptFrame {
			r.buf = nil // big frames stopped coming: release their buffer
		}
		return h, p, nil
	}
	// A large payload is read into a buffer that grows as its bytes
	// arrive, never to the declared size up front: a peer that announces
	// a 16 MiB frame and sends nothing more costs nothing, and one that
	// sends half of it costs about that half.
	p := r.buf[:0]
	for len(p) < n {
		if len(p) == cap(p) {
			grown := make([]byte, len(p), min(n, max(2*cap(p), r.r.Size())))
			copy(grown, p)
			p = grown
		}
		m, err := r.r.Read(p[len(p):min(n, cap(p))])
		p = p[:len(p)+m]
		if err != nil && len(p) < n {
			return h, nil, unexpected(err)
		}
	}
	r.buf = p
	return h, p, nil
}

// maxKeptFrame is the largest payload buffer a Reader keeps once frames
// are small again: a larger one is reused while large frames keep coming
// (a publisher's batched SEND frames) and dropped at the first frame that
// fits the read buffer, so a connection that once carried a big message
// does not hold its size for the rest of its life.
const maxKeptFrame = 1 << 20

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Decoder reads fields from a payload. The first error sticks: after a
// short or invalid field every later read returns a zero value and Err
// reports the first error (ErrMalformed for a short field), so a decode
// function can read all its fields and check once.
type Decoder struct {
	p   []byte
	err error
}

// NewDecoder returns a Decoder over p.
func NewDecoder(p []byte) Decoder { return Decoder{p: p} }

// Err returns the first error of any read.
func (d *Decoder) Err() error { return d.err }

// Fail records err unless an earlier error is recorded.
func (d *Decoder) Fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

// Finish returns the first error, or ErrMalformed if bytes remain.
func (d *Decoder) Finish() error {
	if d.err == nil && len(d.p) != 0 {
		d.err = ErrMalformed
	}
	return d.err
}

// Len returns the number of unread bytes.
func (d *Decoder) Len() int { return len(d.p) }

func (d *Decoder) take(n int) []byte {
	if d.err != nil || n < 0 || n > len(d.p) {
		d.Fail(ErrMalformed)
		return nil
	}
	b := d.p[:n:n]
	d.p = d.p[n:]
	return b
}

func (d *Decoder) U8() uint8 {
	if b := d.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (d *Decoder) U16() uint16 {
	if b := d.take(2); b != nil {
		return binary.LittleEndian.Uint16(b)
	}
	return 0
}

func (d *Decoder) U32() uint32 {
	if b := d.take(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (d *Decoder) U64() uint64 {
	if b := d.take(8); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

func (d *Decoder) I32() int32 { return int32(d.U32()) }
func (d *Decoder) I64() int64 { return int64(d.U64()) }

// String reads a `string` field: a u16 length and that many bytes. The
// result aliases the payload.
func (d *Decoder) String() []byte { return d.take(int(d.U16())) }

// Bytes reads a `bytes` field: a u32 length and that many bytes. The result
// aliases the payload.
func (d *Decoder) Bytes() []byte {
	n := d.U32()
	if uint64(n) > uint64(len(d.p)) {
		d.Fail(ErrMalformed)
		return nil
	}
	return d.take(int(n))
}

// ID16 reads 16 raw bytes.
func (d *Decoder) ID16() (id [16]byte) {
	copy(id[:], d.take(16))
	return id
}

// Rest returns the unread bytes.
func (d *Decoder) Rest() []byte { return d.take(len(d.p)) }

// AppendU16 and friends append little-endian fields.
func AppendU16(b []byte, v uint16) []byte { return binary.LittleEndian.AppendUint16(b, v) }
func AppendU32(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(b, v) }
func AppendU64(b []byte, v uint64) []byte { return binary.LittleEndian.AppendUint64(b, v) }
func AppendI32(b []byte, v int32) []byte  { return AppendU32(b, uint32(v)) }
func AppendI64(b []byte, v int64) []byte  { return AppendU64(b, uint64(v)) }

// AppendString appends a u16 length and s. Strings longer than 65535 bytes
// are truncated; every string field in the protocol is far shorter.
func AppendString[S ~string | ~[]byte](b []byte, s S) []byte {
	if len(s) > 0xffff {
		s = s[:0xffff]
	}
	b = AppendU16(b, uint16(len(s)))
	return append(b, s...)
}

// AppendBytes appends a `bytes` field: a u32 length and p.
func AppendBytes(b []byte, p []byte) []byte {
	b = AppendU32(b, uint32(len(p)))
	return append(b, p...)
}

// PutU32 writes v at b[0:4], little-endian: for patching a length written
// as a placeholder.
func PutU32(b []byte, v uint32) { binary.LittleEndian.PutUint32(b, v) }
