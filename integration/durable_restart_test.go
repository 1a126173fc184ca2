package integration_test

import (
	"errors"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/broker"
	"github.com/postbox-ipc/postbox/internal/testbroker"
)

// durableConfig is the default broker config with a data directory.
func durableConfig(dir string) *broker.Config {
	return limits(func(c *broker.Config) { c.DataDir = dir })
}

// restart stops b and starts a broker on the same data directory.
func restart(t *testing.T, b *testbroker.Broker, cfg *broker.Config) *testbroker.Broker {
	t.Helper()
	b.Stop(t)
	testbroker.CheckGoroutines(t)
	nb, err := testbroker.Open(t, *cfg)
	if err != nil {
		t.Fatalf("restart on %s: %v", cfg.DataDir, err)
	}
	return nb
}

// sameDefinition reports whether a and b agree on everything a durable
// mailbox's definition determines.
func sameDefinition(a, b postbox.Info) bool {
	return a.Name == b.Name && a.UID == b.UID && a.GID == b.GID && a.Mode == b.Mode && a.Capacity == b.Capacity &&
		a.Durable == b.Durable && a.MaxDeliveries == b.MaxDeliveries && a.MaxBytes == b.MaxBytes && a.TTL == b.TTL &&
		a.DeadLetter == b.DeadLetter && a.Created.Equal(b.Created)
}

