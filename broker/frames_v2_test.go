package broker_test

import (
	"bytes"
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

func TestV2SendBatchAdmitsAllInOrder(t *testing.T) {
	b := startBroker(t, nil)
	rc := dialRaw(t, b.socket)
	rc.create(t, wire.Create{Name: []byte("q"), Capacity: -1})
	ids := rc.sendOK(t, "q", "a", "bb", "ccc")
	if ids[0] != 1 || ids[1] != 2 || ids[2] != 3 {
		t.Fatalf("ids %v, want 1 2 3", ids)
	}
	for i, want := range []string{"a", "bb", "ccc"} {
		d := rc.recv(t, "q", wire.FlagAutoAck)
		if string(d.Body) != want || d.ID != ids[i] {
			t.Fatalf("message %d: %q id %d", i, d.Body, d.ID)
		}
	}
}

func TestV2SendBatchPartlyAdmittedRepliesDone(t *testing.T) {
	b := startBroker(t, nil)
	rc := dialRaw(t, b.socket)
	rc.create(t, wire.Create{Name: []byte("two"), Capacity: 2})
	m := wire.Send{Target: []byte("two"), Timeout: 0, Msgs: []wire.SendMsg{{Type: 1, Body: []byte("1")}, {Type: 1, Body: []byte("2")}, {Type: 1, Body: []byte("3")}}}
	hd, p := rc.send(t, 0, m)
	must(t, "batch of 3 into capacity 2", hd, p, wire.CodeFull)
	if _, done := wire.DecodeError(p); done != 2 {
		t.Fatalf("DONE %d, want 2", done)
	}
	for _, want := range []string{"1", "2"} {
		if d := rc.recv(t, "two", wire.FlagAutoAck); string(d.Body) != want {
			t.Fatalf("got %q, want %q", d.Body, want)
		}
	}
	hd, p = rc.roundTrip(t, wire.OpRecv, 0, (&wire.Recv{Name: []byte("two")}).Append(nil))
	must(t, "third message", hd, p, wire.CodeEmpty)
}

func TestV2SendBatchWithABadMessageAdmitsNone(t *testing.T) {
	b := startBroker(t, func(c *broker.Config) { c.MaxMessage = 100; c.MaxFrame = 64 << 10 })
	rc := dialRaw(t, b.socket)
	rc.create(t, wire.Create{Name: []byte("q"), Capacity: -1})
	ok := wire.SendMsg{Type: 1, Body: []byte("fine")}
	for name, c := range map[string]struct {
		bad  wire.SendMsg
		code wire.Code
	}{
		"type 0":                  {wire.SendMsg{Type: 0, Body: []byte("x")}, wire.CodeInvalid},
		"body over max":           {wire.SendMsg{Type: 1, Body: make([]byte, 101)}, wire.CodeTooLarge},
		"body plus headers over":  {wire.SendMsg{Type: 1, Body: make([]byte, 90), Headers: wire.AppendHeaders(nil, &wire.HeaderFields{CorrelationID: []byte("0123456789")})}, wire.CodeTooLarge},
		"invalid headers (empty)": {wire.SendMsg{Type: 1, Headers: []byte{2, 0, 0, 0}}, wire.CodeInvalid},
	} {
		m := wire.Send{Target: []byte("q"), Msgs: []wire.SendMsg{ok, ok, c.bad, ok}}
		hd, p := rc.send(t, 0, m)
		must(t, name, hd, p, c.code)
		if _, done := wire.DecodeError(p); done != 0 {
			t.Fatalf("%s: DONE %d, want 0", name, done)
		}
	}
	hd, p := rc.roundTrip(t, wire.OpRecv, 0, (&wire.Recv{Name: []byte("q")}).Append(nil))
	must(t, "after refused batches", hd, p, wire.CodeEmpty)
	// RECEIPT needs exactly one message.
	hd, p = rc.send(t, wire.FlagReceipt, wire.Send{Target: []byte("q"), Msgs: []wire.SendMsg{ok, ok}})
	must(t, "RECEIPT with 2 messages", hd, p, wire.CodeInvalid)
}

func TestV2SendBatchWaitsForRoomMessageByMessage(t *testing.T) {
	b := startBroker(t, nil)
	rc := dialRaw(t, b.socket)
	rc.create(t, wire.Create{Name: []byte("one"), Capacity: 1})
	sender := dialRaw(t, b.socket)
	m := wire.Send{Target: []byte("one"), Timeout: -1}
	for i := range 4 {
		m.Msgs = append(m.Msgs, wire.SendMsg{Type: 1, Body: []byte{byte('a' + i)}})
	}
	f, id := sender.frame(wire.OpSend, 0, m.Append(nil))
	sender.write(t, f)
	for i := range 4 {
		d := rc.recv(t, "one", wire.FlagAutoAck)
		if string(d.Body) != string(rune('a'+i)) {
			t.Fatalf("message %d: %q", i, d.Body)
		}
	}
	hd, p := sender.reply(t, id)
	must(t, "blocked batch", hd, p, wire.OK)
	var r wire.SendReply
	r.Decode(p)
	if len(r.IDs) != 4 || r.IDs[0] != 1 || r.IDs[3] != 4 {
		t.Fatalf("ids %v", r.IDs)
	}
}

func TestV2SendBatchTimesOutWithDone(t *testing.T) {
	b := startBroker(t, nil)
	rc := dialRaw(t, b.socket)
	rc.create(t, wire.Create{Name: []byte("one"), Capacity: 1})
	m := wire.Send{Target: []byte("one"), Timeout: int64(50 * time.Millisecond), Msgs: []wire.SendMsg{{Type: 1}, {Type: 1}, {Type: 1}}}
	hd, p := rc.send(t, 0, m)
	must(t, "batch of 3 into capacity 1", hd, p, wire.CodeTimeout)
	if _, done := wire.DecodeError(p); done != 1 {
		t.Fatalf("DONE %d, want 1", done)
	}
}

func TestV2AckRangesReportStaleLeasesAndApplyTheRest(t *testing.T) {
	b := startBroker(t, nil)
	rc := dialRaw(t, b.socket)
	rc.create(t, wire.Create{Name: []byte("q"), Capacity: -1})
	rc.sendOK(t, "q", "1", "2", "3", "4", "5")
	var ls []uint64
	for range 5 {
		ls = append(ls, rc.recv(t, "q", 0).Lease)
	}
	// Ack the middle lease alone first: it is then stale in the range.
	hd, p := rc.roundTrip(t, wire.OpAck, 0, leases(wire.LeaseRange{First: ls[2], N: 1}))
	must(t, "ACK", hd, p, wire.OK)
	rs := wire.RangesOf(append([]uint64(nil), ls...), nil)
	hd, p = rc.roundTrip(t, wire.OpAck, 0, (&wire.Leases{Ranges: rs}).Append(nil))
	must(t, "ACK of all five", hd, p, wire.OK)
	var r wire.AckReply
	if err := r.Decode(p); err != nil {
		t.Fatal(err)
	}
	if r.Done != 4 || len(r.Failed) != 1 || r.Failed[0] != (wire.LeaseFailure{Lease: ls[2], Status: wire.CodeStaleLease}) {
		t.Fatalf("ack reply %+v, want 4 done and lease %d stale", r, ls[2])
	}
	hd, p = rc.roundTrip(t, wire.OpStat, 0, (&wire.Name{Name: []byte("q")}).Append(nil))
	must(t, "STAT", hd, p, wire.OK)
	var info wire.MailboxInfo
	info.Decode(p)
	if info.InFlight != 0 || info.Depth != 0 || info.Received != 5 {
		t.Fatalf("after acks: %+v", info)
	}
	// Overlapping ranges: the frame as a whole is MALFORMED.
	hd, p = rc.roundTrip(t, wire.OpAck, 0, leases(wire.LeaseRange{First: 1, N: 3}, wire.LeaseRange{First: 2, N: 1}))
	must(t, "overlapping ranges", hd, p, wire.CodeMalformed)
}

func TestV2NackRangesRedeliver(t *testing.T) {
	b := startBroker(t, nil)
	rc := dialRaw(t, b.socket)
	rc.create(t, wire.Create{Name: []byte("q"), Capacity: -1})
	rc.sendOK(t, "q", "1", "2")
	l1, l2 := rc.recv(t, "q", 0).Lease, rc.recv(t, "q", 0).Lease
	hd, p := rc.roundTrip(t, wire.OpNack, 0, (&wire.Leases{Ranges: wire.RangesOf([]uint64{l1, l2}, nil)}).Append(nil))
	must(t, "NACK", hd, p, wire.OK)
	var r wire.AckReply
	r.Decode(p)
	if r.Done != 2 || len(r.Failed) != 0 {
		t.Fatalf("nack reply %+v", r)
	}
	if d := rc.recv(t, "q", wire.FlagAutoAck); string(d.Body) != "1" || d.Redeliveries != 1 {
		t.Fatalf("redelivered %q redeliveries %d", d.Body, d.Redeliveries)
	}
}

func TestV2ListPagesThroughMailboxes(t *testing.T) {
	b := startBroker(t, nil)
	rc := dialRaw(t, b.socket)
	var want []string
	for i := range 7 {
		name := fmt.Sprintf("m%02d", i)
		rc.create(t, wire.Create{Name: []byte(name), Capacity: -1})
		want = append(want, name)
	}
	inbox := fmt.Sprintf("@%d", rc.hello.Endpoint)
	want = append([]string{inbox}, want...) // '@' sorts before 'm'
	var got []string
	cursor := []byte(nil)
	pages := 0
	for {
		hd, p := rc.roundTrip(t, wire.OpList, 0, (&wire.List{Cursor: cursor, Limit: 3}).Append(nil))
		must(t, "LIST", hd, p, wire.OK)
		var r wire.ListReply
		if err := r.Decode(p); err != nil {
			t.Fatal(err)
		}
		pages++
		for _, info := range r.Infos {
			got = append(got, string(info.Name))
		}
		if len(r.Next) == 0 {
			break
		}
		cursor = append([]byte(nil), r.Next...)
	}
	if pages != 3 || strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("%d pages: %v, want 3 pages of %v", pages, got, want)
	}
	// An empty LIST payload is the first page of up to 256.
	hd, p := rc.roundTrip(t, wire.OpList, 0, nil)
	must(t, "LIST without payload", hd, p, wire.OK)
	var r wire.ListReply
	r.Decode(p)
	if len(r.Infos) != len(want) || len(r.Next) != 0 {
		t.Fatalf("LIST without payload: %d entries, next %q", len(r.Infos), r.Next)
	}
}

