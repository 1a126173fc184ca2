package replycache

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/postbox-ipc/postbox/rpc/envelope"
)

// A randomized model test: random requests, finishes, aborts, acks and
// expiries run against a Cache and against a naive model of the package
// comment's rules written with slices and linear scans. After every
// operation both must agree on the verdict, the replayed reply, the
// waiters handed back and the contents; the bounds must hold; and at the
// end every waiter that joined a run has been handed back exactly once.

type naiveEntry struct {
	id       envelope.ID
	sum      Checksum
	running  bool
	hasBody  bool
	reply    string
	doneAt   int64
	order    int // when it finished (done order), for "oldest"
	bodyGone int // when its reply was dropped (never re-acquired)
	waiters  []int
}

type naiveSession struct {
	id        [16]byte
	acked     uint64
	lastSeq   uint64
	idle      bool
	idleSince int64
	idleOrder int
}

// naiveEvicted is the record kept of a done entry evicted for room.
type naiveEvicted struct {
	id     envelope.ID
	sum    Checksum
	doneAt int64
}

type naive struct {
	cfg      Config
	now      int64
	ticks    int
	entries  []*naiveEntry
	sessions []*naiveSession
	pinned   *naiveSession
	evicted  []naiveEvicted // in the order evicted
}

func (n *naive) tick() int { n.ticks++; return n.ticks }

func (n *naive) entry(i envelope.ID) *naiveEntry {
	for _, e := range n.entries {
		if e.id == i {
			return e
		}
	}
	return nil
}

func (n *naive) session(s [16]byte) *naiveSession {
	for _, x := range n.sessions {
		if x.id == s {
			return x
		}
	}
	return nil
}

func (n *naive) bytes() int64 {
	b := int64(len(n.sessions)) * SessionOverhead
	for _, e := range n.entries {
		b += EntryOverhead
		if e.hasBody {
			b += int64(len(e.reply))
		}
	}
	return b
}

func (n *naive) stats() Stats {
	var st Stats
	for _, e := range n.entries {
		switch {
		case e.running:
			st.Running++
		case e.hasBody:
			st.Done++
		default:
			st.Done++
			st.Tombstones++
		}
	}
	st.Sessions = len(n.sessions)
	st.Bytes = n.bytes()
	st.Evicted = len(n.evicted)
	return st
}

func (n *naive) hasEntries(s *naiveSession) bool {
	return slices.ContainsFunc(n.entries, func(e *naiveEntry) bool { return e.id.Session() == s.id })
}

func (n *naive) setIdle(s *naiveSession, idle bool) {
	if idle && !s.idle && s != n.pinned {
		s.idle, s.idleSince, s.idleOrder = true, n.now, n.tick()
	}
	if !idle {
		s.idle = false
	}
}

func (n *naive) drop(e *naiveEntry) {
	n.entries = slices.DeleteFunc(n.entries, func(x *naiveEntry) bool { return x == e })
	if s := n.session(e.id.Session()); !n.hasEntries(s) {
		n.setIdle(s, true)
	}
}

// evict drops a done entry for room, keeping its record (the oldest
// record goes when MaxEvicted are kept).
func (n *naive) evict(e *naiveEntry) {
	if len(n.evicted) == n.cfg.MaxEvicted {
		n.evicted = n.evicted[1:]
	}
	at := e.doneAt
	if len(n.evicted) > 0 {
		at = max(at, n.evicted[len(n.evicted)-1].doneAt)
	}
	n.evicted = append(n.evicted, naiveEvicted{id: e.id, sum: e.sum, doneAt: at})
	n.drop(e)
}

func (n *naive) forget(s *naiveSession) {
	n.sessions = slices.DeleteFunc(n.sessions, func(x *naiveSession) bool { return x == s })
}

// oldest returns the done entry that finished first (with a reply, if
// withBody), nil if none.
func (n *naive) oldest(withBody bool) *naiveEntry {
	var best *naiveEntry
	for _, e := range n.entries {
		if e.running || withBody && !e.hasBody {
			continue
		}
		if best == nil || e.order < best.order {
			best = e
		}
	}
	return best
}

// victim is the done entry (with a reply, if withBody) to give up for
// room: the oldest not waited for (its session's watermark is its
// sequence and a later request of the session sent it), else the oldest.
func (n *naive) victim(withBody bool) *naiveEntry {
	var best *naiveEntry
	for _, e := range n.entries {
		if e.running || withBody && !e.hasBody {
			continue
		}
		s := n.session(e.id.Session())
		if e.id.Seq() == s.acked && s.lastSeq > e.id.Seq() {
			continue
		}
		if best == nil || e.order < best.order {
			best = e
		}
	}
	if best == nil {
		return n.oldest(withBody)
	}
	return best
}

