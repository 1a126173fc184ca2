package integration_test

import (
	"errors"
	"testing"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/internal/testbroker"
	"github.com/postbox-ipc/postbox/wire"
)

// brokerUnderTest is a broker a test body runs against, by socket path.
type brokerUnderTest struct {
	socket string
	dial   func(t testing.TB) *postbox.Client
}

// eachBroker runs body against an in-process broker and against a broker
// running as a separate `postbox serve` process.
func eachBroker(t *testing.T, body func(t *testing.T, b brokerUnderTest)) {
	t.Run("in-process", func(t *testing.T) {
		b := start(t, nil)
		body(t, brokerUnderTest{socket: b.Socket, dial: b.Dial})
	})
	t.Run("process", func(t *testing.T) {
		testbroker.CheckGoroutines(t)
		p := testbroker.StartProcess(t, cli(t))
		body(t, brokerUnderTest{socket: p.Socket, dial: p.Dial})
	})
}

func TestLeaseReturnsWithRedeliveryWhenReceiverProcessIsKilled(t *testing.T) {
	eachBroker(t, func(t *testing.T, b brokerUnderTest) {
		c := b.dial(t)
		mb := create(t, c, "jobs", postbox.Mode(0o666))
		sent := send(t, mb, "job-1")
		send(t, mb, "job-2")

		holder := startChild(t, b.socket, nil, "hold", "jobs")
		got := holder.result(t)
		if got.Err != "" || got.Body != "job-1" || got.Redeliveries != 0 {
			t.Fatalf("child received %+v, want job-1 first delivery", got)
		}
		waitStat(t, mb, "InFlight == 1", func(i postbox.Info) bool { return i.InFlight == 1 })
		if err := holder.cmd.Process.Kill(); err != nil { // SIGKILL: no chance to clean up
			t.Fatal(err)
		}
		holder.wait(t)
		// The broker learns of the death asynchronously (EOF on the socket).
		waitStat(t, mb, "InFlight == 0", func(i postbox.Info) bool { return i.InFlight == 0 })

		m := recv(t, mb)
		if string(m.Body) != "job-1" || m.ID != sent.ID || m.Redeliveries != 1 {
			t.Fatalf("after kill -9 got %q id %d redeliveries %d, want job-1 id %d redeliveries 1",
				m.Body, m.ID, m.Redeliveries, sent.ID)
		}
		if m.Sender != c.Identity() {
			t.Fatalf("redelivered message's sender %+v, want the original %+v", m.Sender, c.Identity())
		}
		ack(t, m)
		if got := recvAck(t, mb); got != "job-2" {
			t.Fatalf("next %q, want job-2", got)
		}
	})
}

func TestLeaseReturnsWithRedeliveryWhenClientClosesWithoutAck(t *testing.T) {
	b := start(t, nil)
	c := b.Dial(t)
	mb := create(t, c, "jobs", postbox.Mode(0o666))
	for _, s := range []string{"a", "b", "c"} {
		send(t, mb, s)
	}
	r := b.Dial(t)
	m1 := recv(t, r.Mailbox("jobs"))
	m2 := recv(t, r.Mailbox("jobs"))
	if string(m1.Body) != "a" || string(m2.Body) != "b" {
		t.Fatalf("got %q %q", m1.Body, m2.Body)
	}
	r.Close()
	// The broker sees the disconnect asynchronously.
	waitStat(t, mb, "InFlight == 0", func(i postbox.Info) bool { return i.InFlight == 0 })
	// Both come back, at their original positions, ahead of "c".
	for _, want := range []string{"a", "b"} {
		m := recv(t, mb)
		if string(m.Body) != want || m.Redeliveries != 1 {
			t.Fatalf("got %q redeliveries %d, want %q redeliveries 1", m.Body, m.Redeliveries, want)
		}
		ack(t, m)
	}
	if m := recv(t, mb); string(m.Body) != "c" || m.Redeliveries != 0 {
		t.Fatalf("got %q redeliveries %d, want c 0", m.Body, m.Redeliveries)
	}
	info := waitStat(t, mb, "", func(postbox.Info) bool { return true })
	if info.Redelivered != 2 {
		t.Fatalf("Redelivered = %d, want 2", info.Redelivered)
	}
}

