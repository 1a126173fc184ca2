package integration_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/broker"
	"github.com/postbox-ipc/postbox/wire"
)

// rawConn speaks the wire protocol by hand, to send what no client would.
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
	t.Cleanup(func() { nc.Close() })
	return &rawConn{nc: nc, r: wire.NewReader(nc, 0, 0)}
}

// dialRaw connects and does HELLO by hand.
func dialRaw(t *testing.T, socket string) *rawConn {
	t.Helper()
	rc := dialRaw0(t, socket)
	hello := wire.Hello{MinVersion: wire.Version, MaxVersion: wire.Version, Client: []byte("raw"), Caps: wire.CapDescriptors}
	hd, p := rc.roundTrip(t, wire.OpHello, 0, hello.Append(nil))
	if hd.Status != wire.OK || hd.Op != wire.OpHello|wire.OpReply {
		t.Fatalf("HELLO: %s %s %q", hd.Op, hd.Status, errText(p))
	}
	if err := rc.hello.Decode(p); err != nil {
		t.Fatalf("HELLO reply: %v", err)
	}
	rc.hello.Server = slices.Clone(rc.hello.Server)
	return rc
}

// errText is an error reply's message.
func errText(p []byte) string {
	msg, _ := wire.DecodeError(p)
	return msg
}

