package topic

import (
	"fmt"
	"slices"
)

// Engine is the deterministic core of publish/subscribe: subscriptions,
// their buffers and policies, queue groups, filters and waiting
// publishers. It does no I/O, reads no clock and starts no goroutine; its
// owner calls it under a lock and carries out its Effects. It is not safe
// for concurrent use.
type Engine struct {
	subs    map[SubID]*sub
	list    Sublist[*sub]
	groups  map[groupKey]*group
	stats   map[string]*SubjectStat
	pending map[uint64]*pending
	epoch   uint64 // one per Publish, to count each queue group once
	effects []Effect
}

type sub struct {
	Sub
	window     int
	inflight   int
	held       []heldEvent // held[hhead:] waits to be handed out
	hhead      int
	tailMissed uint64  // drops after the last held event
	waits      []*wait // Block publications waiting for room, oldest first
	group      *group
	stat       *SubjectStat
	delivered  uint64
	dropped    uint64
}

type heldEvent struct {
	pub    *Pub
	missed uint64 // drops just before this event
}

type groupKey struct{ pattern, queue string }

type group struct {
	members []*sub // in join order
	next    int    // round-robin cursor into members
	epoch   uint64
	// waits are Block publications for the group, oldest first; each
	// goes to the first member with room that its filter passes.
	waits []*wait
}

// pending is a Block publication that waits for room: parts waits, in
// the subscriptions subs and the queue groups groups (kept for Withdraw;
// they may name places where a wait was already served).
type pending struct {
	token  uint64
	parts  int
	subs   []*sub
	groups []*group
}

type wait struct {
	pub *Pub
	p   *pending
}

// NewEngine returns an Engine with no subscriptions.
func NewEngine() *Engine {
	return &Engine{
		subs:    make(map[SubID]*sub),
		groups:  make(map[groupKey]*group),
		stats:   make(map[string]*SubjectStat),
		pending: make(map[uint64]*pending),
	}
}

// Effects returns the effects of the calls since the previous Effects
// call, in the order they were decided. The slice is valid until the next
// call on e.
func (e *Engine) Effects() []Effect {
	out := e.effects
	e.effects = e.effects[:0]
	return out
}

func (e *Engine) emit(x Effect) { e.effects = append(e.effects, x) }

// Subscribe adds s. A new member of a queue group takes, as its buffer
// allows, the publications waiting for the group (their effects follow).
// It fails with ErrInvalidPattern, ErrInvalidFilter,
// ErrInvalidSub (a bad Buffer, Window, Policy or Queue) or ErrDuplicateSub,
// wrapped with the details.
func (e *Engine) Subscribe(s Sub) error {
	if err := ValidPattern(s.Pattern); err != nil {
		return err
	}
	if err := s.Filter.Validate(); err != nil {
		return err
	}
	if s.Buffer == 0 {
		s.Buffer = DefaultBuffer
	}
	switch {
	case s.Buffer < 0 || s.Buffer > MaxBuffer:
		return fmt.Errorf("%w: buffer %d, want 1..%d", ErrInvalidSub, s.Buffer, MaxBuffer)
	case s.Window < 0 || s.Window > s.Buffer:
		return fmt.Errorf("%w: window %d, want 0..%d (the buffer)", ErrInvalidSub, s.Window, s.Buffer)
	case s.Policy > Disconnect:
		return fmt.Errorf("%w: unknown policy %d", ErrInvalidSub, s.Policy)
	case len(s.Queue) > MaxSubjectLen:
		return fmt.Errorf("%w: queue name of %d bytes, more than %d", ErrInvalidSub, len(s.Queue), MaxSubjectLen)
	}
	if _, ok := e.subs[s.ID]; ok {
		return fmt.Errorf("%w: %d", ErrDuplicateSub, s.ID)
	}
	x := &sub{Sub: s, window: s.Window}
	if x.window == 0 {
		x.window = s.Buffer
		if s.Policy == DropOldest {
			x.window = (s.Buffer + 1) / 2
		}
	}
	if err := e.list.Insert(s.Pattern, x); err != nil {
		return err
	}
	e.subs[s.ID] = x
	st := e.stats[s.Pattern]
	if st == nil {
		st = &SubjectStat{Pattern: s.Pattern}
		e.stats[s.Pattern] = st
	}
	st.Subscribers++
	x.stat = st
	if s.Queue != "" {
		k := groupKey{s.Pattern, s.Queue}
		g := e.groups[k]
		if g == nil {
			g = &group{}
			e.groups[k] = g
			st.QueueGroups++
		}
		g.members = append(g.members, x)
		x.group = g
		e.serveGroup(g, x)
	}
	return nil
}