func (n *naive) oldestIdle() *naiveSession {
	var best *naiveSession
	for _, s := range n.sessions {
		if s.idle && (best == nil || s.idleOrder < best.idleOrder) {
			best = s
		}
	}
	return best
}

func (n *naive) room(bytes int64, entry bool) bool {
	k := 0
	if entry {
		k = 1
	}
	for len(n.entries)+k > n.cfg.MaxEntries {
		e := n.victim(false)
		if e == nil {
			return false
		}
		n.evict(e)
	}
	for n.bytes()+bytes > n.cfg.MaxBytes {
		if e := n.victim(true); e != nil {
			e.hasBody, e.reply = false, ""
		} else if s := n.oldestIdle(); s != nil {
			n.forget(s)
		} else if e := n.victim(false); e != nil {
			n.evict(e)
		} else {
			return false
		}
	}
	return true
}

func (n *naive) expire(now int64) {
	n.now = max(n.now, now)
	for {
		e := n.oldest(false)
		if e == nil || n.now-e.doneAt < n.cfg.Retention {
			break
		}
		n.drop(e)
	}
	for {
		s := n.oldestIdle()
		if s == nil || n.now-s.idleSince < n.cfg.Retention {
			break
		}
		n.forget(s)
	}
	n.evicted = slices.DeleteFunc(n.evicted, func(v naiveEvicted) bool { return n.now-v.doneAt >= n.cfg.Retention })
}

func (n *naive) release(s *naiveSession) {
	for _, e := range slices.Clone(n.entries) {
		if e.id.Session() == s.id && e.id.Seq() < s.acked && !e.running {
			n.drop(e)
		}
	}
}

func (n *naive) begin(i envelope.ID, sum Checksum, acked uint64, w int, now int64) (Verdict, string) {
	n.expire(now)
	s := n.session(i.Session())
	if s == nil {
		if !n.room(SessionOverhead, false) {
			return Busy, ""
		}
		s = &naiveSession{id: i.Session()}
		n.sessions = append(n.sessions, s)
		n.setIdle(s, true)
	}
	if acked > s.acked {
		s.acked = acked
		n.release(s)
	}
	s.lastSeq = max(s.lastSeq, i.Seq())
	if e := n.entry(i); e != nil {
		switch {
		case e.sum != sum:
			return Mismatch, ""
		case e.running:
			e.waiters = append(e.waiters, w)
			return Join, ""
		case e.hasBody:
			return Replay, e.reply
		}
		return Evicted, ""
	}
	if i.Seq() < s.acked {
		return Acknowledged, ""
	}
	for _, v := range n.evicted {
		if v.id == i && v.sum != sum {
			return Mismatch, ""
		}
		if v.id == i {
			return Evicted, ""
		}
	}
	n.setIdle(s, false)
	n.pinned = s
	ok := n.room(EntryOverhead, true)
	n.pinned = nil
	if !ok {
		if !n.hasEntries(s) {
			n.setIdle(s, true)
		}
		return Busy, ""
	}
	n.entries = append(n.entries, &naiveEntry{id: i, sum: sum, running: true})
	return Run, ""
}

func (n *naive) finish(i envelope.ID, reply string, now int64) []int {
	n.now = max(n.now, now)
	e := n.entry(i)
	if e == nil || !e.running {
		return nil
	}
	ws := e.waiters
	e.waiters = nil
	if i.Seq() < n.session(i.Session()).acked {
		n.drop(e)
		return ws
	}
	e.running, e.hasBody, e.reply, e.doneAt, e.order = false, true, reply, n.now, n.tick()
	n.room(0, false)
	n.expire(now)
	return ws
}

func (n *naive) abort(i envelope.ID) []int {
	e := n.entry(i)
	if e == nil || !e.running {
		return nil
	}
	ws := e.waiters
	n.drop(e)
	return ws
}

func (n *naive) ack(s [16]byte, below uint64) {
	if x := n.session(s); x != nil && below > x.acked {
		x.acked = below
		n.release(x)
	}
}

func TestCacheAgreesWithNaiveModel(t *testing.T) {
	seen := map[Verdict]int{}
	for seed := uint64(1); seed <= 300; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runModel(t, seed, 400, seen) })
	}
	// The runs are only worth something if they reach every rule.
	for v := Run; v <= Busy; v++ {
		if seen[v] == 0 {
			t.Errorf("no run reached verdict %v (seen: %v)", v, seen)
		}
	}
}

