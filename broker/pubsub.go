package broker

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/postbox-ipc/postbox/mailbox"
	"github.com/postbox-ipc/postbox/topic"
	"github.com/postbox-ipc/postbox/wire"
)

// Publish/subscribe (PROTOCOL.md 8.20): the thin shell around
// topic.Engine.
//
// The deterministic core (package topic) decides who gets a publication,
// what a full buffer does and when a waiting publisher may go on; this
// file feeds it PUBLISH, SUBSCRIBE, CREDIT, CANCEL, timeouts and
// disconnects, under pubsub.mu, and carries out its effects:
//
//   - EffDeliver for a subscription: an EVENT frame appended to the
//     subscriber's writer. The writer's lock is a leaf, so this happens
//     under mu, which keeps each subscriber's events in the engine's
//     order. For a binding (bind.go) the publication is collected and
//     sent into the mailbox after mu is released, and credited back at
//     once.
//   - EffPublished: the waiting PUBLISH is answered, after mu.
//   - EffDisconnect: the SUBSCRIBE ends with LIMIT.
//
// Lock order: a box's lock, then mu, then a writer's. Under mu nothing
// else is taken (no box, no conn.pmu): what needs more runs afterwards
// (the after list).
//
// Subjects under "$SYS." (sys.go) live in a second engine: only the broker
// publishes there, and a pattern whose first token is a wildcard never
// reaches them (as in MQTT), so "postbox sub '>'" sees user subjects only.

// sysPrefix starts the broker's reserved subjects.
const sysPrefix = "$SYS."

// pubsub is the broker's publish/subscribe state.
type pubsub struct {
	b *Broker

	saveMu sync.Mutex // serialises writes of the state file (pubsub_bind.go); taken before mu

	mu     sync.Mutex    // guards everything below
	eng    *topic.Engine // user subjects
	sys    *topic.Engine // "$SYS." subjects
	claims topic.Claims
	subs   map[*conn]map[uint64]*subscription // by the SUBSCRIBE's request id
	waits  map[uint64]*pubWait                // waiting PUBLISHes by token
	binds  map[bindKey]*binding
	nextID topic.SubID
	token  uint64
	after  []func() // run by the caller once mu is released (runAfter)
}

// subscription is one SUBSCRIBE (or a binding's engine entry: bind set).
type subscription struct {
	id      topic.SubID
	eng     *topic.Engine
	c       *conn // nil for a binding
	req     uint64
	pattern string
	bind    *binding
}

// pubWait is a PUBLISH waiting for room in a PolicyBlock subscription.
type pubWait struct {
	c       *conn
	hd      wire.Header
	token   uint64
	eng     *topic.Engine
	matched int
	subject string
	timer   *time.Timer
	batch   *pubBatch // a batched PUBLISH's item (pubsub_batch.go); nil for a single one
}

// publication is what the engine carries for one PUBLISH: a copy of its
// subject, headers and body in one allocation, stamped with the sender.
type publication struct {
	subject string
	subj    []byte // subject's bytes, for the EVENT frames
	from    *conn  // the publisher's connection; nil for the broker's own events
	sender  mailbox.Identity
	sent    int64
	typ     int64
	headers []byte
	body    []byte
	tp      topic.Pub // what the engine holds (PublishRef): no copy of its own
}

// topicPub returns p as the engine's publication, p.tp, set on first use
// and unchanged after (the engine may hold it). Its header lookup is set
// only when p has headers: a method value costs an allocation, and
// without headers a nil lookup filters the same.
func (p *publication) topicPub() *topic.Pub {
	if p.tp.Payload == nil {
		p.tp = topic.Pub{Subject: p.subject, Type: p.typ, Payload: p, Size: len(p.headers) + len(p.body)}
		if len(p.headers) > 0 {
			p.tp.Headers = p.header
		}
	}
	return &p.tp
}

// header looks up a USER header for the engine's filters.
func (p *publication) header(key string) (string, bool) {
	it := wire.NewExtIter(p.headers)
	for f, ok := it.Next(); ok; f, ok = it.Next() {
		if f.Tag != wire.HeaderUser || len(f.Value) < 1 {
			continue
		}
		kl := int(f.Value[0])
		if 1+kl <= len(f.Value) && string(f.Value[1:1+kl]) == key {
			return string(f.Value[1+kl:]), true
		}
	}
	return "", false
}

func newPubsub(b *Broker) *pubsub {
	ps := &pubsub{b: b, eng: topic.NewEngine(), sys: topic.NewEngine(),
		subs: make(map[*conn]map[uint64]*subscription), waits: make(map[uint64]*pubWait),
		binds: make(map[bindKey]*binding)}
	ps.load()
	return ps
}

// engineFor returns the engine a pattern or subject lives in.
func (ps *pubsub) engineFor(s string) *topic.Engine {
	if strings.HasPrefix(s, sysPrefix) || s == "$SYS" {
		return ps.sys
	}
	return ps.eng
}

