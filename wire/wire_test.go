package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// payload is what every request and reply type implements.
type payload interface {
	Append([]byte) []byte
	Decode([]byte) error
}

// sample is one value of a payload type, with every field set so that a
// field the codec forgets shows up as a difference.
type sample struct {
	name string
	v    payload
	zero func() payload // a fresh value to decode into
}

func samples() []sample {
	return []sample{
		{"Hello", &Hello{MinVersion: 1, MaxVersion: 3, Client: []byte("pbctl/1.0")},
			func() payload { return new(Hello) }},
		{"HelloReply", &HelloReply{Version: 1, Endpoint: 42, UID: 1000, GID: 100, PID: 31337,
			MaxFrame: DefaultMaxFrame, MaxMessage: 1 << 20, Server: []byte("postbox 0.1")},
			func() payload { return new(HelloReply) }},
		{"Create", &Create{Name: []byte("jobs/high"), Capacity: 128, Mode: 0o660, Durable: true,
			MaxBytes: 1 << 30, TTL: 60e9, MaxDeliveries: 5, DeadLetter: []byte("jobs/dead")},
			func() payload { return new(Create) }},
		{"CreateNoOptions", &Create{Name: []byte("r"), Capacity: -1, Mode: 0o600},
			func() payload { return new(Create) }},
		{"Name", &Name{Name: []byte("jobs.high")}, func() payload { return new(Name) }},
		{"Chmod", &Chmod{Name: []byte("jobs"), Mode: 0o644}, func() payload { return new(Chmod) }},
		{"Send", &Send{Target: []byte("@7"), Type: 3, Priority: 9, Timeout: -1, Body: []byte("hello, world")},
			func() payload { return new(Send) }},
		{"SendReply", &SendReply{ID: 99}, func() payload { return new(SendReply) }},
		{"SendReplyTaken", &SendReply{ID: 100, Taken: true,
			Receipt: Receipt{Endpoint: 8, UID: 1001, GID: 1002, PID: -1}},
			func() payload { return new(SendReply) }},
		{"Recv", &Recv{Name: []byte("jobs"), Type: -5, Timeout: 1e9}, func() payload { return new(Recv) }},
		{"Consume", &Consume{Name: []byte("jobs"), Type: 2, Credit: 64}, func() payload { return new(Consume) }},
		{"Credit", &Credit{N: 17}, func() payload { return new(Credit) }},
		{"Leases", &Leases{IDs: []uint64{1, 2, 1 << 63}}, func() payload { return new(Leases) }},
		{"AckReply", &AckReply{Done: 3}, func() payload { return new(AckReply) }},
		{"Delivery", &Delivery{Lease: 77, ID: 12, Type: 3, Priority: 200, Redeliveries: 2,
			UID: 1000, GID: 1000, PID: 4242, Endpoint: 9, SentUnixNano: 1_700_000_000_000_000_000,
			Body: []byte("payload")},
			func() payload { return new(Delivery) }},
		{"MailboxInfo", sampleInfo("jobs"), func() payload { return new(MailboxInfo) }},
		{"DeliveryOffer", &Delivery{Lease: 1, ID: 2, Type: 1, Reason: ReasonExpired, Flags: DeliveryChannelOffer,
			Body: make([]byte, TokenSize)},
			func() payload { return new(Delivery) }},
		{"Channel", &Channel{Target: []byte("@3"), Type: 1, Priority: 2, Timeout: -1, RingSize: 1 << 16},
			func() payload { return new(Channel) }},
		{"Attach", &Attach{Token: [TokenSize]byte{1, 2, 3, 15: 16}}, func() payload { return new(Attach) }},
	}
}

func sampleInfo(name string) *MailboxInfo {
	return &MailboxInfo{
		Name: []byte(name), UID: 1, GID: 2, Mode: 0o640, Capacity: 10, Flags: MailboxDurable,
		Depth: 3, Bytes: 300, Receivers: 1, Consumers: 2, InFlight: 4, BlockedSenders: 5,
		Sent: 6, Received: 7, Redelivered: 8, CreatedUnix: 9, DiskBytes: 10, OldestUnix: 11,
		DeadLettered: 12, MaxBytes: 13, TTL: 14, MaxDeliveries: 15, DeadLetter: []byte("dead"),
	}
}

