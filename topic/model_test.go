package topic

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// A randomized model-based test of the Engine. The reference model keeps,
// for every subscription, the whole log of the publications routed to it
// in publish order, each with its fate (waiting, held, in flight,
// credited, dropped, withdrawn), and derives everything else from that
// log by counting: what fits in the buffer, which held event goes out
// next, and how many drops a delivery or gap notice must report (the
// drops between the previous delivery and this one). It shares no data
// structure with the engine (no ring, no carried counters). After every
// operation both must agree on each subscription's effects in order, on
// the completed publications, and on every SubStat and SubjectStat.

type fate uint8

const (
	fWaiting fate = iota + 1
	fHeld
	fInFlight
	fCredited
	fDropped
	fWithdrawn
)

type mEvent struct {
	seq   int
	token uint64
	fate  fate
}

type mSub struct {
	Sub
	window int
	log    []*mEvent
	// last is the log index up to which drops have been reported (the
	// last delivery or gap notice), -1 at first.
	last      int
	delivered uint64
	dropped   uint64
}

type mGroup struct {
	members []*mSub
	next    int
	waits   []*mWait // Block publications for the group, oldest first
}

type mWait struct {
	seq   int
	token uint64
	pub   Pub
}

// serve gives member s the group's waiting publications its filter
// passes, oldest first, while it has room.
func (m *engineModel) serve(g *mGroup, s *mSub) {
	for i := 0; i < len(g.waits) && s.room(); {
		w := g.waits[i]
		if !s.Filter.Matches(w.pub.Type, w.pub.Headers) {
			i++
			continue
		}
		g.waits = slices.Delete(g.waits, i, i+1)
		s.log = append(s.log, &mEvent{seq: w.seq, token: w.token, fate: fHeld})
		m.pump(s)
		m.resolve(w.token)
	}
}

type engineModel struct {
	t       *testing.T
	e       *Engine
	subs    []*mSub // live, in subscription order
	groups  map[groupKey]*mGroup
	stats   map[string]*SubjectStat
	waiting map[uint64]int // token -> waits left
	effs    map[SubID][]string
	done    []uint64
}

func (m *engineModel) sub(id SubID) *mSub {
	for _, s := range m.subs {
		if s.ID == id {
			return s
		}
	}
	return nil
}

func (s *mSub) count(f fate) int {
	n := 0
	for _, ev := range s.log {
		if ev.fate == f {
			n++
		}
	}
	return n
}

func (s *mSub) room() bool { return s.count(fHeld)+s.count(fInFlight) < s.Buffer }

func (s *mSub) first(f fate) *mEvent {
	for _, ev := range s.log {
		if ev.fate == f {
			return ev
		}
	}
	return nil
}

// droppedAfter counts the drops after log index i.
func (s *mSub) droppedAfter(i int) uint64 {
	var n uint64
	for _, ev := range s.log[i+1:] {
		if ev.fate == fDropped {
			n++
		}
	}
	return n
}

// compact forgets the finished prefix of the log (credited, dropped or
// withdrawn, and already reported), so the counts stay cheap.
func (s *mSub) compact() {
	n := 0
	for n <= s.last && n < len(s.log) {
		if f := s.log[n].fate; f != fCredited && f != fDropped && f != fWithdrawn {
			break
		}
		n++
	}
	s.log = s.log[n:]
	s.last -= n
}

func (m *engineModel) emit(s *mSub, x string) { m.effs[s.ID] = append(m.effs[s.ID], x) }

func (m *engineModel) pump(s *mSub) {
	for s.count(fInFlight) < s.window {
		ev := s.first(fHeld)
		if ev == nil {
			break
		}
		i := slices.Index(s.log, ev)
		missed := uint64(0)
		for _, x := range s.log[s.last+1 : i] {
			if x.fate == fDropped {
				missed++
			}
		}
		ev.fate, s.last = fInFlight, i
		s.delivered++
		m.stats[s.Pattern].Delivered++
		x := fmt.Sprintf("deliver %d m%d", s.ID, ev.seq)
		if missed > 0 {
			x += fmt.Sprintf(" missed=%d", missed)
		}
		m.emit(s, x)
	}
	if s.first(fHeld) == nil && s.count(fInFlight) < s.window {
		if n := s.droppedAfter(s.last); n > 0 {
			m.emit(s, fmt.Sprintf("gap %d missed=%d", s.ID, n))
			s.last = len(s.log) - 1
		}
	}
}

