package mailbox

import (
	"errors"
	"testing"
)

// holding is a Releaser that counts its releases.
type holding struct{ n int }

func (h *holding) Release() { h.n++ }

func heldMsg(body string) (*Message, *holding) {
	h := new(holding)
	m := newMsg(body, 1, 0)
	m.Hold = h
	return m, h
}

// releaseAll carries out the last call's EffRelease effects, as an owner
// does, and returns how many there were.
func releaseEffects(m *Mailbox) int {
	n := 0
	for _, e := range m.Effects() {
		if e.Kind == EffRelease {
			e.Ref.(Releaser).Release()
			n++
		}
	}
	return n
}

func wantReleased(t *testing.T, h *holding, n int) {
	t.Helper()
	if h.n != n {
		t.Fatalf("released %d times, want %d", h.n, n)
	}
}

func TestAckReleasesWhatTheMessageHolds(t *testing.T) {
	m := New(Config{Capacity: -1})
	msg, h := heldMsg("a")
	m.Send(msg, false, nil)
	m.Receive(oneShot("r1", 1, 0), false)
	wantEffects(t, m, "deliver r1 a lease=1")
	m.Ack(1, 1)
	wantEffects(t, m, "release a")
	releaseEffects(m)
	wantReleased(t, h, 1)
	if msg.Hold != nil {
		t.Fatal("a released message still holds")
	}
}

func TestAutoAckReleasesAfterTheDelivery(t *testing.T) {
	m := New(Config{Capacity: -1})
	msg, h := heldMsg("a")
	m.Send(msg, false, nil)
	r := oneShot("r1", 1, 0)
	r.AutoAck = true
	m.Receive(r, false)
	wantEffects(t, m, "deliver r1 a lease=0", "release a")
	if msg.Hold == nil {
		t.Fatal("the delivery of an auto-acked message lost what it holds")
	}
	releaseEffects(m)
	wantReleased(t, h, 1)
}

func TestNackAndDisconnectKeepWhatTheMessageHolds(t *testing.T) {
	m := New(Config{Capacity: -1})
	msg, h := heldMsg("a")
	m.Send(msg, false, nil)
	m.Receive(oneShot("r1", 1, 0), false)
	m.Nack(1, 1)
	wantEffects(t, m)
	m.Receive(oneShot("r2", 2, 0), false)
	m.Disconnect(2)
	wantEffects(t, m)
	m.Receive(oneShot("r3", 3, 0), false)
	wantEffects(t, m, "deliver r3 a lease=3")
	if msg.Hold == nil {
		t.Fatal("a redelivered message lost what it holds")
	}
	m.Ack(3, 3)
	releaseEffects(m)
	wantReleased(t, h, 1)
}

func TestDeadLetterReleasesBeforeTheMove(t *testing.T) {
	m := New(Config{Capacity: -1, MaxDeliveries: 1})
	msg, h := heldMsg("a")
	m.Send(msg, false, nil)
	m.Receive(oneShot("r1", 1, 0), false)
	m.Nack(1, 1)
	wantEffects(t, m, "release a", "deadletter a (max deliveries reached)")
	releaseEffects(m)
	wantReleased(t, h, 1)
	if msg.Hold != nil {
		t.Fatal("the dead letter still holds: it would be released twice")
	}
}

func TestExpiryReleases(t *testing.T) {
	m := New(Config{Capacity: -1, TTL: 10})
	msg, h := heldMsg("a")
	msg.SentUnixNano = 100
	m.Send(msg, false, nil)
	m.Expire(200)
	wantEffects(t, m, "release a", "deadletter a (expired)")
	releaseEffects(m)
	wantReleased(t, h, 1)
}

func TestWithdrawReleases(t *testing.T) {
	m := New(Config{Capacity: -1})
	msg, h := heldMsg("a")
	m.Send(msg, false, nil)
	if !m.Withdraw(msg) {
		t.Fatal("not withdrawn")
	}
	releaseEffects(m)
	wantReleased(t, h, 1)
}

func TestGivenUpSendsRelease(t *testing.T) {
	m := New(Config{Capacity: 1})
	m.Send(newMsg("x", 1, 0), false, nil)
	blocked, hb := heldMsg("blocked")
	m.Send(blocked, false, sender("s1", 1))
	m.CancelSend(m.blocked.head, errors.New("gone"))
	releaseEffects(m)
	wantReleased(t, hb, 1)

	r := New(Config{Capacity: 0})
	offer, ho := heldMsg("offer")
	s := sender("s2", 2)
	r.Send(offer, true, s)
	r.CancelSend(s, ErrTimeout)
	releaseEffects(r)
	wantReleased(t, ho, 1)

	d := New(Config{Capacity: 0})
	offer2, ho2 := heldMsg("offer2")
	d.Send(offer2, true, sender("s3", 3))
	d.Disconnect(3)
	releaseEffects(d)
	wantReleased(t, ho2, 1)
}

func TestDestroyReleasesEveryHeldMessageOnce(t *testing.T) {
	m := New(Config{Capacity: 2})
	q, hq := heldMsg("queued")
	l, hl := heldMsg("leased")
	b, hb := heldMsg("blocked")
	m.Send(l, false, nil)
	m.Receive(oneShot("r1", 1, 0), false)
	m.Send(q, false, nil)
	m.Send(newMsg("plain", 1, 0), false, nil)
	m.Send(b, false, sender("s1", 1))
	m.Destroy(nil)
	if n := releaseEffects(m); n != 3 {
		t.Fatalf("%d releases, want 3", n)
	}
	for _, h := range []*holding{hq, hl, hb} {
		wantReleased(t, h, 1)
	}
	m.Ack(1, 1) // stale now: nothing more
	if releaseEffects(m) != 0 {
		t.Fatal("released after destroy")
	}

	o := New(Config{Capacity: 0})
	offer, ho := heldMsg("offer")
	o.Send(offer, true, sender("s2", 2))
	o.Destroy(nil)
	releaseEffects(o)
	wantReleased(t, ho, 1) // offered: in the queue and on the offers list, released once
}

func TestRefusedSendIsNotReleased(t *testing.T) {
	m := New(Config{Capacity: 1})
	m.Send(newMsg("x", 1, 0), false, nil)
	msg, h := heldMsg("a")
	if _, _, err := m.Send(msg, false, nil); err != ErrFull {
		t.Fatalf("err %v", err)
	}
	releaseEffects(m)
	wantReleased(t, h, 0) // still its caller's
	if msg.Hold == nil {
		t.Fatal("a refused message lost its hold")
	}
}
