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

// fuzzMaxInput bounds the inputs FuzzDecode looks at.
const fuzzMaxInput = 1024

// fuzzSamples names every payload type (some twice, which costs little).
var fuzzSamples = samples()

// FuzzDecode feeds the same bytes to every payload decoder and, as a byte
// stream, to Reader.Next. Nothing may panic; whatever decodes must encode
// back to the same bytes where the encoding is canonical; the Reader must
// stay in sync with the stream and never return a payload over its limit.
func FuzzDecode(f *testing.F) {
	for _, s := range samples() {
		p := s.v.Append(nil)
		f.Add(p)
		f.Add(frame(Header{Op: OpSend, Request: 1}, p))
	}
	f.Add(AppendList(nil, []MailboxInfo{*sampleInfo("a"), *sampleInfo("b")}))
	f.Add(AppendError(nil, "no such mailbox"))
	// Hostile inputs.
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff})                                        // string length beyond payload
	f.Add(AppendU32(nil, 0xffffffff))                                // list or lease count 2^32-1
	f.Add(leasesPayload(MaxLeasesPerFrame+1, 2))                     // too many leases
	f.Add(createPayload(AppendU64(appendTag(nil, 0x7777, 8), 1)...)) // unknown option
	f.Add(createPayload(appendTag(nil, TagDeadLetter, 0xffff)...))   // option beyond payload
	f.Add(binary.LittleEndian.AppendUint32(nil, 11))                 // frame size below header
	f.Add(append(AppendHeader(nil, Header{Op: OpSend}, 1<<30), 1, 2, 3))
	f.Add(append(frame(Header{Op: OpSend, Request: 2}, make([]byte, fuzzMaxFrame)),
		frame(Header{Op: OpPing, Request: 3}, nil)...)) // too large, then a good frame

	f.Fuzz(func(t *testing.T, data []byte) {
		// Every path is reachable with short inputs (the unit tests cover
		// the long ones, such as 4096 leases). Long inputs only slow the
		// fuzzer down: its minimizer is quadratic in the input's length.
		if len(data) > fuzzMaxInput {
			return
		}
		checkDecoders(t, data)
		checkReader(t, data)
	})
}

func checkDecoders(t *testing.T, data []byte) {
	// Canonical encodings: decode then encode gives the input back.
	for _, s := range fuzzSamples {
		m := s.zero()
		if m.Decode(data) != nil {
			continue
		}
		switch m := m.(type) {
		case *Create:
			checkCreate(t, m)
		case *Delivery:
			// The padding byte after Priority, Reason and Flags is
			// ignored on decode and written as zero.
			want := bytes.Clone(data)
			want[27] = 0
			if got := m.Append(nil); !bytes.Equal(got, want) {
				t.Fatalf("Delivery re-encodes\n% x\nfrom\n% x", got, data)
			}
		default:
			if got := m.Append(nil); !bytes.Equal(got, data) {
				t.Fatalf("%s re-encodes\n% x\nfrom\n% x", s.name, got, data)
			}
		}
	}
	if infos, err := DecodeList(data); err == nil {
		if got := AppendList(nil, infos); !bytes.Equal(got, data) {
			t.Fatalf("List re-encodes\n% x\nfrom\n% x", got, data)
		}
	}
	// An error message ignores what follows its string.
	if msg := DecodeError(data); msg != "" {
		if got := AppendError(nil, msg); !bytes.HasPrefix(data, got) {
			t.Fatalf("error %q re-encodes to % x, not a prefix of % x", msg, got, data)
		}
	}
}

// checkCreate: options may come in any order, repeat, or carry zero values,
// so the encoding is not canonical. What decodes must still encode to the
// same value, and that encoding is canonical.
func checkCreate(t *testing.T, m *Create) {
	enc := m.Append(nil)
	var again Create
	if err := again.Decode(enc); err != nil {
		t.Fatalf("Create %+v re-encodes to % x, which does not decode: %v", m, enc, err)
	}
	if !sameCreate(m, &again) {
		t.Fatalf("Create %+v re-decodes as %+v", m, &again)
	}
	if got := again.Append(nil); !bytes.Equal(got, enc) {
		t.Fatalf("Create encoding not stable:\n% x\n% x", got, enc)
	}
}

func sameCreate(a, b *Create) bool {
	a2, b2 := *a, *b
	return bytes.Equal(a2.Name, b2.Name) && bytes.Equal(a2.DeadLetter, b2.DeadLetter) &&
		a2.Capacity == b2.Capacity && a2.Mode == b2.Mode && a2.Durable == b2.Durable &&
		a2.MaxBytes == b2.MaxBytes && a2.TTL == b2.TTL && a2.MaxDeliveries == b2.MaxDeliveries
}

// checkReader reads data as a stream of frames, whole and one byte per
// read, and checks every frame against the bytes it came from.
func checkReader(t *testing.T, data []byte) {
	whole, errWhole := readStream(t, data, bytes.NewReader(data))
	split, errSplit := readStream(t, data, iotest.OneByteReader(bytes.NewReader(data)))
	if !reflect.DeepEqual(whole, split) || errWhole != errSplit {
		t.Fatalf("one byte per read gives %d frames, %v; whole gives %d, %v",
			len(split), errSplit, len(whole), errWhole)
	}
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
			// The header and payload are exactly the next bytes of the stream.
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