// Unsubscribe removes subscription id (nothing if there is none). Its
// held events are discarded; publications waiting only for it complete
// (EffPublished), and so do those waiting for its queue group when no
// member that would take them is left.
func (e *Engine) Unsubscribe(id SubID) {
	if s := e.subs[id]; s != nil {
		e.remove(s)
	}
}

func (e *Engine) remove(s *sub) {
	delete(e.subs, s.ID)
	e.list.Remove(s.Pattern, s)
	if g := s.group; g != nil {
		i := slices.Index(g.members, s)
		g.members = slices.Delete(g.members, i, i+1)
		if i < g.next {
			g.next--
		}
		if g.next >= len(g.members) {
			g.next = 0
		}
		if len(g.members) == 0 {
			delete(e.groups, groupKey{s.Pattern, s.Queue})
			s.stat.QueueGroups--
		}
		var orphans []*wait
		g.waits = slices.DeleteFunc(g.waits, func(w *wait) bool {
			taker := slices.ContainsFunc(g.members, func(m *sub) bool { return m.Filter.Matches(w.pub.Type, w.pub.Headers) })
			if !taker {
				orphans = append(orphans, w)
			}
			return !taker
		})
		for _, w := range orphans {
			e.resolve(w.p)
		}
	}
	if s.stat.Subscribers--; s.stat.Subscribers == 0 {
		delete(e.stats, s.Pattern)
	}
	waits := s.waits
	s.waits, s.held = nil, nil
	for _, w := range waits {
		e.resolve(w.p)
	}
}

// resolve ends one of p's waits; the last one completes p.
func (e *Engine) resolve(p *pending) {
	if p.parts--; p.parts == 0 && e.pending[p.token] == p {
		delete(e.pending, p.token)
		e.emit(Effect{Kind: EffPublished, Token: p.token})
	}
}

// Publish routes p to every subscription whose pattern matches p.Subject
// and whose filter passes it; a queue group counts as one subscription
// and gets p once, in the buffer of one member chosen round-robin among
// the members whose filter passes it and that have room. If none has
// room, the next of those members in turn decides by its policy; under
// Block, p then waits for the group and goes to the first such member
// that gets room.
//
// matched is the number of subscriptions (queue groups once) p was
// routed to, whether it was placed, dropped or waits. done is false when
// p waits for room in some Block subscriptions: it is placed there as
// room opens (AddCredit) and EffPublished{Token: token} says when all are
// served, unless Withdraw(token) gives up first. The subscriptions that
// had room got p at once: a publication is not all or nothing across
// subscriptions. Tokens of waiting publications should be distinct (a
// reused token adds to the same wait).
//
// An invalid subject matches nothing.
//
// The engine keeps a copy of p; PublishRef is Publish without that copy.
func (e *Engine) Publish(p Pub, token uint64) (matched int, done bool) {
	return e.PublishRef(&p, token)
}

// PublishRef is Publish of a publication the caller allocated and leaves
// unchanged from now on: the engine holds p itself (in buffers, waits and
// EffDeliver effects) instead of a copy, so a caller that keeps its
// publications in its own structure saves an allocation per publication.
func (e *Engine) PublishRef(p *Pub, token uint64) (matched int, done bool) {
	subs := e.list.Match(p.Subject)
	if len(subs) == 0 {
		return 0, true
	}
	e.epoch++
	pub := p
	var pend *pending
	for _, s := range subs {
		to := s
		if g := s.group; g != nil {
			if g.epoch == e.epoch {
				continue
			}
			g.epoch = e.epoch
			if to = g.pick(p); to == nil {
				continue
			}
		} else if !s.Filter.Matches(p.Type, p.Headers) {
			continue
		}
		matched++
		if to.room() {
			e.accept(to, pub)
			continue
		}
		switch to.Policy {
		case Block:
			if pend == nil {
				if pend = e.pending[token]; pend == nil {
					pend = &pending{token: token}
					e.pending[token] = pend
				}
			}
			pend.parts++
			w := &wait{pub: pub, p: pend}
			if g := to.group; g != nil {
				pend.groups = append(pend.groups, g)
				g.waits = append(g.waits, w)
			} else {
				pend.subs = append(pend.subs, to)
				to.waits = append(to.waits, w)
			}
		case DropNewest:
			e.dropped(to)
			to.tailMissed++
		case DropOldest:
			e.dropped(to)
			if to.hhead == len(to.held) {
				to.tailMissed++ // nothing held: the arriving one goes
				continue
			}
			old := to.held[to.hhead]
			to.held[to.hhead] = heldEvent{}
			to.hhead++
			to.carry(old.missed + 1)
			e.accept(to, pub)
		case Disconnect:
			e.dropped(to)
			e.emit(Effect{Kind: EffDisconnect, Sub: to.ID, Owner: to.Owner})
			e.remove(to)
		}
	}
	return matched, pend == nil
}

