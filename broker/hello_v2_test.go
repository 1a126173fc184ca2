package broker_test

import (
	"encoding/binary"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox/broker"
	"github.com/postbox-ipc/postbox/wire"
)

func TestV2HelloFromV1ClientRepliesVersionAndCloses(t *testing.T) {
	b := startBroker(t, nil)
	rc := dialRaw0(t, b.socket)
	// A v1 HELLO: magic, min 1, max 1, client string, nothing more.
	p := wire.AppendU32(nil, wire.Magic)
	p = wire.AppendU16(wire.AppendU16(p, 1), 1)
	p = wire.AppendString(p, "v1-client")
	f, _ := rc.frame(wire.OpHello, 0, p)
	rc.write(t, f)
	if codes := rc.expectClosed(t); len(codes) != 1 || codes[0] != wire.CodeVersion {
		t.Fatalf("v1 HELLO: replies %v, want one %s", codes, wire.CodeVersion)
	}
}

func TestV2HelloClientNameOver255IsMalformedAndCloses(t *testing.T) {
	b := startBroker(t, nil)
	rc := dialRaw0(t, b.socket)
	hello := wire.Hello{MinVersion: 2, MaxVersion: 2}
	p := hello.Append(nil)
	// Patch in a 256-byte client name after the 8 bytes of magic and versions.
	long := wire.AppendString(nil, strings.Repeat("n", 256))
	p = append(append(append([]byte(nil), p[:8]...), long...), p[10:]...)
	f, _ := rc.frame(wire.OpHello, 0, p)
	rc.write(t, f)
	if codes := rc.expectClosed(t); len(codes) != 1 || codes[0] != wire.CodeMalformed {
		t.Fatalf("HELLO with a 256-byte name: replies %v, want one %s", codes, wire.CodeMalformed)
	}
	// 255 is fine.
	rc = dialRaw0(t, b.socket)
	hello.Client = []byte(strings.Repeat("n", 255))
	hd, rp := rc.roundTrip(t, wire.OpHello, 0, hello.Append(nil))
	must(t, "HELLO with a 255-byte name", hd, rp, wire.OK)
}

