package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

func TestAppendStringTruncatesAtU16(t *testing.T) {
	long := strings.Repeat("x", 0x10005)
	b := AppendString(nil, long)
	if len(b) != 2+0xffff || binary.LittleEndian.Uint16(b) != 0xffff {
		t.Fatalf("len %d, length field %d", len(b), binary.LittleEndian.Uint16(b))
	}
}

// A dead-letter name too long for the option's u16 length must not spill

func TestHeaderLayoutMatchesSpec(t *testing.T) {
	h := Header{Op: OpSend, Flags: FlagReceipt, Status: CodeTimeout, Request: 0x0102030405060708}
	got := AppendHeader(nil, h, 5)
	want := []byte{17, 0, 0, 0, 0x20, 0x01, 10, 0, 8, 7, 6, 5, 4, 3, 2, 1}
	if !bytes.Equal(got, want) {
		t.Fatalf("AppendHeader = % x, want % x", got, want)
	}
}

func TestStartFinishFrameMatchesAppendHeader(t *testing.T) {
	h := Header{Op: OpSend, Request: 5}
	m := Send{Target: []byte("jobs"), Timeout: -1, Msgs: []SendMsg{{Type: 1, Body: []byte("abc")}}}
	prefix := []byte("previous frame bytes")
	b, off := StartFrame(bytes.Clone(prefix), h)
	if off != len(prefix) {
		t.Fatalf("offset %d, want %d", off, len(prefix))
	}
	b = FinishFrame(m.Append(b), off)
	want := m.Append(AppendHeader(bytes.Clone(prefix), h, len(m.Append(nil))))
	if !bytes.Equal(b, want) {
		t.Fatalf("StartFrame/FinishFrame:\n got % x\nwant % x", b, want)
	}
}

func TestFramesBuiltWithStartFrameReadBack(t *testing.T) {
	var b []byte
	var off int
	for i := range 3 {
		b, off = StartFrame(b, Header{Op: OpCredit, Request: uint64(i + 1)})
		b = FinishFrame((&Credit{N: uint32(i)}).Append(b), off)
	}
	r := NewReader(bytes.NewReader(b), 0, 0)
	for i := range 3 {
		h, p, err := r.Next()
		var c Credit
		if err != nil || h.Request != uint64(i+1) || c.Decode(p) != nil || c.N != uint32(i) {
			t.Fatalf("frame %d: %+v % x %v", i, h, p, err)
		}
	}
	if _, _, err := r.Next(); err != io.EOF {
		t.Fatalf("after last frame: %v, want io.EOF", err)
	}
}

// frame encodes one frame with payload p.
func frame(h Header, p []byte) []byte {
	return append(AppendHeader(nil, h, len(p)), p...)
}

type readFrame struct {
	h Header
	p []byte
}

// readAll reads frames until an error and returns them (payloads copied)
// with the error.
func readAll(r *Reader) ([]readFrame, error) {
	var out []readFrame
	for {
		h, p, err := r.Next()
		if err != nil {
			return out, err
		}
		out = append(out, readFrame{h, bytes.Clone(p)})
	}
}