// pick chooses the member of g that gets p, or nil if no member's filter
// passes it.
func (g *group) pick(p *Pub) *sub {
	first := -1
	n := len(g.members)
	for i := range n {
		idx := (g.next + i) % n
		m := g.members[idx]
		if !m.Filter.Matches(p.Type, p.Headers) {
			continue
		}
		if m.room() {
			g.next = (idx + 1) % n
			return m
		}
		if first < 0 {
			first = idx
		}
	}
	if first < 0 {
		return nil
	}
	g.next = (first + 1) % n
	return g.members[first]
}

func (s *sub) room() bool { return s.inflight+len(s.held)-s.hhead < s.Buffer }

// carry moves a gap of n missed events onto the next held event, or the
// tail if none is held.
func (s *sub) carry(n uint64) {
	if s.hhead < len(s.held) {
		s.held[s.hhead].missed += n
	} else {
		s.tailMissed += n
	}
}

func (e *Engine) dropped(s *sub) {
	s.dropped++
	s.stat.Dropped++
}

// accept puts pub in s's buffer (s has room) and hands out what fits.
func (e *Engine) accept(s *sub, pub *Pub) {
	if s.hhead > 0 && s.hhead >= len(s.held)/2 {
		// Move the live events down, so that a buffer that never drains
		// (DropOldest in a steady overflow) reuses its array.
		n := copy(s.held, s.held[s.hhead:])
		clear(s.held[n:])
		s.held, s.hhead = s.held[:n], 0
	}
	s.held = append(s.held, heldEvent{pub: pub, missed: s.tailMissed})
	s.tailMissed = 0
	e.pump(s)
}

// pump hands s's held events to the shell while its window has room, then
// a gap notice alone if drops happened after the last of them.
func (e *Engine) pump(s *sub) {
	for s.inflight < s.window && s.hhead < len(s.held) {
		h := s.held[s.hhead]
		s.held[s.hhead] = heldEvent{}
		s.hhead++
		s.inflight++
		s.delivered++
		s.stat.Delivered++
		e.emit(Effect{Kind: EffDeliver, Sub: s.ID, Owner: s.Owner, Pub: h.pub, Missed: h.missed})
	}
	if s.hhead == len(s.held) {
		s.held, s.hhead = s.held[:0], 0
		if s.tailMissed > 0 && s.inflight < s.window {
			e.emit(Effect{Kind: EffDeliver, Sub: s.ID, Owner: s.Owner, Missed: s.tailMissed})
			s.tailMissed = 0
		}
	}
}

// AddCredit tells the engine that n events handed out for subscription
// id were written (or acknowledged: the shell decides what frees room).
// Held events and waiting Block publications move into the room.
func (e *Engine) AddCredit(id SubID, n int) {
	s := e.subs[id]
	if s == nil || n <= 0 {
		return
	}
	s.inflight = max(s.inflight-n, 0)
	e.pump(s)
	for len(s.waits) > 0 && s.room() {
		w := s.waits[0]
		s.waits[0] = nil
		s.waits = s.waits[1:]
		e.accept(s, w.pub)
		e.resolve(w.p)
	}
	if len(s.waits) == 0 {
		s.waits = nil
	}
	if s.group != nil {
		e.serveGroup(s.group, s)
	}
}

// serveGroup gives member m, while it has room, the publications waiting
// for its group that its filter passes, oldest first.
func (e *Engine) serveGroup(g *group, m *sub) {
	for i := 0; i < len(g.waits) && m.room(); {
		w := g.waits[i]
		if !m.Filter.Matches(w.pub.Type, w.pub.Headers) {
			i++
			continue
		}
		g.waits = slices.Delete(g.waits, i, i+1)
		e.accept(m, w.pub)
		e.resolve(w.p)
	}
}

// Withdraw gives up the waiting publication token (nothing if none
// waits): the subscriptions it still waited for never get it; those
// already served keep it. It emits no EffPublished.
func (e *Engine) Withdraw(token uint64) {
	p := e.pending[token]
	if p == nil {
		return
	}
	delete(e.pending, token)
	mine := func(w *wait) bool { return w.p == p }
	for _, s := range p.subs {
		s.waits = slices.DeleteFunc(s.waits, mine)
	}
	for _, g := range p.groups {
		g.waits = slices.DeleteFunc(g.waits, mine)
	}
}

// Waiting reports whether publication token waits for room.
func (e *Engine) Waiting(token uint64) bool { return e.pending[token] != nil }