func runModel(t *testing.T, seed uint64, steps int, seen map[Verdict]int) {
	rng := rand.New(rand.NewPCG(seed, seed*7919))
	cfg := Config{
		MaxEntries: 1 + rng.IntN(10),
		MaxBytes:   int64(SessionOverhead + EntryOverhead + rng.IntN(6*(SessionOverhead+EntryOverhead))),
		Retention:  int64(1 + rng.IntN(200)),
		MaxEvicted: rng.IntN(4), // 0: the default
	}
	c, err := New[string, int](cfg)
	if err != nil {
		t.Fatal(err)
	}
	n := &naive{cfg: c.Config()}
	sessions := [][16]byte{{1}, {2}, {3}}
	sums := []Checksum{sum1, sum2}
	var now int64
	var log []string
	fail := func(format string, args ...any) {
		t.Helper()
		tail := log[max(0, len(log)-12):]
		t.Fatalf("seed %d, cfg %+v: %s\nlast operations:\n  %s", seed, cfg, fmt.Sprintf(format, args...), fmt.Sprint(tail))
	}
	joined := map[int]bool{} // waiters held
	handed := map[int]bool{} // waiters handed back
	nextWaiter := 1
	hand := func(op string, got, want []int) {
		if !slices.Equal(got, want) {
			fail("%s: waiters %v, model %v", op, got, want)
		}
		for _, w := range got {
			if handed[w] || !joined[w] {
				fail("%s: waiter %d handed back twice or never joined", op, w)
			}
			handed[w] = true
		}
	}
	pick := func() envelope.ID {
		return envelope.NewID(sessions[rng.IntN(len(sessions))], uint64(1+rng.IntN(12)))
	}
	for step := range steps {
		now += int64(rng.IntN(20))
		switch r := rng.IntN(100); {
		case r < 50:
			i := pick()
			sum := sums[0]
			if rng.IntN(10) == 0 {
				sum = sums[1]
			}
			var acked uint64
			if rng.IntN(3) == 0 {
				acked = uint64(rng.IntN(int(i.Seq()) + 1))
			}
			w := nextWaiter
			nextWaiter++
			log = append(log, fmt.Sprintf("%d begin %v acked %d w%d @%d", step, i, acked, w, now))
			gv, gr := c.Begin(i, sum, acked, w, now)
			mv, mr := n.begin(i, sum, acked, w, now)
			if gv != mv || gr != mr {
				fail("begin %v: %v %q, model %v %q", i, gv, gr, mv, mr)
			}
			seen[gv]++
			if gv == Join {
				joined[w] = true
			}
		case r < 80:
			var running []envelope.ID
			for _, e := range n.entries {
				if e.running {
					running = append(running, e.id)
				}
			}
			i := pick()
			if len(running) > 0 && rng.IntN(5) > 0 {
				i = running[rng.IntN(len(running))]
			}
			reply := fmt.Sprintf("reply-%d-%s", step, make([]byte, rng.IntN(300)))
			log = append(log, fmt.Sprintf("%d finish %v (%d bytes) @%d", step, i, len(reply), now))
			hand("finish", c.Finish(i, reply, int64(len(reply)), now), n.finish(i, reply, now))
		case r < 85:
			i := pick()
			log = append(log, fmt.Sprintf("%d abort %v", step, i))
			hand("abort", c.Abort(i), n.abort(i))
		case r < 93:
			s, below := sessions[rng.IntN(len(sessions))], uint64(rng.IntN(14))
			log = append(log, fmt.Sprintf("%d ack %x below %d", step, s[0], below))
			c.Ack(s, below)
			n.ack(s, below)
		default:
			log = append(log, fmt.Sprintf("%d expire @%d", step, now))
			c.Expire(now)
			n.expire(now)
		}
		gs, ms := c.Stats(), n.stats()
		if gs != ms {
			fail("stats %+v, model %+v", gs, ms)
		}
		if gs.Bytes > c.cfg.MaxBytes || gs.Running+gs.Done > c.cfg.MaxEntries || gs.Evicted > c.cfg.MaxEvicted {
			fail("bounds broken: %+v", gs)
		}
		for _, e := range n.entries {
			cached, running := c.Lookup(e.id)
			if !cached || running != e.running {
				fail("entry %v: cached %v running %v, model running %v", e.id, cached, running, e.running)
			}
		}
	}
	// Drain: every run ends, so every joined waiter is handed back.
	for _, e := range slices.Clone(n.entries) {
		if e.running {
			hand("drain", c.Finish(e.id, "x", 1, now), n.finish(e.id, "x", now))
		}
	}
	for w := range joined {
		if !handed[w] {
			fail("waiter %d never handed back", w)
		}
	}
}