func TestV2HeadersRoundTripByteForByte(t *testing.T) {
	b := startBroker(t, nil)
	rc := dialRaw(t, b.socket)
	rc.create(t, wire.Create{Name: []byte("q"), Capacity: -1})
	hdrs := wire.AppendHeaders(nil, &wire.HeaderFields{ReplyTo: []byte(fmt.Sprintf("@%d", rc.hello.Endpoint)),
		CorrelationID: []byte("c-1"), Deadline: 12345, ContentType: []byte("text/plain"),
		User: []wire.KV{{Key: []byte("k"), Value: []byte("v")}, {Key: []byte("k"), Value: []byte("w")}}})
	hdrs = append(hdrs, 0x99, 0x00, 2, 0, 'x', 'y') // a reserved tag: passed through
	m := wire.Send{Target: []byte("q"), Msgs: []wire.SendMsg{{Type: 1, Headers: hdrs, Body: []byte("body")}, {Type: 2, Body: []byte("plain")}}}
	hd, p := rc.send(t, 0, m)
	must(t, "SEND with headers", hd, p, wire.OK)
	d := rc.recv(t, "q", wire.FlagAutoAck)
	if !bytes.Equal(d.Headers, hdrs) || string(d.Body) != "body" {
		t.Fatalf("headers %x body %q, want %x", d.Headers, d.Body, hdrs)
	}
	if d.Sender.Kind != wire.PrincipalUnix || d.Sender.Endpoint != rc.hello.Endpoint {
		t.Fatalf("sender %+v", d.Sender)
	}
	if d = rc.recv(t, "q", wire.FlagAutoAck); len(d.Headers) != 0 || string(d.Body) != "plain" {
		t.Fatalf("second message headers %x body %q", d.Headers, d.Body)
	}
}