func TestV2HelloReplyCarriesEpochSessionPrincipalAndLimits(t *testing.T) {
	b := startBroker(t, nil)
	rc := dialRaw(t, b.socket)
	h := rc.hello
	if h.Version != 2 || h.Epoch == 0 || h.Epoch>>32 != 0 || h.Epoch != b.Epoch() {
		t.Fatalf("version %d epoch %#x (broker %#x)", h.Version, h.Epoch, b.Epoch())
	}
	if h.Endpoint>>32 != h.Epoch || h.Endpoint&0xffffffff == 0 {
		t.Fatalf("endpoint %#x does not carry epoch %#x", h.Endpoint, h.Epoch)
	}
	if h.Session == (wire.Session{}) {
		t.Fatal("a zero session was not assigned one")
	}
	if h.Caps != wire.CapDescriptors {
		t.Fatalf("caps %#x on a Unix socket, want DESCRIPTORS", h.Caps)
	}
	want := wire.Identity{Kind: wire.PrincipalUnix, UID: uint32(os.Getuid()), GID: uint32(os.Getgid()), PID: int32(os.Getpid()), Endpoint: h.Endpoint}
	if h.Principal != want {
		t.Fatalf("principal %+v, want %+v", h.Principal, want)
	}
	if h.MaxFrame != 16<<20 || h.MaxMessage != 4<<20 {
		t.Fatalf("max frame %d, max message %d: want the 16 MiB / 4 MiB defaults", h.MaxFrame, h.MaxMessage)
	}
	// A session given is kept; unknown caps are not granted.
	rc2 := dialRaw0(t, b.socket)
	s := wire.Session{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	hello := wire.Hello{MinVersion: 2, MaxVersion: 2, Caps: 1<<63 | 1<<5, Session: s}
	hd, p := rc2.roundTrip(t, wire.OpHello, 0, hello.Append(nil))
	must(t, "HELLO", hd, p, wire.OK)
	var r wire.HelloReply
	r.Decode(p)
	if r.Session != s || r.Caps != 0 {
		t.Fatalf("session %x caps %#x, want %x and none", r.Session, r.Caps, s)
	}
	if r.Endpoint == h.Endpoint || r.Endpoint>>32 != h.Epoch {
		t.Fatalf("second endpoint %#x", r.Endpoint)
	}
}

func TestV2FrameSizeBelowTwelveClosesWithoutReply(t *testing.T) {
	b := startBroker(t, nil)
	for _, size := range []uint32{0, 4, 11} {
		for _, afterHello := range []bool{false, true} {
			rc := dialRaw0(t, b.socket)
			if afterHello {
				rc.handshake(t, 0)
			}
			bad := binary.LittleEndian.AppendUint32(nil, size)
			bad = append(bad, byte(wire.OpPing), 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0)
			rc.write(t, bad)
			if codes := rc.expectClosed(t); len(codes) != 0 {
				t.Fatalf("size %d (after HELLO %v): replies %v, want none", size, afterHello, codes)
			}
		}
	}
	dialRaw(t, b.socket).ping(t)
}

func TestV2UnknownOpRepliesUnknownOpWithReplyBit(t *testing.T) {
	b := startBroker(t, nil)
	rc := dialRaw(t, b.socket)
	for _, op := range []wire.Op{0x7f, 0x03, 0x3f, 0x5f, 0x60} {
		hd, p := rc.roundTrip(t, op, 0, []byte("whatever"))
		if hd.Op != op|wire.OpReply || hd.Push() {
			t.Fatalf("op %#x: reply op %#x flags %#x", uint8(op), uint8(hd.Op), hd.Flags)
		}
		must(t, fmt.Sprintf("op %#x", uint8(op)), hd, p, wire.CodeUnknownOp)
		rc.ping(t)
	}
}

func TestV2PushFlagFromClientIsMalformed(t *testing.T) {
	b := startBroker(t, nil)
	rc := dialRaw(t, b.socket)
	hd, p := rc.roundTrip(t, wire.OpPing, wire.FlagPush, nil)
	must(t, "PING with PUSH", hd, p, wire.CodeMalformed)
	hd, p = rc.roundTrip(t, wire.OpDeliver, wire.FlagPush, nil)
	must(t, "DELIVER from a client", hd, p, wire.CodeMalformed)
	rc.ping(t)
}

func TestV2PushFlagOnFramesWithoutReplyIsDroppedSilently(t *testing.T) {
	b := startBroker(t, nil)
	rc := dialRaw(t, b.socket)
	for _, f := range [][]byte{
		wire.AppendHeader(nil, wire.Header{Op: wire.OpCredit, Flags: wire.FlagPush, Request: 50}, 4),
		wire.AppendHeader(nil, wire.Header{Op: wire.OpCancel, Flags: wire.FlagPush, Request: 51}, 0),
	} {
		if len(f) == wire.HeaderSize && f[4] == byte(wire.OpCredit) {
			f = append(f, 1, 0, 0, 0)
		}
		rc.write(t, f)
	}
	ack := (&wire.Leases{Ranges: []wire.LeaseRange{{First: 1, N: 1}}}).Append(nil)
	rc.write(t, append(wire.AppendHeader(nil, wire.Header{Op: wire.OpAck, Flags: wire.FlagPush | wire.FlagNoReply, Request: 52}, len(ack)), ack...))
	f, id := rc.frame(wire.OpPing, 0, nil)
	rc.write(t, f)
	hd, _, err := rc.next(t)
	if err != nil || hd.Request != id {
		t.Fatalf("first frame back: %s to %d (%v), want PING's reply", hd.Op, hd.Request, err)
	}
}

func TestV2UrgentRequestGetsUrgentReply(t *testing.T) {
	b := startBroker(t, nil)
	rc := dialRaw(t, b.socket)
	hd, p := rc.roundTrip(t, wire.OpPing, wire.FlagUrgent, nil)
	must(t, "urgent PING", hd, p, wire.OK)
	if !hd.Urgent() {
		t.Fatal("the reply to an URGENT PING is not URGENT")
	}
	hd, _ = rc.roundTrip(t, wire.OpPing, 0, nil)
	if hd.Urgent() {
		t.Fatal("the reply to a plain PING is URGENT")
	}
}

// A consumer that does not read has a backlog of deliveries queued in the
// broker; a CANCEL of a blocked RECV, sent URGENT, is answered ahead of
// all of them.
func TestV2UrgentCancelReplyOvertakesQueuedDeliveries(t *testing.T) {
	// A backlog bound above the flood, so that all of it is handed out
	// (below it the consumer stalls: backlog_test.go).
	b := startBroker(t, func(c *broker.Config) { c.MaxConnBacklog = 64 << 20 })
	rc := dialRaw(t, b.socket)
	rc.create(t, wire.Create{Name: []byte("quiet"), Capacity: -1})
	// A blocked RECV on the quiet mailbox.
	f, recvID := rc.frame(wire.OpRecv, 0, (&wire.Recv{Name: []byte("quiet"), Timeout: -1}).Append(nil))
	rc.write(t, f)
	consID := floodConsumer(t, b, rc)
	cancel, _ := rc.frame(wire.OpCancel, wire.FlagUrgent, nil)
	binary.LittleEndian.PutUint64(cancel[8:], recvID)
	rc.write(t, cancel)
	time.Sleep(50 * time.Millisecond) // let the broker queue the reply
	hd, p, delivered := deliveriesUntilReply(t, rc, consID, recvID)
	must(t, "canceled RECV", hd, p, wire.CodeCanceled)
	if !hd.Urgent() {
		t.Fatal("the final reply of a canceled request is not URGENT")
	}
	if delivered >= floodN {
		t.Fatalf("the CANCEL reply came after all %d deliveries", delivered)
	}
	t.Logf("the CANCEL reply overtook %d of %d deliveries", floodN-delivered, floodN)
}

// The reply that ends a CONSUME is the last frame with its id, even when
// a CANCEL ended it while many of its deliveries were still queued: it is
// never sent in the urgent lane, where it could overtake them.
func TestV2CanceledConsumeReplyFollowsEveryQueuedDelivery(t *testing.T) {
	// A backlog bound above the flood, so that every delivery is queued
	// for the consumer rather than stalled in the mailbox.
	b := startBroker(t, func(c *broker.Config) { c.MaxConnBacklog = 64 << 20 })
	rc := dialRaw(t, b.socket)
	consID := floodConsumer(t, b, rc)
	cancel, _ := rc.frame(wire.OpCancel, wire.FlagUrgent, nil)
	binary.LittleEndian.PutUint64(cancel[8:], consID)
	rc.write(t, cancel)
	hd, p, delivered := deliveriesUntilReply(t, rc, consID, consID)
	must(t, "canceled CONSUME", hd, p, wire.CodeCanceled)
	if hd.Urgent() {
		t.Fatal("the CONSUME-reply came in the urgent lane")
	}
	if delivered != floodN {
		t.Fatalf("the CONSUME-reply came after %d of %d deliveries: the rest would be lost", delivered, floodN)
	}
}

// floodN is how many 256 KiB messages floodConsumer queues: 16 MiB, far
// more than the socket buffers hold.
const floodN = 64

// floodConsumer creates mailbox "flood", starts an auto-ack CONSUME on rc
// with plenty of credit, sends it floodN big messages from another
// connection while rc reads nothing, and waits until all of them are
// handed to the consumer (queued in rc's output). It returns the
// CONSUME's request id.
func floodConsumer(t *testing.T, b *testBroker, rc *rawConn) uint64 {
	t.Helper()
	rc.create(t, wire.Create{Name: []byte("flood"), Capacity: -1})
	f, consID := rc.frame(wire.OpConsume, wire.FlagAutoAck, (&wire.Consume{Name: []byte("flood"), Credit: 1 << 20}).Append(nil))
	rc.write(t, f)
	sender := dialRaw(t, b.socket)
	body := make([]byte, 256<<10)
	for range floodN / 8 {
		m := wire.Send{Target: []byte("flood")}
		for range 8 {
			m.Msgs = append(m.Msgs, wire.SendMsg{Type: 1, Body: body})
		}
		hd, p := sender.send(t, 0, m)
		must(t, "flood", hd, p, wire.OK)
	}
	waitInfo(t, sender, "flood", func(i wire.MailboxInfo) bool { return i.Depth == 0 && i.Received == floodN })
	return consID
}

// deliveriesUntilReply reads rc's frames until the reply to request id,
// counting the DELIVERs of consumer consID before it; any other frame
// fails t.
func deliveriesUntilReply(t *testing.T, rc *rawConn, consID, id uint64) (wire.Header, []byte, int) {
	t.Helper()
	delivered := 0
	for {
		hd, p, err := rc.next(t)
		if err != nil {
			t.Fatal(err)
		}
		if hd.Push() {
			if hd.Op != wire.OpDeliver || hd.Request != consID {
				t.Fatalf("pushed %s for request %d", hd.Op, hd.Request)
			}
			delivered++
			continue
		}
		if hd.Request != id {
			t.Fatalf("unexpected reply %s to %d", hd.Op, hd.Request)
		}
		return hd, p, delivered
	}
}
