package broker

import (
	"fmt"
	"slices"
	"sync"

	"github.com/postbox-ipc/postbox/mailbox"
	"github.com/postbox-ipc/postbox/wire"
)

// Groups and broadcast: JOIN, and SENDs to "#group" or "@*" (PROTOCOL.md
// 8.21).
//
// A group's members are addresses (groups_core.go): an endpoint's inbox
// or a named mailbox. An endpoint leaves every group when its connection
// ends (conn cleanup destroys its inbox), a mailbox when it is destroyed:
// both go through Broker.destroy, which calls boxGone. Joining a mailbox
// needs receive permission on it (its messages are the joiner's to read).
//
// A SEND to a group is a fan-out that never waits: each member gets a
// copy of the SEND's messages if they fit at once, as a best-effort SEND
// would admit them (a member that is full, over a byte limit or quota
// gets the leading messages that fit and counts the rest in its
// DROPPED), and only if the sender may send to that member. The reply
// is a SendReply whose ids are 0 (each copy has its own id in its
// mailbox) with RECIPIENTS, the members that got every message. A group
// with no members is no error: RECIPIENTS is 0. Broadcast ("@*") is the
// same fan-out to the inbox of every connected endpoint but the sender's,
// allowed to root and Config.BroadcastOwner only.

// groups is the broker's group table. The zero value is ready.
type groups struct {
	mu sync.Mutex // guards t; a leaf, taken under box.mu by destroy
	t  groupTable
}

// isFanOut reports whether a SEND's target is a group or the broadcast.
func isFanOut(target []byte) bool { return wire.IsGroup(target) || wire.IsBroadcast(target) }

func (h *handler) doJoin(hd wire.Header, p []byte) {
	c, b := h.c, h.c.b
	var m wire.Join
	if !h.decode(hd, p, &m) {
		return
	}
	verb := "join"
	if hd.Flags&wire.FlagLeave != 0 {
		verb = "leave"
	}
	if !wire.ValidGroup(m.Group) {
		c.replyErr(hd, wire.CodeInvalid, fmt.Sprintf("%s %q: a group is # and a mailbox name (1 to 200 characters of A-Z a-z 0-9 . _ : / -)", verb, m.Group))
		return
	}
	g := string(m.Group)
	member := c.inbox
	if len(m.Mailbox) > 0 {
		if !wire.ValidName(m.Mailbox) {
			c.replyErr(hd, wire.CodeInvalid, fmt.Sprintf("%s %q: mailbox %q: %s", verb, g, m.Mailbox, badName))
			return
		}
		member = b.lookup(m.Mailbox)
		if member == nil || member.inbox != 0 {
			c.replyErr(hd, wire.CodeNotFound, fmt.Sprintf("%s %q: no such mailbox %q", verb, g, m.Mailbox))
			return
		}
		if !c.authorize(member, ActReceive) {
			c.replyErr(hd, wire.CodePermission, fmt.Sprintf("%s %q: may not receive from mailbox %q", verb, g, m.Mailbox))
			return
		}
	}
	if hd.Flags&wire.FlagLeave != 0 {
		b.groups.mu.Lock()
		b.groups.t.Leave(g, member.name)
		b.groups.mu.Unlock()
		c.replyEmpty(hd) // leaving a group one is not in is no error
		return
	}
	// Under the member's lock, so that a destroy (which drops the member
	// under it) either comes after the join or is seen here.
	member.mu.Lock()
	gone := member.core.Destroyed()
	var err error
	if !gone {
		b.groups.mu.Lock()
		_, err = b.groups.t.Join(g, member.name)
		b.groups.mu.Unlock()
	}
	member.mu.Unlock()
	switch {
	case gone:
		c.replyErr(hd, wire.CodeNotFound, fmt.Sprintf("join %q: mailbox %q was destroyed", g, member.name))
	case err != nil:
		c.replyErr(hd, wire.CodeLimit, fmt.Sprintf("join %q: %s is in %d groups, the most allowed", g, member.name, maxGroupsPerMember))
	default:
		c.replyEmpty(hd)
	}
}

// leaveAll drops a destroyed mailbox or inbox from every group. bx.mu is
// held (Broker.destroy).
func (g *groups) leaveAll(name string) {
	g.mu.Lock()
	g.t.dropMember(name)
	g.mu.Unlock()
}

// fanOutTargets returns the boxes a SEND to target reaches, or the
// status and text to refuse it with.
func (c *conn) fanOutTargets(target []byte) ([]*box, wire.Code, string) {
	b := c.b
	var names []string
	switch {
	case wire.IsBroadcast(target):
		if !c.mayBroadcast() {
			return nil, wire.CodePermission, "broadcast is for root or the broadcast owner"
		}
		// The inboxes in the broker's table: a connection's own fields
		// are its reader's until its inbox is there.
		b.mu.RLock()
		boxes := make([]*box, 0, len(b.conns))
		for _, bx := range b.boxes {
			if bx.inbox != 0 && bx.owner != c {
				boxes = append(boxes, bx)
			}
		}
		b.mu.RUnlock()
		// Deterministic order: by endpoint id.
		slices.SortFunc(boxes, func(x, y *box) int {
			if x.inbox < y.inbox {
				return -1
			}
			return 1
		})
		return boxes, wire.OK, ""
	case wire.ValidGroup(target):
		b.groups.mu.Lock()
		names = b.groups.t.Members(string(target), nil)
		b.groups.mu.Unlock()
	default:
		return nil, wire.CodeInvalid, "a group is # and a mailbox name (1 to 200 characters of A-Z a-z 0-9 . _ : / -)"
	}
	boxes := make([]*box, 0, len(names))
	for _, n := range names {
		if bx := b.lookup([]byte(n)); bx != nil {
			boxes = append(boxes, bx)
		}
	}
	return boxes, wire.OK, ""
}

