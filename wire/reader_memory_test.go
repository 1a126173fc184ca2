package wire

import (
	"bytes"
	"io"
	"testing"
)

// A frame that announces a large payload costs the reader only what has
// actually arrived, not the announced size.
func TestReaderGrowsWithTheBytesThatArriveNotTheAnnouncedSize(t *testing.T) {
	pr, pw := io.Pipe()
	r := NewReader(pr, DefaultMaxFrame, 64<<10)
	const announced, sent = 16<<20 - 12, 200 << 10
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Next() // blocks for the rest of the payload, then fails
	}()
	pw.Write(AppendHeader(nil, Header{Op: OpSend, Request: 1}, announced))
	pw.Write(make([]byte, sent))
	// The reader has consumed what was sent once the pipe accepted it;
	// close to end its wait, then look at what it allocated.
	pw.CloseWithError(io.ErrUnexpectedEOF)
	<-done
	if c := cap(r.buf); c > 4*sent {
		t.Fatalf("the reader holds a %d-byte buffer for %d bytes received of a %d-byte frame", c, sent, announced)
	}
}

// Large payloads still arrive whole and exact, and a buffer over
// maxKeptFrame is released at the next call.
func TestReaderReadsLargeFramesExactlyAndReleasesTheirBuffer(t *testing.T) {
	var stream bytes.Buffer
	big := make([]byte, 5<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	stream.Write(AppendHeader(nil, Header{Op: OpSend, Request: 1}, len(big)))
	stream.Write(big)
	stream.Write(AppendHeader(nil, Header{Op: OpPing, Request: 2}, 0))
	r := NewReader(&stream, DefaultMaxFrame, 64<<10)
	_, p, err := r.Next()
	if err != nil || !bytes.Equal(p, big) {
		t.Fatalf("big frame: err %v, payload equal %v", err, bytes.Equal(p, big))
	}
	hd, _, err := r.Next()
	if err != nil || hd.Request != 2 {
		t.Fatalf("next frame: %+v, %v", hd, err)
	}
	if cap(r.buf) > maxKeptFrame {
		t.Fatalf("the reader kept a %d-byte buffer after the big frame", cap(r.buf))
	}
}
