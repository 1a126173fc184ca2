package broker_test

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox/broker"
	"github.com/postbox-ipc/postbox/wire"
	"golang.org/x/sys/unix"
)

// serveTCP serves b on a TCP loopback listener and returns its address.
func serveTCP(t *testing.T, b *testBroker, creds broker.Credentials) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- b.ServeWith(l, creds) }()
	b.alsoServed = append(b.alsoServed, done) // stop waits for it
	return l.Addr().String()
}

func dialTCP(t *testing.T, addr string) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	rc := newRaw(t, nc)
	rc.handshake(t, wire.CapDescriptors)
	return rc
}

func TestV2ServeOverTCPHasNoPrincipalAndNoDescriptors(t *testing.T) {
	b := startBroker(t, nil)
	rc := dialTCP(t, serveTCP(t, b, nil))
	h := rc.hello
	if h.Principal != (wire.Identity{Kind: wire.PrincipalNone, Endpoint: h.Endpoint}) {
		t.Fatalf("principal over TCP %+v, want kind none", h.Principal)
	}
	if h.Caps != 0 {
		t.Fatalf("caps %#x over TCP, want none (no descriptor passing)", h.Caps)
	}
	if h.Endpoint>>32 != b.Epoch() {
		t.Fatalf("endpoint %#x", h.Endpoint)
	}
	rc.ping(t)
	hd, p := rc.roundTrip(t, wire.OpChannel, 0, (&wire.Channel{Target: []byte("x"), Type: 1}).Append(nil))
	must(t, "CHANNEL over TCP", hd, p, wire.CodeInvalid)
	hd, p = rc.roundTrip(t, wire.OpAttach, 0, (&wire.Attach{}).Append(nil))
	must(t, "ATTACH over TCP", hd, p, wire.CodeInvalid)

	// A message sent over TCP says so on delivery, and crosses to a Unix
	// client: one broker, two transports.
	local := dialRaw(t, b.socket)
	local.create(t, wire.Create{Name: []byte("shared"), Capacity: -1, Mode: 0o666})
	rc.sendOK(t, "shared", "over tcp")
	d := local.recv(t, "shared", wire.FlagAutoAck)
	if d.Sender != (wire.Identity{Kind: wire.PrincipalNone, Endpoint: h.Endpoint}) || string(d.Body) != "over tcp" {
		t.Fatalf("delivery from TCP: sender %+v body %q", d.Sender, d.Body)
	}
	local.sendOK(t, "shared", "over unix")
	if d := rc.recv(t, "shared", wire.FlagAutoAck); d.Sender.Kind != wire.PrincipalUnix {
		t.Fatalf("delivery over TCP from a Unix sender: %+v", d.Sender)
	}
}

// A principal of kind none is "other" to the default authorizer, with no
// root bypass even though its uid field is 0.
func TestV2DefaultAuthorizerTreatsKindNoneAsOther(t *testing.T) {
	b := startBroker(t, nil)
	remote := dialTCP(t, serveTCP(t, b, nil))
	local := dialRaw(t, b.socket)
	local.create(t, wire.Create{Name: []byte("private"), Capacity: -1, Mode: 0o660})
	local.create(t, wire.Create{Name: []byte("dropbox"), Capacity: -1, Mode: 0o602})
	hd, p := remote.send(t, 0, wire.Send{Target: []byte("private"), Msgs: []wire.SendMsg{{Type: 1}}})
	must(t, "SEND to 0660 from kind none", hd, p, wire.CodePermission)
	remote.sendOK(t, "dropbox", "ok")
	hd, p = remote.roundTrip(t, wire.OpRecv, 0, (&wire.Recv{Name: []byte("dropbox")}).Append(nil))
	must(t, "RECV from 0602 from kind none", hd, p, wire.CodePermission)
	hd, p = remote.roundTrip(t, wire.OpDestroy, 0, (&wire.Name{Name: []byte("dropbox")}).Append(nil))
	must(t, "DESTROY from kind none", hd, p, wire.CodePermission)
	// Its own inbox is its own.
	inbox := wire.AppendInbox(nil, remote.hello.Endpoint)
	local.sendOK(t, string(inbox), "hi")
	if d := remote.recv(t, string(inbox), wire.FlagAutoAck); string(d.Body) != "hi" {
		t.Fatalf("inbox: %q", d.Body)
	}
}

