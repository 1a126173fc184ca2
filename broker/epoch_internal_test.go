package broker

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox/wire"
)

// When n of epoch<<32 | n would pass 2^32-1 the broker answers HELLO with
// LIMIT and closes: endpoint ids never wrap into another run's.
func TestHelloPastTheLastEndpointIDIsLimit(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	b := New(cfg)
	socket := filepath.Join(t.TempDir(), "s")
	l, err := Listen(socket, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	go b.Serve(l)
	defer b.Shutdown(context.Background())
	hello := func() (wire.Header, []byte) {
		nc, err := net.Dial("unix", socket)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		p := (&wire.Hello{MinVersion: 2, MaxVersion: 2}).Append(nil)
		nc.Write(append(wire.AppendHeader(nil, wire.Header{Op: wire.OpHello, Request: 1}, len(p)), p...))
		nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		hd, rp, err := wire.NewReader(nc, 0, 0).Next()
		if err != nil {
			t.Fatal(err)
		}
		return hd, rp
	}
	b.endpoints.Store(maxEndpoints - 1)
	hd, p := hello()
	var r wire.HelloReply
	if hd.Status != wire.OK || r.Decode(p) != nil || r.Endpoint != b.epoch<<32|maxEndpoints {
		t.Fatalf("the last endpoint id: %s, endpoint %#x", hd.Status, r.Endpoint)
	}
	if hd, _ = hello(); hd.Status != wire.CodeLimit {
		t.Fatalf("past the last endpoint id: %s, want %s", hd.Status, wire.CodeLimit)
	}
}

func TestEpochIsNonZero32Bits(t *testing.T) {
	for range 100 {
		if e := newEpoch(); e == 0 || e>>32 != 0 {
			t.Fatalf("epoch %#x", e)
		}
	}
}
