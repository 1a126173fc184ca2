package broker

import (
	"time"

	"github.com/postbox-ipc/postbox/wire"
)

// Mailbox notices: the edges a mailbox watch reports (watch.go).
//
// The depth edges are seen in apply, which runs under the box lock after
// every change the core makes: the watched name's entry keeps the depth
// last seen, and a change from 0 to more is NON_EMPTY, from the capacity
// (or more) to less is BELOW_CAPACITY. A message handed straight to a
// waiting receiver never makes the queue non-empty, and a full mailbox
// whose freed place goes at once to a blocked sender never falls below
// its capacity: neither is reported (the edge did not happen).

// depthChanged reports bx's depth edges to its watchers. bx.mu is held
// (apply).
func (n *notices) depthChanged(bx *box) {
	if bx.inbox != 0 || !n.watchedName(bx.name) || bx.core.Destroyed() {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	e := n.mailboxes[bx.name]
	if e == nil || e.bx != bx {
		return // not watched, or not yet announced (boxCreated sets bx)
	}
	d := bx.core.Stats().Depth
	old := e.depth
	e.depth = d
	var kind wire.NoticeKind
	capacity := bx.core.Config().Capacity
	switch {
	case old == 0 && d > 0:
		kind = wire.NoticeNonEmpty
	case capacity > 0 && int64(old) >= capacity && int64(d) < capacity:
		kind = wire.NoticeBelowCapacity
	default:
		return
	}
	n.notifyLocked(e, &wire.Notice{Kind: kind, Target: []byte(bx.name), Depth: uint32(d), UnixNano: time.Now().UnixNano()})
}

// notifyLocked pushes m to every watch of e, ending with LIMIT those
// whose connection does not read its output. n.mu is held.
func (n *notices) notifyLocked(e *boxWatches, m *wire.Notice) {
	var slow []*watch
	for _, w := range e.list {
		if w.c.overBacklog() {
			slow = append(slow, w)
			continue
		}
		w.push(m)
	}
	for _, w := range slow {
		if n.removeLocked(w) {
			w.end(wire.CodeLimit, "the watcher does not read its notices (its connection's output is over its backlog bound)")
		}
	}
}

// boxCreated announces a new mailbox to the watchers of its name: those
// who may receive from it get CREATED (with its depth), the others have
// their watch ended with PERMISSION. It is called holding no lock, once
// bx is in the broker's table.
func (b *Broker) boxCreated(bx *box) {
	n := &b.notices
	if n.nboxes.Load() == 0 {
		return
	}
	n.mu.Lock()
	var list []*watch
	if e := n.mailboxes[bx.name]; e != nil {
		list = append(list, e.list...)
	}
	n.mu.Unlock()
	if len(list) == 0 {
		return
	}
	denied := make(map[*watch]bool)
	for _, w := range list {
		if !w.c.authorize(bx, ActReceive) { // no lock held
			denied[w] = true
		}
	}
	bx.mu.Lock()
	n.mu.Lock()
	e := n.mailboxes[bx.name]
	var ended []*watch
	if e != nil && !bx.core.Destroyed() && e.bx != bx {
		e.bx, e.depth = bx, bx.core.Stats().Depth
		m := &wire.Notice{Kind: wire.NoticeCreated, Target: []byte(bx.name), Depth: uint32(e.depth), UnixNano: time.Now().UnixNano()}
		for _, w := range append([]*watch(nil), e.list...) {
			switch {
			case denied[w]:
				if n.removeLocked(w) {
					ended = append(ended, w)
				}
			case w.c.overBacklog():
				if n.removeLocked(w) {
					w.end(wire.CodeLimit, "the watcher does not read its notices")
				}
			default:
				// A watch that came after the snapshot was authorized by
				// its WATCH, which found the mailbox.
				w.push(m)
			}
		}
	}
	n.mu.Unlock()
	bx.mu.Unlock()
	for _, w := range ended {
		w.end(wire.CodePermission, "the new mailbox is not the watcher's to receive from")
	}
}

// boxGone is called by Broker.destroy, under bx.mu, for every mailbox
// and inbox destroyed: it leaves every group, and its watchers get
// DESTROYED.
func (b *Broker) boxGone(bx *box) {
	b.groups.leaveAll(bx.name)
	n := &b.notices
	if bx.inbox != 0 || n.nboxes.Load() == 0 {
		return
	}
	n.mu.Lock()
	if e := n.mailboxes[bx.name]; e != nil && e.bx == bx {
		e.bx, e.depth = nil, 0
		n.notifyLocked(e, &wire.Notice{Kind: wire.NoticeDestroyed, Target: []byte(bx.name), UnixNano: time.Now().UnixNano()})
	}
	n.mu.Unlock()
}