func TestV2DurableHeadersAndKindSurviveRestartAndStaleInboxIsNotFound(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, func(c *broker.Config) { c.DataDir = dir; c.NoSync = true })
	rc := dialRaw(t, b.socket)
	rc.create(t, wire.Create{Name: []byte("d"), Capacity: -1, Durable: true})
	hdrs := wire.AppendHeaders(nil, &wire.HeaderFields{CorrelationID: []byte("kept"), ContentType: []byte("a/b")})
	hd, p := rc.send(t, 0, wire.Send{Target: []byte("d"), Msgs: []wire.SendMsg{{Type: 3, Headers: hdrs, Body: []byte("durable")}, {Type: 3, Body: []byte("bare")}}})
	must(t, "durable SEND", hd, p, wire.OK)
	oldInbox := fmt.Sprintf("@%d", rc.hello.Endpoint)
	oldEpoch := rc.hello.Epoch

	b = b.restart(t)
	rc = dialRaw(t, b.socket)
	if rc.hello.Epoch == oldEpoch {
		t.Logf("the new epoch equals the old one (a 2^-32 chance)")
	}
	d := rc.recv(t, "d", wire.FlagAutoAck)
	if !bytes.Equal(d.Headers, hdrs) || string(d.Body) != "durable" || d.Type != 3 || d.Sender.Kind != wire.PrincipalUnix {
		t.Fatalf("after restart: headers %x body %q type %d sender %+v", d.Headers, d.Body, d.Type, d.Sender)
	}
	if d = rc.recv(t, "d", wire.FlagAutoAck); len(d.Headers) != 0 || string(d.Body) != "bare" {
		t.Fatalf("after restart: second headers %x body %q", d.Headers, d.Body)
	}
	hd, p = rc.send(t, 0, wire.Send{Target: []byte(oldInbox), Msgs: []wire.SendMsg{{Type: 1}}})
	must(t, "SEND to an inbox of the previous run", hd, p, wire.CodeNotFound)
}

