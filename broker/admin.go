package broker

import (
	"fmt"
	"slices"
	"strings"

	"github.com/postbox-ipc/postbox/mailbox"
	"github.com/postbox-ipc/postbox/wire"
)

// Administration: CREATE, DESTROY, CHMOD, STAT and LIST.

func (h *handler) doStat(hd wire.Header, p []byte) {
	c := h.c
	var m wire.Name
	if !h.decode(hd, p, &m) {
		return
	}
	t := h.authorized(hd, "stat", m.Name, ActStat)
	if t == nil {
		return
	}
	info := t.info()
	c.reply(replyHeader(hd, wire.OK), &info)
}

func (h *handler) doList(hd wire.Header, p []byte) {
	var m wire.List
	if !h.decode(hd, p, &m) {
		return
	}
	if h.c.b.auth.Authorize(h.c.who, Object{}, ActList) != nil {
		h.c.replyErr(hd, wire.CodePermission, "list: permission denied")
		return
	}
	// The page ends early rather than make a reply larger than the max
	// frame: count, next (at most a name) and the frame's 12 bytes.
	budget := h.c.b.cfg.MaxFrame - wire.HeaderSize + 4 - 4 - 2 - wire.MaxNameLen
	infos, next := h.c.b.list(m.Cursor, m.PageSize(), budget)
	h.c.reply(replyHeader(hd, wire.OK), &wire.ListReply{Infos: infos, Next: next})
}