func TestEveryPayloadRoundTrips(t *testing.T) {
	for _, s := range samples() {
		t.Run(s.name, func(t *testing.T) {
			enc := s.v.Append(nil)
			got := s.zero()
			if err := got.Decode(enc); err != nil {
				t.Fatalf("Decode(%x): %v", enc, err)
			}
			if !reflect.DeepEqual(got, s.v) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, s.v)
			}
			if re := got.Append(nil); !bytes.Equal(re, enc) {
				t.Fatalf("re-encoding differs:\n got %x\nwant %x", re, enc)
			}
		})
	}
}

func TestZeroValuesRoundTrip(t *testing.T) {
	for _, s := range samples() {
		t.Run(s.name, func(t *testing.T) {
			enc := s.zero().Append(nil)
			got := s.zero()
			if err := got.Decode(enc); err != nil {
				t.Fatalf("Decode(%x): %v", enc, err)
			}
			// Decoded byte fields are empty but not nil; compare encodings.
			if re := got.Append(nil); !bytes.Equal(re, enc) {
				t.Fatalf("re-encoding differs:\n got %x\nwant %x", re, enc)
			}
		})
	}
}

func TestListRoundTrips(t *testing.T) {
	for _, infos := range [][]MailboxInfo{nil, {*sampleInfo("a")}, {*sampleInfo("a"), *sampleInfo("b/c"), *sampleInfo("@3")}} {
		enc := AppendList(nil, infos)
		got, err := DecodeList(enc)
		if err != nil {
			t.Fatalf("DecodeList(%x): %v", enc, err)
		}
		if len(got) != len(infos) || (len(infos) > 0 && !reflect.DeepEqual(got, infos)) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, infos)
		}
	}
}

func TestErrorPayloadRoundTrips(t *testing.T) {
	for _, msg := range []string{"", "no such mailbox \"jobs\""} {
		if got := DecodeError(AppendError(nil, msg)); got != msg {
			t.Errorf("DecodeError(AppendError(%q)) = %q", msg, got)
		}
	}
}

func TestDecodeErrorOfUndecodablePayloadIsEmpty(t *testing.T) {
	for _, p := range [][]byte{nil, {5}, {5, 0, 'a'}} {
		if got := DecodeError(p); got != "" {
			t.Errorf("DecodeError(%x) = %q, want empty", p, got)
		}
	}
}

func TestAppendStringTruncatesAtU16(t *testing.T) {
	long := strings.Repeat("x", 0x10005)
	b := AppendString(nil, long)
	if len(b) != 2+0xffff || binary.LittleEndian.Uint16(b) != 0xffff {
		t.Fatalf("len %d, length field %d", len(b), binary.LittleEndian.Uint16(b))
	}
}

// A dead-letter name too long for the option's u16 length must not spill
// into the option stream, where its tail would be read as further options.
func TestCreateDeadLetterTooLongCannotInjectOptions(t *testing.T) {
	injected := appendTag(nil, TagDurable, 0)
	dl := append(bytes.Repeat([]byte{'x'}, 0x10000), injected...)
	c := Create{Name: []byte("q"), Capacity: 1, DeadLetter: dl}
	var got Create
	if err := got.Decode(c.Append(nil)); err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if got.Durable || len(got.DeadLetter) != 0xffff {
		t.Fatalf("Durable %v, dead letter %d bytes", got.Durable, len(got.DeadLetter))
	}
}

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
	m := Send{Target: []byte("jobs"), Type: 1, Timeout: -1, Body: []byte("abc")}
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
func TestDecodedBytesCannotOverwriteLaterFields(t *testing.T) {
	enc := (&Chmod{Name: []byte("ab"), Mode: 0o600}).Append(nil)
	var c Chmod
	if err := c.Decode(enc); err != nil {
		t.Fatal(err)
	}
	_ = append(c.Name, 'X', 'X', 'X', 'X')
	if err := c.Decode(enc); err != nil || c.Mode != 0o600 {
		t.Fatalf("mode %o after append to name, err %v", c.Mode, err)
	}
}

func TestFixedPayloadsRejectTrailingBytes(t *testing.T) {
	for _, s := range samples() {
		switch s.v.(type) {
		case *Send, *Delivery: // the body is the rest of the payload
			continue
		}
		enc := append(s.v.Append(nil), 0)
		if err := s.zero().Decode(enc); err != ErrMalformed {
			t.Errorf("%s with a trailing byte: %v, want ErrMalformed", s.name, err)
		}
	}
	enc := append(AppendList(nil, []MailboxInfo{*sampleInfo("a")}), 0)
	if _, err := DecodeList(enc); err != ErrMalformed {
		t.Errorf("List with a trailing byte: %v, want ErrMalformed", err)
	}
}

