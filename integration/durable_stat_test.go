package integration_test

import (
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
)

func TestDurableStatReportsDiskBytesAndOldestMessage(t *testing.T) {
	cfg := durableConfig(t.TempDir())
	b := start(t, cfg)
	c := b.Dial(t)
	mb := create(t, c, "stat", postbox.Durable())
	if info, err := mb.Stat(ctxT(t)); err != nil || !info.Durable || !info.Oldest.IsZero() {
		t.Fatalf("empty durable mailbox: %+v, %v; want Durable and no oldest message", info, err)
	}
	for _, body := range []string{"first", "second", "third"} {
		send(t, mb, body)
	}
	// Stats are updated once the batch is durable, which the send reply
	// already waited for; poll anyway, the rule is only "eventually".
	before := waitStat(t, mb, "disk bytes > 0", func(i postbox.Info) bool { return i.DiskBytes > 0 })
	if before.Depth != 3 || before.Oldest.IsZero() || before.Oldest.After(time.Now()) {
		t.Fatalf("durable mailbox with 3 messages: depth %d oldest %v", before.Depth, before.Oldest)
	}
	mem := create(t, c, "mem")
	send(t, mem, "x")
	if info, err := mem.Stat(ctxT(t)); err != nil || info.Durable || info.DiskBytes != 0 {
		t.Errorf("memory mailbox stat: %+v, %v; want not durable, no disk bytes", info, err)
	}

	// The oldest message is the one sent first, and stays so across a
	// restart (its age is kept, not reset).
	b = restart(t, b, cfg)
	mb = b.Dial(t).Mailbox("stat")
	after := waitStat(t, mb, "disk bytes > 0", func(i postbox.Info) bool { return i.DiskBytes > 0 })
	if after.Depth != 3 || !after.Oldest.Equal(before.Oldest) {
		t.Errorf("after restart: depth %d oldest %v, want 3 and %v", after.Depth, after.Oldest, before.Oldest)
	}
	m := recv(t, mb)
	if string(m.Body) != "first" || !m.SentAt.Equal(before.Oldest) {
		t.Errorf("oldest message %q sent at %v, stat said %v", m.Body, m.SentAt, before.Oldest)
	}
	ack(t, m)
	next := waitStat(t, mb, "depth 2", func(i postbox.Info) bool { return i.Depth == 2 })
	if next.Oldest.IsZero() || next.Oldest.Before(before.Oldest) {
		t.Errorf("oldest after acking the first: %v (was %v)", next.Oldest, before.Oldest)
	}
}

func TestDurableDeadLetterSurvivesRestartWithReasonAndOriginalSender(t *testing.T) {
	cfg := durableConfig(t.TempDir())
	b := start(t, cfg)
	c := b.Dial(t)
	create(t, c, "dl.dead", postbox.Durable(), postbox.Mode(0o666))
	jobs := create(t, c, "dl.jobs", postbox.Durable(), postbox.Mode(0o666), postbox.MaxDeliveries(2), postbox.DeadLetter("dl.dead"))
	child := runChild(t, b.Socket, nil, "send", "dl.jobs", "poison")
	if child.Err != "" {
		t.Fatalf("child send: %s", child.ErrText)
	}
	send(t, jobs, "fine")
	for i := range 2 {
		m := recv(t, jobs)
		if string(m.Body) != "poison" || m.Redeliveries != uint32(i) {
			t.Fatalf("delivery %d: %q redeliveries %d", i+1, m.Body, m.Redeliveries)
		}
		if err := m.Nack(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	}
	waitStat(t, jobs, "one dead-lettered", func(i postbox.Info) bool { return i.DeadLettered == 1 && i.Depth == 1 })
	waitStat(t, c.Mailbox("dl.dead"), "one dead letter", func(i postbox.Info) bool { return i.Depth == 1 })

	b = restart(t, b, cfg)
	c = b.Dial(t)
	if info, err := c.Mailbox("dl.jobs").Stat(ctxT(t)); err != nil || info.Depth != 1 {
		t.Fatalf("dl.jobs after restart: %+v, %v; want only the good message", info, err)
	}
	m := recv(t, c.Mailbox("dl.dead"))
	want := postbox.Identity{Kind: postbox.KindUnix, UID: uint32(child.UID), GID: uint32(child.GID), PID: int32(child.PID), Endpoint: child.Endpoint}
	if string(m.Body) != "poison" || m.Reason != postbox.ReasonMaxDeliveries || m.Sender != want {
		t.Errorf("dead letter after restart: %q reason %q sender %+v; want poison, %q, %+v",
			m.Body, m.Reason, m.Sender, postbox.ReasonMaxDeliveries, want)
	}
	ack(t, m)
	if got := recvAck(t, c.Mailbox("dl.jobs")); got != "fine" {
		t.Fatalf("dl.jobs after restart: %q, want fine", got)
	}
}