func (h *handler) doCreate(hd wire.Header, p []byte) {
	c, b := h.c, h.c.b
	var m wire.Create
	if err := m.Decode(p); err != nil {
		// An unknown critical option, or a DEAD_LETTER that is empty or
		// no valid name, is INVALID; the rest MALFORMED.
		c.replyErr(hd, wire.CodeOf(err), "CREATE: "+err.Error())
		return
	}
	if m.Cluster {
		h.createRemote(hd, &m) // remote_box.go
		return
	}
	invalid := func(why string) { c.replyErr(hd, wire.CodeInvalid, fmt.Sprintf("create %q: %s", m.Name, why)) }
	switch {
	case !wire.ValidName(m.Name):
		invalid(badName)
		return
	case m.Capacity < -1:
		invalid("capacity must be -1 (unbounded), 0 (rendezvous) or positive")
		return
	case m.Mode > 0o777:
		invalid(fmt.Sprintf("mode %#o has bits outside 0777", m.Mode))
		return
	case m.Durable && b.cfg.DataDir == "":
		invalid("durable mailboxes need the broker to run with a data directory (postbox serve --data DIR)")
		return
	case m.MaxBytes < 0 || m.TTL < 0:
		invalid("limits must not be negative")
		return
	case len(m.DeadLetter) > 0 && string(m.DeadLetter) == string(m.Name):
		invalid("a mailbox cannot be its own dead-letter mailbox")
		return
	case pipeCreateRule(&m) != "":
		invalid(pipeCreateRule(&m))
		return
	}
	if len(m.DeadLetter) > 0 {
		dlq := b.lookup(m.DeadLetter)
		if dlq == nil || dlq.inbox != 0 {
			c.replyErr(hd, wire.CodeNotFound, fmt.Sprintf("create %q: dead-letter mailbox %q not found", m.Name, m.DeadLetter))
			return
		}
		if !c.authorize(dlq, ActSend) {
			c.replyErr(hd, wire.CodePermission, fmt.Sprintf("create %q: may not send to dead-letter mailbox %q", m.Name, m.DeadLetter))
			return
		}
	}
	bx := newBox(string(m.Name), 0, c.ident, m.Mode)
	if b.auth.Authorize(c.who, bx.object(), ActCreate) != nil {
		c.replyErr(hd, wire.CodePermission, fmt.Sprintf("create %q: permission denied", m.Name))
		return
	}
	bx.deadLetter, bx.durable, bx.service = string(m.DeadLetter), m.Durable, m.Service
	if m.Pipe {
		bx.pipe, m.MaxBytes = newPipe(), pipeBuffer(&m) // a pipe's buffer is the core's byte bound
	}
	if m.Durable {
		st, err := b.needStore() // the first durable mailbox opens the data directory (lazystore.go)
		if err != nil {
			code, text := storageError(fmt.Sprintf("create %q", m.Name), err)
			c.replyErr(hd, code, text)
			return
		}
		bx.st = st
	}
	bx.core = mailbox.New(mailbox.Config{Capacity: m.Capacity, MaxBytes: m.MaxBytes, MaxDeliveries: m.MaxDeliveries,
		TTL: m.TTL, Durable: m.Durable, Leases: &b.leases, Charge: b.quota.charge, TryLease: b.quota.leaser(bx)})
	if err := b.quota.own(bx, c.ident); err != nil {
		c.replyErr(hd, wire.CodeLimit, fmt.Sprintf("create %q: %v", m.Name, err))
		return
	}
	lim := b.limits.Load()
	b.mu.Lock()
	_, exists := b.boxes[bx.name]
	full := b.named >= lim.MaxMailboxes
	if !exists && !full {
		b.boxes[bx.name] = bx
		b.named++
	}
	b.mu.Unlock()
	if exists || full {
		b.quota.disown(bx)
	} else {
		b.boxCreated(bx) // watches (notice_box.go)
	}
	switch {
	case exists:
		c.replyErr(hd, wire.CodeExists, fmt.Sprintf("create %q: a mailbox with that name exists", m.Name))
	case full:
		c.replyErr(hd, wire.CodeLimit, fmt.Sprintf("create %q: the broker already has %d mailboxes, its limit", m.Name, lim.MaxMailboxes))
	case bx.durable:
		var st step
		bx.mu.Lock()
		gone := bx.core.Destroyed() // by a DESTROY that found it before it was recorded
		if !gone {
			st.add(b.st.PutMailbox(bx.def()))
		}
		bx.mu.Unlock()
		if gone {
			c.replyErr(hd, wire.CodeDestroyed, fmt.Sprintf("create %q: destroyed before it was recorded", bx.name))
			return
		}
		var r completions
		defer r.run()
		b.after(&r, st, func(err error) {
			if err != nil {
				b.destroy(bx, mailbox.ErrDestroyed)
				code, text := storageError(fmt.Sprintf("create %q", bx.name), err)
				c.replyErr(hd, code, text)
				return
			}
			b.log.Info("mailbox created", "mailbox", bx.name, "durable", true, "capacity", m.Capacity, "mode", fmt.Sprintf("%#o", m.Mode), "uid", c.ident.UID, "pid", c.ident.PID)
			c.replyEmpty(hd)
			b.ps.mailboxCreated(bx)
		})
	default:
		b.log.Info("mailbox created", "mailbox", bx.name, "capacity", m.Capacity, "mode", fmt.Sprintf("%#o", m.Mode), "uid", c.ident.UID, "pid", c.ident.PID)
		c.replyEmpty(hd)
		b.ps.mailboxCreated(bx)
	}
}

// authorized resolves name to a target the Authorizer lets the caller
// act on with act. It replies itself ("verb name: why") and returns nil
// when the request cannot go on.
func (h *handler) authorized(hd wire.Header, verb string, name []byte, act Action) target {
	c := h.c
	t, code, why := c.b.resolve(name)
	if t == nil {
		c.replyErr(hd, code, fmt.Sprintf("%s %q: %s", verb, name, why))
		return nil
	}
	if c.b.auth.Authorize(c.who, t.object(), act) != nil {
		c.replyErr(hd, wire.CodePermission, fmt.Sprintf("%s %q: permission denied", verb, name))
		return nil
	}
	return t
}

// named resolves a name for DESTROY or CHMOD: a named target (an inbox
// is NOT_FOUND: it cannot be destroyed or chmodded) that the Authorizer
// lets the caller act on. It replies itself and returns nil when the
// request cannot go on.
func (h *handler) named(hd wire.Header, act Action, name []byte) target {
	c := h.c
	verb := act.String()
	t, code, why := c.b.resolve(name)
	if t == nil {
		c.replyErr(hd, code, fmt.Sprintf("%s %q: %s", verb, name, why))
		return nil
	}
	obj := t.object()
	switch {
	case obj.Inbox != 0:
		c.replyErr(hd, wire.CodeNotFound, fmt.Sprintf("%s %q: no such mailbox (an inbox cannot be)", verb, name))
		return nil
	case c.b.auth.Authorize(c.who, obj, act) != nil:
		c.replyErr(hd, wire.CodePermission, fmt.Sprintf("%s %q: permission denied (its owner is %s)", verb, name, ownerText(obj)))
		return nil
	}
	return t
}

