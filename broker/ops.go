package broker

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/postbox-ipc/postbox/mailbox"
	"github.com/postbox-ipc/postbox/wire"
)

// handler carries out requests for one connection. It is used only by the
// connection's reader goroutine, so its scratch space needs no lock.
type handler struct {
	c      *conn
	send   wire.Send
	recv   wire.Recv
	leases wire.Leases
	boxes  []*box // scratch: the mailbox of each lease in an ACK or NACK
	now    int64  // when the current frame was read (unix nanoseconds)
}

func (h *handler) handle(hd wire.Header, p []byte) {
	c := h.c
	switch hd.Op {
	case wire.OpSend:
		h.doSend(hd, p)
	case wire.OpAck, wire.OpNack:
		h.doAck(hd, p)
	case wire.OpRecv:
		h.doRecv(hd, p)
	case wire.OpConsume:
		h.doConsume(hd, p)
	case wire.OpCredit:
		h.doCredit(hd, p)
	case wire.OpCancel:
		c.pmu.Lock()
		pd := c.pending[hd.Request]
		c.pmu.Unlock()
		if pd != nil {
			c.b.cancel(pd, mailbox.ErrCanceled)
		}
	case wire.OpCreate:
		h.doCreate(hd, p)
	case wire.OpChannel:
		h.doChannel(hd, p)
	case wire.OpAttach:
		h.doAttach(hd, p)
	case wire.OpDestroy:
		h.doDestroy(hd, p)
	case wire.OpChmod:
		h.doChmod(hd, p)
	case wire.OpStat:
		var m wire.Name
		if !h.decode(hd, p, &m) {
			return
		}
		if !validTarget(m.Name) {
			c.replyErr(hd, wire.CodeInvalid, fmt.Sprintf("stat %q: %s", m.Name, badName))
			return
		}
		bx := c.b.lookup(m.Name)
		if bx == nil {
			c.replyErr(hd, wire.CodeNotFound, fmt.Sprintf("mailbox %q not found", m.Name))
			return
		}
		info := c.b.info(bx)
		c.reply(hd.Op|wire.OpReply, hd.Request, &info)
	case wire.OpList:
		c.reply(hd.Op|wire.OpReply, hd.Request, list(c.b.list()))
	case wire.OpPing:
		c.replyEmpty(hd)
	case wire.OpHello:
		c.replyErr(hd, wire.CodeHandshake, "HELLO was already exchanged")
	default:
		c.replyErr(hd, wire.CodeUnknownOp, fmt.Sprintf("unknown operation 0x%02x", uint8(hd.Op)))
	}
}

type list []wire.MailboxInfo

func (l list) Append(b []byte) []byte { return wire.AppendList(b, l) }

func (h *handler) doSend(hd wire.Header, p []byte) {
	c, m := h.c, &h.send
	if !h.decode(hd, p, m) {
		return
	}
	lim := c.b.limits.Load()
	if len(m.Body) > lim.MaxMessage {
		c.replyErr(hd, wire.CodeTooLarge, fmt.Sprintf("send to %q: message of %d bytes exceeds the limit of %d", m.Target, len(m.Body), lim.MaxMessage))
		return
	}
	msg := newMessage(m.Body)
	msg.Type, msg.Priority = m.Type, m.Priority
	h.put(hd, m.Target, msg, m.Timeout, nil)
}

