package broker_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox/broker"
	"github.com/postbox-ipc/postbox/wire"
)

// CALL and the REPLY flag, spoken by hand: what the broker accepts, what
// it refuses, and every byte of the outcome.

// inbox is rc's own inbox address.
func (rc *rawConn) inbox() string { return fmt.Sprintf("@%d", rc.hello.Endpoint) }

// request is a CALL payload to target with REPLY_TO and CORRELATION_ID
// as given (nil: absent).
func request(target string, replyTo, corr []byte, timeout int64, body string) wire.Send {
	h := wire.AppendHeaders(nil, &wire.HeaderFields{ReplyTo: replyTo, CorrelationID: corr})
	return wire.Send{Target: []byte(target), Timeout: timeout, Msgs: []wire.SendMsg{{Type: 1, Headers: h, Body: []byte(body)}}}
}

// reply is a one-message SEND to an inbox carrying CORRELATION_ID corr.
func reply(to string, corr []byte, body string) wire.Send {
	h := wire.AppendHeaders(nil, &wire.HeaderFields{CorrelationID: corr})
	return wire.Send{Target: []byte(to), Msgs: []wire.SendMsg{{Type: 1, Headers: h, Body: []byte(body)}}}
}

// startCall writes a CALL and returns its request id.
func (rc *rawConn) startCall(t *testing.T, flags uint8, m wire.Send) uint64 {
	t.Helper()
	b, id := rc.frame(wire.OpCall, flags, m.Append(nil))
	rc.write(t, b)
	return id
}

// callOutcome decodes a CALL's error reply: status, OUTCOME, RECEIVER.
func callOutcome(t *testing.T, hd wire.Header, p []byte) (wire.Code, uint8, wire.Identity, bool) {
	t.Helper()
	var e wire.ErrorReply
	if err := e.Decode(p); err != nil {
		t.Fatalf("error reply: %v", err)
	}
	o, who, has, err := wire.CallOutcome(e.Ext)
	if err != nil {
		t.Fatalf("outcome: %v", err)
	}
	return hd.Status, o, who, has
}

func TestCallReplyClaimedByCorrelationIDIsTheCallsReply(t *testing.T) {
	b := startBroker(t, nil)
	caller, server := dialRaw(t, b.socket), dialRaw(t, b.socket)
	server.create(t, wire.Create{Name: []byte("svc"), Capacity: -1})
	id := caller.startCall(t, 0, request("svc", []byte(caller.inbox()), []byte("c1"), -1, "ping"))
	d := server.recv(t, "svc", 0)
	h, _ := wire.ParseHeaders(d.Headers)
	if string(d.Body) != "ping" || string(h.ReplyTo) != caller.inbox() || string(h.CorrelationID) != "c1" {
		t.Fatalf("server got %q with headers %+v", d.Body, h)
	}
	hd, p := server.send(t, wire.FlagReply, reply(string(h.ReplyTo), h.CorrelationID, "pong"))
	must(t, "REPLY", hd, p, wire.OK)
	var sr wire.SendReply
	if err := sr.Decode(p); err != nil || !sr.Taken || sr.Receipt.Endpoint != caller.hello.Endpoint || len(sr.IDs) != 1 || sr.IDs[0] != 0 {
		t.Fatalf("REPLY's reply %+v (%v): want taken by the caller, id 0", sr, err)
	}
	hd, p = caller.reply(t, id)
	must(t, "CALL", hd, p, wire.OK)
	if hd.Op != wire.OpCall|wire.OpReply {
		t.Fatalf("CALL reply op %s", hd.Op)
	}
	var cr wire.CallReply
	if err := cr.Decode(p); err != nil {
		t.Fatal(err)
	}
	if string(cr.Body) != "pong" || cr.Request != d.ID || cr.Lease != 0 || cr.ID != 0 || cr.Sender.Endpoint != server.hello.Endpoint {
		t.Fatalf("CALL reply %+v, request id %d", cr, d.ID)
	}
	// The reply never entered the inbox.
	hd, p = caller.roundTrip(t, wire.OpRecv, 0, (&wire.Recv{Name: []byte(caller.inbox())}).Append(nil))
	must(t, "RECV from the inbox", hd, p, wire.CodeEmpty)
}

