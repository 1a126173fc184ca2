package mailbox

import (
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// A randomized model-based test. Random operations run against a Mailbox
// and against a reference model that knows, for every message, where it is
// (blocked with its sender, queued, leased to whom, or gone and how). The
// model follows the mailbox's effects and checks that each is legal — a
// message is delivered only from the queue or a blocked sender, never twice
// unless it came back, a gone message never reappears — and after every
// operation that both agree on where every message is, on HeldBytes, on the
// waiters, and on what the journal says a store would hold. Receives are
// checked against a plain sort of the queued messages (the msgrcv rules).
// At the end everything is drained: every message sent was consumed exactly
// once, withdrawn, or dead-lettered.

type place uint8

const (
	pBlocked place = iota + 1
	pQueued
	pLeased
	pConsumed
	pWithdrawn
	pDead
)

func (p place) String() string {
	return [...]string{"?", "blocked", "queued", "leased", "consumed", "withdrawn", "dead"}[p]
}

type modelMsg struct {
	msg      *Message
	place    place
	lease    uint64
	holder   uint64
	consumed int
}

type model struct {
	t      *testing.T
	m      *Mailbox
	rng    *rand.Rand
	now    int64
	msgs   map[*Message]*modelMsg
	order  []*modelMsg // in send order, for deterministic iteration
	leases map[uint64]*modelMsg
	// usedLeases: every lease id ever delivered, to check ids never repeat.
	usedLeases map[uint64]bool
	receivers  []*Receiver // registered, in registration order
	senders    []*Sender   // waiting
	store      map[*Message]bool
	log        []string
	destroyed  bool
	received   uint64
	names      int
	credit     map[*Receiver]uint32 // consumers' credit left, by the model's count
}

func (md *model) fatalf(format string, args ...any) {
	md.t.Helper()
	tail := md.log
	if len(tail) > 15 {
		tail = tail[len(tail)-15:]
	}
	md.t.Fatalf("%s\nlast operations:\n  %s", fmt.Sprintf(format, args...), joinLines(tail))
}

func joinLines(s []string) string {
	out := ""
	for i, l := range s {
		if i > 0 {
			out += "\n  "
		}
		out += l
	}
	return out
}

// queueOrder lists the model's queued messages in queue order.
func (md *model) queueOrder() []*modelMsg {
	var q []*modelMsg
	for _, mm := range md.order {
		if mm.place == pQueued {
			q = append(q, mm)
		}
	}
	slices.SortFunc(q, func(a, b *modelMsg) int {
		if a.msg.Urgent != b.msg.Urgent {
			if a.msg.Urgent {
				return -1
			}
			return 1
		}
		if a.msg.Urgent {
			return cmp.Compare(a.msg.Seq, b.msg.Seq)
		}
		if c := cmp.Compare(b.msg.Priority, a.msg.Priority); c != 0 {
			return c
		}
		return cmp.Compare(a.msg.Seq, b.msg.Seq)
	})
	return q
}

// refPick is msgrcv written as plainly as possible, over the urgent
// messages first (q is in queue order: they lead it), then the rest.
func refPick(q []*modelMsg, sel int64) *modelMsg {
	n := 0
	for n < len(q) && q[n].msg.Urgent {
		n++
	}
	if mm := refPickIn(q[:n], sel); mm != nil {
		return mm
	}
	return refPickIn(q[n:], sel)
}

func refPickIn(q []*modelMsg, sel int64) *modelMsg {
	var best *modelMsg
	for _, mm := range q {
		t := mm.msg.Type
		switch {
		case sel == 0:
			return mm
		case sel > 0:
			if t == sel {
				return mm
			}
		default:
			if t <= -sel && (best == nil || t < best.msg.Type) {
				best = mm
			}
		}
	}
	return best
}

func bodyOf(mm *modelMsg) string {
	if mm == nil {
		return "nothing"
	}
	return string(mm.msg.Body)
}

func (md *model) registered(r *Receiver) int  { return slices.Index(md.receivers, r) }
func (md *model) waitingSender(s *Sender) int { return slices.Index(md.senders, s) }

// apply follows the effects of the last call. checkPick says deliveries
// of queued messages must follow the msgrcv rules against the model's
// queue (true except while Disconnect returns several leases at once).
func (md *model) apply(checkPick bool) {
	md.t.Helper()
	var taken []*modelMsg
	for _, e := range md.m.Effects() {
		switch e.Kind {
		case EffDeliver:
			r := e.Ref.(*Receiver)
			mm := md.msgs[e.Msg]
			if mm == nil {
				md.fatalf("delivered unknown message %s", e.Msg.Body)
			}
			if mm.place != pQueued && mm.place != pBlocked {
				md.fatalf("delivered %s while %v", e.Msg.Body, mm.place)
			}
			if md.registered(r) < 0 {
				md.fatalf("delivered %s to unregistered receiver %p", e.Msg.Body, r)
			}
			if checkPick && mm.place == pQueued {
				if want := refPick(md.queueOrder(), r.Type); want != mm {
					md.fatalf("receiver type %d got %s, msgrcv picks %s", r.Type, e.Msg.Body, bodyOf(want))
				}
			}
			if e.Lease == 0 {
				if !r.AutoAck {
					md.fatalf("lease 0 for a receiver without AutoAck")
				}
				md.consume(mm)
			} else {
				if r.AutoAck || md.usedLeases[e.Lease] {
					md.fatalf("lease %d: autoack=%v reused=%v", e.Lease, r.AutoAck, md.usedLeases[e.Lease])
				}
				md.usedLeases[e.Lease] = true
				mm.place, mm.lease, mm.holder = pLeased, e.Lease, r.Ident.Endpoint
				md.leases[e.Lease] = mm
			}
			if !r.Consumer {
				md.receivers = slices.Delete(md.receivers, md.registered(r), md.registered(r)+1)
			} else {
				if md.credit[r] == 0 {
					md.fatalf("delivered %s to a consumer with no credit", e.Msg.Body)
				}
				md.credit[r]--
			}
		case EffSendDone:
			s := e.Ref.(*Sender)
			i := md.waitingSender(s)
			if i < 0 || s.Msg != e.Msg {
				md.fatalf("completion for a sender not waiting")
			}
			md.senders = slices.Delete(md.senders, i, i+1)
			mm := md.msgs[e.Msg]
			if e.Taken {
				taken = append(taken, mm)
			} else {
				if mm.place != pBlocked {
					md.fatalf("untaken completion of %s while %v", e.Msg.Body, mm.place)
				}
				mm.place = pQueued
			}
		case EffFail:
			switch ref := e.Ref.(type) {
			case *Sender:
				i := md.waitingSender(ref)
				if i < 0 {
					md.fatalf("failed a sender not waiting")
				}
				md.senders = slices.Delete(md.senders, i, i+1)
				mm := md.msgs[ref.Msg]
				if mm.place != pBlocked && mm.place != pQueued {
					md.fatalf("withdrew %s while %v", ref.Msg.Body, mm.place)
				}
				mm.place = pWithdrawn
			case *Receiver:
				i := md.registered(ref)
				if i < 0 {
					md.fatalf("failed a receiver not registered")
				}
				md.receivers = slices.Delete(md.receivers, i, i+1)
			}
		case EffDeadLetter:
			mm := md.msgs[e.Msg]
			if mm.place != pQueued {
				md.fatalf("dead-lettered %s while %v", e.Msg.Body, mm.place)
			}
			mm.place = pDead
			// EffDeadLetter is also the journal entry of the removal.
			delete(md.store, e.Msg)
		case EffEnqueued:
			if md.store[e.Msg] || e.Msg.Seq == 0 {
				md.fatalf("journal enqueued %s twice or without Seq", e.Msg.Body)
			}
			md.store[e.Msg] = true
		case EffLeased, EffReturned:
			if !md.store[e.Msg] {
				md.fatalf("journal %d for %s not in the store", e.Kind, e.Msg.Body)
			}
		case EffRemoved:
			if !md.store[e.Msg] {
				md.fatalf("journal removed %s not in the store", e.Msg.Body)
			}
			delete(md.store, e.Msg)
		}
	}
	// A blocked sender with a receipt is admitted as an offer silently
	// (non-durable): its message is now queued.
	for _, s := range md.senders {
		if mm := md.msgs[s.Msg]; s.offered && mm.place == pBlocked {
			mm.place = pQueued
		}
	}
	for _, mm := range taken {
		if mm.place != pLeased && mm.place != pConsumed {
			md.fatalf("send of %s completed as taken, but it is %v", mm.msg.Body, mm.place)
		}
	}
}

func (md *model) consume(mm *modelMsg) {
	mm.consumed++
	if mm.consumed > 1 {
		md.fatalf("%s consumed twice", mm.msg.Body)
	}
	mm.place, mm.lease, mm.holder = pConsumed, 0, 0
	md.received++
}

// check compares the model with the mailbox.
func (md *model) check() {
	md.t.Helper()
	if err := invariantError(md.m); err != nil {
		md.fatalf("%v", err)
	}
	var held int64
	counts := map[place]int{}
	var sent uint64
	for _, mm := range md.order {
		counts[mm.place]++
		msg := mm.msg
		if msg.Seq != 0 {
			sent++
		}
		inQueue := msg.Seq != 0 && md.m.q.has(msg)
		leased := mm.lease != 0 && md.m.leases[mm.lease] == msg
		switch mm.place {
		case pBlocked, pQueued, pLeased:
			held += int64(len(msg.Body))
		}
		if inQueue != (mm.place == pQueued) || leased != (mm.place == pLeased) {
			md.fatalf("%s is %v in the model; in queue=%v leased=%v", msg.Body, mm.place, inQueue, leased)
		}
		if mm.place == pLeased && msg.holder != mm.holder {
			md.fatalf("%s held by %d, model says %d", msg.Body, msg.holder, mm.holder)
		}
		if md.destroyed {
			continue
		}
		inStore := md.store[msg]
		// An offered message (its sender waiting for it to be taken) is
		// journaled only when taken.
		offered := msg.offer != nil
		if md.m.cfg.Durable && inStore != ((mm.place == pQueued && !offered) || mm.place == pLeased) {
			md.fatalf("journal store has %s=%v, but it is %v", msg.Body, inStore, mm.place)
		}
	}
	if counts[pQueued] != md.m.q.n || counts[pLeased] != len(md.m.leases) || counts[pBlocked] != md.m.blocked.n {
		md.fatalf("model counts %v; mailbox queued=%d leased=%d blocked=%d", counts, md.m.q.n, len(md.m.leases), md.m.blocked.n)
	}
	if held != md.m.HeldBytes() {
		md.fatalf("HeldBytes = %d, model %d", md.m.HeldBytes(), held)
	}
	if len(md.receivers) != md.m.waiting.n+md.m.parked.n {
		md.fatalf("model has %d receivers, mailbox %d", len(md.receivers), md.m.waiting.n+md.m.parked.n)
	}
	for _, r := range md.receivers {
		if r.Consumer && r.Credit != md.credit[r] {
			md.fatalf("consumer credit %d, model %d", r.Credit, md.credit[r])
		}
	}
	if len(md.senders) != md.m.blocked.n+md.m.offers.n {
		md.fatalf("model has %d senders, mailbox %d", len(md.senders), md.m.blocked.n+md.m.offers.n)
	}
	st := md.m.Stats()
	if !md.destroyed && (st.Sent != sent || st.Received != md.received) {
		md.fatalf("stats sent=%d received=%d, model %d %d", st.Sent, st.Received, sent, md.received)
	}
	md.checkBrowse()
}

func (md *model) step() {
	md.t.Helper()
	rng := md.rng
	md.now += rng.Int64N(10)
	ep := uint64(1 + rng.IntN(3))
	switch op := rng.IntN(100); {
	case op < 30:
		md.send(ep)
	case op < 50:
		r := &Receiver{Ident: Identity{Endpoint: ep}, Type: rng.Int64N(9) - 4, AutoAck: rng.IntN(4) == 0}
		r.Ref = r
		wait := rng.IntN(2) == 0
		md.log = append(md.log, fmt.Sprintf("receive ep=%d type=%d autoack=%v wait=%v", ep, r.Type, r.AutoAck, wait))
		md.receivers = append(md.receivers, r) // provisionally
		err := md.m.Receive(r, wait)
		if errors.Is(err, ErrEmpty) {
			if wait || len(md.m.Effects()) != 0 {
				md.fatalf("ErrEmpty with wait=%v effects %q", wait, effStrings(md.m.Effects()))
			}
			if want := refPick(md.queueOrder(), r.Type); want != nil {
				md.fatalf("ErrEmpty for type %d, but %s is queued", r.Type, want.msg.Body)
			}
			md.receivers = md.receivers[:len(md.receivers)-1]
			return
		}
		md.mustOK(err)
		md.apply(true)
	case op < 56:
		r := &Receiver{Ident: Identity{Endpoint: ep}, Type: rng.Int64N(9) - 4, AutoAck: rng.IntN(3) == 0,
			Consumer: true, Credit: uint32(rng.IntN(4))}
		r.Ref = r
		md.log = append(md.log, fmt.Sprintf("consume ep=%d type=%d autoack=%v credit=%d", ep, r.Type, r.AutoAck, r.Credit))
		md.receivers = append(md.receivers, r)
		md.credit[r] = r.Credit
		md.mustOK(md.m.Receive(r, true))
		md.apply(true)
	case op < 62:
		if len(md.receivers) == 0 {
			return
		}
		r := md.receivers[rng.IntN(len(md.receivers))]
		n := uint32(rng.IntN(3))
		md.log = append(md.log, fmt.Sprintf("credit %p +%d", r, n))
		md.m.AddCredit(r, n)
		if r.Consumer {
			md.credit[r] += n
		}
		md.apply(true)
	case op < 75:
		md.settle(ep, rng.IntN(2) == 0)
	case op < 79:
		if len(md.receivers) == 0 {
			return
		}
		r := md.receivers[rng.IntN(len(md.receivers))]
		md.log = append(md.log, fmt.Sprintf("cancel receive %p", r))
		md.m.CancelReceive(r, ErrCanceled)
		if len(md.m.Effects()) != 1 {
			md.fatalf("cancel of a registered receiver: %q", effStrings(md.m.Effects()))
		}
		md.apply(true)
	case op < 85:
		if len(md.senders) == 0 {
			return
		}
		s := md.senders[rng.IntN(len(md.senders))]
		md.log = append(md.log, fmt.Sprintf("cancel send %s", s.Msg.Body))
		md.m.CancelSend(s, ErrTimeout)
		md.apply(true)
	case op < 88:
		md.disconnect(ep)
	case op < 92:
		md.log = append(md.log, fmt.Sprintf("expire now=%d", md.now))
		next := md.m.Expire(md.now)
		md.apply(true)
		if md.m.cfg.TTL > 0 {
			for _, mm := range md.queueOrder() {
				at := mm.msg.SentUnixNano + md.m.cfg.TTL
				if mm.msg.offer == nil && (at <= md.now || at < next) {
					md.fatalf("after Expire(%d) = %d, %s expires at %d", md.now, next, mm.msg.Body, at)
				}
			}
		}
	case op < 96:
		md.withdraw(ep)
	default:
		// Stale acks: a lease never held, or a held one by the wrong endpoint.
		lease := uint64(rng.IntN(len(md.usedLeases) + 2))
		mm := md.leases[lease]
		if mm != nil && mm.holder == ep {
			return
		}
		md.log = append(md.log, fmt.Sprintf("stale ack ep=%d lease=%d", ep, lease))
		before := md.m.Stats()
		if err := md.m.Ack(ep, lease); !errors.Is(err, ErrStaleLease) {
			md.fatalf("stale ack: %v", err)
		}
		if err := md.m.Nack(ep, lease); !errors.Is(err, ErrStaleLease) {
			md.fatalf("stale nack: %v", err)
		}
		if md.m.Stats() != before || len(md.m.Effects()) != 0 {
			md.fatalf("a stale ack changed the mailbox")
		}
	}
}

func (md *model) mustOK(err error) {
	md.t.Helper()
	if err != nil {
		md.fatalf("unexpected error %v", err)
	}
}

func (md *model) send(ep uint64) {
	rng := md.rng
	md.names++
	msg := &Message{
		Type:         1 + rng.Int64N(4),
		Priority:     uint8(rng.IntN(3)),
		Body:         fmt.Appendf(nil, "m%d%s", md.names, "....."[:rng.IntN(6)]),
		SentUnixNano: md.now,
		Urgent:       rng.IntN(6) == 0,
		Sender:       Identity{Kind: 1, UID: uint32(ep), Endpoint: ep},
	}
	receipt := rng.IntN(5) == 0
	var s *Sender
	if rng.IntN(3) > 0 {
		s = &Sender{Endpoint: ep}
		s.Ref = s
	}
	md.log = append(md.log, fmt.Sprintf("send %s type=%d prio=%d urgent=%v receipt=%v wait=%v ep=%d",
		msg.Body, msg.Type, msg.Priority, msg.Urgent, receipt, s != nil, ep))
	mm := &modelMsg{msg: msg, place: pBlocked}
	before := md.m.Stats()
	res, done, err := md.m.Send(msg, receipt, s)
	if errors.Is(err, ErrFull) {
		if s != nil || msg.Seq != 0 || md.m.Stats() != before || len(md.m.Effects()) != 0 {
			md.fatalf("ErrFull changed something")
		}
		return
	}
	md.mustOK(err)
	md.msgs[msg] = mm
	md.order = append(md.order, mm)
	if s != nil {
		md.senders = append(md.senders, s)
	}
	if done {
		if s != nil {
			md.senders = md.senders[:len(md.senders)-1]
		}
		if res.Seq != msg.Seq {
			md.fatalf("result seq %d, message seq %d", res.Seq, msg.Seq)
		}
		if !res.Taken {
			mm.place = pQueued
		}
	} else if s.offered {
		mm.place = pQueued
	}
	md.apply(true)
	if done && res.Taken && mm.place != pLeased && mm.place != pConsumed {
		md.fatalf("send reported taken, message is %v", mm.place)
	}
}

// settle acks or nacks a lease held by ep, if any.
func (md *model) settle(ep uint64, ack bool) {
	var held []*modelMsg
	for _, mm := range md.order {
		if mm.place == pLeased && mm.holder == ep {
			held = append(held, mm)
		}
	}
	if len(held) == 0 {
		return
	}
	mm := held[md.rng.IntN(len(held))]
	md.log = append(md.log, fmt.Sprintf("ack=%v ep=%d %s lease=%d", ack, ep, mm.msg.Body, mm.lease))
	lease := mm.lease
	if ack {
		md.mustOK(md.m.Ack(ep, lease))
		delete(md.leases, lease)
		md.consume(mm)
	} else {
		md.mustOK(md.m.Nack(ep, lease))
		delete(md.leases, lease)
		mm.place, mm.lease, mm.holder = pQueued, 0, 0
	}
	md.apply(true)
}

// disconnect applies what Disconnect does without effects — drop ep's
// receivers, withdraw its senders, return its leases — then its effects.
func (md *model) disconnect(ep uint64) {
	md.log = append(md.log, fmt.Sprintf("disconnect %d", ep))
	md.receivers = slices.DeleteFunc(md.receivers, func(r *Receiver) bool { return r.Ident.Endpoint == ep })
	md.senders = slices.DeleteFunc(md.senders, func(s *Sender) bool {
		if s.Endpoint == ep {
			md.msgs[s.Msg].place = pWithdrawn
			return true
		}
		return false
	})
	for id, mm := range md.leases {
		if mm.holder == ep {
			delete(md.leases, id)
			mm.place, mm.lease, mm.holder = pQueued, 0, 0
		}
	}
	md.m.Disconnect(ep)
	md.apply(false)
}

func runModel(t *testing.T, seed uint64, steps int) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	cfg := Config{
		Capacity:      []int64{-1, 0, 1, 3}[rng.IntN(4)],
		Durable:       rng.IntN(2) == 0,
		MaxDeliveries: uint32([]int{0, 2, 3}[rng.IntN(3)]),
		TTL:           []int64{0, 60}[rng.IntN(2)],
	}
	md := &model{
		t: t, m: New(cfg), rng: rng, now: 1000,
		msgs: map[*Message]*modelMsg{}, leases: map[uint64]*modelMsg{},
		usedLeases: map[uint64]bool{}, store: map[*Message]bool{},
		credit: map[*Receiver]uint32{},
	}
	md.log = append(md.log, fmt.Sprintf("seed %d config %+v", seed, cfg))
	for range steps {
		md.step()
		md.check()
	}
	if rng.IntN(4) == 0 {
		md.log = append(md.log, "destroy")
		md.m.Destroy(nil)
		md.destroyed = true
		md.apply(true)
		if len(md.receivers) != 0 || len(md.senders) != 0 {
			md.fatalf("destroy left waiters")
		}
		if md.m.HeldBytes() != 0 {
			md.fatalf("HeldBytes = %d after destroy", md.m.HeldBytes())
		}
		return
	}
	// Drain: every endpoint goes, every waiting sender gives up, and one
	// auto-acking consumer takes what is left.
	for ep := uint64(1); ep <= 3; ep++ {
		md.disconnect(ep)
		md.check()
	}
	for len(md.senders) > 0 {
		md.m.CancelSend(md.senders[0], ErrCanceled)
		md.apply(true)
		md.check()
	}
	c := &Receiver{Ident: Identity{Endpoint: 99}, AutoAck: true, Consumer: true, Credit: 1 << 30}
	c.Ref = c
	md.receivers = append(md.receivers, c)
	md.credit[c] = c.Credit
	md.mustOK(md.m.Receive(c, true))
	md.apply(true)
	md.check()
	for _, mm := range md.order {
		switch mm.place {
		case pConsumed, pWithdrawn, pDead:
		default:
			md.fatalf("%s left %v after draining", mm.msg.Body, mm.place)
		}
		if (mm.place == pConsumed) != (mm.consumed == 1) {
			md.fatalf("%s consumed %d times", mm.msg.Body, mm.consumed)
		}
	}
	if md.m.HeldBytes() != 0 || len(md.store) != 0 {
		md.fatalf("HeldBytes = %d, store %d after draining", md.m.HeldBytes(), len(md.store))
	}
}

func TestRandomOperationsMatchModel(t *testing.T) {
	seeds, steps := 120, 400
	if testing.Short() {
		seeds = 30
	}
	for seed := range uint64(seeds) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runModel(t, seed, steps) })
	}
}