func TestV2AddressesMalformedAreInvalidDeadAreNotFound(t *testing.T) {
	b := startBroker(t, nil)
	rc := dialRaw(t, b.socket)
	for _, addr := range []string{"@", "@abc", "@1x", "@-1", "@007", "@0", "@18446744073709551616", "a*b", "a>b", "a#", "!x", ""} {
		hd, p := rc.send(t, 0, wire.Send{Target: []byte(addr), Msgs: []wire.SendMsg{{Type: 1}}})
		must(t, "SEND to "+addr, hd, p, wire.CodeInvalid)
		hd, p = rc.roundTrip(t, wire.OpRecv, 0, (&wire.Recv{Name: []byte(addr)}).Append(nil))
		must(t, "RECV from "+addr, hd, p, wire.CodeInvalid)
	}
	for _, addr := range []string{"@1", "@18446744073709551615", fmt.Sprintf("@%d", rc.hello.Endpoint+1000), "nobody"} {
		hd, p := rc.send(t, 0, wire.Send{Target: []byte(addr), Msgs: []wire.SendMsg{{Type: 1}}})
		must(t, "SEND to "+addr, hd, p, wire.CodeNotFound)
	}
	for _, name := range []string{"a*b", "x>", "#", "!"} {
		hd, p := rc.roundTrip(t, wire.OpCreate, 0, (&wire.Create{Name: []byte(name), Mode: 0o600}).Append(nil))
		must(t, "CREATE "+name, hd, p, wire.CodeInvalid)
	}
}

