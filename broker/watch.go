package broker

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/postbox-ipc/postbox/wire"
)

// Watches: WATCH and the NOTICEs pushed to it (PROTOCOL.md 8.22).
//
// A WATCH names an endpoint ("@id") or a mailbox. It is a streaming
// request like CONSUME: its id stays reserved on the watcher's connection
// (a nil pending entry) until the final reply, which follows every
// NOTICE in the data lane. The first NOTICE, ARMED, says the watch is in
// place; what happens after it is reported.
//
//   - An endpoint watch gets exactly one ENDPOINT_EXITED notice, then the
//     final reply OK. The watched connection's cleanup runs once; it takes
//     the endpoint's watches out of the table under n.mu, so whatever
//     ended the connection (its process exiting, seen through its pidfd
//     even while a child keeps the socket open; the socket closing; the
//     broker shutting down) is reported once, by whichever came first
//     (notice_exit.go). Watching an endpoint needs no permission: a
//     connection's existence is no secret (its inbox takes messages from
//     anyone), and the notice says only its pid and uid, which the
//     watcher could read in /proc. An endpoint not connected is NOT_FOUND.
//   - A mailbox watch reports CREATED, DESTROYED, NON_EMPTY (its queue
//     went from no messages to some) and BELOW_CAPACITY (from its
//     capacity to below it), each time the edge happens, to every
//     watcher, without re-arming, until CANCEL. It needs receive
//     permission on the mailbox (mode bits or ownership), checked at
//     WATCH if the mailbox exists and at its creation otherwise (a
//     watcher who may not receive from the new mailbox gets PERMISSION
//     as its final reply).
//
// A watcher whose connection is over its backlog bound when a mailbox
// notice is due has its watch ended with LIMIT rather than fill the
// broker's memory with notices it does not read. Each connection holds
// at most maxWatchesPerConn watches.
//
// Locks: n.mu is taken under box.mu (the mailbox edges are seen where
// the core changes, in apply and destroy) and takes conn.pmu and the
// connection writers' locks under it; it is never held while taking a
// box lock. The Authorizer is called holding none.

const maxWatchesPerConn = 1024

// notices is the broker's watch table. The zero value is ready.
type notices struct {
	mu        sync.Mutex                  // guards the maps below and every watch's fields
	endpoints map[uint64][]*watch         // by the watched endpoint's id
	mailboxes map[string]*boxWatches      // by the watched mailbox's name
	byConn    map[*conn]map[uint64]*watch // each watcher's watches, by request id
	nboxes    atomic.Int32                // len(mailboxes): apply looks only if some
	// names is the set of mailbox names watched, copied on every change
	// (under mu) so that apply, on every step of every mailbox, finds an
	// unwatched one without taking mu.
	names atomic.Pointer[map[string]struct{}]
}

// watch is one WATCH request.
type watch struct {
	c        *conn // the watcher
	req      uint64
	target   string
	endpoint uint64 // the watched endpoint, 0 for a mailbox watch
	pid      int32  // the watched endpoint's peer
	uid      uint32
}

// boxWatches is the watches of one mailbox name and the state their
// edges are computed from.
type boxWatches struct {
	list  []*watch
	bx    *box // the mailbox the watches follow: nil while none exists (or before its CREATED)
	depth int  // bx's queued messages when last seen
}