// mayBroadcast reports whether c's principal may send to "@*": a Unix
// principal that is root or Config.BroadcastOwner.
func (c *conn) mayBroadcast() bool {
	return c.who.Kind == KindUnix && (c.who.UID == 0 || c.who.UID == c.b.cfg.BroadcastOwner)
}

// fanOut carries out a SEND to a group or "@*" (put and
// doSendBestEffort call it for such a target): msgs go to each target
// box that c may send to. It answers the SEND with RECIPIENTS once
// durable members' records are on disk; a BEST_EFFORT one it answers
// not at all. A CALL or CHANNEL (off) to a group is INVALID.
func (h *handler) fanOut(hd wire.Header, target []byte, msgs []*mailbox.Message, size int64, off *offer) {
	c := h.c
	reply := hd.Flags&wire.FlagBestEffort == 0
	fail := func(code wire.Code, why string) {
		if reply {
			c.sendErr(hd, target, off, 0, code, why)
		}
	}
	switch {
	case off != nil || hd.Op != wire.OpSend:
		fail(wire.CodeInvalid, "a CALL or CHANNEL goes to one mailbox, not to a group or broadcast")
		return
	case hd.Flags&(wire.FlagReceipt|wire.FlagReply) != 0:
		fail(wire.CodeInvalid, "RECEIPT and REPLY name one receiver; a group or broadcast has many")
		return
	}
	for _, msg := range msgs {
		msg.Sender = c.ident
		msg.SentUnixNano = h.now
	}
	boxes, code, why := c.fanOutTargets(target)
	if code != wire.OK {
		fail(code, why)
		return
	}
	type written struct {
		bx       *box
		admitted []*mailbox.Message
		steps    []step
	}
	var (
		r          completions
		st         step
		durable    []written
		recipients uint32
	)
	for _, bx := range boxes {
		if !c.authorize(bx, ActSend) {
			continue
		}
		copies := make([]*mailbox.Message, len(msgs))
		for i, m := range msgs {
			cp := *m // body and headers are shared: nobody writes them
			copies[i] = &cp
		}
		n, steps, ms := c.b.admitNow(bx, copies, size, &r)
		if n == len(copies) {
			recipients++
		}
		if ms.wrote() {
			st.join(ms)
			durable = append(durable, written{bx, copies[:n], steps})
		}
	}
	if !reply {
		r.run()
		return
	}
	ids := make([]uint64, len(msgs))
	c.b.after(&r, st, func(err error) {
		n := recipients
		if err != nil {
			// Copies whose records failed are taken back: those members
			// did not get them after all.
			for _, w := range durable {
				if done := c.b.takeBackUnwritten(w.bx, w.admitted, w.steps); done < len(w.admitted) && n > 0 {
					n--
				}
			}
		}
		m := wire.SendReply{IDs: ids, Ext: wire.AppendRecipients(nil, n)}
		c.reply(replyHeader(hd, wire.OK), &m)
	})
	r.run()
}

// admitNow admits msgs to bx in order as far as they fit at once (no
// waiting: a best-effort admission), counting those that do not in bx's
// DROPPED. It returns how many were admitted, a durable box's records
// per message, and the step's records.
func (b *Broker) admitNow(bx *box, msgs []*mailbox.Message, size int64, r *completions) (int, []step, step) {
	var st step
	if len(msgs) == 0 {
		return 0, nil, st
	}
	if len(msgs) > 1 && bx.core.Config().Capacity == 0 {
		bx.dropped(len(msgs)) // a rendezvous takes one message per SEND
		return 0, nil, st
	}
	lim := b.limits.Load()
	if b.quota.of(msgs[0].Sender).fits(size) != nil {
		bx.dropped(len(msgs))
		return 0, nil, st
	}
	bx.mu.Lock()
	if bx.core.Destroyed() || b.held.Load()+b.out.Load()+size > lim.MaxQueuedBytes {
		bx.mu.Unlock()
		bx.dropped(len(msgs))
		return 0, nil, st
	}
	before := bx.core.HeldBytes()
	var steps []step
	if bx.durable {
		steps = make([]step, 0, len(msgs))
	}
	n := 0
	for ; n < len(msgs); n++ {
		_, _, err := bx.core.Send(msgs[n], false, nil)
		ms := b.apply(bx, bx.core.Effects(), r)
		st.join(ms)
		if err != nil {
			break
		}
		if steps != nil {
			steps = append(steps, ms)
		}
		if ms.refused != nil {
			n++
			break
		}
	}
	b.account(bx, before)
	bx.mu.Unlock()
	if n < len(msgs) {
		bx.dropped(len(msgs) - n)
	}
	return n, steps, st
}

// fanOutBestEffort is doSendBestEffort for a group or broadcast target:
// a frame that breaks a rule is dropped uncounted, as is a broadcast by
// someone who may not.
func (h *handler) fanOutBestEffort(hd wire.Header, m *wire.Send) {
	lim := h.c.b.limits.Load()
	var size int64
	for i := range m.Msgs {
		s := &m.Msgs[i]
		if s.Type < 1 || s.Size() > lim.MaxMessage {
			return
		}
		size += int64(s.Size())
	}
	msgs := h.messages(m)
	h.fanOut(hd, m.Target, msgs, size, nil)
	h.release(msgs)
}
