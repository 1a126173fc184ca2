package mailbox

import (
	"errors"
	"math/rand/v2"
	"testing"
)

func TestCloseSendRefusesSendsAndChangesNothing(t *testing.T) {
	m := New(Config{Capacity: -1})
	mustSend(t, m, newMsg("a", 1, 0))
	if !m.CloseSend() || m.CloseSend() {
		t.Fatal("CloseSend: want true, then false once closed")
	}
	_, _, err := m.Send(newMsg("b", 1, 0), false, sender("s", 1))
	if !errors.Is(err, ErrEndOfStream) {
		t.Fatalf("send to a closed mailbox: %v, want ErrEndOfStream", err)
	}
	wantEffects(t, m)
	wantQueue(t, m, "a")
}

func TestCloseSendFailsWaitingSenders(t *testing.T) {
	m := New(Config{Capacity: 1})
	mustSend(t, m, newMsg("a", 1, 0))
	if _, done, err := m.Send(newMsg("b", 1, 0), false, sender("s1", 1)); done || err != nil {
		t.Fatalf("send to a full mailbox: done=%v err=%v", done, err)
	}
	m.CloseSend()
	wantEffects(t, m, "fail s1: mailbox: end of stream")
	if m.HeldBytes() != 1 {
		t.Fatalf("held %d bytes, want 1 (only a)", m.HeldBytes())
	}
}

func TestReceiversDrainThenReachEndOfStream(t *testing.T) {
	m := New(Config{Capacity: -1})
	mustSend(t, m, newMsg("a", 1, 0))
	mustSend(t, m, newMsg("b", 1, 0))
	m.CloseSend()
	wantEffects(t, m)
	c := consumer("c", 1, 0, 10)
	if err := m.Receive(c, true); err != nil {
		t.Fatal(err)
	}
	// Both delivered, but leased: the consumer stays until they are settled.
	wantEffects(t, m, "deliver c a lease=1", "deliver c b lease=2")
	if err := m.Nack(1, 1); err != nil {
		t.Fatal(err)
	}
	wantEffects(t, m, "deliver c a lease=3") // a came back: not the end yet
	if err := m.Ack(1, 2); err != nil {
		t.Fatal(err)
	}
	wantEffects(t, m)
	if err := m.Ack(1, 3); err != nil {
		t.Fatal(err)
	}
	wantEffects(t, m, "fail c: mailbox: end of stream")
}

func TestReceiveOnClosedEmptyMailboxIsEndOfStream(t *testing.T) {
	for _, wait := range []bool{true, false} {
		m := New(Config{Capacity: -1})
		m.CloseSend()
		if err := m.Receive(oneShot("r", 1, 0), wait); !errors.Is(err, ErrEndOfStream) {
			t.Fatalf("wait=%v: %v, want ErrEndOfStream", wait, err)
		}
		if err := m.Receive(consumer("c", 1, 0, 0), wait); !errors.Is(err, ErrEndOfStream) {
			t.Fatalf("consumer without credit: %v, want ErrEndOfStream", err)
		}
		if st := m.Stats(); st.Receivers+st.Consumers != 0 {
			t.Fatalf("receivers registered at end of stream: %+v", st)
		}
	}
}

func TestAutoAckConsumerTakingTheLastMessageEndsAtOnce(t *testing.T) {
	m := New(Config{Capacity: -1})
	mustSend(t, m, newMsg("a", 1, 0))
	m.CloseSend()
	c := consumer("c", 1, 0, 5)
	c.AutoAck = true
	if err := m.Receive(c, true); err != nil {
		t.Fatal(err)
	}
	wantEffects(t, m, "deliver c a lease=0", "fail c: mailbox: end of stream")
}

func TestEndOfStreamFollowsTheSelector(t *testing.T) {
	m := New(Config{Capacity: -1})
	mustSend(t, m, newMsg("two", 2, 0))
	r3 := oneShot("r3", 1, 3)
	r2 := oneShot("r2", 2, 2)
	if err := m.Receive(r3, true); err != nil {
		t.Fatal(err)
	}
	m.CloseSend()
	// Nothing of type 3 will ever come: r3 ends; r2 still has "two".
	wantEffects(t, m, "fail r3: mailbox: end of stream")
	if err := m.Receive(r2, true); err != nil {
		t.Fatal(err)
	}
	wantEffects(t, m, "deliver r2 two lease=1")
}

func TestReopenSendLetsSendersInAndKeepsWaitingReceivers(t *testing.T) {
	m := New(Config{Capacity: -1})
	mustSend(t, m, newMsg("a", 1, 0))
	m.CloseSend()
	r := oneShot("r", 1, 5) // waits: nothing of type 5, but the mailbox is reopened first
	m.ReopenSend()
	if err := m.Receive(r, true); err != nil {
		t.Fatal(err)
	}
	wantEffects(t, m)
	mustSend(t, m, newMsg("five", 5, 0))
	wantEffects(t, m, "deliver r five lease=1")
}