func TestReaderReassemblesFramesSplitAcrossReads(t *testing.T) {
	var stream []byte
	var want []readFrame
	for i, s := range samples() {
		h := Header{Op: OpSend, Flags: uint8(i), Status: Code(i), Request: uint64(i) << 40}
		p := s.v.Append(nil)
		stream = append(stream, frame(h, p)...)
		want = append(want, readFrame{h, p})
	}
	for _, bufSize := range []int{16, 64, 4096} {
		r := NewReader(iotest.OneByteReader(bytes.NewReader(stream)), 0, bufSize)
		got, err := readAll(r)
		if err != io.EOF {
			t.Fatalf("buf %d: ended with %v, want io.EOF", bufSize, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("buf %d: frames differ", bufSize)
		}
	}
}

func TestReaderReadsFramesLargerThanItsBuffer(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789"), 1000)
	bigger := bytes.Repeat([]byte("abcdefghij"), 2000)
	small := []byte("s")
	want := []readFrame{
		{Header{Op: OpSend, Request: 1}, big},
		{Header{Op: OpSend, Request: 2}, small},
		{Header{Op: OpSend, Request: 3}, bigger},
		{Header{Op: OpSend, Request: 4}, big}, // reuses the grown buffer
	}
	var stream []byte
	for _, f := range want {
		stream = append(stream, frame(f.h, f.p)...)
	}
	for _, src := range []io.Reader{bytes.NewReader(stream), iotest.OneByteReader(bytes.NewReader(stream))} {
		got, err := readAll(NewReader(src, 0, 16))
		if err != io.EOF || !reflect.DeepEqual(got, want) {
			t.Fatalf("got %d frames, err %v", len(got), err)
		}
	}
}

func TestReaderAcceptsFrameAtLimitAndSkipsOneByteOver(t *testing.T) {
	const limit = 64
	atLimit := frame(Header{Op: OpPing, Request: 1}, make([]byte, limit-12))
	over := frame(Header{Op: OpSend, Request: 2}, make([]byte, limit-11))
	r := NewReader(bytes.NewReader(append(atLimit, over...)), limit, 16)
	if _, p, err := r.Next(); err != nil || len(p) != limit-12 {
		t.Fatalf("frame at the limit: %d bytes, %v", len(p), err)
	}
	if h, _, err := r.Next(); !errors.Is(err, ErrFrameTooLarge) || h.Request != 2 {
		t.Fatalf("frame over the limit: %+v %v", h, err)
	}
}

func TestReaderSkipsTooLargeFrameAndNextFrameStillReads(t *testing.T) {
	const limit = 100
	var stream []byte
	stream = append(stream, frame(Header{Op: OpPing, Request: 1}, nil)...)
	stream = append(stream, frame(Header{Op: OpSend, Flags: 3, Request: 2}, make([]byte, 5000))...)
	stream = append(stream, frame(Header{Op: OpStat, Request: 3}, []byte{1, 0, 'q'})...)
	for _, src := range []io.Reader{bytes.NewReader(stream), iotest.OneByteReader(bytes.NewReader(stream))} {
		r := NewReader(src, limit, 32)
		if h, _, err := r.Next(); err != nil || h.Request != 1 {
			t.Fatalf("first: %+v %v", h, err)
		}
		h, p, err := r.Next()
		if !errors.Is(err, ErrFrameTooLarge) {
			t.Fatalf("second: err %v, want ErrFrameTooLarge", err)
		}
		if h != (Header{Op: OpSend, Flags: 3, Request: 2}) || p != nil {
			t.Fatalf("second: header %+v, payload %d bytes; want the header and no payload", h, len(p))
		}
		if h, p, err := r.Next(); err != nil || h.Request != 3 || string(p) != "\x01\x00q" {
			t.Fatalf("third: %+v %q %v", h, p, err)
		}
		if _, _, err := r.Next(); err != io.EOF {
			t.Fatalf("end: %v", err)
		}
	}
}

func TestReaderDefaultLimitIsDefaultMaxFrame(t *testing.T) {
	// A frame one byte over DefaultMaxFrame, its payload streamed lazily.
	hdr := AppendHeader(nil, Header{Op: OpSend, Request: 9}, DefaultMaxFrame-12+1)
	payload := io.LimitReader(zeros{}, DefaultMaxFrame-12+1)
	next := frame(Header{Op: OpPing, Request: 10}, nil)
	r := NewReader(io.MultiReader(bytes.NewReader(hdr), payload, bytes.NewReader(next)), 0, 0)
	if h, _, err := r.Next(); !errors.Is(err, ErrFrameTooLarge) || h.Request != 9 {
		t.Fatalf("%+v %v, want ErrFrameTooLarge", h, err)
	}
	if h, _, err := r.Next(); err != nil || h.Request != 10 {
		t.Fatalf("next frame: %+v %v", h, err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestReaderSizeBelowTwelveIsBadFrame(t *testing.T) {
	for size := range uint32(12) {
		b := binary.LittleEndian.AppendUint32(nil, size)
		b = append(b, make([]byte, 40)...)
		_, _, err := NewReader(bytes.NewReader(b), 0, 0).Next()
		if !errors.Is(err, ErrBadFrame) {
			t.Errorf("size %d: %v, want ErrBadFrame", size, err)
		}
	}
}

func TestReaderTruncatedStreamIsUnexpectedEOF(t *testing.T) {
	small := frame(Header{Op: OpSend, Request: 1}, []byte("0123456789"))
	large := frame(Header{Op: OpSend, Request: 1}, bytes.Repeat([]byte{7}, 300))
	for _, tc := range []struct {
		name  string
		frame []byte
		limit int
	}{
		{"small", small, 0},
		{"larger than buffer", large, 0},
		{"skipped as too large", large, 64},
	} {
		for cut := 1; cut < len(tc.frame); cut++ {
			stream := tc.frame[:cut]
			r := NewReader(bytes.NewReader(stream), tc.limit, 16)
			if _, _, err := r.Next(); err != io.ErrUnexpectedEOF {
				t.Fatalf("%s cut at %d of %d: %v, want io.ErrUnexpectedEOF", tc.name, cut, len(tc.frame), err)
			}
		}
	}
}

func TestReaderEOFBetweenFramesIsEOF(t *testing.T) {
	r := NewReader(bytes.NewReader(nil), 0, 0)
	if _, _, err := r.Next(); err != io.EOF {
		t.Fatalf("empty stream: %v, want io.EOF", err)
	}
}

func TestReaderPassesOnTransportErrors(t *testing.T) {
	boom := errors.New("boom")
	r := NewReader(iotest.ErrReader(boom), 0, 0)
	if _, _, err := r.Next(); err != boom {
		t.Fatalf("%v, want %v", err, boom)
	}
}

func TestReaderBufferedCountsUnreadBytes(t *testing.T) {
	two := append(frame(Header{Op: OpPing, Request: 1}, nil), frame(Header{Op: OpPing, Request: 2}, nil)...)
	r := NewReader(bytes.NewReader(two), 0, 0)
	r.Next()
	if r.Buffered() != HeaderSize {
		t.Fatalf("Buffered = %d after first of two empty frames, want %d", r.Buffered(), HeaderSize)
	}
	r.Next()
	if r.Buffered() != 0 {
		t.Fatalf("Buffered = %d after the last frame", r.Buffered())
	}
}

func TestDecoderFirstErrorSticks(t *testing.T) {
	d := NewDecoder([]byte{1, 2, 3})
	if d.U32() != 0 {
		t.Fatal("short U32 returned a value")
	}
	// Three bytes remain, but after a failure every read yields zero.
	if v := d.U8(); v != 0 {
		t.Fatalf("U8 after failure = %d, want 0", v)
	}
	if v := d.U16(); v != 0 {
		t.Fatalf("U16 after failure = %d, want 0", v)
	}
	if d.String() != nil || d.Bytes() != nil || d.Rest() != nil {
		t.Fatal("byte reads after failure returned data")
	}
	if d.Err() != ErrMalformed || d.Finish() != ErrMalformed {
		t.Fatalf("Err %v, Finish %v", d.Err(), d.Finish())
	}
}

func TestDecoderReadsLittleEndian(t *testing.T) {
	p := []byte{
		0x01,
		0x02, 0x01,
		0x04, 0x03, 0x02, 0x01,
		0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,
		0xff, 0xff, 0xff, 0xff,
		0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0x02, 0x00, 'h', 'i',
		0x01, 0x00, 0x00, 0x00, 'x',
		'r', 'e', 's', 't',
	}
	d := NewDecoder(p)
	if v := d.U8(); v != 1 {
		t.Errorf("U8 %#x", v)
	}
	if v := d.U16(); v != 0x0102 {
		t.Errorf("U16 %#x", v)
	}
	if v := d.U32(); v != 0x01020304 {
		t.Errorf("U32 %#x", v)
	}
	if v := d.U64(); v != 0x0102030405060708 {
		t.Errorf("U64 %#x", v)
	}
	if v := d.I32(); v != -1 {
		t.Errorf("I32 %d", v)
	}
	if v := d.I64(); v != -2 {
		t.Errorf("I64 %d", v)
	}
	if v := d.String(); string(v) != "hi" {
		t.Errorf("String %q", v)
	}
	if v := d.Bytes(); string(v) != "x" {
		t.Errorf("Bytes %q", v)
	}
	if v := d.Rest(); string(v) != "rest" {
		t.Errorf("Rest %q", v)
	}
	if err := d.Finish(); err != nil {
		t.Errorf("Finish: %v", err)
	}
}

func TestDecoderLengthBeyondPayloadIsMalformed(t *testing.T) {
	d := NewDecoder([]byte{5, 0, 'a', 'b'})
	if d.String() != nil || d.Err() != ErrMalformed {
		t.Fatal("string longer than the payload decoded")
	}
	d = NewDecoder([]byte{0xff, 0xff, 0xff, 0xff, 'a'})
	if d.Bytes() != nil || d.Err() != ErrMalformed {
		t.Fatal("bytes longer than the payload decoded")
	}
}

func TestDecoderFinishRejectsTrailingBytes(t *testing.T) {
	d := NewDecoder([]byte{1, 2, 3})
	d.U16()
	if d.Err() != nil || d.Finish() != ErrMalformed {
		t.Fatalf("Err %v, Finish %v; want nil, ErrMalformed", d.Err(), d.Finish())
	}
}

// Decoded byte fields alias the payload and cannot grow into it: appending
// to one must not overwrite the field after it.
func requestOps() []Op {
	return []Op{OpHello, OpPing, OpCreate, OpDestroy, OpStat, OpList, OpChmod, OpSend,
		OpRecv, OpConsume, OpCredit, OpAck, OpNack, OpCancel}
}

func TestRequestOpsAreBelowPushedRange(t *testing.T) {
	for _, op := range requestOps() {
		if op >= OpPushFirst || op.Pushed() {
			t.Errorf("request op %v = %#x is not in 0x01..0x5f", op, uint8(op))
		}
	}
}

func TestDeliverIsPushedAndNoRequestsReply(t *testing.T) {
	if !OpDeliver.Pushed() || OpDeliver != 0x60 {
		t.Errorf("DELIVER = %#x, want the pushed op 0x60", uint8(OpDeliver))
	}
	for _, op := range requestOps() {
		if op.Reply() == OpDeliver {
			t.Errorf("DELIVER is also %v's reply op", op)
		}
	}
}

func TestOpString(t *testing.T) {
	for op, want := range map[Op]string{
		OpSend: "SEND", OpSend | OpReply: "SEND-REPLY", OpCreate | OpReply: "CREATE-REPLY",
		OpDeliver: "DELIVER", 0x7f: "OP(0x7f)", 0xff: "OP(0xff)", 0x55: "OP(0x55)", 0xd5: "OP(0xd5)",
	} {
		if got := op.String(); got != want {
			t.Errorf("Op(%#x).String() = %q, want %q", uint8(op), got, want)
		}
	}
}

func TestEveryCodeHasText(t *testing.T) {
	for c := OK; c < codeEnd; c++ {
		if c == 20 || c == 21 {
			continue // allocated to another branch (pipes) that gives their text
		}
		if c.String() == "" || strings.HasPrefix(c.String(), "status") {
			t.Errorf("code %d has no text", c)
		}
	}
	if got := Code(codeEnd).String(); got != fmt.Sprintf("status %d", codeEnd) {
		t.Errorf("unknown code prints %q", got)
	}
}

func TestFlagsAreDistinctBits(t *testing.T) {
	seen := uint8(0)
	for _, f := range []uint8{FlagReceipt, FlagAutoAck, FlagNoReply, FlagUrgent, FlagPush} {
		if f&(f-1) != 0 || seen&f != 0 {
			t.Fatalf("flag %#x is not a distinct bit", f)
		}
		seen |= f
	}
	if FlagUrgent != 0x40 || FlagPush != 0x80 {
		t.Fatalf("URGENT %#x, PUSH %#x; want 0x40, 0x80", FlagUrgent, FlagPush)
	}
}