// put sends msg (a SEND's message, or a CHANNEL's offer) to target: the
// permission and limit checks, the core's decision, and the reply, now or
// when the send completes.
func (h *handler) put(hd wire.Header, target []byte, msg *mailbox.Message, timeout int64, off *offer) {
	c := h.c
	lim := c.b.limits.Load()
	fail := func(code wire.Code, format string, args ...any) {
		if off != nil {
			c.b.dropOffer(off)
		}
		c.replyErr(hd, code, fmt.Sprintf("send to %q: ", target)+fmt.Sprintf(format, args...))
	}
	if msg.Type < 1 {
		fail(wire.CodeInvalid, "message type must be at least 1, not %d", msg.Type)
		return
	}
	if !validTarget(target) {
		fail(wire.CodeInvalid, "%s", badName)
		return
	}
	bx := c.b.lookup(target)
	switch {
	case bx == nil:
		fail(wire.CodeNotFound, "no such mailbox")
		return
	case off != nil && bx.durable:
		fail(wire.CodeInvalid, "a channel offer cannot go to a durable mailbox")
		return
	}
	msg.Sender = c.ident
	msg.SentUnixNano = h.now
	receipt := hd.Flags&wire.FlagReceipt != 0

	var r completions
	bx.mu.Lock()
	if !bx.may(c.ident, permWrite) {
		bx.mu.Unlock()
		fail(wire.CodePermission, "permission denied")
		return
	}
	// Checked against the total before this send is added: concurrent
	// sends to other mailboxes may pass the limit by a message each.
	if c.b.held.Load()+int64(len(msg.Body)) > lim.MaxQueuedBytes {
		bx.mu.Unlock()
		fail(wire.CodeLimit, "the broker holds %d bytes of messages, its limit", lim.MaxQueuedBytes)
		return
	}
	before := bx.core.HeldBytes()
	res, done, err := bx.core.Send(msg, receipt, nil)
	if err == mailbox.ErrFull && timeout != 0 {
		if !c.register(hd.Request) {
			bx.mu.Unlock()
			fail(wire.CodeInvalid, "request id %d is already in flight", hd.Request)
			return
		}
		pd := &pending{c: c, req: hd.Request, op: hd.Op, box: bx, offer: off}
		pd.send = &mailbox.Sender{Ref: pd, Endpoint: c.id}
		res, done, err = bx.core.Send(msg, receipt, pd.send)
		if err == nil && pd.send.Waiting() {
			c.wait(pd, timeout)
		} else {
			c.finish(pd)
		}
	}
	st := c.b.apply(bx, bx.core.Effects(), &r)
	c.b.account(bx, before)
	bx.mu.Unlock()
	r.run()

	switch {
	case err != nil:
		code := codeOf(err)
		if code == wire.CodeFull && bx.core.Config().Capacity == 0 {
			fail(code, "no receiver is waiting")
		} else {
			fail(code, "%s", code)
		}
	case done && !st.wrote():
		c.sendDone(hd.Request, off, res.Seq, res.Taken, res.Receipt)
	case done:
		c.b.after(&r, st, func(err error) {
			if err != nil {
				c.b.discard(bx, msg)
				code, text := storageError(fmt.Sprintf("send to %q", bx.name), err)
				c.replyErr(hd, code, text)
				return
			}
			c.sendDone(hd.Request, off, res.Seq, res.Taken, res.Receipt)
		})
		r.run()
	}
}

// discard takes a message whose record could not be written back out of
// its mailbox, if nobody has taken it yet: its sender is told the send
// failed, so it should not be delivered. (If it was already delivered it
// stays delivered: at least once.)
// It takes bx.mu, so it runs as a completion, never under a mailbox lock.
func (b *Broker) discard(bx *box, msg *mailbox.Message) {
	var r completions
	bx.mu.Lock()
	before := bx.core.HeldBytes()
	if bx.core.Discard(msg) {
		b.apply(bx, bx.core.Effects(), &r)
	}
	b.account(bx, before)
	bx.mu.Unlock()
	r.run()
}

// sendDone answers a completed SEND, or a CHANNEL whose offer was placed.
func (c *conn) sendDone(req uint64, off *offer, seq uint64, taken bool, who mailbox.Identity) {
	if off != nil {
		c.channelReply(req, seq, off)
		return
	}
	c.sendReply(req, seq, taken, who)
}

// decode decodes a request's payload into m. If it does not decode it
// answers MALFORMED and reports false.
func (h *handler) decode(hd wire.Header, p []byte, m interface{ Decode([]byte) error }) bool {
	if m.Decode(p) == nil {
		return true
	}
	h.c.replyErr(hd, wire.CodeMalformed, hd.Op.String()+": malformed payload")
	return false
}

// register reserves req as a pending request id; it reports false if the
// id is already in flight.
func (c *conn) register(req uint64) bool {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	if _, dup := c.pending[req]; dup {
		return false
	}
	c.pending[req] = nil
	return true
}

// wait records pd as pending (its id reserved by register) and arms its
// timeout. The box's lock must be held, so that no effect for pd can run
// before it is recorded.
func (c *conn) wait(pd *pending, timeout int64) {
	c.pmu.Lock()
	c.pending[pd.req] = pd
	c.touched[pd.box] = struct{}{}
	c.pmu.Unlock()
	if timeout > 0 {
		pd.timer = time.AfterFunc(time.Duration(timeout), func() { c.b.cancel(pd, mailbox.ErrTimeout) })
	}
}

func (h *handler) doRecv(hd wire.Header, p []byte) {
	m := &h.recv
	if !h.decode(hd, p, m) {
		return
	}
	h.receive(hd, m.Name, m.Type, m.Timeout, false, 0)
}

