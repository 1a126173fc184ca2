package broker

import (
	"fmt"
	"strings"

	"github.com/postbox-ipc/postbox/topic"
	"github.com/postbox-ipc/postbox/wire"
)

// Subscriptions: SUBSCRIBE, its CREDIT and CANCEL, and what ends them
// (the connection going, the broker shutting down).

func (h *handler) doSubscribe(hd wire.Header, p []byte) {
	c := h.c
	ps := c.b.ps
	var m wire.Subscribe
	if !h.decode(hd, p, &m) {
		return
	}
	pattern := string(m.Pattern)
	fail := func(code wire.Code, format string, args ...any) {
		c.replyErr(hd, code, fmt.Sprintf("subscribe %q: ", pattern)+fmt.Sprintf(format, args...))
	}
	f, err := wire.ParseFilter(m.Ext)
	if err != nil {
		fail(wire.CodeOf(err), "filter: %v", err)
		return
	}
	if f.HasType && f.TypeMax < 1 {
		// Types are >= 1: such a range matches nothing (and [0, 0] is
		// the engine's "any type").
		fail(wire.CodeInvalid, "filter: type range %d..%d matches no type (types are at least 1)", f.TypeMin, f.TypeMax)
		return
	}
	filter := topic.Filter{TypeMin: f.TypeMin, TypeMax: f.TypeMax}
	for _, kv := range f.Equals {
		filter.Headers = append(filter.Headers, topic.HeaderCond{Key: string(kv.Key), Value: string(kv.Value)})
	}
	for _, k := range f.Present {
		filter.Headers = append(filter.Headers, topic.HeaderCond{Key: string(k), Present: true})
	}
	switch {
	case topic.ValidPattern(pattern) != nil:
		fail(wire.CodeInvalid, "%v", topic.ValidPattern(pattern))
		return
	case len(m.Queue) > wire.MaxQueueName || strings.ContainsAny(string(m.Queue), " \t\r\n"):
		fail(wire.CodeInvalid, "a queue group's name is 0 to %d bytes without whitespace", wire.MaxQueueName)
		return
	case m.Buffer < 1 || m.Buffer > wire.MaxSubscribeBuffer:
		fail(wire.CodeInvalid, "buffer %d is not 1..%d", m.Buffer, wire.MaxSubscribeBuffer)
		return
	case m.Policy > wire.PolicyDisconnect:
		fail(wire.CodeInvalid, "unknown policy %d", m.Policy)
		return
	}
	eng := ps.engineFor(pattern)
	if eng == ps.sys && !mayReadSys(c) {
		fail(wire.CodePermission, "permission denied ($SYS. is for root and the broker's user)")
		return
	}
	uid, gids := principalIDs(c)
	ps.mu.Lock()
	allowed := eng == ps.sys || ps.claims.Allowed(pattern, uid, gids, topic.PermRead)
	ps.mu.Unlock()
	if !allowed {
		fail(wire.CodePermission, "permission denied (a claim the pattern reaches denies r)")
		return
	}
	if !c.register(hd.Request) {
		fail(wire.CodeInvalid, "request id %d is already in flight", hd.Request)
		return
	}
	ps.mu.Lock()
	ps.nextID++
	s := &subscription{id: ps.nextID, eng: eng, c: c, req: hd.Request, pattern: pattern}
	err = eng.Subscribe(topic.Sub{ID: s.id, Pattern: pattern, Queue: string(m.Queue), Buffer: int(m.Buffer),
		Policy: topic.Policy(m.Policy), Filter: filter, Owner: s})
	if err == nil {
		if ps.subs[c] == nil {
			ps.subs[c] = make(map[uint64]*subscription)
		}
		ps.subs[c][hd.Request] = s
	}
	ps.effects(eng)
	ps.unlock()
	if err != nil {
		c.forget(hd.Request, true)
		fail(wire.CodeInvalid, "%v", err)
	}
}

// subCredit is CREDIT for a subscription; it reports false if the frame's
// request id is no subscription of c (then it is a consumer's).
func (h *handler) subCredit(hd wire.Header, p []byte) bool {
	c := h.c
	ps := c.b.ps
	ps.mu.Lock()
	s := ps.subs[c][hd.Request]
	if s == nil {
		ps.mu.Unlock()
		return false
	}
	var m wire.Credit
	if m.Decode(p) == nil && m.N > 0 {
		s.eng.AddCredit(s.id, int(min(m.N, 1<<30)))
		ps.effects(s.eng)
	}
	ps.unlock()
	return true
}

// cancel is CANCEL for a subscription or a waiting PUBLISH of c; it
// does nothing for other request ids.
func (ps *pubsub) cancel(c *conn, req uint64) {
	ps.mu.Lock()
	if s := ps.subs[c][req]; s != nil {
		ps.dropSub(s)
		s.eng.Unsubscribe(s.id)
		// The final reply follows the EVENTs already queued (data lane),
		// as a CONSUME's does.
		c.replyErrQuiet(wire.Header{Op: wire.OpSubscribe, Request: req}, wire.CodeCanceled,
			fmt.Sprintf("subscription %q: canceled", s.pattern))
		ps.effects(s.eng)
		ps.after = append(ps.after, func() { c.forget(req, true) })
		ps.unlock()
		return
	}
	var w *pubWait
	for _, x := range ps.waits {
		if x.c == c && x.hd.Request == req {
			w = x
			break
		}
	}
	ps.mu.Unlock()
	if w != nil {
		ps.endWait(w.token, wire.CodeCanceled)
	}
}

// disconnect removes c's subscriptions and waiting publications: c is
// gone. With code (CLOSED at shutdown) each still gets its final reply.
func (ps *pubsub) disconnect(c *conn, code wire.Code) {
	var ws []*pubWait
	ps.mu.Lock()
	m := ps.subs[c]
	delete(ps.subs, c)
	engs := map[*topic.Engine]bool{}
	for req, s := range m {
		s.eng.Unsubscribe(s.id)
		engs[s.eng] = true
		if code != wire.OK {
			c.replyErrQuiet(wire.Header{Op: wire.OpSubscribe, Request: req}, code,
				fmt.Sprintf("subscription %q: %s", s.pattern, code))
		}
	}
	for token, w := range ps.waits {
		if w.c == c {
			delete(ps.waits, token)
			w.eng.Withdraw(token)
			engs[w.eng] = true
			ws = append(ws, w)
		}
	}
	for eng := range engs {
		ps.effects(eng)
	}
	ps.unlock()
	for req := range m {
		c.forget(req, true)
	}
	for _, w := range ws {
		if w.batch != nil {
			ps.endBatch(w.batch, code) // once per batch: it is ended after
			continue
		}
		if code != wire.OK {
			ps.finishWait(w, code)
		} else if w.timer != nil {
			w.timer.Stop()
		}
	}
}
