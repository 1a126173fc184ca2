package mailbox

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// Helpers shared by the tests. Messages are named by their body, and
// receivers and senders by their Ref, so effects print as readable lines
// ("deliver r1 a lease=1") and tests compare them as strings.

func newMsg(body string, typ int64, prio uint8) *Message {
	return &Message{Type: typ, Priority: prio, Body: []byte(body)}
}

func oneShot(ref string, ep uint64, typ int64) *Receiver {
	return &Receiver{Ref: ref, Ident: Identity{Endpoint: ep}, Type: typ}
}

func consumer(ref string, ep uint64, typ int64, credit uint32) *Receiver {
	return &Receiver{Ref: ref, Ident: Identity{Endpoint: ep}, Type: typ, Consumer: true, Credit: credit}
}

func sender(ref string, ep uint64) *Sender { return &Sender{Ref: ref, Endpoint: ep} }

// effString prints one effect. It must be called right after the call that
// made it: it reads the message's current fields.
func effString(e Effect) string {
	body := "<nil>"
	if e.Msg != nil {
		body = string(e.Msg.Body)
	}
	switch e.Kind {
	case EffDeliver:
		return fmt.Sprintf("deliver %v %s lease=%d", e.Ref, body, e.Lease)
	case EffSendDone:
		s := fmt.Sprintf("sent %v %s seq=%d", e.Ref, body, e.Msg.Seq)
		if e.Taken {
			s += fmt.Sprintf(" taken by ep%d", e.Receipt.Endpoint)
		}
		return s
	case EffFail:
		return fmt.Sprintf("fail %v: %v", e.Ref, e.Err)
	case EffDeadLetter:
		return fmt.Sprintf("deadletter %s (%s)", body, e.Reason)
	case EffEnqueued:
		return fmt.Sprintf("enqueued %s seq=%d", body, e.Msg.Seq)
	case EffLeased:
		return fmt.Sprintf("leased %s lease=%d", body, e.Msg.lease)
	case EffReturned:
		return fmt.Sprintf("returned %s redeliveries=%d", body, e.Msg.Redeliveries)
	case EffRemoved:
		return fmt.Sprintf("removed %s", body)
	case EffRelease:
		return fmt.Sprintf("release %s", body)
	}
	return fmt.Sprintf("unknown effect %d", e.Kind)
}

func effStrings(effs []Effect) []string {
	out := []string{}
	for _, e := range effs {
		out = append(out, effString(e))
	}
	return out
}

// wantEffects checks the effects of the last call, in order.
func wantEffects(t *testing.T, m *Mailbox, want ...string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	if got := effStrings(m.Effects()); !slices.Equal(got, want) {
		t.Fatalf("effects:\n got  %s\n want %s", strings.Join(got, "\n      "), strings.Join(want, "\n      "))
	}
	checkInvariants(t, m)
}

// queued lists the bodies of the queued messages in queue order.
func queued(m *Mailbox) []string {
	out := []string{}
	m.q.all(func(l *lane) bool {
		for i := range l.len() {
			out = append(out, string(l.at(i).Body))
		}
		return true
	})
	return out
}

func wantQueue(t *testing.T, m *Mailbox, want ...string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	if got := queued(m); !slices.Equal(got, want) {
		t.Fatalf("queue = %q, want %q", got, want)
	}
}

// mustSend sends a message that must complete at once.
func mustSend(t *testing.T, m *Mailbox, msg *Message) Result {
	t.Helper()
	res, done, err := m.Send(msg, false, nil)
	if err != nil || !done {
		t.Fatalf("send %s: done=%v err=%v", msg.Body, done, err)
	}
	checkInvariants(t, m)
	return res
}

// deliveredLease returns the lease of the only EffDeliver of the last call.
func deliveredLease(t *testing.T, m *Mailbox) uint64 {
	t.Helper()
	var lease uint64
	n := 0
	for _, e := range m.Effects() {
		if e.Kind == EffDeliver {
			lease = e.Lease
			n++
		}
	}
	if n != 1 {
		t.Fatalf("want exactly one delivery, got %s", effStrings(m.Effects()))
	}
	return lease
}

// checkInvariants verifies the structure behind the mailbox's promises: the
// queue is in queue order and its counters agree with its contents, no
// waiting receiver could take a queued message, every lease and offer is
// linked both ways, and HeldBytes is the bytes queued + leased + blocked.
func checkInvariants(t testing.TB, m *Mailbox) {
	t.Helper()
	if err := invariantError(m); err != nil {
		t.Fatal(err)
	}
}