func (h *handler) doConsume(hd wire.Header, p []byte) {
	var m wire.Consume
	if !h.decode(hd, p, &m) {
		return
	}
	h.receive(hd, m.Name, m.Type, -1, true, m.Credit)
}

// receive registers a one-shot receive or a consumer.
func (h *handler) receive(hd wire.Header, name []byte, typ, timeout int64, consumer bool, credit uint32) {
	c := h.c
	if !validTarget(name) {
		c.replyErr(hd, wire.CodeInvalid, fmt.Sprintf("receive from %q: %s", name, badName))
		return
	}
	bx := c.b.lookup(name)
	if bx == nil {
		c.replyErr(hd, wire.CodeNotFound, fmt.Sprintf("receive from %q: no such mailbox", name))
		return
	}
	wait := timeout != 0
	if wait && !c.register(hd.Request) {
		c.replyErr(hd, wire.CodeInvalid, fmt.Sprintf("request id %d is already in flight", hd.Request))
		return
	}
	pd := &pending{c: c, req: hd.Request, op: hd.Op, box: bx}
	pd.recv = &mailbox.Receiver{Ref: pd, Ident: c.ident, Type: typ, AutoAck: hd.Flags&wire.FlagAutoAck != 0, Consumer: consumer, Credit: credit}

	var r completions
	bx.mu.Lock()
	if !bx.may(c.ident, permRead) {
		bx.mu.Unlock()
		c.finish(pd)
		c.replyErr(hd, wire.CodePermission, fmt.Sprintf("receive from %q: permission denied", name))
		return
	}
	c.pmu.Lock()
	c.touched[bx] = struct{}{}
	c.pmu.Unlock()
	before := bx.core.HeldBytes()
	err := bx.core.Receive(pd.recv, wait)
	if err == nil && pd.recv.Waiting() {
		c.wait(pd, timeout)
	}
	c.b.apply(bx, bx.core.Effects(), &r) // holds back durable deliveries itself
	c.b.account(bx, before)
	if err != nil || !pd.recv.Waiting() {
		c.finish(pd)
	}
	bx.mu.Unlock()
	r.run()
	if err != nil {
		code := codeOf(err)
		c.replyErr(hd, code, fmt.Sprintf("receive from %q: %s", name, code))
	}
}

func (h *handler) doCredit(hd wire.Header, p []byte) {
	c := h.c
	var m wire.Credit
	if m.Decode(p) != nil {
		return // CREDIT has no reply; a malformed one is ignored
	}
	c.pmu.Lock()
	pd := c.pending[hd.Request]
	c.pmu.Unlock()
	if pd == nil || pd.recv == nil || !pd.recv.Consumer {
		return
	}
	bx := pd.box
	var r completions
	bx.mu.Lock()
	before := bx.core.HeldBytes()
	bx.core.AddCredit(pd.recv, m.N)
	c.b.apply(bx, bx.core.Effects(), &r)
	c.b.account(bx, before)
	bx.mu.Unlock()
	r.run()
}

func (h *handler) doAck(hd wire.Header, p []byte) {
	c, m := h.c, &h.leases
	noReply := hd.Flags&wire.FlagNoReply != 0
	if m.Decode(p) != nil {
		if !noReply {
			c.replyErr(hd, wire.CodeMalformed, hd.Op.String()+": malformed payload")
		}
		return
	}
	var done uint32
	var firstErr error
	var failed uint64
	var st step
	var r completions
	// One pass over this connection's lease table (a lease is settled
	// either way: applied, or stale), then one lock per run of leases in
	// the same mailbox.
	boxes := h.boxes[:0]
	c.pmu.Lock()
	for _, id := range m.IDs {
		boxes = append(boxes, c.leases[id])
		delete(c.leases, id)
	}
	c.pmu.Unlock()
	var cur *box
	var before int64
	release := func() {
		if cur != nil {
			cur.lazyAck = false
			c.b.account(cur, before)
			cur.mu.Unlock()
			r.run()
		}
	}
	for i, id := range m.IDs {
		bx := boxes[i]
		if bx != cur {
			release()
			cur = bx
			if bx != nil {
				bx.mu.Lock()
				before = bx.core.HeldBytes()
				bx.lazyAck = noReply && hd.Op == wire.OpAck // a NACK may deliver: never lazy
			}
		}
		err := mailbox.ErrStaleLease
		if bx != nil {
			if hd.Op == wire.OpAck {
				err = bx.core.Ack(c.id, id)
			} else {
				err = bx.core.Nack(c.id, id)
			}
			st.join(c.b.apply(bx, bx.core.Effects(), &r))
		}
		if err == nil {
			done++
		} else if firstErr == nil {
			firstErr, failed = err, id
		}
	}
	release()
	clear(boxes)
	h.boxes = boxes
	if noReply {
		return
	}
	n := len(m.IDs)
	// An ACK is confirmed only once its removal is durable: a confirmed
	// ack is never undone by a crash.
	c.b.after(&r, st, func(serr error) {
		switch {
		case serr != nil:
			code, text := storageError(hd.Op.String(), serr)
			c.replyErr(hd, code, text)
		case firstErr != nil:
			code := codeOf(firstErr)
			c.replyErr(hd, code, fmt.Sprintf("lease %d: %s (%d of %d applied)", failed, code, done, n))
		default:
			c.reply(hd.Op|wire.OpReply, hd.Request, &wire.AckReply{Done: done})
		}
	})
	r.run()
}