func TestBodyIsTheRestOfThePayload(t *testing.T) {
	s := Send{Target: []byte("q"), Type: 1, Body: []byte("body with\x00any bytes")}
	var got Send
	if err := got.Decode(s.Append(nil)); err != nil || string(got.Body) != string(s.Body) {
		t.Fatalf("Send body %q, err %v", got.Body, err)
	}
	d := Delivery{Type: 1, Body: []byte("x\x00y")}
	enc := d.Append(nil)
	if len(enc) != DeliveryFixed+3 {
		t.Fatalf("Delivery encodes to %d bytes, want DeliveryFixed+3", len(enc))
	}
	var gotD Delivery
	if err := gotD.Decode(enc); err != nil || string(gotD.Body) != "x\x00y" {
		t.Fatalf("Delivery body %q, err %v", gotD.Body, err)
	}
}

// Every proper prefix of an encoding must fail, except where the last field
// is "the rest of the payload" or the tail is a list of options.
func TestTruncatedPayloadsAreMalformed(t *testing.T) {
	for _, s := range samples() {
		enc := s.v.Append(nil)
		min := len(enc)
		switch s.v.(type) {
		case *Send:
			min = len(enc) - len(s.v.(*Send).Body)
		case *Delivery:
			min = DeliveryFixed
		case *Create:
			continue // covered by TestCreateOptionsMustBeWhole
		}
		for cut := range min {
			if err := s.zero().Decode(enc[:cut]); err != ErrMalformed {
				t.Errorf("%s cut to %d of %d bytes: %v, want ErrMalformed", s.name, cut, len(enc), err)
			}
		}
	}
}

func TestHelloRequiresMagic(t *testing.T) {
	enc := (&Hello{MinVersion: 1, MaxVersion: 1}).Append(nil)
	if string(enc[:4]) != "PBOX" {
		t.Fatalf("magic bytes %q, want PBOX", enc[:4])
	}
	enc[0] = 'X'
	if err := new(Hello).Decode(enc); err != ErrMalformed {
		t.Fatalf("bad magic: %v, want ErrMalformed", err)
	}
}

func TestSendReplyTakenMustBeZeroOrOne(t *testing.T) {
	enc := (&SendReply{ID: 1}).Append(nil)
	enc[8] = 2
	if err := new(SendReply).Decode(enc); err != ErrMalformed {
		t.Fatalf("taken=2: %v, want ErrMalformed", err)
	}
}

func TestSendReplyWithoutTakenCarriesNoReceipt(t *testing.T) {
	enc := (&SendReply{ID: 1, Receipt: Receipt{Endpoint: 5}}).Append(nil)
	if len(enc) != 9 {
		t.Fatalf("untaken reply is %d bytes, want 9", len(enc))
	}
	m := SendReply{Taken: true, Receipt: Receipt{Endpoint: 5}}
	if err := m.Decode(enc); err != nil || m.Taken || m.Receipt != (Receipt{}) {
		t.Fatalf("decoding over a taken reply left %+v, %v", m, err)
	}
}

func leasesPayload(count uint32, ids int) []byte {
	b := AppendU32(nil, count)
	for i := range ids {
		b = AppendU64(b, uint64(i+1))
	}
	return b
}

func TestLeasesAcceptsUpToMaxLeasesPerFrame(t *testing.T) {
	for _, n := range []int{0, 1, MaxLeasesPerFrame} {
		var m Leases
		if err := m.Decode(leasesPayload(uint32(n), n)); err != nil || len(m.IDs) != n {
			t.Errorf("%d leases: decoded %d, %v", n, len(m.IDs), err)
		}
	}
}

func TestLeasesRejectsMoreThanMaxLeasesPerFrame(t *testing.T) {
	n := MaxLeasesPerFrame + 1
	if err := new(Leases).Decode(leasesPayload(uint32(n), n)); err != ErrMalformed {
		t.Fatalf("%d leases: %v, want ErrMalformed", n, err)
	}
	if err := new(Leases).Decode(leasesPayload(0xffffffff, 2)); err != ErrMalformed {
		t.Fatalf("count 2^32-1: %v, want ErrMalformed", err)
	}
}

