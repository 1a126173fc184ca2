package topic

import (
	"cmp"
	"slices"
)

// SubjectStat describes the subscriptions of one pattern.
type SubjectStat struct {
	Pattern     string
	Subscribers int    // subscriptions with this pattern, queue members included
	QueueGroups int    // distinct non-empty Queue names among them
	Delivered   uint64 // events handed to the shell (EffDeliver with a Pub)
	Dropped     uint64 // events dropped under DropOldest, DropNewest or Disconnect
}

// SubStat describes one subscription.
type SubStat struct {
	Sub
	InFlight  int    // handed to the shell, not yet credited back
	Held      int    // held in the engine, not yet handed out
	Waiting   int    // Block publications waiting for room in it
	Delivered uint64 // as in SubjectStat, for this subscription
	Dropped   uint64
	Missed    uint64 // dropped since the last delivery, not yet reported
}

// Subjects describes every pattern with subscriptions, sorted by pattern.
// A pattern's counters start again when its last subscription goes.
func (e *Engine) Subjects() []SubjectStat {
	out := make([]SubjectStat, 0, len(e.stats))
	for _, st := range e.stats {
		out = append(out, *st)
	}
	slices.SortFunc(out, func(a, b SubjectStat) int { return cmp.Compare(a.Pattern, b.Pattern) })
	return out
}

// Subscription describes subscription id.
func (e *Engine) Subscription(id SubID) (SubStat, bool) {
	s := e.subs[id]
	if s == nil {
		return SubStat{}, false
	}
	return s.statOf(), true
}

// Subscriptions describes every subscription, sorted by ID.
func (e *Engine) Subscriptions() []SubStat {
	out := make([]SubStat, 0, len(e.subs))
	for _, s := range e.subs {
		out = append(out, s.statOf())
	}
	slices.SortFunc(out, func(a, b SubStat) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

func (s *sub) statOf() SubStat {
	missed := s.tailMissed
	for _, h := range s.held[s.hhead:] {
		missed += h.missed
	}
	st := SubStat{Sub: s.Sub, InFlight: s.inflight, Held: len(s.held) - s.hhead,
		Waiting: len(s.waits), Delivered: s.delivered, Dropped: s.dropped, Missed: missed}
	st.Window = s.window
	return st
}