func (h *handler) doCreate(hd wire.Header, p []byte) {
	c, b := h.c, h.c.b
	var m wire.Create
	if err := m.Decode(p); err != nil {
		code := wire.CodeMalformed
		if err == wire.ErrUnknownTag {
			code = wire.CodeInvalid
		}
		c.replyErr(hd, code, "CREATE: "+err.Error())
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
	case m.Durable && b.st == nil:
		invalid("durable mailboxes need the broker to run with a data directory (postbox serve --data DIR)")
		return
	case m.MaxBytes < 0 || m.TTL < 0:
		invalid("limits must not be negative")
		return
	case len(m.DeadLetter) > 0 && string(m.DeadLetter) == string(m.Name):
		invalid("a mailbox cannot be its own dead-letter mailbox")
		return
	}
	if len(m.DeadLetter) > 0 {
		dlq := b.lookup(m.DeadLetter)
		if dlq == nil || dlq.inbox != 0 {
			c.replyErr(hd, wire.CodeNotFound, fmt.Sprintf("create %q: dead-letter mailbox %q not found", m.Name, m.DeadLetter))
			return
		}
		dlq.mu.Lock()
		ok := dlq.may(c.ident, permWrite)
		dlq.mu.Unlock()
		if !ok {
			c.replyErr(hd, wire.CodePermission, fmt.Sprintf("create %q: may not send to dead-letter mailbox %q", m.Name, m.DeadLetter))
			return
		}
	}
	bx := &box{name: string(m.Name), created: time.Now(), uid: c.ident.UID, gid: c.ident.GID, mode: m.Mode,
		deadLetter: string(m.DeadLetter), durable: m.Durable}
	bx.core = mailbox.New(mailbox.Config{Capacity: m.Capacity, MaxBytes: m.MaxBytes, MaxDeliveries: m.MaxDeliveries,
		TTL: m.TTL, Durable: m.Durable, Leases: &b.leases})
	lim := b.limits.Load()
	b.mu.Lock()
	_, exists := b.boxes[bx.name]
	full := b.named >= lim.MaxMailboxes
	if !exists && !full {
		b.boxes[bx.name] = bx
		b.named++
	}
	b.mu.Unlock()
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
		})
	default:
		b.log.Info("mailbox created", "mailbox", bx.name, "capacity", m.Capacity, "mode", fmt.Sprintf("%#o", m.Mode), "uid", c.ident.UID, "pid", c.ident.PID)
		c.replyEmpty(hd)
	}
}

// owned looks up a mailbox that the caller must own. It replies with the
// error itself and returns nil when the request cannot go on.
func (h *handler) owned(hd wire.Header, verb string, name []byte) *box {
	c := h.c
	if !validTarget(name) {
		c.replyErr(hd, wire.CodeInvalid, fmt.Sprintf("%s %q: %s", verb, name, badName))
		return nil
	}
	bx := c.b.lookup(name)
	switch {
	case bx == nil || bx.inbox != 0:
		c.replyErr(hd, wire.CodeNotFound, fmt.Sprintf("%s %q: no such mailbox", verb, name))
		return nil
	case !bx.owns(c.ident):
		c.replyErr(hd, wire.CodePermission, fmt.Sprintf("%s %q: only its owner (uid %d) or root may", verb, name, bx.uid))
		return nil
	}
	return bx
}