func (h *handler) doDestroy(hd wire.Header, p []byte) {
	var m wire.Name
	if !h.decode(hd, p, &m) {
		return
	}
	if t := h.named(hd, ActDestroy, m.Name); t != nil {
		t.destroy(h.c, hd)
	}
}

func (h *handler) doChmod(hd wire.Header, p []byte) {
	var m wire.Chmod
	if !h.decode(hd, p, &m) {
		return
	}
	if m.Mode > 0o777 {
		h.c.replyErr(hd, wire.CodeInvalid, fmt.Sprintf("chmod %q: mode %#o has bits outside 0777", m.Name, m.Mode))
		return
	}
	if t := h.named(hd, ActChmod, m.Name); t != nil {
		t.chmod(h.c, hd, m.Mode)
	}
}

// destroy is target.destroy for the local queue.
func (bx *box) destroy(c *conn, hd wire.Header) {
	st, ok := c.b.destroy(bx, mailbox.ErrDestroyed)
	if !ok {
		// Another DESTROY got there first.
		c.replyErr(hd, wire.CodeNotFound, fmt.Sprintf("destroy %q: no such mailbox", bx.name))
		return
	}
	c.b.log.Info("mailbox destroyed", "mailbox", bx.name, "uid", c.ident.UID, "pid", c.ident.PID)
	var r completions
	c.b.after(&r, st, func(err error) {
		if err != nil {
			code, text := storageError(fmt.Sprintf("destroy %q", bx.name), err)
			c.replyErr(hd, code, text)
			return
		}
		c.replyEmpty(hd)
	})
	r.run()
}

// chmod is target.chmod for the local queue.
func (bx *box) chmod(c *conn, hd wire.Header, mode uint32) {
	bx.mu.Lock()
	if bx.core.Destroyed() {
		// A DESTROY won the race since the lookup: writing the
		// definition now would bring the mailbox back on restart.
		bx.mu.Unlock()
		c.replyErr(hd, wire.CodeNotFound, fmt.Sprintf("chmod %q: no such mailbox", bx.name))
		return
	}
	bx.mode.Store(mode)
	var st step
	if bx.durable {
		st.add(c.b.st.PutMailbox(bx.def()))
	}
	bx.mu.Unlock()
	var r completions
	c.b.after(&r, st, func(err error) {
		if err != nil {
			code, text := storageError(fmt.Sprintf("chmod %q", bx.name), err)
			c.replyErr(hd, code, text)
			return
		}
		c.replyEmpty(hd)
	})
	r.run()
}

// destroy removes bx from the broker and fails everyone waiting on it.
// For a durable mailbox it returns the ticket of its deletion record. It
// reports false, doing nothing, if bx was already destroyed.
//
// Everything happens under bx.mu, the deletion record before bx leaves
// b.boxes: a record about bx written under bx.mu (a CHMOD's or CREATE's
// definition) then either precedes the deletion or is not written at all
// (it sees bx.core.Destroyed()), and a new mailbox of the same name, which
// can only be created once bx has left b.boxes, is recorded after the
// deletion. (This is the one place that takes b.mu under a box lock.)
func (b *Broker) destroy(bx *box, err error) (st step, ok bool) {
	var r completions
	bx.mu.Lock()
	if bx.core.Destroyed() {
		bx.mu.Unlock()
		return st, false
	}
	before := bx.core.HeldBytes()
	b.endCallsOn(bx, &r)
	bx.core.Destroy(err)
	bx.pipeDestroyed()
	b.boxGone(bx) // groups and watches (notice_box.go)
	b.apply(bx, bx.core.Effects(), &r)
	b.account(bx, before)
	if bx.durable && b.st != nil {
		st.add(b.st.DeleteMailbox(bx.name))
	}
	b.mu.Lock()
	if b.boxes[bx.name] == bx {
		delete(b.boxes, bx.name)
		if bx.inbox == 0 {
			b.named--
			b.quota.disown(bx)
		}
	}
	b.mu.Unlock()
	bx.mu.Unlock()
	r.run()
	b.ps.mailboxGone(bx) // its bindings, and $SYS.mailbox.destroyed
	return st, true
}