func (h *handler) doWatch(hd wire.Header, p []byte) {
	c, b := h.c, h.c.b
	var m wire.Watch
	if !h.decode(hd, p, &m) {
		return
	}
	fail := func(code wire.Code, why string) {
		c.replyErr(hd, code, fmt.Sprintf("watch %q: %s", m.Target, why))
	}
	if !wire.ValidAddress(m.Target) {
		fail(wire.CodeInvalid, badName)
		return
	}
	var tc *conn // the watched endpoint's connection
	var bx *box  // the watched mailbox, if it exists
	if id, ok := wire.ParseInbox(m.Target); ok {
		if inbox := b.lookup(m.Target); inbox != nil && inbox.inbox == id {
			tc = inbox.owner
		}
		if tc == nil {
			fail(wire.CodeNotFound, "no such endpoint")
			return
		}
	} else if bx = b.lookup(m.Target); bx != nil && !c.authorize(bx, ActReceive) {
		fail(wire.CodePermission, "may not receive from it")
		return
	}
	if !c.register(hd.Request) {
		fail(wire.CodeInvalid, fmt.Sprintf("request id %d is already in flight", hd.Request))
		return
	}
	w := &watch{c: c, req: hd.Request, target: string(m.Target)}
	n := &b.notices
	if tc != nil {
		w.endpoint, w.pid, w.uid = tc.id, tc.ident.PID, tc.ident.UID
		n.mu.Lock()
		if tc.gone.Load() { // its cleanup has begun, or is done: see endpointGone
			n.mu.Unlock()
			c.finishWatch(w)
			fail(wire.CodeNotFound, "no such endpoint")
			return
		}
		if !n.addLocked(w) {
			n.mu.Unlock()
			c.finishWatch(w)
			fail(wire.CodeLimit, fmt.Sprintf("this connection has %d watches, the most allowed", maxWatchesPerConn))
			return
		}
		n.endpoints[tc.id] = append(n.endpoints[tc.id], w)
		w.push(&wire.Notice{Kind: wire.NoticeArmed, Target: m.Target, Endpoint: tc.id,
			PID: tc.ident.PID, UID: tc.ident.UID, UnixNano: time.Now().UnixNano()})
		n.mu.Unlock()
		return
	}
	if bx != nil {
		bx.mu.Lock() // for its depth, and so that no edge is missed or doubled
	}
	n.mu.Lock()
	if !n.addLocked(w) {
		n.mu.Unlock()
		if bx != nil {
			bx.mu.Unlock()
		}
		c.finishWatch(w)
		fail(wire.CodeLimit, fmt.Sprintf("this connection has %d watches, the most allowed", maxWatchesPerConn))
		return
	}
	e := n.mailboxes[w.target]
	if e == nil {
		e = &boxWatches{}
		n.mailboxes[w.target] = e
		n.namesChangedLocked()
	}
	e.list = append(e.list, w)
	armed := wire.Notice{Kind: wire.NoticeArmed, Target: m.Target, UnixNano: time.Now().UnixNano()}
	if bx != nil && !bx.core.Destroyed() {
		if e.bx != bx {
			e.bx, e.depth = bx, bx.core.Stats().Depth
		}
		armed.Flags, armed.Depth = wire.NoticeExists, uint32(e.depth)
	}
	w.push(&armed)
	n.mu.Unlock()
	if bx != nil {
		bx.mu.Unlock()
	}
	if armed.Flags&wire.NoticeExists == 0 {
		// A CREATE between the lookup and the watch being in the table
		// announced itself to nobody: announce it now (boxCreated does
		// nothing for a mailbox already announced).
		if nb := b.lookup(m.Target); nb != nil {
			b.boxCreated(nb)
		}
	}
}

// addLocked records w as one of its connection's watches, unless the
// connection has the most allowed. n.mu is held.
func (n *notices) addLocked(w *watch) bool {
	if n.byConn == nil {
		n.byConn = make(map[*conn]map[uint64]*watch)
		n.endpoints = make(map[uint64][]*watch)
		n.mailboxes = make(map[string]*boxWatches)
	}
	mine := n.byConn[w.c]
	if len(mine) >= maxWatchesPerConn {
		return false
	}
	if mine == nil {
		mine = make(map[uint64]*watch)
		n.byConn[w.c] = mine
	}
	mine[w.req] = w
	return true
}

// removeLocked takes w out of the table and reports whether it was in
// it (so that whoever removes a watch answers it, once). n.mu is held.
func (n *notices) removeLocked(w *watch) bool {
	mine := n.byConn[w.c]
	if mine[w.req] != w {
		return false
	}
	delete(mine, w.req)
	if len(mine) == 0 {
		delete(n.byConn, w.c)
	}
	if w.endpoint != 0 {
		n.endpoints[w.endpoint] = without(n.endpoints[w.endpoint], w)
		if len(n.endpoints[w.endpoint]) == 0 {
			delete(n.endpoints, w.endpoint)
		}
		return true
	}
	if e := n.mailboxes[w.target]; e != nil {
		e.list = without(e.list, w)
		if len(e.list) == 0 {
			delete(n.mailboxes, w.target)
			n.namesChangedLocked()
		}
	}
	return true
}