// tagCredentials names every TCP peer "tls" with a fixed subject, as a
// TLS listener's credential function will.
func tagCredentials(nc net.Conn) (broker.Principal, error) {
	return broker.Principal{Kind: broker.KindTLS, Subject: "CN=test"}, nil
}

// prefixAuthorizer allows TLS principals only under "tls/", and defers to
// the mode bits otherwise.
type prefixAuthorizer struct{ asked chan broker.Action }

var errNotYours = errors.New("not under tls/")

func (a prefixAuthorizer) Authorize(p broker.Principal, obj broker.Object, act broker.Action) error {
	select {
	case a.asked <- act:
	default:
	}
	if p.Kind == broker.KindTLS {
		if act == broker.ActList || act == broker.ActCreate && strings.HasPrefix(obj.Name, "tls/") ||
			strings.HasPrefix(obj.Name, "tls/") || obj.Inbox != 0 && obj.Inbox == p.Endpoint {
			return nil
		}
		return errNotYours
	}
	return broker.ModeAuthorizer{}.Authorize(p, obj, act)
}

func TestV2ConfigAuthorizerAndCredentialsReplaceTheDefaults(t *testing.T) {
	az := prefixAuthorizer{asked: make(chan broker.Action, 64)}
	b := startBroker(t, func(c *broker.Config) { c.Authorizer = az })
	rc := dialTCP(t, serveTCP(t, b, tagCredentials))
	if rc.hello.Principal.Kind != wire.PrincipalTLS {
		t.Fatalf("principal %+v, want the credential function's kind", rc.hello.Principal)
	}
	rc.create(t, wire.Create{Name: []byte("tls/jobs"), Capacity: -1, Mode: 0o600})
	hd, p := rc.roundTrip(t, wire.OpCreate, 0, (&wire.Create{Name: []byte("other"), Mode: 0o666}).Append(nil))
	must(t, "CREATE outside tls/", hd, p, wire.CodePermission)
	rc.sendOK(t, "tls/jobs", "x")
	if d := rc.recv(t, "tls/jobs", wire.FlagAutoAck); d.Sender.Kind != wire.PrincipalTLS {
		t.Fatalf("sender %+v", d.Sender)
	}
	local := dialRaw(t, b.socket)
	local.create(t, wire.Create{Name: []byte("open"), Capacity: -1, Mode: 0o666})
	hd, p = rc.send(t, 0, wire.Send{Target: []byte("open"), Msgs: []wire.SendMsg{{Type: 1}}})
	must(t, "SEND outside tls/", hd, p, wire.CodePermission)
	local.sendOK(t, "open", "unix is mode bits")
	if len(az.asked) == 0 {
		t.Fatal("the configured Authorizer was never asked")
	}
}

// readWithFDs reads one whole frame from a Unix socket with recvmsg,
// returning its header, payload and the descriptors that came with it.
func readWithFDs(t *testing.T, uc *net.UnixConn) (wire.Header, []byte, []int) {
	t.Helper()
	uc.SetReadDeadline(time.Now().Add(hangGuard))
	buf := make([]byte, 64<<10)
	oob := make([]byte, unix.CmsgSpace(8*4))
	n, oobn, _, _, err := uc.ReadMsgUnix(buf[:wire.HeaderSize], oob)
	if err != nil || n != wire.HeaderSize {
		t.Fatalf("recvmsg: %d bytes, %v", n, err)
	}
	var fds []int
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		got, err := unix.ParseUnixRights(&m)
		if err != nil {
			t.Fatal(err)
		}
		fds = append(fds, got...)
	}
	size := int(binary.LittleEndian.Uint32(buf))
	if _, err := io.ReadFull(uc, buf[wire.HeaderSize:size+4]); err != nil {
		t.Fatal(err)
	}
	hd := wire.Header{Op: wire.Op(buf[4]), Flags: buf[5], Status: wire.Code(binary.LittleEndian.Uint16(buf[6:])), Request: binary.LittleEndian.Uint64(buf[8:])}
	return hd, append([]byte(nil), buf[wire.HeaderSize:size+4]...), fds
}

