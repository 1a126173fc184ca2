package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"testing"
	"testing/iotest"
)

// fuzzMaxFrame is the Reader limit under fuzzing: small, so that both the
// in-buffer and the too-large paths are reached by short inputs.
const fuzzMaxFrame = 96

// fuzzMaxInput bounds the inputs the fuzz targets look at. Every path is
// reachable with short inputs (the unit tests cover the long ones, such as
// 4096 lease ranges); long inputs only slow the fuzzer down.
const fuzzMaxInput = 2048

// decoders lists every payload type by the name the conformance vectors
// use; FuzzPayload picks one by its kind byte.
var decoders = []struct {
	name string
	new  func() payload
}{
	{"Hello", func() payload { return new(Hello) }},
	{"HelloReply", func() payload { return new(HelloReply) }},
	{"Create", func() payload { return new(Create) }},
	{"Name", func() payload { return new(Name) }},
	{"Chmod", func() payload { return new(Chmod) }},
	{"Send", func() payload { return new(Send) }},
	{"SendReply", func() payload { return new(SendReply) }},
	{"Recv", func() payload { return new(Recv) }},
	{"Consume", func() payload { return new(Consume) }},
	{"Credit", func() payload { return new(Credit) }},
	{"Leases", func() payload { return new(Leases) }},
	{"AckReply", func() payload { return new(AckReply) }},
	{"Delivery", func() payload { return new(Delivery) }},
	{"MailboxInfo", func() payload { return new(MailboxInfo) }},
	{"List", func() payload { return new(List) }},
	{"ListReply", func() payload { return new(ListReply) }},
	{"Channel", func() payload { return new(Channel) }},
	{"Attach", func() payload { return new(Attach) }},
	{"Error", func() payload { return new(ErrorReply) }},
	{"Empty", func() payload { return new(Empty) }},
	{"Headers", func() payload { return new(headersPayload) }},
	{"Browse", func() payload { return new(Browse) }},
	{"BrowseReply", func() payload { return new(BrowseReply) }},
	{"Usage", func() payload { return new(Usage) }},
	{"UsageReply", func() payload { return new(UsageReply) }},
	{"CallReply", func() payload { return new(CallReply) }},
	{"Interrupt", func() payload { return new(Interrupt) }},
	{"ACL", func() payload { return new(ACL) }},
	{"Publish", func() payload { return new(Publish) }},
	{"PublishReply", func() payload { return new(PublishReply) }},
	{"PublishBatch", func() payload { return new(PublishBatch) }},
	{"Subscribe", func() payload { return new(Subscribe) }},
	{"Event", func() payload { return new(Event) }},
	{"Bind", func() payload { return new(Bind) }},
	{"Claim", func() payload { return new(Claim) }},
	{"TopicsReply", func() payload { return new(TopicsReply) }},
	{"Withdraw", func() payload { return new(Withdraw) }},
	{"WithdrawReply", func() payload { return new(WithdrawReply) }},
	{"Join", func() payload { return new(Join) }},
	{"Watch", func() payload { return new(Watch) }},
	{"Notice", func() payload { return new(Notice) }},
	{"InfoReply", func() payload { return new(InfoReply) }},
}

// headersPayload lets the fuzzer treat a headers block like a payload.
type headersPayload struct{ HeaderFields }

func (h *headersPayload) Append(b []byte) []byte { return AppendHeaders(b, &h.HeaderFields) }
func (h *headersPayload) Decode(p []byte) error  { return h.Parse(p) }

func decoderKind(name string) (byte, bool) {
	for i, d := range decoders {
		if d.name == name {
			return byte(i), true
		}
	}
	return 0, false
}

// canonical reports whether a payload type re-encodes what it decodes byte
// for byte. Create (options in any order, unknown entries skipped), Error
// (entries around DONE), List (an empty payload), headers (reserved
// tags skipped, entries reordered), and HelloReply and MailboxInfo (their
// own tags, decodeOwnExt, re-encoded ahead of unknown entries that came
// before them) do not; for them the property is that the re-encoding
// decodes to the same value and is stable.
func canonical(name string) bool {
	switch name {
	case "Create", "Error", "List", "Headers", "HelloReply", "MailboxInfo":
		return false
	}
	return true
}