func TestNackReturnsMessageWithRedeliveryCounted(t *testing.T) {
	b := start(t, nil)
	c := b.Dial(t)
	mb := create(t, c, "jobs")
	send(t, mb, "a")
	send(t, mb, "b")
	m := recv(t, mb)
	if err := m.Nack(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	again := recv(t, mb)
	if string(again.Body) != "a" || again.Redeliveries != 1 || again.Lease() == m.Lease() {
		t.Fatalf("after nack got %q redeliveries %d lease %d (old lease %d)", again.Body, again.Redeliveries, again.Lease(), m.Lease())
	}
	ack(t, again)
}

func TestAckAfterNackIsStale(t *testing.T) {
	b := start(t, nil)
	c := b.Dial(t)
	mb := create(t, c, "jobs")
	send(t, mb, "a")
	m := recv(t, mb)
	if err := m.Nack(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	wantErr(t, m.Ack(ctxT(t)), postbox.ErrStaleLease, "ack after nack")
	wantErr(t, m.Nack(ctxT(t)), postbox.ErrStaleLease, "nack after nack")
	// The stale ack changed nothing: the message is still there.
	again := recv(t, mb, postbox.NoWait())
	if string(again.Body) != "a" {
		t.Fatalf("got %q", again.Body)
	}
	ack(t, again)
}

func TestDoubleAckIsStale(t *testing.T) {
	b := start(t, nil)
	c := b.Dial(t)
	mb := create(t, c, "jobs")
	send(t, mb, "a")
	send(t, mb, "b")
	m := recv(t, mb)
	ack(t, m)
	wantErr(t, m.Ack(ctxT(t)), postbox.ErrStaleLease, "second ack")
	wantErr(t, m.Nack(ctxT(t)), postbox.ErrStaleLease, "nack after ack")
	info := waitStat(t, mb, "", func(postbox.Info) bool { return true })
	if info.Depth != 1 || info.InFlight != 0 {
		t.Fatalf("after a stale ack: %+v", info)
	}
}

func TestAckOfLeaseReturnedByDisconnectAndReleasedElsewhereIsStale(t *testing.T) {
	b := start(t, nil)
	owner := b.Dial(t)
	mb := create(t, owner, "jobs", postbox.Mode(0o666))
	send(t, mb, "a")

	first := b.Dial(t)
	m1 := recv(t, first.Mailbox("jobs"))
	oldLease := m1.Lease()
	first.Close() // the lease returns to the queue

	second := b.Dial(t)
	m2 := recv(t, second.Mailbox("jobs"))
	if string(m2.Body) != "a" || m2.Redeliveries != 1 {
		t.Fatalf("second holder got %q redeliveries %d", m2.Body, m2.Redeliveries)
	}
	if m2.Lease() == oldLease {
		t.Fatalf("re-leased under the same lease id %d", oldLease)
	}

	// The first holder is gone; nobody can use its lease id, not even by
	// naming it on the wire. Nor can anyone but the second holder ack the
	// second lease.
	rc := dialRaw(t, b.Socket)
	for _, lease := range []uint64{oldLease, m2.Lease()} {
		// v2: the frame is answered OK and the lease's outcome is in the
		// AckReply (docs/PROTOCOL.md, ACK/NACK).
		hd, p := rc.roundTrip(t, wire.OpAck, 0, (&wire.Leases{Ranges: []wire.LeaseRange{{First: lease, N: 1}}}).Append(nil))
		var rep wire.AckReply
		if hd.Status != wire.OK || rep.Decode(p) != nil {
			msg, _ := wire.DecodeError(p)
			t.Fatalf("raw ack of lease %d by a non-holder: status %s (%q), want OK with a per-lease failure", lease, hd.Status, msg)
		}
		if rep.Done != 0 || len(rep.Failed) != 1 || rep.Failed[0].Lease != lease || rep.Failed[0].Status != wire.CodeStaleLease {
			t.Fatalf("raw ack of lease %d by a non-holder: %+v, want that lease failed with %s", lease, rep, wire.CodeStaleLease)
		}
	}
	wantErr(t, m1.Ack(ctxT(t)), postbox.ErrClosed, "ack through the closed first client")

	// The second holder's lease is unaffected.
	if err := m2.Ack(ctxT(t)); err != nil {
		t.Fatalf("holder's ack after the stale ones: %v", err)
	}
	info := waitStat(t, mb, "", func(postbox.Info) bool { return true })
	if info.Depth != 0 || info.InFlight != 0 || info.Received != 1 {
		t.Fatalf("after the holder's ack: %+v", info)
	}
}

func TestDestroyWakesBlockedSendersReceiversAndConsumers(t *testing.T) {
	b := start(t, nil)
	owner := b.Dial(t)
	full := create(t, owner, "full", postbox.Capacity(1), postbox.Mode(0o666))
	empty := create(t, owner, "empty", postbox.Mode(0o666))
	rv := create(t, owner, "rv", postbox.Rendezvous(), postbox.Mode(0o666))
	send(t, full, "x")

	other := b.Dial(t)
	ctx := ctxT(t)
	var sends []<-chan result[postbox.Receipt]
	for range 2 {
		sends = append(sends, async(func() (postbox.Receipt, error) { return other.Mailbox("full").Send(ctx, []byte("y")) }))
	}
	sends = append(sends, async(func() (postbox.Receipt, error) { return other.Mailbox("rv").Send(ctx, []byte("offer")) }))
	var recvs []<-chan result[*postbox.Message]
	for range 2 {
		recvs = append(recvs, async(func() (*postbox.Message, error) { return other.Mailbox("empty").Receive(ctx) }))
	}
	cons, err := other.Mailbox("empty").Consume(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close(ctxT(t))
	next := async(func() (*postbox.Message, error) { return cons.Next(ctx) })

	waitStat(t, full, "BlockedSenders == 2", func(i postbox.Info) bool { return i.BlockedSenders == 2 })
	waitStat(t, rv, "BlockedSenders == 1", func(i postbox.Info) bool { return i.BlockedSenders == 1 })
	waitStat(t, empty, "2 receivers and a consumer", func(i postbox.Info) bool { return i.Receivers == 2 && i.Consumers == 1 })

	for _, mb := range []*postbox.Mailbox{full, empty, rv} {
		if err := mb.Destroy(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for i, ch := range sends {
		wantErr(t, await(t, ch, "blocked send").err, postbox.ErrDestroyed, "blocked send "+string(rune('0'+i)))
	}
	for _, ch := range recvs {
		wantErr(t, await(t, ch, "blocked receive").err, postbox.ErrDestroyed, "blocked receive")
	}
	wantErr(t, await(t, next, "consumer").err, postbox.ErrDestroyed, "consumer Next")

	_, err = full.Stat(ctx)
	wantErr(t, err, postbox.ErrNotFound, "stat after destroy")
	_, err = full.Send(ctx, []byte("z"), postbox.NoWait())
	wantErr(t, err, postbox.ErrNotFound, "send after destroy")
	// The name is free again.
	create(t, owner, "full")
}

func TestInboxReceivesDirectlyAddressedMessages(t *testing.T) {
	b := start(t, nil)
	a, s := b.Dial(t), b.Dial(t)
	name := postbox.InboxName(a.Identity().Endpoint)
	if a.Inbox().Name() != name {
		t.Fatalf("Inbox().Name() = %q, want %q", a.Inbox().Name(), name)
	}
	send(t, s.Mailbox(name), "direct")
	m := recv(t, a.Inbox())
	ack(t, m)
	if string(m.Body) != "direct" || m.Sender != s.Identity() {
		t.Fatalf("inbox got %q from %+v, want direct from %+v", m.Body, m.Sender, s.Identity())
	}
}

func TestInboxReceiveByAnotherClientIsDenied(t *testing.T) {
	b := start(t, nil)
	a, s := b.Dial(t), b.Dial(t)
	name := postbox.InboxName(a.Identity().Endpoint)
	send(t, s.Mailbox(name), "private")
	_, err := s.Mailbox(name).Receive(ctxT(t), postbox.NoWait())
	wantErr(t, err, postbox.ErrPermission, "receive from another endpoint's inbox")
	_, err = s.Mailbox(name).Consume(ctxT(t))
	wantErr(t, err, postbox.ErrPermission, "consume another endpoint's inbox")
	wantErr(t, s.Mailbox(name).Destroy(ctxT(t)), postbox.ErrNotFound, "destroy another endpoint's inbox")
	// Same uid, same process: the inbox belongs to the endpoint, not the user.
	if got := recvAck(t, a.Inbox()); got != "private" {
		t.Fatalf("owner got %q", got)
	}
}

func TestInboxDisappearsOnDisconnect(t *testing.T) {
	b := start(t, nil)
	a, s := b.Dial(t), b.Dial(t)
	inbox := s.Mailbox(postbox.InboxName(a.Identity().Endpoint))
	send(t, inbox, "before")
	a.Close()
	// The broker notices the disconnect asynchronously; poll until the
	// inbox is gone, then it must stay gone.
	deadline := ctxT(t)
	for {
		_, err := inbox.Send(deadline, []byte("after"), postbox.NoWait())
		if errors.Is(err, postbox.ErrNotFound) {
			break
		}
		// DESTROYED: the send found the inbox just as it was being
		// destroyed (PROTOCOL.md 9: its endpoint disconnected).
		if err != nil && !errors.Is(err, postbox.ErrFull) && !errors.Is(err, postbox.ErrDestroyed) {
			t.Fatalf("send to a disconnecting endpoint's inbox: %v", err)
		}
		if deadline.Err() != nil {
			t.Fatal("inbox still exists after its endpoint disconnected")
		}
	}
	_, err := inbox.Stat(ctxT(t))
	wantErr(t, err, postbox.ErrNotFound, "stat of a gone inbox")
}