func TestDisconnectReturningTheLastLeaseFeedsTheNextReceiver(t *testing.T) {
	m := New(Config{Capacity: -1})
	mustSend(t, m, newMsg("a", 1, 0))
	m.Receive(oneShot("r1", 1, 0), true)
	m.CloseSend()
	r2 := oneShot("r2", 2, 0)
	if err := m.Receive(r2, true); err != nil {
		t.Fatal(err) // a is leased: it may come back, so r2 waits
	}
	wantEffects(t, m)
	m.Disconnect(1)
	wantEffects(t, m, "deliver r2 a lease=2")
}

// TestRandomEndOfStreamMatchesModel drives a mailbox with random sends,
// receives, settles, disconnects, closes and reopens, and checks after
// every step the two promises of end of stream: no receiver reached it
// while a message it could take was queued or leased (or the mailbox
// open), and no receiver is left waiting on a closed mailbox with
// nothing it could take; and every message sent is delivered or still
// there, none lost to the end of the stream.
func TestRandomEndOfStreamMatchesModel(t *testing.T) {
	ends := 0 // receivers that reached the end of a stream, all seeds
	for seed := uint64(1); seed <= 200; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		m := New(Config{Capacity: int64(rng.IntN(4)) - 1})
		if m.Config().Capacity == 0 {
			m = New(Config{Capacity: -1})
		}
		type held struct{ ep, lease uint64 }
		var leases []held
		regs := map[*Receiver]bool{}
		sent, acked := 0, 0
		for step := 0; step < 300; step++ {
			switch op := rng.IntN(10); {
			case op < 3:
				_, _, err := m.Send(newMsg("m", int64(1+rng.IntN(3)), 0), false, nil)
				if m.Closed() != errors.Is(err, ErrEndOfStream) {
					t.Fatalf("seed %d: send closed=%v err=%v", seed, m.Closed(), err)
				}
				if err == nil {
					sent++
				}
			case op < 5:
				ep := uint64(1 + rng.IntN(3))
				var r *Receiver
				if rng.IntN(2) == 0 {
					r = oneShot("r", ep, int64(rng.IntN(4)))
				} else {
					r = consumer("c", ep, int64(rng.IntN(4)), uint32(rng.IntN(3)))
				}
				r.Ref = r
				atEnd := m.AtEnd(r.Type)
				err := m.Receive(r, true)
				if errors.Is(err, ErrEndOfStream) != atEnd {
					t.Fatalf("seed %d: receive at end=%v err=%v", seed, atEnd, err)
				}
				if err == nil {
					regs[r] = true
				}
			case op < 7 && len(leases) > 0:
				i := rng.IntN(len(leases))
				l := leases[i]
				leases = append(leases[:i], leases[i+1:]...)
				if rng.IntN(2) == 0 {
					if m.Ack(l.ep, l.lease) == nil {
						acked++
					}
				} else {
					m.Nack(l.ep, l.lease)
				}
			case op == 7:
				ep := uint64(1 + rng.IntN(3))
				m.Disconnect(ep)
				kept := leases[:0]
				for _, l := range leases {
					if l.ep != ep {
						kept = append(kept, l)
					}
				}
				leases = kept
				for r := range regs {
					if r.Ident.Endpoint == ep {
						delete(regs, r)
					}
				}
			case op == 8:
				m.CloseSend()
			default:
				m.ReopenSend()
			}
			for _, e := range m.Effects() {
				switch e.Kind {
				case EffDeliver:
					r := e.Ref.(*Receiver)
					leases = append(leases, held{r.Ident.Endpoint, e.Lease})
					if !r.Waiting() {
						delete(regs, r)
					}
				case EffFail:
					r, ok := e.Ref.(*Receiver)
					if !ok {
						continue
					}
					if !errors.Is(e.Err, ErrEndOfStream) || !m.AtEnd(r.Type) {
						t.Fatalf("seed %d step %d: receiver failed with %v while not at end", seed, step, e.Err)
					}
					delete(regs, r)
					ends++
				}
			}
			for r := range regs {
				if !r.Waiting() {
					delete(regs, r)
					continue
				}
				if m.AtEnd(r.Type) {
					t.Fatalf("seed %d step %d: a receiver (type %d) waits on a closed mailbox with nothing for it", seed, step, r.Type)
				}
			}
			checkInvariants(t, m)
			if st := m.Stats(); sent != acked+st.Depth+st.InFlight {
				t.Fatalf("seed %d step %d: %d sent, %d acked, %d queued, %d leased", seed, step, sent, acked, st.Depth, st.InFlight)
			}
		}
	}
	if ends < 100 {
		t.Fatalf("only %d receivers reached the end of a stream: the test does not exercise it", ends)
	}
}