func TestV2CreateDeadLetterEmptyInvalidMissingNotFound(t *testing.T) {
	b := startBroker(t, nil)
	rc := dialRaw(t, b.socket)
	for name, c := range map[string]struct {
		dl   []byte
		code wire.Code
	}{
		"empty":   {[]byte{}, wire.CodeInvalid},
		"invalid": {[]byte("no*pe"), wire.CodeInvalid},
		"inbox":   {[]byte("@5"), wire.CodeInvalid},
		"missing": {[]byte("nowhere"), wire.CodeNotFound},
	} {
		hd, p := rc.roundTrip(t, wire.OpCreate, 0, (&wire.Create{Name: []byte("src"), Mode: 0o600, DeadLetter: c.dl}).Append(nil))
		must(t, "DEAD_LETTER "+name, hd, p, c.code)
	}
	// An unknown critical option is INVALID.
	p := (&wire.Create{Name: []byte("src"), Mode: 0o600}).Append(nil)
	p = wire.AppendExt(p, 0x8fff, nil)
	hd, rp := rc.roundTrip(t, wire.OpCreate, 0, p)
	must(t, "unknown critical option", hd, rp, wire.CodeInvalid)
	// An unknown non-critical one is skipped.
	p = (&wire.Create{Name: []byte("src"), Mode: 0o600}).Append(nil)
	p = wire.AppendExt(p, 0x0fff, []byte("x"))
	hd, rp = rc.roundTrip(t, wire.OpCreate, 0, p)
	must(t, "unknown non-critical option", hd, rp, wire.OK)
}

func TestV2StatReplyIsMailboxInfo(t *testing.T) {
	b := startBroker(t, nil)
	rc := dialRaw(t, b.socket)
	rc.create(t, wire.Create{Name: []byte("s"), Capacity: 5, MaxDeliveries: 3})
	rc.sendOK(t, "s", "x")
	hd, p := rc.roundTrip(t, wire.OpStat, 0, (&wire.Name{Name: []byte("s")}).Append(nil))
	must(t, "STAT", hd, p, wire.OK)
	var info wire.MailboxInfo
	if err := info.Decode(p); err != nil {
		t.Fatal(err)
	}
	if string(info.Name) != "s" || info.Capacity != 5 || info.Depth != 1 || info.MaxDeliveries != 3 || info.Mode != 0o666 {
		t.Fatalf("%+v", info)
	}
}

// A consumer that does not read has a backlog of deliveries queued in the
// broker; a CANCEL of a blocked RECV, sent URGENT, is answered ahead of
// all of them.
func TestV2UrgentCancelReplyOvertakesQueuedDeliveries(t *testing.T) {
	b := startBroker(t, nil)
	rc := dialRaw(t, b.socket)
	rc.create(t, wire.Create{Name: []byte("flood"), Capacity: -1})
	rc.create(t, wire.Create{Name: []byte("quiet"), Capacity: -1})
	// A blocked RECV on the quiet mailbox.
	f, recvID := rc.frame(wire.OpRecv, 0, (&wire.Recv{Name: []byte("quiet"), Timeout: -1}).Append(nil))
	rc.write(t, f)
	// A consumer on the flood mailbox with plenty of credit, then a
	// flood of big messages from another connection, while rc reads nothing.
	f, consID := rc.frame(wire.OpConsume, wire.FlagAutoAck, (&wire.Consume{Name: []byte("flood"), Credit: 1 << 20}).Append(nil))
	rc.write(t, f)
	sender := dialRaw(t, b.socket)
	body := make([]byte, 256<<10)
	const n = 64 // 16 MiB: far more than the socket buffers hold
	for range n / 8 {
		m := wire.Send{Target: []byte("flood")}
		for range 8 {
			m.Msgs = append(m.Msgs, wire.SendMsg{Type: 1, Body: body})
		}
		hd, p := sender.send(t, 0, m)
		must(t, "flood", hd, p, wire.OK)
	}
	// Wait until the deliveries are queued for rc (the mailbox is empty:
	// all were handed to the consumer).
	deadline := time.Now().Add(hangGuard)
	for {
		hd, p := sender.roundTrip(t, wire.OpStat, 0, (&wire.Name{Name: []byte("flood")}).Append(nil))
		must(t, "STAT", hd, p, wire.OK)
		var info wire.MailboxInfo
		info.Decode(p)
		if info.Depth == 0 && info.Received == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries not handed out: %+v", info)
		}
		time.Sleep(time.Millisecond)
	}
	cancel, _ := rc.frame(wire.OpCancel, wire.FlagUrgent, nil)
	binary.LittleEndian.PutUint64(cancel[8:], recvID)
	rc.write(t, cancel)
	time.Sleep(50 * time.Millisecond) // let the broker queue the reply
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
		if hd.Request != recvID {
			t.Fatalf("unexpected reply %s to %d", hd.Op, hd.Request)
		}
		must(t, "canceled RECV", hd, p, wire.CodeCanceled)
		if !hd.Urgent() {
			t.Fatal("the final reply of a canceled request is not URGENT")
		}
		break
	}
	if delivered >= n {
		t.Fatalf("the CANCEL reply came after all %d deliveries", delivered)
	}
	t.Logf("the CANCEL reply overtook %d of %d deliveries", n-delivered, n)
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