func TestCallClaimsAPlainSendToTheInboxToo(t *testing.T) {
	b := startBroker(t, nil)
	caller, other := dialRaw(t, b.socket), dialRaw(t, b.socket)
	other.create(t, wire.Create{Name: []byte("svc"), Capacity: -1})
	id := caller.startCall(t, 0, request("svc", []byte(caller.inbox()), []byte("c1"), -1, "q"))
	other.recv(t, "svc", wire.FlagAutoAck)
	hd, p := other.send(t, 0, reply(caller.inbox(), []byte("c1"), "a"))
	must(t, "plain SEND", hd, p, wire.OK)
	hd, p = caller.reply(t, id)
	must(t, "CALL", hd, p, wire.OK)
	// Another CORRELATION_ID is no reply: it is queued.
	other.sendOK(t, caller.inbox(), "unrelated")
}

func TestReplyNobodyWaitsForIsDroppedNotQueued(t *testing.T) {
	b := startBroker(t, nil)
	rc := dialRaw(t, b.socket)
	hd, p := rc.send(t, wire.FlagReply, reply(rc.inbox(), []byte("late"), "x"))
	must(t, "REPLY", hd, p, wire.OK)
	var sr wire.SendReply
	if err := sr.Decode(p); err != nil || sr.Taken || len(sr.IDs) != 1 || sr.IDs[0] != 0 {
		t.Fatalf("dropped REPLY's reply %+v (%v): want taken 0, id 0", sr, err)
	}
	hd, p = rc.roundTrip(t, wire.OpRecv, 0, (&wire.Recv{Name: []byte(rc.inbox())}).Append(nil))
	must(t, "RECV from the inbox", hd, p, wire.CodeEmpty)
	// An inbox that is gone (its caller too) drops the reply as well.
	hd, p = rc.send(t, wire.FlagReply, reply(fmt.Sprintf("@%d", rc.hello.Endpoint+1000), []byte("late"), "x"))
	must(t, "REPLY to a gone inbox", hd, p, wire.OK)
	if err := sr.Decode(p); err != nil || sr.Taken {
		t.Fatalf("REPLY to a gone inbox: %+v (%v), want dropped", sr, err)
	}
}

func TestCallAndReplyRefuseWhatBreaksTheirRules(t *testing.T) {
	b := startBroker(t, nil)
	rc, other := dialRaw(t, b.socket), dialRaw(t, b.socket)
	rc.create(t, wire.Create{Name: []byte("svc"), Capacity: -1})
	me := []byte(rc.inbox())
	two := request("svc", me, []byte("c"), -1, "a")
	two.Msgs = append(two.Msgs, two.Msgs[0])
	for _, c := range []struct {
		name  string
		flags uint8
		m     wire.Send
		code  wire.Code
	}{
		{"no REPLY_TO", 0, request("svc", nil, []byte("c"), -1, "a"), wire.CodeInvalid},
		{"REPLY_TO another inbox", 0, request("svc", []byte(other.inbox()), []byte("c"), -1, "a"), wire.CodeInvalid},
		{"REPLY_TO a mailbox", 0, request("svc", []byte("svc"), []byte("c"), -1, "a"), wire.CodeInvalid},
		{"no CORRELATION_ID", 0, request("svc", me, nil, -1, "a"), wire.CodeInvalid},
		{"RECEIPT", wire.FlagReceipt, request("svc", me, []byte("c"), -1, "a"), wire.CodeInvalid},
		{"REPLY flag", wire.FlagReply, request("svc", me, []byte("c"), -1, "a"), wire.CodeInvalid},
		{"two messages", 0, two, wire.CodeInvalid},
		{"timeout 0", 0, request("svc", me, []byte("c"), 0, "a"), wire.CodeInvalid},
		{"no such mailbox", 0, request("nope", me, []byte("c"), -1, "a"), wire.CodeNotFound},
	} {
		hd, p := rc.roundTrip(t, wire.OpCall, c.flags, c.m.Append(nil))
		must(t, "CALL, "+c.name, hd, p, c.code)
		if hd.Op != wire.OpCall|wire.OpReply {
			t.Fatalf("%s: reply op %s", c.name, hd.Op)
		}
	}
	r := reply(other.inbox(), []byte("c"), "x")
	r.Msgs = append(r.Msgs, r.Msgs[0])
	for _, c := range []struct {
		name  string
		flags uint8
		m     wire.Send
	}{
		{"REPLY with two messages", wire.FlagReply, r},
		{"REPLY to a mailbox", wire.FlagReply, reply("svc", []byte("c"), "x")},
		{"REPLY with RECEIPT", wire.FlagReply | wire.FlagReceipt, reply(other.inbox(), []byte("c"), "x")},
		{"ACK_LEASE without REPLY", 0, func() wire.Send { m := reply(other.inbox(), []byte("c"), "x"); m.AckLease = 1; return m }()},
	} {
		hd, p := rc.send(t, c.flags, c.m)
		must(t, "SEND, "+c.name, hd, p, wire.CodeInvalid)
	}
	// The same CORRELATION_ID twice on one endpoint.
	rc.startCall(t, 0, request("svc", me, []byte("dup"), -1, "a"))
	dup := request("svc", me, []byte("dup"), -1, "b")
	hd, p := rc.roundTrip(t, wire.OpCall, 0, dup.Append(nil))
	must(t, "CALL, CORRELATION_ID already waiting", hd, p, wire.CodeInvalid)
}