func (m *engineModel) drop(s *mSub, ev *mEvent) {
	ev.fate = fDropped
	s.dropped++
	m.stats[s.Pattern].Dropped++
}

func (m *engineModel) subscribe(s Sub) {
	if err := m.e.Subscribe(s); err != nil {
		m.t.Fatalf("Subscribe(%+v): %v", s, err)
	}
	x := &mSub{Sub: s, window: s.Window, last: -1}
	if x.window == 0 {
		x.window = s.Buffer
		if s.Policy == DropOldest {
			x.window = (s.Buffer + 1) / 2
		}
	}
	m.subs = append(m.subs, x)
	st := m.stats[s.Pattern]
	if st == nil {
		st = &SubjectStat{Pattern: s.Pattern}
		m.stats[s.Pattern] = st
	}
	st.Subscribers++
	if s.Queue != "" {
		k := groupKey{s.Pattern, s.Queue}
		g := m.groups[k]
		if g == nil {
			g = &mGroup{}
			m.groups[k] = g
			st.QueueGroups++
		}
		g.members = append(g.members, x)
		m.serve(g, x)
	}
}

func (m *engineModel) remove(s *mSub) {
	m.subs = slices.DeleteFunc(m.subs, func(x *mSub) bool { return x == s })
	st := m.stats[s.Pattern]
	if s.Queue != "" {
		k := groupKey{s.Pattern, s.Queue}
		g := m.groups[k]
		i := slices.Index(g.members, s)
		g.members = slices.Delete(g.members, i, i+1)
		if i < g.next {
			g.next--
		}
		if g.next >= len(g.members) {
			g.next = 0
		}
		if len(g.members) == 0 {
			delete(m.groups, k)
			st.QueueGroups--
		}
		// A wait no member left would take ends.
		for i := 0; i < len(g.waits); {
			w := g.waits[i]
			if slices.ContainsFunc(g.members, func(x *mSub) bool { return x.Filter.Matches(w.pub.Type, w.pub.Headers) }) {
				i++
				continue
			}
			g.waits = slices.Delete(g.waits, i, i+1)
			m.resolve(w.token)
		}
	}
	if st.Subscribers--; st.Subscribers == 0 {
		delete(m.stats, s.Pattern)
	}
	for _, ev := range s.log {
		if ev.fate == fWaiting {
			m.resolve(ev.token)
		}
	}
}

func (m *engineModel) resolve(token uint64) {
	if m.waiting[token]--; m.waiting[token] == 0 {
		delete(m.waiting, token)
		m.done = append(m.done, token)
	}
}

func (m *engineModel) publish(seq int, p Pub, token uint64) (int, bool) {
	type route struct {
		s *mSub
		g *mGroup
	}
	var to []route
	for _, s := range m.subs {
		if s.Queue == "" && Match(s.Pattern, p.Subject) && s.Filter.Matches(p.Type, p.Headers) {
			to = append(to, route{s: s})
		}
	}
	// Queue groups, in any order (picks are independent of each other).
	for k, g := range m.groups {
		if !Match(k.pattern, p.Subject) {
			continue
		}
		n := len(g.members)
		var pick *mSub
		for i := range n {
			s := g.members[(g.next+i)%n]
			if s.Filter.Matches(p.Type, p.Headers) && s.room() {
				pick, g.next = s, (g.next+i+1)%n
				break
			}
		}
		for i := 0; pick == nil && i < n; i++ {
			s := g.members[(g.next+i)%n]
			if s.Filter.Matches(p.Type, p.Headers) {
				pick, g.next = s, (g.next+i+1)%n
			}
		}
		if pick != nil {
			to = append(to, route{pick, g})
		}
	}
	waits := 0
	for _, r := range to {
		s := r.s
		if !s.room() && s.Policy == Block && r.g != nil {
			r.g.waits = append(r.g.waits, &mWait{seq: seq, token: token, pub: p})
			waits++
			continue
		}
		ev := &mEvent{seq: seq, token: token}
		s.log = append(s.log, ev)
		if s.room() {
			ev.fate = fHeld
			m.pump(s)
			continue
		}
		switch s.Policy {
		case Block:
			ev.fate = fWaiting
			waits++
		case DropNewest:
			m.drop(s, ev)
		case DropOldest:
			if old := s.first(fHeld); old != nil {
				m.drop(s, old)
				ev.fate = fHeld
			} else {
				m.drop(s, ev)
			}
		case Disconnect:
			m.drop(s, ev)
			m.emit(s, fmt.Sprintf("disconnect %d", s.ID))
			m.remove(s)
		}
	}
	if waits > 0 {
		m.waiting[token] += waits
	}
	return len(to), waits == 0
}