// write sends raw bytes.
func (rc *rawConn) write(t *testing.T, b []byte) {
	t.Helper()
	rc.nc.SetWriteDeadline(time.Now().Add(hangGuard))
	if _, err := rc.nc.Write(b); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// frame encodes a well-formed frame with a fresh request id.
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

// reply reads frames until the one answering request id.
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

// ping checks that the connection is still served.
func (rc *rawConn) ping(t *testing.T) {
	t.Helper()
	hd, p := rc.roundTrip(t, wire.OpPing, 0, nil)
	if hd.Op != wire.OpPing|wire.OpReply || hd.Status != wire.OK {
		t.Fatalf("PING: %s %s %q", hd.Op, hd.Status, errText(p))
	}
}

// expectClosed reads until the broker closes the connection, allowing
// error replies on the way, and fails t if it does not within the hang
// guard. It returns the statuses of the frames read first.
func (rc *rawConn) expectClosed(t *testing.T) []wire.Code {
	t.Helper()
	var codes []wire.Code
	for {
		hd, p, err := rc.next(t)
		if err == nil {
			if hd.Status == wire.OK {
				t.Fatalf("connection should close, got %s reply", hd.Op)
			}
			codes = append(codes, hd.Status)
			t.Logf("before closing, the broker said %s: %q", hd.Status, errText(p))
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

// pingPong proves an ordinary client is unaffected: a send and a
// receive on its own mailbox still complete.
func pingPong(t *testing.T, mb *postbox.Mailbox, body string) {
	t.Helper()
	send(t, mb, body)
	if got := recvAck(t, mb); got != body {
		t.Fatalf("bystander got %q, want %q", got, body)
	}
}

func TestSenderIdentityIsTheSendingProcess(t *testing.T) {
	eachBroker(t, func(t *testing.T, b brokerUnderTest) {
		c := b.dial(t)
		mb := create(t, c, "who", postbox.Mode(0o666))
		r := runChild(t, b.socket, nil, "send", "who", "from child")
		if r.Err != "" {
			t.Fatalf("child send: %s", r.ErrText)
		}
		m := recv(t, mb)
		ack(t, m)
		want := postbox.Identity{Kind: postbox.KindUnix, UID: uint32(r.UID), GID: uint32(r.GID), PID: int32(r.PID), Endpoint: r.Endpoint}
		if m.Sender != want {
			t.Fatalf("sender %+v, want the child as it reports itself %+v", m.Sender, want)
		}
		if m.Sender.PID == int32(os.Getpid()) {
			t.Fatal("sender pid is the test's, not the child's")
		}
	})
}

func TestSendFrameCannotCarryIdentity(t *testing.T) {
	b := start(t, nil)
	c := b.Dial(t)
	mb := create(t, c, "who", postbox.Mode(0o666))
	rc := dialRaw(t, b.Socket)
	pr := rc.hello.Principal
	if pr.Kind != wire.PrincipalUnix || pr.PID != int32(os.Getpid()) || pr.UID != uint32(os.Getuid()) || pr.GID != uint32(os.Getgid()) {
		t.Fatalf("HELLO reply names %+v, not this process", pr)
	}
	// A SEND whose body and ext tail (a non-critical tag, which the broker
	// skips) hold bytes shaped like an identity (kind 1, uid 0, gid 0, pid
	// 1): the body is delivered as it is, and the sender is still who the
	// kernel says.
	id := wire.Identity{Kind: wire.PrincipalUnix, PID: 1}
	forged := append(id.Append(nil), "uid=0 pid=1"...)
	req := wire.Send{Target: []byte("who"), Timeout: 0, Msgs: []wire.SendMsg{{Type: 1, Body: forged}},
		Ext: wire.AppendExt(nil, 0x0101, id.Append(nil))}
	hd, p := rc.roundTrip(t, wire.OpSend, 0, req.Append(nil))
	if hd.Status != wire.OK {
		t.Fatalf("SEND: %s %q", hd.Status, errText(p))
	}
	m := recv(t, mb)
	ack(t, m)
	if !bytes.Equal(m.Body, forged) {
		t.Fatalf("body %q, want every trailing byte %q", m.Body, forged)
	}
	if m.Sender.UID != pr.UID || m.Sender.GID != pr.GID || m.Sender.PID != pr.PID || m.Sender.Endpoint != rc.hello.Endpoint {
		t.Fatalf("sender %+v, want the raw connection's real identity %+v", m.Sender, pr)
	}
}

func TestUnknownOpRepliesUnknownOpAndConnectionContinues(t *testing.T) {
	b := start(t, nil)
	bystander := create(t, b.Dial(t), "bystander")
	rc := dialRaw(t, b.Socket)
	for _, op := range []wire.Op{0x7f, 0x7e, 0x60, 0x03, 0x3f} {
		hd, _ := rc.roundTrip(t, op, 0, []byte("whatever"))
		if hd.Status != wire.CodeUnknownOp || hd.Op != op|wire.OpReply || hd.Push() {
			t.Fatalf("op 0x%02x: reply %s %s, want %s", uint8(op), hd.Op, hd.Status, wire.CodeUnknownOp)
		}
		rc.ping(t)
		pingPong(t, bystander, "after unknown op")
	}
}

func TestTruncatedSendPayloadRepliesMalformed(t *testing.T) {
	b := start(t, nil)
	bystander := create(t, b.Dial(t), "bystander")
	create(t, b.Dial(t), "target", postbox.Mode(0o666))
	rc := dialRaw(t, b.Socket)
	full := (&wire.Send{Target: []byte("target"), Timeout: 0, Msgs: []wire.SendMsg{{Type: 1, Body: []byte("xy")}}}).Append(nil)
	for _, cut := range []int{1, 5, len("target") + 2 + 4, len("target") + 2 + 8 + 2 + 3, len(full) - 1} {
		hd, p := rc.roundTrip(t, wire.OpSend, 0, full[:cut])
		if hd.Status != wire.CodeMalformed {
			t.Fatalf("SEND cut to %d of %d bytes: %s %q, want %s", cut, len(full), hd.Status, errText(p), wire.CodeMalformed)
		}
		rc.ping(t)
		pingPong(t, bystander, "after malformed send")
	}
	info, err := b.Dial(t).Mailbox("target").Stat(ctxT(t))
	if err != nil || info.Sent != 0 {
		t.Fatalf("malformed sends were accepted: %+v %v", info, err)
	}
}

func TestOversizedFrameRepliesTooLargeAndConnectionContinues(t *testing.T) {
	b := start(t, limits(func(c *broker.Config) { c.MaxMessage = 1024; c.MaxFrame = 4096 }))
	bystander := create(t, b.Dial(t), "bystander")
	rc := dialRaw(t, b.Socket)
	if rc.hello.MaxFrame != 4096 {
		t.Fatalf("HELLO reports max frame %d", rc.hello.MaxFrame)
	}
	payload := make([]byte, 8000)
	frame, id := rc.frame(wire.OpSend, 0, payload)
	rc.write(t, frame)
	hd, p := rc.reply(t, id)
	if hd.Status != wire.CodeTooLarge {
		t.Fatalf("oversized frame: %s %q, want %s", hd.Status, errText(p), wire.CodeTooLarge)
	}
	rc.ping(t)
	pingPong(t, bystander, "after oversized frame")
}

func TestFrameSizeBelowHeaderClosesConnectionWithoutReply(t *testing.T) {
	b := start(t, nil)
	bystander := create(t, b.Dial(t), "bystander")
	for _, size := range []uint32{0, 4, 11} {
		rc := dialRaw(t, b.Socket)
		bad := binary.LittleEndian.AppendUint32(nil, size)
		bad = append(bad, byte(wire.OpPing), 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0)
		rc.write(t, bad)
		if codes := rc.expectClosed(t); len(codes) != 0 {
			t.Fatalf("size %d: statuses %v before closing, want no reply", size, codes)
		}
		pingPong(t, bystander, "after a bad frame size")
	}
}

func TestGarbageBeforeHelloClosesConnection(t *testing.T) {
	b := start(t, nil)
	bystander := create(t, b.Dial(t), "bystander")
	cases := map[string][]byte{
		// A well-framed request that is not HELLO.
		"request before HELLO": wire.AppendHeader(nil, wire.Header{Op: wire.OpPing, Request: 1}, 0),
		// A frame of the right size whose op is HELLO but whose payload
		// lacks the magic.
		"HELLO without magic": append(wire.AppendHeader(nil, wire.Header{Op: wire.OpHello, Request: 1}, 8), "HTTP/1.1"...),
		// Size below the header.
		"short size": {2, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0},
		// Text: its first four bytes read as a size of ~540 MB, beyond any
		// frame limit. The broker must not wait to skip that many bytes
		// from a peer that has not even said HELLO.
		"text": []byte("GET / HTTP/1.1\r\nHost: postbox\r\n\r\n"),
	}
	for name, garbage := range cases {
		t.Run(name, func(t *testing.T) {
			rc := dialRaw0(t, b.Socket)
			rc.write(t, garbage)
			rc.expectClosed(t)
			pingPong(t, bystander, "after garbage: "+name)
		})
	}
}

func TestHelloTwiceRepliesHandshakeAndConnectionContinues(t *testing.T) {
	b := start(t, nil)
	rc := dialRaw(t, b.Socket)
	hello := wire.Hello{MinVersion: wire.Version, MaxVersion: wire.Version}
	hd, _ := rc.roundTrip(t, wire.OpHello, 0, hello.Append(nil))
	if hd.Status != wire.CodeHandshake {
		t.Fatalf("second HELLO: %s, want %s", hd.Status, wire.CodeHandshake)
	}
	rc.ping(t)
}

func TestV1HelloRepliesVersionAndCloses(t *testing.T) {
	b := start(t, nil)
	rc := dialRaw0(t, b.Socket)
	// A v1 HELLO ends after the client string.
	p := wire.AppendU16(wire.AppendU16(wire.AppendU32(nil, wire.Magic), 1), 1)
	p = wire.AppendString(p, "v1")
	f, _ := rc.frame(wire.OpHello, 0, p)
	rc.write(t, f)
	if codes := rc.expectClosed(t); len(codes) != 1 || codes[0] != wire.CodeVersion {
		t.Fatalf("v1 HELLO: replies %v, want one %s", codes, wire.CodeVersion)
	}
}

func TestHelloWithoutCommonVersionRepliesVersionAndCloses(t *testing.T) {
	b := start(t, nil)
	rc := dialRaw0(t, b.Socket)
	hello := wire.Hello{MinVersion: wire.Version + 1, MaxVersion: wire.Version + 5}
	b0, _ := rc.frame(wire.OpHello, 0, hello.Append(nil))
	rc.write(t, b0)
	codes := rc.expectClosed(t)
	if len(codes) != 1 || codes[0] != wire.CodeVersion {
		t.Fatalf("HELLO for versions %d-%d: replies %v, want one %s", hello.MinVersion, hello.MaxVersion, codes, wire.CodeVersion)
	}
}