func TestCallCanceledWhileQueuedIsWithdrawn(t *testing.T) {
	b := startBroker(t, nil)
	caller, server := dialRaw(t, b.socket), dialRaw(t, b.socket)
	server.create(t, wire.Create{Name: []byte("svc"), Capacity: -1})
	id := caller.startCall(t, 0, request("svc", []byte(caller.inbox()), []byte("c"), -1, "q"))
	caller.ping(t) // the CALL was read
	caller.write(t, wire.AppendHeader(nil, wire.Header{Op: wire.OpCancel, Flags: wire.FlagUrgent, Request: id}, 0))
	hd, p := caller.reply(t, id)
	code, outcome, _, has := callOutcome(t, hd, p)
	if code != wire.CodeCanceled || outcome != wire.OutcomeWithdrawn || has || !hd.Urgent() {
		t.Fatalf("cancelled CALL: %s outcome %d receiver %v urgent %v", code, outcome, has, hd.Urgent())
	}
	hd, p = server.roundTrip(t, wire.OpRecv, 0, (&wire.Recv{Name: []byte("svc")}).Append(nil))
	must(t, "RECV after the withdrawal", hd, p, wire.CodeEmpty)
}

func TestCallCanceledWhileLeasedInterruptsTheHolder(t *testing.T) {
	b := startBroker(t, nil)
	caller, server := dialRaw(t, b.socket), dialRaw(t, b.socket)
	server.create(t, wire.Create{Name: []byte("svc"), Capacity: -1})
	id := caller.startCall(t, 0, request("svc", []byte(caller.inbox()), []byte("c"), -1, "q"))
	d := server.recv(t, "svc", 0)
	caller.write(t, wire.AppendHeader(nil, wire.Header{Op: wire.OpCancel, Flags: wire.FlagUrgent, Request: id}, 0))
	hd, p := caller.reply(t, id)
	code, outcome, who, has := callOutcome(t, hd, p)
	if code != wire.CodeCanceled || outcome != wire.OutcomeInProgress || !has || who.Endpoint != server.hello.Endpoint {
		t.Fatalf("cancelled CALL: %s outcome %d receiver %+v", code, outcome, who)
	}
	hd, p, err := server.next(t)
	if err != nil {
		t.Fatal(err)
	}
	var in wire.Interrupt
	if hd.Op != wire.OpInterrupt || !hd.Push() || !hd.Urgent() || in.Decode(p) != nil || in.Lease != d.Lease || in.Reason != wire.CodeCanceled {
		t.Fatalf("server got %s flags %#x %+v, want INTERRUPT of lease %d", hd.Op, hd.Flags, in, d.Lease)
	}
	// A late reply is dropped; the lease is still the server's to ack.
	hd, p = server.send(t, wire.FlagReply, reply(caller.inbox(), []byte("c"), "late"))
	must(t, "late REPLY", hd, p, wire.OK)
	hd, p = server.roundTrip(t, wire.OpAck, 0, leases(wire.LeaseRange{First: d.Lease, N: 1}))
	must(t, "ACK", hd, p, wire.OK)
}