// runAfter runs and clears the work collected under mu. mu must not be
// held.
func (ps *pubsub) runAfter(list []func()) {
	for _, fn := range list {
		fn()
	}
}

// unlock releases mu and runs what was collected under it.
func (ps *pubsub) unlock() {
	list := ps.after
	ps.after = nil
	ps.mu.Unlock()
	ps.runAfter(list)
}

// principalIDs is who c is for claims: its uid and gid, or ids that are
// nobody's for a peer that is not a local user (so the other triple
// applies and root's bypass never does).
func principalIDs(c *conn) (uint32, []uint32) {
	if c.who.Kind != KindUnix {
		return wire.NoOwnerID - 1, nil
	}
	return c.who.UID, []uint32{c.who.GID}
}

// mayReadSys reports whether c may subscribe to "$SYS." subjects: root,
// or the user the broker runs as.
func mayReadSys(c *conn) bool {
	return c.who.Kind == KindUnix && (c.who.UID == 0 || int(c.who.UID) == os.Geteuid())
}

func (h *handler) doPublish(hd wire.Header, p []byte) {
	c := h.c
	ps := c.b.ps
	var m wire.Publish
	if !h.decode(hd, p, &m) {
		return
	}
	subject := string(m.Subject)
	fail := func(code wire.Code, format string, args ...any) {
		c.replyErr(hd, code, fmt.Sprintf("publish %q: ", subject)+fmt.Sprintf(format, args...))
	}
	lim := c.b.limits.Load()
	switch {
	case topic.ValidSubject(subject) != nil:
		fail(wire.CodeInvalid, "%v", topic.ValidSubject(subject))
		return
	case strings.HasPrefix(subject, sysPrefix) || subject == "$SYS":
		fail(wire.CodePermission, "subjects under $SYS. are the broker's")
		return
	case m.Type < 1:
		fail(wire.CodeInvalid, "type must be at least 1, not %d", m.Type)
		return
	case m.Size() > lim.MaxMessage:
		fail(wire.CodeTooLarge, "%d bytes (body and headers) exceeds the limit of %d", m.Size(), lim.MaxMessage)
		return
	}
	uid, gids := principalIDs(c)
	ps.mu.Lock()
	allowed := ps.claims.Allowed(subject, uid, gids, topic.PermWrite)
	ps.mu.Unlock()
	if !allowed {
		fail(wire.CodePermission, "permission denied (the subject's claim denies w)")
		return
	}
	if m.Timeout != 0 && !c.register(hd.Request) {
		fail(wire.CodeInvalid, "request id %d is already in flight", hd.Request)
		return
	}
	pub := newPublication(subject, c.ident, h.now, m.Type, m.Headers, m.Body)
	pub.from = c
	ps.publish(c, hd, pub, m.Timeout)
}

// newPublication copies a publication's bytes into one buffer.
func newPublication(subject string, sender mailbox.Identity, now, typ int64, headers, body []byte) *publication {
	buf := make([]byte, 0, len(subject)+len(headers)+len(body))
	buf = append(append(append(buf, subject...), headers...), body...)
	n, h := len(subject), len(subject)+len(headers)
	return &publication{subject: subject, subj: buf[:n:n], sender: sender, sent: now, typ: typ,
		headers: buf[n:h:h], body: buf[h:]}
}

// publish hands pub to the engine and answers the PUBLISH in hd now or,
// for a full Block subscriber, when it has room (or the timeout, a
// CANCEL or the publisher's disconnect ends the wait). c is nil for the
// broker's own events, which never wait.
func (ps *pubsub) publish(c *conn, hd wire.Header, pub *publication, timeout int64) {
	eng := ps.engineFor(pub.subject)
	tp := pub.topicPub()
	ps.mu.Lock()
	ps.token++
	token := ps.token
	matched, done := eng.PublishRef(tp, token)
	var w *pubWait
	if !done {
		if c == nil || timeout == 0 {
			eng.Withdraw(token)
		} else {
			w = &pubWait{c: c, hd: hd, token: token, eng: eng, matched: matched, subject: pub.subject}
			ps.waits[token] = w
			if timeout > 0 {
				w.timer = time.AfterFunc(time.Duration(timeout), func() { ps.endWait(token, wire.CodeTimeout) })
			}
		}
	}
	ps.effects(eng)
	ps.unlock()
	if c == nil || w != nil {
		return
	}
	if !done {
		// Timeout 0: the subscribers with room have it; it does not wait
		// for the full ones.
		c.replyErr(hd, wire.CodeFull, fmt.Sprintf("publish %q: a subscriber with policy block is full", pub.subject))
		return
	}
	c.forget(hd.Request, timeout != 0)
	rep := wire.PublishReply{Matched: uint32(matched)}
	c.reply(replyHeader(hd, wire.OK), &rep)
}

// forget gives back a request id reserved by register (reserved: it was).
func (c *conn) forget(req uint64, reserved bool) {
	if !reserved {
		return
	}
	c.pmu.Lock()
	if p, ok := c.pending[req]; ok && p == nil {
		delete(c.pending, req)
	}
	c.pmu.Unlock()
}