// FuzzPayload decodes data as the payload type kind selects. Nothing may
// panic; every error is one of the package's sentinels; what decodes
// re-encodes to the input (canonical types) or to a stable encoding of
// the same value.
func FuzzPayload(f *testing.F) {
	for _, s := range samples() {
		name := s.name
		if _, ok := decoderKind(name); !ok {
			name = reflect.TypeOf(s.zero()).Elem().Name()
			if name == "ErrorReply" {
				name = "Error"
			}
		}
		if k, ok := decoderKind(name); ok {
			f.Add(k, s.v.Append(nil))
		}
	}
	for _, v := range loadVectors(f) {
		if k, ok := decoderKind(v.PayloadType); ok {
			f.Add(k, v.payload())
		}
	}
	f.Fuzz(func(t *testing.T, kind byte, data []byte) {
		if len(data) > fuzzMaxInput {
			return
		}
		dec := decoders[int(kind)%len(decoders)]
		m := dec.new()
		err := m.Decode(data)
		if err != nil {
			if !knownError(err) {
				t.Fatalf("%s: unexpected error %v", dec.name, err)
			}
			return
		}
		enc := m.Append(nil)
		if canonical(dec.name) {
			if !bytes.Equal(enc, data) {
				t.Fatalf("%s re-encodes\n% x\nfrom\n% x", dec.name, enc, data)
			}
			return
		}
		again := dec.new()
		if err := again.Decode(enc); err != nil {
			t.Fatalf("%s %+v re-encodes to % x, which does not decode: %v", dec.name, m, enc, err)
		}
		if enc2 := again.Append(nil); !bytes.Equal(enc2, enc) {
			t.Fatalf("%s encoding not stable:\n% x\n% x", dec.name, enc, enc2)
		}
	})
}

func knownError(err error) bool {
	for _, e := range []error{ErrMalformed, ErrUnknownCritical, ErrInvalidHeaders, ErrInvalid, ErrVersion} {
		if err == e {
			return true
		}
	}
	return false
}

// FuzzReader reads data as a byte stream of frames, whole and one byte per
// read: the Reader must stay in sync with the stream and never return a
// payload over its limit.
func FuzzReader(f *testing.F) {
	f.Add([]byte{})
	f.Add(binary.LittleEndian.AppendUint32(nil, 11)) // frame size below header
	f.Add(append(AppendHeader(nil, Header{Op: OpSend}, 1<<30), 1, 2, 3))
	f.Add(append(frame(Header{Op: OpSend, Request: 2}, make([]byte, fuzzMaxFrame)),
		frame(Header{Op: OpPing, Request: 3}, nil)...)) // too large, then a good frame
	for _, v := range loadVectors(f) {
		f.Add(v.frame())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > fuzzMaxInput {
			return
		}
		whole, errWhole := readStream(t, data, bytes.NewReader(data))
		split, errSplit := readStream(t, data, iotest.OneByteReader(bytes.NewReader(data)))
		if !reflect.DeepEqual(whole, split) || errWhole != errSplit {
			t.Fatalf("one byte per read gives %d frames, %v; whole gives %d, %v",
				len(split), errSplit, len(whole), errWhole)
		}
	})
}

// readStream returns what it read as "frame" or "skip" markers and the
// final error with its wrapping text removed.
func readStream(t *testing.T, data []byte, src io.Reader) ([]string, error) {
	r := NewReader(src, fuzzMaxFrame, 16)
	var got []string
	off := 0
	for {
		h, p, err := r.Next()
		switch {
		case err == nil:
			if len(p) > fuzzMaxFrame-(HeaderSize-4) {
				t.Fatalf("payload of %d bytes under a frame limit of %d", len(p), fuzzMaxFrame)
			}
			want := data[off : off+HeaderSize+len(p)]
			if f := frame(h, p); !bytes.Equal(f, want) {
				t.Fatalf("frame at %d reads as % x, stream has % x", off, f, want)
			}
			off += HeaderSize + len(p)
			got = append(got, "frame")
		case errors.Is(err, ErrFrameTooLarge):
			size := int(binary.LittleEndian.Uint32(data[off:]))
			if size <= fuzzMaxFrame {
				t.Fatalf("frame of size %d skipped under a limit of %d", size, fuzzMaxFrame)
			}
			if hdr := AppendHeader(nil, h, size-(HeaderSize-4)); !bytes.Equal(hdr, data[off:off+HeaderSize]) {
				t.Fatalf("skipped frame's header reads as % x, stream has % x", hdr, data[off:off+HeaderSize])
			}
			off += 4 + size
			got = append(got, "skip")
		case errors.Is(err, ErrBadFrame):
			if size := binary.LittleEndian.Uint32(data[off:]); size >= HeaderSize-4 {
				t.Fatalf("ErrBadFrame for size %d", size)
			}
			return got, ErrBadFrame
		case err == io.EOF:
			if off != len(data) {
				t.Fatalf("io.EOF at %d of %d bytes", off, len(data))
			}
			return got, err
		case err == io.ErrUnexpectedEOF:
			if off >= len(data) {
				t.Fatalf("io.ErrUnexpectedEOF at the end of the stream")
			}
			return got, err
		default:
			t.Fatalf("unexpected error %v", err)
		}
	}
}
