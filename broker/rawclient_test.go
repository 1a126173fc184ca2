package broker_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox/broker"
	"github.com/postbox-ipc/postbox/wire"
)

// These tests speak the protocol by hand over real sockets (package wire
// and net only), to send what no client would and to see every byte the
// broker answers.

const hangGuard = 10 * time.Second

// testBroker is an in-process broker serving a Unix socket in a temporary
// directory.
type testBroker struct {
	*broker.Broker
	cfg    broker.Config
	socket string
	served chan error
	// alsoServed are other listeners' Serve results.
	alsoServed []chan error
}

// startBroker runs a broker with the default config changed by mut (nil:
// none) and stops it when t ends.
func startBroker(t *testing.T, mut func(*broker.Config)) *testBroker {
	t.Helper()
	cfg := broker.DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if mut != nil {
		mut(&cfg)
	}
	return runBroker(t, cfg)
}

func runBroker(t *testing.T, cfg broker.Config) *testBroker {
	t.Helper()
	b, err := broker.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "pbtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	socket := filepath.Join(dir, "s")
	l, err := broker.Listen(socket, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	tb := &testBroker{Broker: b, cfg: cfg, socket: socket, served: make(chan error, 1)}
	go func() { tb.served <- b.Serve(l) }()
	t.Cleanup(func() { tb.stop(t) })
	return tb
}

// stop shuts the broker down (once).
func (tb *testBroker) stop(t *testing.T) {
	t.Helper()
	if tb.served == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	if err := tb.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	for _, ch := range append([]chan error{tb.served}, tb.alsoServed...) {
		if err := <-ch; !errors.Is(err, broker.ErrServerClosed) {
			t.Errorf("Serve returned %v", err)
		}
	}
	tb.served = nil
}

// restart stops the broker and starts another on the same config (and so
// the same data directory).
func (tb *testBroker) restart(t *testing.T) *testBroker {
	t.Helper()
	tb.stop(t)
	return runBroker(t, tb.cfg)
}

// rawConn speaks the wire protocol by hand.
type rawConn struct {
	nc    net.Conn
	r     *wire.Reader
	req   uint64
	hello wire.HelloReply
}

// dialRaw0 connects without a handshake.
func dialRaw0(t *testing.T, socket string) *rawConn {
	t.Helper()
	nc, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	return newRaw(t, nc)
}

func newRaw(t *testing.T, nc net.Conn) *rawConn {
	t.Cleanup(func() { nc.Close() })
	return &rawConn{nc: nc, r: wire.NewReader(nc, wire.DefaultMaxFrame+wire.DeliveryOverhead, 0)}
}

// dialRaw connects and does HELLO by hand, asking for descriptors.
func dialRaw(t *testing.T, socket string) *rawConn {
	t.Helper()
	rc := dialRaw0(t, socket)
	rc.handshake(t, wire.CapDescriptors)
	return rc
}

func (rc *rawConn) handshake(t *testing.T, caps uint64) {
	t.Helper()
	hello := wire.Hello{MinVersion: wire.Version, MaxVersion: wire.Version, Client: []byte("raw"), Caps: caps}
	hd, p := rc.roundTrip(t, wire.OpHello, 0, hello.Append(nil))
	if hd.Status != wire.OK || hd.Op != wire.OpHello|wire.OpReply {
		msg, _ := wire.DecodeError(p)
		t.Fatalf("HELLO: %s %s %q", hd.Op, hd.Status, msg)
	}
	if err := rc.hello.Decode(p); err != nil {
		t.Fatalf("HELLO reply: %v", err)
	}
	rc.hello.Server = slices.Clone(rc.hello.Server)
}

// write sends raw bytes.
func (rc *rawConn) write(t *testing.T, b []byte) {
	t.Helper()
	rc.nc.SetWriteDeadline(time.Now().Add(hangGuard))
	if _, err := rc.nc.Write(b); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// frame encodes a frame with a fresh request id.
func (rc *rawConn) frame(op wire.Op, flags uint8, payload []byte) ([]byte, uint64) {
	rc.req++
	return append(wire.AppendHeader(nil, wire.Header{Op: op, Flags: flags, Request: rc.req}, len(payload)), payload...), rc.req
}

// next reads one frame; the payload is copied.
func (rc *rawConn) next(t *testing.T) (wire.Header, []byte, error) {
	t.Helper()
	rc.nc.SetReadDeadline(time.Now().Add(hangGuard))
	hd, p, err := rc.r.Next()
	return hd, slices.Clone(p), err
}

// roundTrip sends a request and returns the frame answering it.
func (rc *rawConn) roundTrip(t *testing.T, op wire.Op, flags uint8, payload []byte) (wire.Header, []byte) {
	t.Helper()
	b, id := rc.frame(op, flags, payload)
	rc.write(t, b)
	return rc.reply(t, id)
}

// reply reads frames until the reply (not a pushed frame) to request id.
func (rc *rawConn) reply(t *testing.T, id uint64) (wire.Header, []byte) {
	t.Helper()
	for {
		hd, p, err := rc.next(t)
		if err != nil {
			t.Fatalf("waiting for the reply to request %d: %v", id, err)
		}
		if hd.Request == id && !hd.Push() {
			return hd, p
		}
	}
}

// must checks a reply's status.
func must(t *testing.T, what string, hd wire.Header, p []byte, want wire.Code) {
	t.Helper()
	if hd.Status != want {
		msg, _ := wire.DecodeError(p)
		t.Fatalf("%s: %s %q, want %s", what, hd.Status, msg, want)
	}
	if hd.Push() {
		t.Fatalf("%s: a reply with the PUSH flag", what)
	}
}

// ping checks that the connection is still served.
func (rc *rawConn) ping(t *testing.T) {
	t.Helper()
	hd, p := rc.roundTrip(t, wire.OpPing, 0, nil)
	if hd.Op != wire.OpPing|wire.OpReply {
		t.Fatalf("PING: reply op %s", hd.Op)
	}
	must(t, "PING", hd, p, wire.OK)
}

func (rc *rawConn) create(t *testing.T, m wire.Create) {
	t.Helper()
	if m.Mode == 0 {
		m.Mode = 0o666
	}
	hd, p := rc.roundTrip(t, wire.OpCreate, 0, m.Append(nil))
	must(t, "CREATE "+string(m.Name), hd, p, wire.OK)
}

// send sends one SEND frame and returns its reply.
func (rc *rawConn) send(t *testing.T, flags uint8, m wire.Send) (wire.Header, []byte) {
	t.Helper()
	return rc.roundTrip(t, wire.OpSend, flags, m.Append(nil))
}

// sendOK sends bodies to target as one batch and returns their ids.
func (rc *rawConn) sendOK(t *testing.T, target string, bodies ...string) []uint64 {
	t.Helper()
	m := wire.Send{Target: []byte(target)}
	for _, b := range bodies {
		m.Msgs = append(m.Msgs, wire.SendMsg{Type: 1, Body: []byte(b)})
	}
	hd, p := rc.send(t, 0, m)
	must(t, "SEND to "+target, hd, p, wire.OK)
	var r wire.SendReply
	if err := r.Decode(p); err != nil {
		t.Fatal(err)
	}
	if len(r.IDs) != len(bodies) {
		t.Fatalf("SEND reply has %d ids for %d messages", len(r.IDs), len(bodies))
	}
	return r.IDs
}

// recv receives one message without waiting.
func (rc *rawConn) recv(t *testing.T, name string, flags uint8) wire.Delivery {
	t.Helper()
	m := wire.Recv{Name: []byte(name), Timeout: int64(hangGuard)}
	hd, p := rc.roundTrip(t, wire.OpRecv, flags, m.Append(nil))
	must(t, "RECV from "+name, hd, p, wire.OK)
	if hd.Op != wire.OpRecv|wire.OpReply {
		t.Fatalf("RECV reply op %s", hd.Op)
	}
	var d wire.Delivery
	if err := d.Decode(p); err != nil {
		t.Fatal(err)
	}
	return d
}

// expectClosed reads until the broker closes the connection and returns
// the statuses of the frames read first.
func (rc *rawConn) expectClosed(t *testing.T) []wire.Code {
	t.Helper()
	var codes []wire.Code
	for {
		hd, _, err := rc.next(t)
		if err == nil {
			codes = append(codes, hd.Status)
			continue
		}
		var ne net.Error
		switch {
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
			return codes
		case errors.As(err, &ne) && ne.Timeout():
			t.Fatalf("broker did not close the connection within %v", hangGuard)
		default:
			t.Fatalf("reading: %v", err)
		}
	}
}

func leases(rs ...wire.LeaseRange) []byte { return (&wire.Leases{Ranges: rs}).Append(nil) }
