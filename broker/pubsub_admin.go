package broker

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/postbox-ipc/postbox/mailbox"
	"github.com/postbox-ipc/postbox/topic"
	"github.com/postbox-ipc/postbox/wire"
)

// CLAIM, TOPICS, and the broker's own events on "$SYS." subjects.
//
// Events (type 1, CONTENT_TYPE application/json, body a JSON object,
// sender the broker: a Unix principal with the broker's uid, gid and pid
// and endpoint 0):
//
//	$SYS.conn.opened        {"endpoint", "uid", "gid", "pid", "kind", "name"?}
//	$SYS.conn.closed        the same
//	$SYS.mailbox.created    {"name", "durable", "uid"}
//	$SYS.mailbox.destroyed  {"name", "durable"}
//	$SYS.limit.reached      {"endpoint", "uid", "op", "message"}: a LIMIT reply
//
// The broker never waits to publish them: a full PolicyBlock subscriber
// misses the event (as a timeout 0 PUBLISH would).

func (h *handler) doClaim(hd wire.Header, p []byte) {
	c := h.c
	ps := c.b.ps
	var m wire.Claim
	if !h.decode(hd, p, &m) {
		return
	}
	pattern := string(m.Pattern)
	fail := func(code wire.Code, format string, args ...any) {
		c.replyErr(hd, code, fmt.Sprintf("claim %q: ", pattern)+fmt.Sprintf(format, args...))
	}
	switch {
	case topic.ValidPattern(pattern) != nil:
		fail(wire.CodeInvalid, "%v", topic.ValidPattern(pattern))
		return
	case ps.engineFor(pattern) == ps.sys:
		fail(wire.CodePermission, "$SYS. subjects are the broker's")
		return
	case m.Action != wire.ClaimSet && m.Action != wire.ClaimRelease:
		fail(wire.CodeInvalid, "unknown action %d", m.Action)
		return
	case m.Mode&^0o777 != 0:
		fail(wire.CodeInvalid, "mode %#o has bits outside 0777", m.Mode)
		return
	case c.who.Kind != KindUnix:
		fail(wire.CodePermission, "only a local user can own subjects")
		return
	}
	uid, gid := c.who.UID, c.who.GID
	ps.mu.Lock()
	var err error
	if m.Action == wire.ClaimRelease {
		err = ps.claims.ReleaseBy(uid, pattern)
	} else {
		owner, group := uid, gid
		if old, ok := ps.claims.Get(pattern); ok && uid == 0 {
			owner, group = old.Owner, old.GID // root changes the mode of another's claim, not its owner
		}
		err = ps.claims.ClaimBy(uid, pattern, owner, group, m.Mode)
	}
	ps.mu.Unlock()
	switch {
	case errors.Is(err, topic.ErrNoClaim):
		fail(wire.CodeNotFound, "no such claim")
		return
	case errors.Is(err, topic.ErrClaimed), errors.Is(err, topic.ErrNotOwner):
		fail(wire.CodePermission, "%v", err)
		return
	case err != nil:
		fail(wire.CodeInvalid, "%v", err)
		return
	}
	if err := ps.save(); err != nil {
		code, text := storageError(fmt.Sprintf("claim %q", pattern), err)
		c.replyErr(hd, code, text)
		return
	}
	c.replyEmpty(hd)
}

