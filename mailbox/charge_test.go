package mailbox

import "testing"

// Config.Charge is told every change of the bytes held per sender: at
// every step the charges add up to HeldBytes, sender by sender, and
// Destroy gives all of it back.
func TestChargeFollowsHeldBytesPerSender(t *testing.T) {
	charged := map[uint32]int64{}
	m := New(Config{Capacity: 2, MaxDeliveries: 2, TTL: 10,
		Charge: func(s Identity, n int64) { charged[s.UID] += n }})
	check := func(step string, want map[uint32]int64) {
		t.Helper()
		var sum int64
		for uid, n := range charged {
			if n != want[uid] {
				t.Fatalf("%s: uid %d charged %d, want %d", step, uid, n, want[uid])
			}
			sum += n
		}
		if sum != m.HeldBytes() {
			t.Fatalf("%s: charges add up to %d, HeldBytes %d", step, sum, m.HeldBytes())
		}
	}
	msg := func(uid uint32, body string, at int64) *Message {
		return &Message{Type: 1, Body: []byte(body), Sender: Identity{UID: uid}, SentUnixNano: at}
	}
	m.Send(msg(1, "aaaa", 0), false, nil)
	m.Send(msg(2, "bb", 5), false, nil)
	check("two queued", map[uint32]int64{1: 4, 2: 2})
	blocked := sender("s", 9)
	m.Send(msg(1, "cccccc", 5), false, blocked) // full: waits to enter
	check("one waiting to enter", map[uint32]int64{1: 10, 2: 2})

	r := oneShot("r", 7, 0)
	m.Receive(r, false) // leases aaaa; cccccc enters
	check("leased, and the waiting one admitted", map[uint32]int64{1: 10, 2: 2})
	lease := m.Effects()[0].Lease
	m.Nack(7, lease) // back to the queue
	check("nacked", map[uint32]int64{1: 10, 2: 2})
	m.Receive(oneShot("r2", 7, 0), false)
	var l2 uint64
	for _, e := range m.Effects() {
		if e.Kind == EffDeliver {
			l2 = e.Lease
		}
	}
	m.Nack(7, l2) // second delivery: dead-lettered
	check("dead-lettered", map[uint32]int64{1: 6, 2: 2})
	m.Expire(100) // everything left is past its TTL
	check("expired", map[uint32]int64{})

	m.Send(msg(3, "ddd", 200), false, nil)
	m.Receive(oneShot("r3", 8, 0), false)
	m.Send(msg(3, "e", 200), false, nil)
	m.Send(msg(2, "ff", 200), false, nil)
	m.Send(msg(2, "gg", 200), false, sender("s2", 9)) // waiting
	check("before destroy", map[uint32]int64{2: 4, 3: 4})
	m.Destroy(nil)
	check("destroyed", map[uint32]int64{})
}

// Config.TryLease passes over a receiver it refuses, as if nothing
// matched, without holding up anyone else; Retry serves it once it
// would say yes, and auto-acking receivers are never asked.
func TestTryLeaseStallsOneReceiverUntilRetry(t *testing.T) {
	room := map[uint32]int{1: 2, 2: 100}
	m := New(Config{Capacity: -1, TryLease: func(id Identity) bool {
		if room[id.UID] == 0 {
			return false
		}
		room[id.UID]--
		return true
	}})
	hoarder := &Receiver{Ref: "hoarder", Ident: Identity{UID: 1, Endpoint: 1}, Consumer: true, Credit: 10}
	if err := m.Receive(hoarder, true); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"a", "b", "c", "d"} {
		m.Send(newMsg(b, 1, 0), false, nil)
	}
	if st := m.Stats(); st.InFlight != 2 || st.Depth != 2 {
		t.Fatalf("hoarder stalled at 2: %+v", st)
	}
	other := oneShot("other", 2, 0)
	other.Ident.UID = 2
	m.Receive(other, false)
	if got := effStrings(m.Effects()); len(got) != 1 || got[0] != "deliver other c lease=3" {
		t.Fatalf("another uid: %v", got)
	}
	auto := &Receiver{Ref: "auto", Ident: Identity{UID: 1, Endpoint: 3}, AutoAck: true}
	m.Receive(auto, false)
	if got := effStrings(m.Effects()); len(got) != 1 || got[0] != "deliver auto d lease=0" {
		t.Fatalf("auto-ack by the stalled uid: %v", got)
	}
	m.Send(newMsg("e", 1, 0), false, nil)
	if st := m.Stats(); st.Depth != 1 {
		t.Fatalf("a new message went to the stalled hoarder: %+v", st)
	}
	room[1] = 1 // it settled one
	m.Retry()
	if got := effStrings(m.Effects()); len(got) != 1 || got[0] != "deliver hoarder e lease=4" {
		t.Fatalf("after Retry: %v", got)
	}
}