func invariantError(m *Mailbox) error {
	var n int
	var qbytes int64
	for p := range m.q.lanes {
		l := &m.q.lanes[p]
		set := m.q.bits[p>>6]&(1<<(p&63)) != 0
		if set != (l.len() > 0) {
			return fmt.Errorf("lane %d: bit %v with %d messages", p, set, l.len())
		}
		for i := range l.len() {
			msg := l.at(i)
			if int(msg.Priority) != p || msg.Urgent {
				return fmt.Errorf("message %s of priority %d in lane %d", msg.Body, msg.Priority, p)
			}
			if i > 0 && l.at(i-1).Seq >= msg.Seq {
				return fmt.Errorf("lane %d out of Seq order at %d", p, i)
			}
			if msg.lease != 0 {
				return fmt.Errorf("queued message %s is leased", msg.Body)
			}
			if msg.offer != nil && (msg.offer.list != &m.offers || msg.offer.Msg != msg) {
				return fmt.Errorf("queued message %s has a dangling offer", msg.Body)
			}
			n++
			qbytes += int64(len(msg.Body))
		}
	}
	for i := range m.q.urgent.len() {
		msg := m.q.urgent.at(i)
		if !msg.Urgent {
			return fmt.Errorf("message %s in the urgent lane is not urgent", msg.Body)
		}
		if i > 0 && m.q.urgent.at(i-1).Seq >= msg.Seq {
			return fmt.Errorf("urgent lane out of Seq order at %d", i)
		}
		if msg.lease != 0 {
			return fmt.Errorf("queued message %s is leased", msg.Body)
		}
		if msg.offer != nil && (msg.offer.list != &m.offers || msg.offer.Msg != msg) {
			return fmt.Errorf("queued message %s has a dangling offer", msg.Body)
		}
		n++
		qbytes += int64(len(msg.Body))
	}
	if m.cfg.Capacity > 0 && int64(m.q.n) > m.cfg.Capacity+UrgentReserve {
		return fmt.Errorf("%d queued, more than capacity %d + reserve", m.q.n, m.cfg.Capacity)
	}
	urgentBlocked := 0
	for s := m.blocked.head; s != nil; s = s.next {
		if s.Msg.Urgent {
			urgentBlocked++
		}
	}
	if urgentBlocked != m.blockedUrgent {
		return fmt.Errorf("blockedUrgent = %d, %d urgent senders blocked", m.blockedUrgent, urgentBlocked)
	}
	if n != m.q.n || qbytes != m.q.bytes {
		return fmt.Errorf("queue counts n=%d bytes=%d, contents n=%d bytes=%d", m.q.n, m.q.bytes, n, qbytes)
	}
	held := qbytes
	for id, msg := range m.leases {
		if msg.lease != id {
			return fmt.Errorf("lease %d maps to message %s with lease %d", id, msg.Body, msg.lease)
		}
		held += int64(len(msg.Body))
	}
	blocked := 0
	for s := m.blocked.head; s != nil; s = s.next {
		if s.list != &m.blocked || s.offered {
			return fmt.Errorf("blocked sender %v misfiled", s.Ref)
		}
		held += int64(len(s.Msg.Body))
		blocked++
	}
	if blocked != m.blocked.n {
		return fmt.Errorf("blocked list n=%d, holds %d", m.blocked.n, blocked)
	}
	offers := 0
	for s := m.offers.head; s != nil; s = s.next {
		if !s.offered || s.Msg.offer != s || !m.q.has(s.Msg) {
			return fmt.Errorf("offer %v is not in the queue", s.Ref)
		}
		offers++
	}
	if offers != m.offers.n {
		return fmt.Errorf("offers list n=%d, holds %d", m.offers.n, offers)
	}
	if held != m.held {
		return fmt.Errorf("HeldBytes = %d, want %d (queued+leased+blocked)", m.held, held)
	}
	if m.cfg.Capacity > 0 && m.blocked.n > 0 && int64(m.q.n) < m.cfg.Capacity {
		return fmt.Errorf("%d senders blocked with %d/%d queued", m.blocked.n, m.q.n, m.cfg.Capacity)
	}
	for r := m.waiting.head; r != nil; r = r.next {
		if r.Credit == 0 {
			return fmt.Errorf("receiver %v waits with no credit", r.Ref)
		}
		if _, _, ok := m.q.pick(r.Type); ok {
			return fmt.Errorf("receiver %v waits while a message it takes is queued %q", r.Ref, queued(m))
		}
	}
	for r := m.parked.head; r != nil; r = r.next {
		if r.Credit != 0 || !r.Consumer {
			return fmt.Errorf("parked receiver %v has credit %d consumer=%v", r.Ref, r.Credit, r.Consumer)
		}
	}
	st := m.Stats()
	if st.Depth != m.q.n || st.Bytes != m.q.bytes || st.HeldBytes != m.held || st.InFlight != len(m.leases) ||
		st.Receivers+st.Consumers != m.waiting.n+m.parked.n || st.BlockedSenders != m.blocked.n+m.offers.n {
		return fmt.Errorf("stats %+v disagree with the mailbox", st)
	}
	return nil
}