func TestDurableMailboxKeepsDefinitionAndMessagesAcrossRestart(t *testing.T) {
	cfg := durableConfig(t.TempDir())
	b := start(t, cfg)
	c := b.Dial(t)
	create(t, c, "keep.dlq", postbox.Durable(), postbox.Mode(0o620))
	mb := create(t, c, "keep.jobs", postbox.Durable(), postbox.Capacity(100), postbox.Mode(0o640),
		postbox.MaxDeliveries(3), postbox.TTL(time.Hour), postbox.DeadLetter("keep.dlq"), postbox.MaxBytes(1<<20))
	if err := mb.Chmod(ctxT(t), 0o666); err != nil {
		t.Fatal(err)
	}
	type msg struct {
		body         string
		priority     uint8
		typ          int64
		redeliveries uint32
		sender       postbox.Identity
		id           uint64
	}
	sent := []msg{{body: "low-1", typ: 1}, {body: "high-1", priority: 7, typ: 2}, {body: "low-2", typ: 3},
		{body: "mid-1", priority: 3, typ: 1}, {body: "high-2", priority: 7, typ: 1}}
	byBody := map[string]*msg{}
	for i := range sent {
		m := &sent[i]
		m.id = send(t, mb, m.body, postbox.Priority(m.priority), postbox.Type(m.typ)).ID
		m.sender = c.Identity()
		byBody[m.body] = m
	}
	// A message from another process keeps that process's identity.
	child := runChild(t, b.Socket, nil, "send", "keep.jobs", "from-child")
	if child.Err != "" {
		t.Fatalf("child send: %s", child.ErrText)
	}
	// The first high-priority message goes out once and is nacked.
	first := recv(t, mb)
	if string(first.Body) != "high-1" {
		t.Fatalf("first delivery %q, want high-1", first.Body)
	}
	if err := first.Nack(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	byBody["high-1"].redeliveries = 1
	before := map[string]postbox.Info{}
	for _, name := range []string{"keep.jobs", "keep.dlq"} {
		info, err := c.Mailbox(name).Stat(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		before[name] = info
	}

	b = restart(t, b, cfg)
	c = b.Dial(t)
	mb = c.Mailbox("keep.jobs")
	for name, was := range before {
		info, err := c.Mailbox(name).Stat(ctxT(t))
		if err != nil {
			t.Fatalf("stat %s after restart: %v", name, err)
		}
		if !sameDefinition(info, was) {
			t.Errorf("%s after restart:\n got  %+v\n want %+v", name, info, was)
		}
		if info.Depth != was.Depth {
			t.Errorf("%s after restart: depth %d, want %d", name, info.Depth, was.Depth)
		}
	}
	if i := before["keep.jobs"]; !i.Durable || i.Mode != 0o666 || i.Capacity != 100 || i.MaxDeliveries != 3 ||
		i.TTL != time.Hour || i.DeadLetter != "keep.dlq" || i.MaxBytes != 1<<20 {
		t.Errorf("keep.jobs before restart %+v, want the options it was created with", i)
	}

	// Highest priority first, FIFO within a priority, as before the restart.
	order := []string{"high-1", "high-2", "mid-1", "low-1", "low-2", "from-child"}
	for _, body := range order {
		m := recv(t, mb)
		if string(m.Body) != body {
			t.Fatalf("after restart got %q, want %q (order %q)", m.Body, body, order)
		}
		if body == "from-child" {
			want := postbox.Identity{Kind: postbox.KindUnix, UID: uint32(child.UID), GID: uint32(child.GID), PID: int32(child.PID), Endpoint: child.Endpoint}
			if m.Sender != want || m.Priority != 0 || m.Type != 1 || m.Redeliveries != 0 {
				t.Errorf("from-child after restart: sender %+v priority %d type %d redeliveries %d; want sender %+v, 0, 1, 0",
					m.Sender, m.Priority, m.Type, m.Redeliveries, want)
			}
			ack(t, m)
			continue
		}
		w := byBody[body]
		if m.ID != w.id || m.Priority != w.priority || m.Type != w.typ || m.Redeliveries != w.redeliveries || m.Sender != w.sender {
			t.Errorf("%s after restart: id %d priority %d type %d redeliveries %d sender %+v; want %d %d %d %d %+v",
				body, m.ID, m.Priority, m.Type, m.Redeliveries, m.Sender, w.id, w.priority, w.typ, w.redeliveries, w.sender)
		}
		if body == "high-1" && !m.SentAt.Equal(first.SentAt) {
			t.Errorf("high-1 sent at %v after restart, %v before", m.SentAt, first.SentAt)
		}
		ack(t, m)
	}
	// Sequence numbers go on from where they were.
	if r := send(t, mb, "after"); r.ID <= byBody["high-2"].id {
		t.Errorf("first id after restart %d, not above the last one before (%d)", r.ID, byBody["high-2"].id)
	}
}

func TestDurableLeaseReturnedAtShutdownComesBackWithRedelivery(t *testing.T) {
	cfg := durableConfig(t.TempDir())
	b := start(t, cfg)
	c := b.Dial(t)
	mb := create(t, c, "shut", postbox.Durable())
	id := send(t, mb, "held").ID
	if m := recv(t, mb); m.ID != id {
		t.Fatalf("got id %d, want %d", m.ID, id)
	}
	b = restart(t, b, cfg) // the lease is still held when the broker stops
	m := recv(t, b.Dial(t).Mailbox("shut"))
	if string(m.Body) != "held" || m.ID != id || m.Redeliveries != 1 {
		t.Fatalf("after restart got %q id %d redeliveries %d, want held id %d redeliveries 1", m.Body, m.ID, m.Redeliveries, id)
	}
}

func TestNonDurableMailboxesAreGoneAfterRestart(t *testing.T) {
	cfg := durableConfig(t.TempDir())
	b := start(t, cfg)
	c := b.Dial(t)
	send(t, create(t, c, "mem"), "forgotten")
	send(t, create(t, c, "disk", postbox.Durable()), "kept")
	b = restart(t, b, cfg)
	c = b.Dial(t)
	if _, err := c.Mailbox("mem").Stat(ctxT(t)); !errors.Is(err, postbox.ErrNotFound) {
		t.Fatalf("non-durable mailbox after restart: %v, want ErrNotFound", err)
	}
	if got := recvAck(t, c.Mailbox("disk")); got != "kept" {
		t.Fatalf("durable mailbox after restart: %q, want kept", got)
	}
	// The name is free again, for a mailbox of either kind.
	create(t, c, "mem", postbox.Durable())
}

func TestDurableLeaseHeldAtCrashComesBackWithRedeliveryOnce(t *testing.T) {
	testbroker.CheckGoroutines(t)
	bin, dir := cli(t), t.TempDir()
	p := testbroker.StartProcess(t, bin, "--data", dir)
	mb := create(t, p.Dial(t), "leased", postbox.Durable(), postbox.Mode(0o666))
	id := send(t, mb, "job-1").ID
	send(t, mb, "job-2")

	holder := startChild(t, p.Socket, nil, "hold", "leased")
	if got := holder.result(t); got.Err != "" || got.Body != "job-1" || got.Redeliveries != 0 {
		t.Fatalf("holder received %+v, want job-1, first delivery", got)
	}
	p.Crash(t) // the lease is held: the holder never acks
	holder.stdin.Close()
	holder.wait(t)

	// Recovery returns it with one more redelivery, and logs that, so a
	// second crash before anyone takes it does not count again.
	p = testbroker.StartProcess(t, bin, "--data", dir)
	waitStat(t, p.Dial(t).Mailbox("leased"), "recovered", func(i postbox.Info) bool { return i.Depth == 2 && i.InFlight == 0 })
	p.Crash(t)
	p = testbroker.StartProcess(t, bin, "--data", dir)
	c := p.Dial(t)
	m := recv(t, c.Mailbox("leased"))
	if string(m.Body) != "job-1" || m.ID != id || m.Redeliveries != 1 {
		t.Fatalf("after two crashes got %q id %d redeliveries %d, want job-1 id %d redeliveries 1", m.Body, m.ID, m.Redeliveries, id)
	}
	// Held again at a crash: one more.
	p.Crash(t)
	p = testbroker.StartProcess(t, bin, "--data", dir)
	m = recv(t, p.Dial(t).Mailbox("leased"))
	if string(m.Body) != "job-1" || m.Redeliveries != 2 {
		t.Fatalf("after a second held crash got %q redeliveries %d, want job-1 redeliveries 2", m.Body, m.Redeliveries)
	}
}

func TestDurableConfirmedAckIsNotUndoneByACrash(t *testing.T) {
	testbroker.CheckGoroutines(t)
	bin, dir := cli(t), t.TempDir()
	p := testbroker.StartProcess(t, bin, "--data", dir)
	mb := create(t, p.Dial(t), "acked", postbox.Durable())
	for _, body := range []string{"one", "two", "three", "four"} {
		send(t, mb, body)
	}
	if got := recvAck(t, mb); got != "one" {
		t.Fatalf("got %q, want one", got)
	}
	// A consumer's ack is confirmed the same way.
	cons, err := mb.Consume(ctxT(t), postbox.Prefetch(1))
	if err != nil {
		t.Fatal(err)
	}
	m, err := cons.Next(ctxT(t))
	if err != nil || string(m.Body) != "two" {
		t.Fatalf("consumer got %v, %v; want two", m, err)
	}
	ack(t, m)
	cons.Close(ctxT(t))
	// An auto-acked receive is removed before it is delivered.
	if m := recv(t, mb, postbox.AutoAck()); string(m.Body) != "three" {
		t.Fatalf("auto-ack receive got %q, want three", m.Body)
	}
	p.Crash(t)

	p = testbroker.StartProcess(t, bin, "--data", dir)
	mb = p.Dial(t).Mailbox("acked")
	m = recv(t, mb)
	if string(m.Body) != "four" || m.Redeliveries != 0 {
		t.Fatalf("after the crash got %q (redeliveries %d), want four: a confirmed ack was undone", m.Body, m.Redeliveries)
	}
	ack(t, m)
	if _, err := mb.Receive(ctxT(t), postbox.NoWait()); !errors.Is(err, postbox.ErrEmpty) {
		t.Fatalf("receive after the last message: %v, want ErrEmpty", err)
	}
}