func TestCallTimedOutAfterItsRequestWasSettled(t *testing.T) {
	b := startBroker(t, nil)
	caller, server := dialRaw(t, b.socket), dialRaw(t, b.socket)
	server.create(t, wire.Create{Name: []byte("svc"), Capacity: -1})
	id := caller.startCall(t, 0, request("svc", []byte(caller.inbox()), []byte("c"), int64(200*time.Millisecond), "q"))
	server.recv(t, "svc", wire.FlagAutoAck)
	hd, p := caller.reply(t, id)
	code, outcome, who, has := callOutcome(t, hd, p)
	if code != wire.CodeTimeout || outcome != wire.OutcomeSettled || !has || who.Endpoint != server.hello.Endpoint {
		t.Fatalf("timed-out CALL: %s outcome %d receiver %+v", code, outcome, who)
	}
}

func TestCallTimedOutWhileWaitingForRoomIsWithdrawn(t *testing.T) {
	b := startBroker(t, nil)
	caller, server := dialRaw(t, b.socket), dialRaw(t, b.socket)
	server.create(t, wire.Create{Name: []byte("one"), Capacity: 1})
	server.sendOK(t, "one", "filler")
	id := caller.startCall(t, 0, request("one", []byte(caller.inbox()), []byte("c"), int64(100*time.Millisecond), "q"))
	hd, p := caller.reply(t, id)
	code, outcome, _, has := callOutcome(t, hd, p)
	if code != wire.CodeTimeout || outcome != wire.OutcomeWithdrawn || has {
		t.Fatalf("CALL timed out waiting for room: %s outcome %d receiver %v", code, outcome, has)
	}
	if d := server.recv(t, "one", wire.FlagAutoAck); string(d.Body) != "filler" {
		t.Fatalf("got %q", d.Body)
	}
	hd, p = server.roundTrip(t, wire.OpRecv, 0, (&wire.Recv{Name: []byte("one")}).Append(nil))
	must(t, "RECV after the withdrawal", hd, p, wire.CodeEmpty)
}