func (m *engineModel) credit(s *mSub, n int) {
	for range n {
		if ev := s.first(fInFlight); ev != nil {
			ev.fate = fCredited
		}
	}
	m.pump(s)
	for s.room() {
		ev := s.first(fWaiting)
		if ev == nil {
			break
		}
		ev.fate = fHeld
		m.pump(s)
		m.resolve(ev.token)
	}
	if s.Queue != "" {
		m.serve(m.groups[groupKey{s.Pattern, s.Queue}], s)
	}
}

func (m *engineModel) withdraw(token uint64) {
	for _, s := range m.subs {
		for _, ev := range s.log {
			if ev.fate == fWaiting && ev.token == token {
				ev.fate = fWithdrawn
			}
		}
	}
	for _, g := range m.groups {
		g.waits = slices.DeleteFunc(g.waits, func(w *mWait) bool { return w.token == token })
	}
	delete(m.waiting, token)
}

// check compares the engine's effects and state with the model's.
func (m *engineModel) check(step int, op string) {
	t := m.t
	got := map[SubID][]string{}
	var done []uint64
	for _, x := range effStrings(m.e.Effects()) {
		var kind string
		var id SubID
		fmt.Sscanf(x, "%s %d", &kind, &id)
		if kind == "published" {
			done = append(done, uint64(id))
			continue
		}
		got[id] = append(got[id], x)
	}
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("step %d (%s): %s", step, op, fmt.Sprintf(format, args...))
	}
	for id := range got {
		if !slices.Equal(got[id], m.effs[id]) {
			fail("sub %d effects %q, want %q", id, got[id], m.effs[id])
		}
	}
	for id, want := range m.effs {
		if !slices.Equal(got[id], want) {
			fail("sub %d effects %q, want %q", id, got[id], want)
		}
	}
	slices.Sort(done)
	slices.Sort(m.done)
	if !slices.Equal(done, m.done) {
		fail("published %v, want %v", done, m.done)
	}
	m.effs, m.done = map[SubID][]string{}, nil
	for _, s := range m.subs {
		s.compact()
	}
	for _, s := range m.subs {
		st, ok := m.e.Subscription(s.ID)
		want := SubStat{Sub: s.Sub, InFlight: s.count(fInFlight), Held: s.count(fHeld), Waiting: s.count(fWaiting),
			Delivered: s.delivered, Dropped: s.dropped, Missed: s.droppedAfter(s.last)}
		want.Window = s.window
		if !ok || st.InFlight != want.InFlight || st.Held != want.Held || st.Waiting != want.Waiting ||
			st.Delivered != want.Delivered || st.Dropped != want.Dropped || st.Missed != want.Missed || st.Window != want.Window {
			fail("sub %d: stat %+v, want %+v", s.ID, st, want)
		}
	}
	if n := len(m.e.Subscriptions()); n != len(m.subs) {
		fail("%d subscriptions, want %d", n, len(m.subs))
	}
	var wantStats []SubjectStat
	for _, st := range m.stats {
		wantStats = append(wantStats, *st)
	}
	slices.SortFunc(wantStats, func(a, b SubjectStat) int { return cmpString(a.Pattern, b.Pattern) })
	if gotStats := m.e.Subjects(); !slices.Equal(gotStats, wantStats) {
		fail("Subjects %+v, want %+v", gotStats, wantStats)
	}
	for tok := range m.waiting {
		if !m.e.Waiting(tok) {
			fail("token %d not waiting", tok)
		}
	}
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func randomFilter(r *rand.Rand) Filter {
	switch r.IntN(6) {
	case 0:
		lo := int64(r.IntN(3))
		return Filter{TypeMin: lo, TypeMax: lo + int64(r.IntN(2))}
	case 1:
		return Filter{Headers: []HeaderCond{{Key: "k", Value: fmt.Sprint("v", r.IntN(2))}}}
	case 2:
		return Filter{Headers: []HeaderCond{{Key: "k", Present: true}}}
	}
	return Filter{}
}