func TestV2ChannelAndAttachPassDescriptorsOverUnix(t *testing.T) {
	b := startBroker(t, nil)
	nc, err := net.Dial("unix", b.socket)
	if err != nil {
		t.Fatal(err)
	}
	uc := nc.(*net.UnixConn)
	defer uc.Close()
	hello := wire.Hello{MinVersion: 2, MaxVersion: 2, Caps: wire.CapDescriptors}
	frame := func(op wire.Op, req uint64, p []byte) []byte {
		return append(wire.AppendHeader(nil, wire.Header{Op: op, Request: req}, len(p)), p...)
	}
	uc.Write(frame(wire.OpHello, 1, hello.Append(nil)))
	_, p, _ := readWithFDs(t, uc)
	var hr wire.HelloReply
	if err := hr.Decode(p); err != nil || hr.Caps != wire.CapDescriptors {
		t.Fatalf("HELLO: caps %#x (%v)", hr.Caps, err)
	}
	inbox := wire.AppendInbox(nil, hr.Endpoint)
	uc.Write(frame(wire.OpChannel, 2, (&wire.Channel{Target: inbox, Type: 7, Timeout: 0}).Append(nil)))
	hd, p, fds := readWithFDs(t, uc)
	if hd.Op != wire.OpChannel|wire.OpReply || hd.Status != wire.OK || len(fds) != 2 {
		t.Fatalf("CHANNEL reply %s %s with %d descriptors, want OK with 2", hd.Op, hd.Status, len(fds))
	}
	var sr wire.SendReply
	if err := sr.Decode(p); err != nil || len(sr.IDs) != 1 {
		t.Fatalf("CHANNEL reply payload: %+v %v", sr, err)
	}
	for _, fd := range fds {
		unix.Close(fd)
	}
	uc.Write(frame(wire.OpRecv, 3, (&wire.Recv{Name: inbox, Type: 7}).Append(nil)))
	hd, p, _ = readWithFDs(t, uc)
	var d wire.Delivery
	if err := d.Decode(p); err != nil || hd.Status != wire.OK || d.Flags&wire.DeliveryChannelOffer == 0 || len(d.Body) != wire.TokenSize {
		t.Fatalf("the offer: %s flags %#x body %d bytes (%v)", hd.Status, d.Flags, len(d.Body), err)
	}
	var at wire.Attach
	copy(at.Token[:], d.Body)
	uc.Write(frame(wire.OpAttach, 4, at.Append(nil)))
	hd, _, fds = readWithFDs(t, uc)
	if hd.Op != wire.OpAttach|wire.OpReply || hd.Status != wire.OK || len(fds) != 2 {
		t.Fatalf("ATTACH reply %s %s with %d descriptors, want OK with 2", hd.Op, hd.Status, len(fds))
	}
	for _, fd := range fds {
		unix.Close(fd)
	}
	uc.Write(frame(wire.OpAttach, 5, at.Append(nil)))
	if hd, _, fds = readWithFDs(t, uc); hd.Status != wire.CodeNotFound || len(fds) != 0 {
		t.Fatalf("second ATTACH: %s with %d descriptors, want NOT_FOUND", hd.Status, len(fds))
	}
	// Without DESCRIPTORS asked for, CHANNEL is INVALID even on a Unix socket.
	rc := dialRaw0(t, b.socket)
	rc.handshake(t, 0)
	hd, p = rc.roundTrip(t, wire.OpChannel, 0, (&wire.Channel{Target: inbox, Type: 1}).Append(nil))
	must(t, "CHANNEL without the capability", hd, p, wire.CodeInvalid)
}