func (h *handler) doTopics(hd wire.Header, p []byte) {
	c := h.c
	ps := c.b.ps
	var m wire.Empty
	if !h.decode(hd, p, &m) {
		return
	}
	var rep wire.TopicsReply
	budget := c.b.cfg.MaxFrame - wire.HeaderSize - 64 // the reply must fit a frame
	ps.mu.Lock()
	for _, s := range ps.subjectsLocked() {
		if budget -= 2 + len(s.Pattern) + 24; budget < 0 {
			break
		}
		rep.Subjects = append(rep.Subjects, wire.SubjectInfo{Pattern: []byte(s.Pattern), Subscribers: uint32(s.Subscribers),
			Queues: uint32(s.QueueGroups), Delivered: s.Delivered, Dropped: s.Dropped})
	}
	for _, bd := range ps.binds {
		if budget -= 4 + len(bd.key.pattern) + len(bd.key.mailbox); budget >= 0 {
			rep.Bindings = append(rep.Bindings, wire.BindingInfo{Pattern: []byte(bd.key.pattern), Mailbox: []byte(bd.key.mailbox)})
		}
	}
	for _, cl := range ps.claims.List() {
		if budget -= 14 + len(cl.Pattern); budget >= 0 {
			rep.Claims = append(rep.Claims, wire.ClaimInfo{Pattern: []byte(cl.Pattern), UID: cl.Owner, GID: cl.GID, Mode: cl.Mode})
		}
	}
	ps.mu.Unlock()
	c.reply(replyHeader(hd, wire.OK), &rep)
}

// subjectsLocked is every pattern with subscriptions, the broker's own
// ($SYS.) after the others, as TOPICS and Snapshot report them: the
// bindings are subscriptions too, and their own are left out (a pattern
// only bindings have is not listed). mu is held.
func (ps *pubsub) subjectsLocked() []topic.SubjectStat {
	bound := map[string]int{}
	for _, bd := range ps.binds {
		bound[bd.key.pattern]++
	}
	var out []topic.SubjectStat
	for _, eng := range []*topic.Engine{ps.eng, ps.sys} {
		for _, s := range eng.Subjects() {
			if n := bound[s.Pattern]; n > 0 {
				if s.Subscribers -= min(s.Subscribers, n); s.Subscribers == 0 {
					continue
				}
			}
			out = append(out, s)
		}
	}
	return out
}

// sysIdentity is the broker as the sender of its own events.
func sysIdentity() mailbox.Identity {
	return mailbox.Identity{Kind: uint8(KindUnix), UID: uint32(os.Geteuid()), GID: uint32(os.Getegid()), PID: int32(os.Getpid())}
}

var sysHeaders = wire.AppendHeaders(nil, &wire.HeaderFields{ContentType: []byte("application/json")})

// sysEvent publishes a broker event. It never waits; without a
// subscriber to "$SYS." it costs a lookup.
func (ps *pubsub) sysEvent(subject string, fields map[string]any) {
	if ps == nil {
		return
	}
	ps.mu.Lock()
	none := len(ps.sys.Subjects()) == 0
	ps.mu.Unlock()
	if none {
		return
	}
	body, _ := json.Marshal(fields)
	pub := newPublication(subject, sysIdentity(), time.Now().UnixNano(), 1, sysHeaders, body)
	ps.publish(nil, wire.Header{}, pub, 0)
}

// connEvent publishes $SYS.conn.opened or .closed for c.
func (ps *pubsub) connEvent(c *conn, what string) {
	f := map[string]any{"endpoint": c.id, "kind": c.ident.Kind, "uid": c.ident.UID, "gid": c.ident.GID, "pid": c.ident.PID}
	if c.ident.Name != "" {
		f["name"] = c.ident.Name
	}
	ps.sysEvent("$SYS.conn."+what, f)
}

// mailboxCreated publishes $SYS.mailbox.created.
func (ps *pubsub) mailboxCreated(bx *box) {
	ps.sysEvent("$SYS.mailbox.created", map[string]any{"name": bx.name, "durable": bx.durable, "uid": bx.uid})
}

// limitReached publishes $SYS.limit.reached for a LIMIT reply to c.
func (ps *pubsub) limitReached(c *conn, op wire.Op, msg string) {
	ps.sysEvent("$SYS.limit.reached", map[string]any{"endpoint": c.id, "uid": c.ident.UID,
		"op": strings.TrimSuffix(op.String(), "-REPLY"), "message": msg})
}