// ownerText names a mailbox's owner in an error message.
func ownerText(obj Object) string {
	switch obj.OwnerKind {
	case KindUnix:
		return fmt.Sprintf("uid %d", obj.OwnerUID)
	case KindTLS:
		return fmt.Sprintf("%q", obj.OwnerName)
	}
	return "nobody: an unauthenticated peer created it"
}

// info is target.info for the local queue.
func (bx *box) info() wire.MailboxInfo {
	bx.mu.Lock()
	defer bx.mu.Unlock()
	st := bx.core.Stats()
	cfg := bx.core.Config()
	info := wire.MailboxInfo{
		Name: []byte(bx.name), UID: bx.uid, GID: bx.gid, Mode: bx.mode.Load(), Capacity: cfg.Capacity,
		Depth: uint64(st.Depth), Bytes: uint64(st.Bytes), Receivers: uint32(st.Receivers),
		Consumers: uint32(st.Consumers), InFlight: uint32(st.InFlight), BlockedSenders: uint32(st.BlockedSenders),
		Sent: st.Sent, Received: st.Received, Redelivered: st.Redelivered, CreatedUnix: bx.created.UnixNano(),
		OldestUnix: st.OldestUnixNano, DeadLettered: st.DeadLettered + st.Expired,
		TTL: cfg.TTL, MaxDeliveries: cfg.MaxDeliveries, MaxBytes: cfg.MaxBytes, DeadLetter: []byte(bx.deadLetter),
		Dropped: bx.ndropped.Load(),
	}
	if bx.inbox != 0 {
		info.Flags |= wire.MailboxInbox
	}
	info.Ext = bx.accessExt()
	if bx.service {
		info.Flags |= wire.MailboxService
	}
	if bx.core.Closed() {
		info.Flags |= wire.MailboxClosed
	}
	if bx.pipe != nil {
		info.Flags |= wire.MailboxPipe
	}
	if bx.durable {
		info.Flags |= wire.MailboxDurable
		if bx.st != nil {
			info.DiskBytes = uint64(bx.st.Stats(bx.name).Bytes)
		}
	}
	return info
}

// list reports a page of at most limit mailboxes whose names sort after
// cursor (byte order), their entries taking at most budget bytes (but
// at least one entry), and the cursor of the next page (nil if none).
func (b *Broker) list(cursor []byte, limit, budget int) ([]wire.MailboxInfo, []byte) {
	after := string(cursor)
	b.mu.RLock()
	boxes := make([]*box, 0, min(len(b.boxes), 4*limit))
	for name, bx := range b.boxes {
		if name > after {
			boxes = append(boxes, bx)
		}
	}
	b.mu.RUnlock()
	slices.SortFunc(boxes, func(a, b *box) int { return strings.Compare(a.name, b.name) })
	remote := b.rm.list(after) // cluster mailboxes, sorted (remote_box.go)
	infos := make([]wire.MailboxInfo, 0, min(len(boxes)+len(remote), limit))
	size := 0
	for i, j := 0, 0; i < len(boxes) || j < len(remote); {
		if len(infos) == limit {
			break
		}
		var info wire.MailboxInfo
		if j == len(remote) || i < len(boxes) && boxes[i].name < string(remote[j].Name) {
			info = boxes[i].info()
			i++
		} else {
			info = remote[j]
			j++
		}
		n := 4 + infoSize(&info)
		if len(infos) > 0 && size+n > budget {
			break
		}
		size += n
		infos = append(infos, info)
	}
	var next []byte
	if len(infos) < len(boxes)+len(remote) {
		next = []byte(infos[len(infos)-1].Name)
	}
	return infos, next
}

// infoSize is the encoded size of info (wire.MailboxInfo's fixed 136 bytes,
// its two names and its ext tail).
func infoSize(info *wire.MailboxInfo) int {
	return 136 + len(info.Name) + len(info.DeadLetter) + len(info.Ext)
}