func TestCallerDisconnectWithdrawsItsQueuedRequest(t *testing.T) {
	b := startBroker(t, nil)
	caller, server := dialRaw(t, b.socket), dialRaw(t, b.socket)
	server.create(t, wire.Create{Name: []byte("svc"), Capacity: -1})
	caller.startCall(t, 0, request("svc", []byte(caller.inbox()), []byte("c"), -1, "q"))
	caller.ping(t)
	caller.nc.Close()
	deadline := time.Now().Add(hangGuard)
	for {
		hd, p := server.roundTrip(t, wire.OpStat, 0, (&wire.Name{Name: []byte("svc")}).Append(nil))
		must(t, "STAT", hd, p, wire.OK)
		var info wire.MailboxInfo
		if err := info.Decode(p); err != nil {
			t.Fatal(err)
		}
		if info.Depth == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the request of a caller gone is still queued")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestReplyWithAckLeaseAcksTheRequestAfterTheReply(t *testing.T) {
	b := startBroker(t, nil)
	caller, server := dialRaw(t, b.socket), dialRaw(t, b.socket)
	server.create(t, wire.Create{Name: []byte("svc"), Capacity: -1})
	id := caller.startCall(t, 0, request("svc", []byte(caller.inbox()), []byte("c"), -1, "q"))
	d := server.recv(t, "svc", 0)
	m := reply(caller.inbox(), []byte("c"), "a")
	m.AckLease = d.Lease
	hd, p := server.send(t, wire.FlagReply, m)
	must(t, "REPLY with ACK_LEASE", hd, p, wire.OK)
	hd, p = caller.reply(t, id)
	must(t, "CALL", hd, p, wire.OK)
	hd, p = server.roundTrip(t, wire.OpAck, 0, leases(wire.LeaseRange{First: d.Lease, N: 1}))
	var ar wire.AckReply
	if hd.Status != wire.OK || ar.Decode(p) != nil || len(ar.Failed) != 1 || ar.Failed[0].Status != wire.CodeStaleLease {
		t.Fatalf("second ack: %s %+v: want the lease already acked", hd.Status, ar)
	}
}

func TestServiceOptionIsReportedByStat(t *testing.T) {
	b := startBroker(t, nil)
	rc := dialRaw(t, b.socket)
	rc.create(t, wire.Create{Name: []byte("svc"), Capacity: -1, Service: true})
	hd, p := rc.roundTrip(t, wire.OpStat, 0, (&wire.Name{Name: []byte("svc")}).Append(nil))
	must(t, "STAT", hd, p, wire.OK)
	var info wire.MailboxInfo
	if err := info.Decode(p); err != nil || info.Flags&wire.MailboxService == 0 {
		t.Fatalf("STAT flags %#x (%v), want MailboxService", info.Flags, err)
	}
	if !bytes.Equal(info.Name, []byte("svc")) {
		t.Fatal(info.Name)
	}
}

func TestCallWhoseQueuedRequestIsDestroyedEndsDestroyed(t *testing.T) {
	b := startBroker(t, nil)
	caller, server := dialRaw(t, b.socket), dialRaw(t, b.socket)
	server.create(t, wire.Create{Name: []byte("svc"), Capacity: -1})
	server.create(t, wire.Create{Name: []byte("held"), Capacity: -1})
	queued := caller.startCall(t, 0, request("svc", []byte(caller.inbox()), []byte("q"), -1, "q"))
	taken := caller.startCall(t, 0, request("held", []byte(caller.inbox()), []byte("t"), -1, "t"))
	server.recv(t, "held", 0)
	hd, p := server.roundTrip(t, wire.OpDestroy, 0, (&wire.Name{Name: []byte("svc")}).Append(nil))
	must(t, "DESTROY svc", hd, p, wire.OK)
	hd, p = caller.reply(t, queued)
	must(t, "CALL whose request was queued", hd, p, wire.CodeDestroyed)
	// The call whose request a server holds goes on: the server answers.
	hd, p = server.roundTrip(t, wire.OpDestroy, 0, (&wire.Name{Name: []byte("held")}).Append(nil))
	must(t, "DESTROY held", hd, p, wire.OK)
	hd, p = server.send(t, wire.FlagReply, reply(caller.inbox(), []byte("t"), "answer"))
	must(t, "REPLY", hd, p, wire.OK)
	hd, p = caller.reply(t, taken)
	must(t, "CALL whose request was taken", hd, p, wire.OK)
}

func TestCallWaitingAtShutdownEndsClosed(t *testing.T) {
	b := startBroker(t, nil)
	caller, server := dialRaw(t, b.socket), dialRaw(t, b.socket)
	server.create(t, wire.Create{Name: []byte("svc"), Capacity: -1})
	server.create(t, wire.Create{Name: []byte("one"), Capacity: 1})
	server.sendOK(t, "one", "filler")
	waiting := caller.startCall(t, 0, request("svc", []byte(caller.inbox()), []byte("w"), -1, "q"))
	admitting := caller.startCall(t, 0, request("one", []byte(caller.inbox()), []byte("a"), -1, "q"))
	caller.ping(t)
	b.stop(t)
	got := map[uint64]wire.Code{}
	for len(got) < 2 {
		hd, _, err := caller.next(t)
		if err != nil {
			t.Fatalf("replies at shutdown %v: %v", got, err)
		}
		got[hd.Request] = hd.Status
	}
	if got[waiting] != wire.CodeClosed || got[admitting] != wire.CodeClosed {
		t.Fatalf("replies at shutdown %v, want CLOSED for %d and %d", got, waiting, admitting)
	}
}

func TestDurableCallWithdrawnStaysWithdrawnAfterARestart(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, func(c *broker.Config) { c.DataDir = dir })
	caller, admin := dialRaw(t, b.socket), dialRaw(t, b.socket)
	admin.create(t, wire.Create{Name: []byte("svc"), Capacity: -1, Durable: true, Service: true})
	admin.sendOK(t, "svc", "kept")
	id := caller.startCall(t, 0, request("svc", []byte(caller.inbox()), []byte("c"), int64(100*time.Millisecond), "withdrawn"))
	hd, p := caller.reply(t, id)
	if code, outcome, _, _ := callOutcome(t, hd, p); code != wire.CodeTimeout || outcome != wire.OutcomeWithdrawn {
		t.Fatalf("timed-out CALL: %s outcome %d", code, outcome)
	}
	b = b.restart(t)
	rc := dialRaw(t, b.socket)
	if d := rc.recv(t, "svc", wire.FlagAutoAck); string(d.Body) != "kept" {
		t.Fatalf("after the restart got %q, want the message sent before", d.Body)
	}
	hd, p = rc.roundTrip(t, wire.OpRecv, 0, (&wire.Recv{Name: []byte("svc")}).Append(nil))
	must(t, "RECV of the withdrawn request", hd, p, wire.CodeEmpty)
	hd, p = rc.roundTrip(t, wire.OpStat, 0, (&wire.Name{Name: []byte("svc")}).Append(nil))
	must(t, "STAT", hd, p, wire.OK)
	var info wire.MailboxInfo
	if err := info.Decode(p); err != nil || info.Flags&wire.MailboxService == 0 || info.Mode != 0o666 {
		t.Fatalf("after the restart flags %#x mode %#o (%v): want SERVICE kept, mode unchanged", info.Flags, info.Mode, err)
	}
}