func TestLeasesCountMustMatchPayloadLength(t *testing.T) {
	for _, tc := range []struct {
		count uint32
		ids   int
	}{{2, 3}, {3, 2}, {0, 1}} {
		if err := new(Leases).Decode(leasesPayload(tc.count, tc.ids)); err != ErrMalformed {
			t.Errorf("count %d with %d ids: %v, want ErrMalformed", tc.count, tc.ids, err)
		}
	}
	partial := append(leasesPayload(1, 0), 1, 2, 3)
	if err := new(Leases).Decode(partial); err != ErrMalformed {
		t.Errorf("partial id: %v, want ErrMalformed", err)
	}
	for _, p := range [][]byte{nil, {0}, {0, 0, 0}} {
		if err := new(Leases).Decode(p); err != ErrMalformed {
			t.Errorf("payload % x: %v, want ErrMalformed", p, err)
		}
	}
}

func TestLeasesDecodeReusesIDs(t *testing.T) {
	p := leasesPayload(64, 64)
	var m Leases
	m.Decode(p)
	if n := testing.AllocsPerRun(100, func() { m.Decode(p) }); n != 0 {
		t.Fatalf("Decode allocates %v times per run into a grown Leases", n)
	}
}

func createPayload(opts ...byte) []byte {
	b := (&Create{Name: []byte("q"), Capacity: 1, Mode: 0o600}).Append(nil)
	return append(b, opts...)
}

func TestCreateUnknownTagIsErrUnknownTag(t *testing.T) {
	for _, tag := range []uint16{0, 6, 0xffff} {
		p := createPayload(AppendU64(appendTag(nil, tag, 8), 1)...)
		err := new(Create).Decode(p)
		if !errors.Is(err, ErrUnknownTag) || errors.Is(err, ErrMalformed) {
			t.Errorf("tag %d: %v, want ErrUnknownTag", tag, err)
		}
	}
}