// namesChangedLocked republishes the watched names after a mailbox entry
// came or went. n.mu is held.
func (n *notices) namesChangedLocked() {
	names := make(map[string]struct{}, len(n.mailboxes))
	for name := range n.mailboxes {
		names[name] = struct{}{}
	}
	n.names.Store(&names)
	n.nboxes.Store(int32(len(n.mailboxes)))
}

// watchedName reports, without a lock, whether a mailbox of this name may
// be watched (a stale answer is settled under mu by the caller).
func (n *notices) watchedName(name string) bool {
	names := n.names.Load()
	if names == nil {
		return false
	}
	_, ok := (*names)[name]
	return ok
}

func without(list []*watch, w *watch) []*watch {
	for i, x := range list {
		if x == w {
			copy(list[i:], list[i+1:])
			list[len(list)-1] = nil
			return list[:len(list)-1]
		}
	}
	return list
}

// push queues a NOTICE for w, in the data lane.
func (w *watch) push(m *wire.Notice) {
	hd := wire.Header{Op: wire.OpNotice, Flags: wire.FlagPush, Request: w.req}
	w.c.w.Append(false, func(b []byte) []byte {
		b, off := wire.StartFrame(b, hd)
		return wire.FinishFrame(m.Append(b), off)
	})
}

// end answers w's WATCH with its final reply (after its notices, in the
// data lane) and frees its request id. w is out of the table.
func (w *watch) end(code wire.Code, why string) {
	w.c.finishWatch(w)
	hd := wire.Header{Op: wire.OpWatch, Request: w.req}
	if code == wire.OK {
		w.c.replyEmpty(hd)
		return
	}
	w.c.replyErr(hd, code, fmt.Sprintf("watch %q: %s", w.target, why))
}

// finishWatch frees w's request id.
func (c *conn) finishWatch(w *watch) {
	c.pmu.Lock()
	if p, ok := c.pending[w.req]; ok && p == nil {
		delete(c.pending, w.req)
	}
	c.pmu.Unlock()
}

// cancel ends the watch with request id req on c, if there is one, with
// CANCELED (handler.go's CANCEL).
func (n *notices) cancel(c *conn, req uint64) {
	n.mu.Lock()
	w := n.byConn[c][req]
	ok := w != nil && n.removeLocked(w)
	n.mu.Unlock()
	if ok {
		w.end(wire.CodeCanceled, "canceled")
	}
}

// connGone forgets the watches c made (its connection is ending: nothing
// is answered).
func (n *notices) connGone(c *conn) {
	n.mu.Lock()
	for _, w := range n.byConn[c] {
		n.removeLocked(w)
	}
	n.mu.Unlock()
}

// shutdown ends every watch as the broker shuts down: endpoint watches
// with their ENDPOINT_EXITED notice (BROKER_SHUTDOWN) and OK, mailbox
// watches with CLOSED.
func (n *notices) shutdown() {
	n.mu.Lock()
	var all []*watch
	for _, mine := range n.byConn {
		for _, w := range mine {
			all = append(all, w)
		}
	}
	for _, w := range all {
		n.removeLocked(w)
	}
	n.mu.Unlock()
	now := time.Now().UnixNano()
	for _, w := range all {
		if w.endpoint == 0 {
			w.end(wire.CodeClosed, "the broker is shutting down")
			continue
		}
		w.push(&wire.Notice{Kind: wire.NoticeEndpointExited, Reason: wire.ExitBrokerShutdown,
			Target: []byte(w.target), Endpoint: w.endpoint, PID: w.pid, UID: w.uid, UnixNano: now})
		w.end(wire.OK, "")
	}
}