func TestV2ConsumeDeliversPushedFrames(t *testing.T) {
	b := startBroker(t, nil)
	rc := dialRaw(t, b.socket)
	rc.create(t, wire.Create{Name: []byte("q"), Capacity: -1})
	f, consID := rc.frame(wire.OpConsume, 0, (&wire.Consume{Name: []byte("q"), Credit: 2}).Append(nil))
	rc.write(t, f)
	other := dialRaw(t, b.socket)
	other.sendOK(t, "q", "x", "y")
	for _, want := range []string{"x", "y"} {
		hd, p, err := rc.next(t)
		if err != nil {
			t.Fatal(err)
		}
		if hd.Op != wire.OpDeliver || !hd.Push() || hd.Request != consID || hd.Status != wire.OK {
			t.Fatalf("frame %s flags %#x req %d", hd.Op, hd.Flags, hd.Request)
		}
		var d wire.Delivery
		if err := d.Decode(p); err != nil || string(d.Body) != want || d.Sender.Endpoint != other.hello.Endpoint {
			t.Fatalf("delivery %q from %+v (%v)", d.Body, d.Sender, err)
		}
	}
}

func TestV2SendBatchToRendezvousMailboxIsInvalid(t *testing.T) {
	b := startBroker(t, nil)
	rc := dialRaw(t, b.socket)
	rc.create(t, wire.Create{Name: []byte("rv"), Capacity: 0})
	hd, p := rc.send(t, 0, wire.Send{Target: []byte("rv"), Timeout: -1, Msgs: []wire.SendMsg{{Type: 1}, {Type: 1}}})
	must(t, "batch of 2 to a rendezvous mailbox", hd, p, wire.CodeInvalid)
	hd, p = rc.send(t, 0, wire.Send{Target: []byte("rv"), Timeout: 0, Msgs: []wire.SendMsg{{Type: 1}}})
	must(t, "one message, nobody waiting", hd, p, wire.CodeFull)
}

func TestV2ListPageEndsEarlyToFitMaxFrame(t *testing.T) {
	b := startBroker(t, func(c *broker.Config) { c.MaxMessage = 1; c.MaxFrame = 2048 })
	rc := dialRaw(t, b.socket)
	for i := range 20 {
		rc.create(t, wire.Create{Name: []byte(fmt.Sprintf("%s%02d", strings.Repeat("n", 150), i)), Capacity: -1})
	}
	seen := 0
	var cursor []byte
	for pages := 0; ; pages++ {
		f, id := rc.frame(wire.OpList, 0, (&wire.List{Cursor: cursor, Limit: 1024}).Append(nil))
		rc.write(t, f)
		hd, p := rc.reply(t, id)
		must(t, "LIST", hd, p, wire.OK)
		if len(p)+12 > 2048 {
			t.Fatalf("page of %d bytes, max frame 2048", len(p)+12)
		}
		var r wire.ListReply
		if err := r.Decode(p); err != nil {
			t.Fatal(err)
		}
		seen += len(r.Infos)
		if len(r.Next) == 0 {
			if pages < 3 || seen != 21 {
				t.Fatalf("%d entries in %d pages", seen, pages+1)
			}
			return
		}
		cursor = append([]byte(nil), r.Next...)
	}
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