func TestEngineAgreesWithModel(t *testing.T) {
	for seed := range uint64(12) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) { runEngineModel(t, seed, 2000) })
	}
}

func runEngineModel(t *testing.T, seed uint64, steps int) {
	r := rand.New(rand.NewPCG(seed, 99))
	m := &engineModel{t: t, e: NewEngine(), groups: map[groupKey]*mGroup{}, stats: map[string]*SubjectStat{},
		waiting: map[uint64]int{}, effs: map[SubID][]string{}}
	nextID := SubID(1)
	patterns := []string{"a", "a.b", "a.*", "*.b", "a.>", ">", "*", "b.*.c"}
	subjects := []string{"a", "b", "a.b", "a.c", "b.b", "b.a.c", "a.b.c"}
	for step := range steps {
		var op string
		switch x := r.IntN(20); {
		case x < 2 || len(m.subs) == 0:
			s := Sub{ID: nextID, Pattern: patterns[r.IntN(len(patterns))], Buffer: 1 + r.IntN(4),
				Policy: Policy(r.IntN(4)), Filter: randomFilter(r)}
			if r.IntN(3) == 0 {
				s.Queue = fmt.Sprint("q", r.IntN(2))
			}
			if r.IntN(2) == 0 {
				s.Window = r.IntN(s.Buffer + 1)
			}
			nextID++
			op = fmt.Sprintf("subscribe %+v", s)
			m.subscribe(s)
		case x < 3:
			s := m.subs[r.IntN(len(m.subs))]
			op = fmt.Sprintf("unsubscribe %d", s.ID)
			m.e.Unsubscribe(s.ID)
			m.remove(s)
		case x < 11:
			p := Pub{Subject: subjects[r.IntN(len(subjects))], Type: int64(r.IntN(4)), Payload: fmt.Sprint("m", step)}
			if h := r.IntN(3); h > 0 {
				v := fmt.Sprint("v", h-1)
				p.Headers = func(k string) (string, bool) { return v, k == "k" }
			}
			op = fmt.Sprintf("publish %s type %d token %d", p.Subject, p.Type, step)
			n, done := m.e.Publish(p, uint64(step))
			wn, wdone := m.publish(step, p, uint64(step))
			if n != wn || done != wdone {
				t.Fatalf("step %d (%s): Publish = %d, %v; want %d, %v", step, op, n, done, wn, wdone)
			}
		case x < 18:
			s := m.subs[r.IntN(len(m.subs))]
			n := 1 + r.IntN(3)
			op = fmt.Sprintf("credit %d %d", s.ID, n)
			m.e.AddCredit(s.ID, n)
			m.credit(s, n)
		default:
			var toks []uint64
			for tok := range m.waiting {
				toks = append(toks, tok)
			}
			if len(toks) == 0 {
				continue
			}
			slices.Sort(toks)
			tok := toks[r.IntN(len(toks))]
			op = fmt.Sprintf("withdraw %d", tok)
			m.e.Withdraw(tok)
			m.withdraw(tok)
		}
		m.check(step, op)
	}
}