// endWait ends a waiting PUBLISH with code (TIMEOUT, CANCELED, CLOSED):
// it is withdrawn from the subscriptions still full.
func (ps *pubsub) endWait(token uint64, code wire.Code) {
	ps.mu.Lock()
	w := ps.waits[token]
	if w == nil {
		ps.mu.Unlock()
		return
	}
	if w.batch != nil {
		ps.mu.Unlock()
		ps.endBatch(w.batch, code)
		return
	}
	delete(ps.waits, token)
	w.eng.Withdraw(token)
	ps.effects(w.eng)
	ps.unlock()
	ps.finishWait(w, code)
}

// finishWait answers a PUBLISH that waited: OK, or code.
func (ps *pubsub) finishWait(w *pubWait, code wire.Code) {
	if w.timer != nil {
		w.timer.Stop()
	}
	if w.batch != nil {
		ps.endBatch(w.batch, code)
		return
	}
	w.c.forget(w.hd.Request, true)
	if code != wire.OK {
		what := map[wire.Code]string{wire.CodeTimeout: "timed out", wire.CodeCanceled: "canceled", wire.CodeClosed: "the broker is closing"}[code]
		w.c.replyErr(w.hd, code, fmt.Sprintf("publish %q: %s (a subscriber with policy block is full)", w.subject, what))
		return
	}
	rep := wire.PublishReply{Matched: uint32(w.matched)}
	w.c.reply(replyHeader(w.hd, wire.OK), &rep)
}

// effects carries out the engine's effects. mu is held; work that takes
// other locks goes on ps.after.
func (ps *pubsub) effects(eng *topic.Engine) {
	for {
		effs := eng.Effects()
		if len(effs) == 0 {
			return
		}
		for i := range effs {
			e := &effs[i]
			switch e.Kind {
			case topic.EffDeliver:
				s, _ := e.Owner.(*subscription)
				if s == nil {
					continue
				}
				if s.bind != nil {
					if e.Pub != nil {
						ps.deliverBound(s.bind, e.Pub.Payload.(*publication))
					}
					eng.AddCredit(s.id, 1) // handed to the mailbox: room again at once
					continue
				}
				s.c.event(s.req, e.Pub, e.Missed)
			case topic.EffPublished:
				if w := ps.waits[e.Token]; w != nil {
					delete(ps.waits, e.Token)
					if w.batch != nil {
						ps.batchItemPublished(w.batch, e.Token)
						continue
					}
					ps.after = append(ps.after, func() { ps.finishWait(w, wire.OK) })
				}
			case topic.EffDisconnect:
				s, _ := e.Owner.(*subscription)
				if s == nil || s.c == nil {
					continue
				}
				ps.dropSub(s)
				msg := fmt.Sprintf("subscription %q: buffer full (policy disconnect)", s.pattern)
				hd := wire.Header{Op: wire.OpSubscribe, Request: s.req}
				s.c.replyErrQuiet(hd, wire.CodeLimit, msg)
				c := s.c
				ps.after = append(ps.after, func() {
					c.forget(hd.Request, true)
					ps.limitReached(c, hd.Op, msg)
				})
			}
		}
	}
}

// event queues an EVENT frame for the subscription with request id req:
// pub (nil for a gap notice alone), after missed dropped ones.
func (c *conn) event(req uint64, tp *topic.Pub, missed uint64) {
	hd := wire.Header{Op: wire.OpEvent, Flags: wire.FlagPush, Request: req}
	ev := wire.Event{Missed: missed}
	var name string
	if tp == nil {
		ev.Flags = wire.EventGap
	} else {
		p := tp.Payload.(*publication)
		ev.Subject, ev.Sender, ev.SentUnixNano = p.subj, wireIdentity(p.sender), p.sent
		ev.Type, ev.Headers, ev.Body = p.typ, p.headers, p.body
		name = p.sender.Name
	}
	c.w.Append(false, func(b []byte) []byte {
		b, off := wire.StartFrame(b, hd)
		return wire.FinishFrame(wire.AppendPrincipalName(ev.Append(b), name), off)
	})
}

// dropSub removes s from the maps (not from the engine: the caller does
// that, or the engine did). mu is held.
func (ps *pubsub) dropSub(s *subscription) {
	if m := ps.subs[s.c]; m != nil {
		delete(m, s.req)
		if len(m) == 0 {
			delete(ps.subs, s.c)
		}
	}
}

// replyErrQuiet is replyErr without its $SYS.limit.reached event, for
// use under mu (the event takes mu).
func (c *conn) replyErrQuiet(hd wire.Header, code wire.Code, msg string) {
	h := replyHeader(hd, code)
	c.w.Append(h.Urgent(), func(b []byte) []byte {
		b, off := wire.StartFrame(b, h)
		return wire.FinishFrame(wire.AppendError(b, msg), off)
	})
}