func TestCreateOptionsMustBeWhole(t *testing.T) {
	for name, opts := range map[string][]byte{
		"tag without length":       {1, 0},
		"length beyond payload":    appendTag(nil, TagDeadLetter, 10),
		"durable with a value":     append(appendTag(nil, TagDurable, 1), 0),
		"max bytes with 4 bytes":   AppendU32(appendTag(nil, TagMaxBytes, 4), 1),
		"ttl with 9 bytes":         append(AppendI64(appendTag(nil, TagTTL, 9), 1), 0),
		"max deliveries with 8":    AppendU64(appendTag(nil, TagMaxDeliveries, 8), 1),
		"one stray byte":           {0},
		"good option, stray bytes": append(appendTag(nil, TagDurable, 0), 1, 0, 0),
	} {
		if err := new(Create).Decode(createPayload(opts...)); err != ErrMalformed {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

func TestCreateOptionsAreOptional(t *testing.T) {
	var m Create
	m.Durable, m.TTL = true, 5 // Decode must not keep fields of an earlier value
	if err := m.Decode(createPayload()); err != nil {
		t.Fatal(err)
	}
	if want := (Create{Name: []byte("q"), Capacity: 1, Mode: 0o600}); !reflect.DeepEqual(m, want) {
		t.Fatalf("got %+v, want %+v", m, want)
	}
}

func TestCreateOptionsInAnyOrder(t *testing.T) {
	opts := AppendU32(appendTag(nil, TagMaxDeliveries, 4), 3)
	opts = append(opts, appendTag(nil, TagDurable, 0)...)
	opts = AppendI64(appendTag(opts, TagTTL, 8), 7)
	var m Create
	if err := m.Decode(createPayload(opts...)); err != nil {
		t.Fatal(err)
	}
	if !m.Durable || m.TTL != 7 || m.MaxDeliveries != 3 {
		t.Fatalf("got %+v", m)
	}
}

func TestDeliveryLayoutMatchesSpec(t *testing.T) {
	d := Delivery{Lease: 1, ID: 2, Type: 3, Priority: 4, Redeliveries: 5, UID: 6, GID: 7,
		PID: 8, Endpoint: 9, SentUnixNano: 10}
	enc := d.Append(nil)
	if len(enc) != DeliveryFixed {
		t.Fatalf("fixed part is %d bytes, want %d", len(enc), DeliveryFixed)
	}
	for _, f := range []struct {
		off, size int
		want      uint64
	}{{0, 8, 1}, {8, 8, 2}, {16, 8, 3}, {24, 1, 4}, {25, 3, 0}, {28, 4, 5}, {32, 4, 6},
		{36, 4, 7}, {40, 4, 8}, {44, 8, 9}, {52, 8, 10}} {
		var v uint64
		for i := f.size - 1; i >= 0; i-- {
			v = v<<8 | uint64(enc[f.off+i])
		}
		if v != f.want {
			t.Errorf("offset %d: %d, want %d", f.off, v, f.want)
		}
	}
}

func TestDeliveryIgnoresPadding(t *testing.T) {
	enc := (&Delivery{Type: 1, Priority: 3}).Append(nil)
	enc[25], enc[26], enc[27] = 0xaa, 0xbb, 0xcc
	var d Delivery
	if err := d.Decode(enc); err != nil || d.Priority != 3 || d.Redeliveries != 0 {
		t.Fatalf("%+v, %v", d, err)
	}
}

func TestMailboxInfoMinimumSize(t *testing.T) {
	// DecodeList bounds the count by the payload length using this size.
	if n := len((&MailboxInfo{}).Append(nil)); n != 136 {
		t.Fatalf("empty MailboxInfo is %d bytes, want 136", n)
	}
}

func TestDecodeListRejectsCountBeyondPayload(t *testing.T) {
	p := AppendU32(nil, 0xffffffff)
	p = append(p, make([]byte, 200)...)
	if n := testing.AllocsPerRun(10, func() { DecodeList(p) }); n != 0 {
		t.Fatalf("DecodeList allocated %v times for an impossible count", n)
	}
	if _, err := DecodeList(p); err != ErrMalformed {
		t.Fatalf("%v, want ErrMalformed", err)
	}
	if _, err := DecodeList(AppendU32(nil, 1)); err != ErrMalformed {
		t.Fatalf("count 1, no entry: %v, want ErrMalformed", err)
	}
	if _, err := DecodeList(nil); err != ErrMalformed {
		t.Fatalf("empty payload: %v, want ErrMalformed", err)
	}
}

func requestOps() []Op {
	return []Op{OpHello, OpPing, OpCreate, OpDestroy, OpStat, OpList, OpChmod, OpSend,
		OpRecv, OpConsume, OpCredit, OpAck, OpNack, OpCancel}
}

func TestRequestOpsAreBelowReplyBit(t *testing.T) {
	for _, op := range requestOps() {
		if op&OpReply != 0 {
			t.Errorf("request op %v = %#x has the reply bit", op, uint8(op))
		}
	}
}

func TestDeliverIsNoRequestsReply(t *testing.T) {
	for _, op := range requestOps() {
		if op|OpReply == OpDeliver {
			t.Errorf("DELIVER (%#x) is also %v's reply op", uint8(OpDeliver), op)
		}
	}
	if OpDeliver&OpReply == 0 {
		t.Errorf("DELIVER (%#x) is in the request range", uint8(OpDeliver))
	}
}

func TestOpString(t *testing.T) {
	for op, want := range map[Op]string{
		OpSend: "SEND", OpSend | OpReply: "SEND-REPLY", OpCreate | OpReply: "CREATE-REPLY",
		OpDeliver: "DELIVER", 0x7f: "OP(0x7f)", 0x55: "OP(0x55)", 0xd5: "OP(0xd5)",
	} {
		if got := op.String(); got != want {
			t.Errorf("Op(%#x).String() = %q, want %q", uint8(op), got, want)
		}
	}
}

func TestEveryCodeHasText(t *testing.T) {
	for c := OK; c < codeEnd; c++ {
		if c.String() == "" || strings.HasPrefix(c.String(), "status") {
			t.Errorf("code %d has no text", c)
		}
	}
	if got := Code(codeEnd).String(); got != "status 20" {
		t.Errorf("unknown code prints %q", got)
	}
}

func TestFlagsAreDistinctBits(t *testing.T) {
	if FlagReceipt&FlagAutoAck != 0 || FlagReceipt&FlagNoReply != 0 || FlagAutoAck&FlagNoReply != 0 {
		t.Fatal("flags overlap")
	}
}