func TestCallToARendezvousMailboxIsAdmittedWhenTaken(t *testing.T) {
	b := startBroker(t, nil)
	caller, server := dialRaw(t, b.socket), dialRaw(t, b.socket)
	server.create(t, wire.Create{Name: []byte("rv"), Capacity: 0})
	// Nobody takes it: cancelled, the offer is withdrawn.
	id := caller.startCall(t, 0, request("rv", []byte(caller.inbox()), []byte("a"), -1, "a"))
	caller.ping(t)
	caller.write(t, wire.AppendHeader(nil, wire.Header{Op: wire.OpCancel, Flags: wire.FlagUrgent, Request: id}, 0))
	hd, p := caller.reply(t, id)
	if code, outcome, _, _ := callOutcome(t, hd, p); code != wire.CodeCanceled || outcome != wire.OutcomeWithdrawn {
		t.Fatalf("cancelled rendezvous CALL: %s outcome %d", code, outcome)
	}
	// Taken, then answered.
	id = caller.startCall(t, 0, request("rv", []byte(caller.inbox()), []byte("b"), -1, "b"))
	d := server.recv(t, "rv", wire.FlagAutoAck)
	if string(d.Body) != "b" {
		t.Fatalf("server got %q", d.Body)
	}
	hd, p = server.send(t, wire.FlagReply, reply(caller.inbox(), []byte("b"), "ok"))
	must(t, "REPLY", hd, p, wire.OK)
	hd, p = caller.reply(t, id)
	must(t, "rendezvous CALL", hd, p, wire.OK)
}

func TestCallCanceledAfterItsRequestWasSettledSaysSettled(t *testing.T) {
	b := startBroker(t, nil)
	caller, server := dialRaw(t, b.socket), dialRaw(t, b.socket)
	server.create(t, wire.Create{Name: []byte("svc"), Capacity: -1})
	id := caller.startCall(t, 0, request("svc", []byte(caller.inbox()), []byte("c"), -1, "q"))
	d := server.recv(t, "svc", 0)
	hd, p := server.roundTrip(t, wire.OpAck, 0, leases(wire.LeaseRange{First: d.Lease, N: 1}))
	must(t, "ACK", hd, p, wire.OK)
	caller.write(t, wire.AppendHeader(nil, wire.Header{Op: wire.OpCancel, Flags: wire.FlagUrgent, Request: id}, 0))
	hd, p = caller.reply(t, id)
	code, outcome, who, has := callOutcome(t, hd, p)
	if code != wire.CodeCanceled || outcome != wire.OutcomeSettled || !has || who.Endpoint != server.hello.Endpoint {
		t.Fatalf("cancelled CALL: %s outcome %d receiver %+v", code, outcome, who)
	}
	server.ping(t) // no INTERRUPT for a settled request: PING's reply is the next frame
}

func TestCallTimedOutWhileLeasedInterruptsWithTimeout(t *testing.T) {
	b := startBroker(t, nil)
	caller, server := dialRaw(t, b.socket), dialRaw(t, b.socket)
	server.create(t, wire.Create{Name: []byte("svc"), Capacity: -1})
	id := caller.startCall(t, 0, request("svc", []byte(caller.inbox()), []byte("c"), int64(100*time.Millisecond), "q"))
	d := server.recv(t, "svc", 0)
	hd, p := caller.reply(t, id)
	code, outcome, who, _ := callOutcome(t, hd, p)
	if code != wire.CodeTimeout || outcome != wire.OutcomeInProgress || who.Endpoint != server.hello.Endpoint {
		t.Fatalf("timed-out CALL: %s outcome %d receiver %+v", code, outcome, who)
	}
	hd, p, err := server.next(t)
	var in wire.Interrupt
	if err != nil || hd.Op != wire.OpInterrupt || in.Decode(p) != nil || in.Lease != d.Lease || in.Reason != wire.CodeTimeout {
		t.Fatalf("server got %s %+v (%v), want INTERRUPT of lease %d for TIMEOUT", hd.Op, in, err, d.Lease)
	}
}