func (h *handler) doDestroy(hd wire.Header, p []byte) {
	var m wire.Name
	if !h.decode(hd, p, &m) {
		return
	}
	bx := h.owned(hd, "destroy", m.Name)
	if bx == nil {
		return
	}
	st, ok := h.c.b.destroy(bx, mailbox.ErrDestroyed)
	if !ok {
		// Another DESTROY got there first.
		h.c.replyErr(hd, wire.CodeNotFound, fmt.Sprintf("destroy %q: no such mailbox", m.Name))
		return
	}
	h.c.b.log.Info("mailbox destroyed", "mailbox", bx.name, "uid", h.c.ident.UID, "pid", h.c.ident.PID)
	var r completions
	h.c.b.after(&r, st, func(err error) {
		if err != nil {
			code, text := storageError(fmt.Sprintf("destroy %q", bx.name), err)
			h.c.replyErr(hd, code, text)
			return
		}
		h.c.replyEmpty(hd)
	})
	r.run()
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
	bx := h.owned(hd, "chmod", m.Name)
	if bx == nil {
		return
	}
	bx.mu.Lock()
	if bx.core.Destroyed() {
		// A DESTROY won the race since the lookup: writing the
		// definition now would bring the mailbox back on restart.
		bx.mu.Unlock()
		h.c.replyErr(hd, wire.CodeNotFound, fmt.Sprintf("chmod %q: no such mailbox", m.Name))
		return
	}
	bx.mode = m.Mode
	var st step
	if bx.durable {
		st.add(h.c.b.st.PutMailbox(bx.def()))
	}
	bx.mu.Unlock()
	var r completions
	h.c.b.after(&r, st, func(err error) {
		if err != nil {
			code, text := storageError(fmt.Sprintf("chmod %q", bx.name), err)
			h.c.replyErr(hd, code, text)
			return
		}
		h.c.replyEmpty(hd)
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
	bx.core.Destroy(err)
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
		}
	}
	b.mu.Unlock()
	bx.mu.Unlock()
	r.run()
	return st, true
}

// info reports bx's state.
func (b *Broker) info(bx *box) wire.MailboxInfo {
	bx.mu.Lock()
	defer bx.mu.Unlock()
	st := bx.core.Stats()
	cfg := bx.core.Config()
	info := wire.MailboxInfo{
		Name: []byte(bx.name), UID: bx.uid, GID: bx.gid, Mode: bx.mode, Capacity: cfg.Capacity,
		Depth: uint64(st.Depth), Bytes: uint64(st.Bytes), Receivers: uint32(st.Receivers),
		Consumers: uint32(st.Consumers), InFlight: uint32(st.InFlight), BlockedSenders: uint32(st.BlockedSenders),
		Sent: st.Sent, Received: st.Received, Redelivered: st.Redelivered, CreatedUnix: bx.created.UnixNano(),
		OldestUnix: st.OldestUnixNano, DeadLettered: st.DeadLettered + st.Expired,
		TTL: cfg.TTL, MaxDeliveries: cfg.MaxDeliveries, MaxBytes: cfg.MaxBytes, DeadLetter: []byte(bx.deadLetter),
	}
	if bx.inbox != 0 {
		info.Flags |= wire.MailboxInbox
	}
	if bx.durable {
		info.Flags |= wire.MailboxDurable
		if b.st != nil {
			info.DiskBytes = uint64(b.st.Stats(bx.name).Bytes)
		}
	}
	return info
}

// list reports every mailbox, sorted by name.
func (b *Broker) list() []wire.MailboxInfo {
	b.mu.RLock()
	boxes := make([]*box, 0, len(b.boxes))
	for _, bx := range b.boxes {
		boxes = append(boxes, bx)
	}
	b.mu.RUnlock()
	slices.SortFunc(boxes, func(a, b *box) int { return strings.Compare(a.name, b.name) })
	infos := make([]wire.MailboxInfo, len(boxes))
	for i, bx := range boxes {
		infos[i] = b.info(bx)
	}
	return infos
}

const badName = "a mailbox name is 1 to 200 characters of A-Z a-z 0-9 . _ : / - (or @<endpoint id> for an inbox)"

// validTarget reports whether name can name a mailbox or an inbox
// ("@" and a decimal endpoint id).
func validTarget(name []byte) bool {
	if len(name) > 1 && name[0] == '@' {
		for _, ch := range name[1:] {
			if ch < '0' || ch > '9' {
				return false
			}
		}
		return len(name) <= 21
	}
	return wire.ValidName(name)
}
