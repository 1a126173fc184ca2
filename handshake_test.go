package postbox_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/wire"
)

// fakeBroker answers the client's HELLO on the other end of a pipe with
// the frame answer builds, and returns the HELLO it read.
func fakeBroker(t *testing.T, answer func(hello []byte) []byte) (net.Conn, <-chan wire.Hello) {
	t.Helper()
	cc, bc := net.Pipe()
	t.Cleanup(func() { cc.Close(); bc.Close() })
	got := make(chan wire.Hello, 1)
	go func() {
		r := wire.NewReader(bc, 0, 4096)
		_, p, err := r.Next()
		if err != nil {
			return
		}
		var h wire.Hello
		h.Decode(p)
		h.Client = append([]byte(nil), h.Client...)
		got <- h
		bc.Write(answer(p))
		io.Copy(io.Discard, bc)
	}()
	return cc, got
}

// TestV1BrokerGivesAClearVersionError: a broker that does not speak
// version 2 answers VERSION; Dial's error says so and matches ErrVersion.
func TestV1BrokerGivesAClearVersionError(t *testing.T) {
	cc, _ := fakeBroker(t, func([]byte) []byte {
		b, off := wire.StartFrame(nil, wire.Header{Op: wire.OpHello | wire.OpReply, Status: wire.CodeVersion, Request: 1})
		return wire.FinishFrame(wire.AppendError(b, "this broker speaks protocol version 1"), off)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := postbox.NewClient(ctx, cc)
	if !errors.Is(err, postbox.ErrVersion) || !strings.Contains(err.Error(), "protocol version 2") ||
		!strings.Contains(err.Error(), "version 1") {
		t.Fatalf("NewClient against a v1 broker: %v, want ErrVersion naming both versions", err)
	}
}

// TestHelloOffersSessionAndNoDescriptorsOffUnixSockets: the HELLO carries
// version 2 only, the client's name, a random session (or the one given
// with WithSession), and no descriptor capability on a non-Unix
// connection.
func TestHelloOffersSessionAndNoDescriptorsOffUnixSockets(t *testing.T) {
	for _, resume := range []bool{false, true} {
		want := postbox.Session{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
		cc, got := fakeBroker(t, func([]byte) []byte {
			b, off := wire.StartFrame(nil, wire.Header{Op: wire.OpHello | wire.OpReply, Status: wire.CodeHandshake, Request: 1})
			return wire.FinishFrame(wire.AppendError(b, "no"), off)
		})
		opts := []postbox.DialOption{postbox.WithName("hello-test")}
		if resume {
			opts = append(opts, postbox.WithSession(want))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := postbox.NewClient(ctx, cc, opts...)
		cancel()
		if !errors.Is(err, postbox.ErrHandshake) {
			t.Fatalf("refused handshake: %v, want ErrHandshake", err)
		}
		h := <-got
		if h.MinVersion != 2 || h.MaxVersion != 2 || string(h.Client) != "hello-test" || h.Caps&wire.CapDescriptors != 0 {
			t.Fatalf("HELLO %+v", h)
		}
		if s := postbox.Session(h.Session); s.IsZero() || resume != (s == want) {
			t.Fatalf("resume %v: HELLO session %s", resume, s)
		}
	}
}
