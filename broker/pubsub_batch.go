package broker

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/postbox-ipc/postbox/topic"
	"github.com/postbox-ipc/postbox/wire"
)

// Batched PUBLISH (FlagPublishBatch, PROTOCOL.md 8.20): up to
// wire.MaxBatch publications in one frame, one reply.
//
// The items are checked (subject, $SYS, type, size, claim) when the frame
// arrives; the valid leading ones are then published in order, under one
// hold of mu, each as a single PUBLISH would be. An item that finds a
// PolicyBlock subscriber full waits there with a token of its own (a
// pubWait pointing at the batch), and the items after it are published
// too: the engine keeps each subscriber's waiting publications in order,
// so a subscriber sees the batch's items (and the next frame's) in order,
// whichever of them had to wait. The reply waits for the last waiting
// item: OK with the matched sum, or the first check failure with DONE =
// the items that passed. The timeout bounds the batch's waits together;
// at its end (or a CANCEL, or the broker closing) the items still waiting
// are withdrawn and DONE is the index of the first of them: the items
// before it were published to everyone, the later ones reached the
// subscribers that had room. With timeout 0 nothing waits: the first item
// that would ends the batch (FULL, DONE = its index), and no later item is
// published.

// pubBatch is a batched PUBLISH in progress. Its fields after pubs are
// guarded by pubsub.mu.
type pubBatch struct {
	c        *conn
	hd       wire.Header
	pubs     []*publication // the items that passed the checks, in order
	timeout  int64          // as given
	failCode wire.Code      // the check failure after pubs (OK: none)
	failMsg  string

	matched uint64
	waits   map[uint64]int // waiting items: token -> index
	timer   *time.Timer
	ended   bool // replied (or its connection is gone)
}

// batchPool keeps decoded batches' item arrays for reuse (the items
// point into the frame; their bytes are copied before it is put back).
var batchPool = sync.Pool{New: func() any { return new(wire.PublishBatch) }}

// pubArenaChunk is the size of the chunks small publications share; a
// chunk lives as long as any publication in it is still buffered.
const pubArenaChunk = 32 << 10

// pubArena hands out copies of publications' bytes from shared chunks.
type pubArena []byte

// copy returns headers and body copied, adjacent, into a (or into their
// own buffer if larger than a quarter chunk).
func (a pubArena) copy(headers, body []byte) (pubArena, []byte, []byte) {
	n := len(headers) + len(body)
	if n == 0 {
		return a, nil, nil
	}
	var buf []byte
	if n > pubArenaChunk/4 {
		buf = make([]byte, 0, n)
	} else {
		if cap(a)-len(a) < n {
			a = make([]byte, 0, pubArenaChunk)
		}
		buf = a[len(a):len(a)]
		a = a[:len(a)+n]
	}
	buf = append(append(buf, headers...), body...)
	h := len(headers)
	return a, buf[:h:h], buf[h:n:n]
}

func (h *handler) doPublishBatch(hd wire.Header, p []byte) {
	c := h.c
	ps := c.b.ps
	m := batchPool.Get().(*wire.PublishBatch)
	if !h.decode(hd, p, m) {
		clear(m.Items) // they point into the frame
		m.Items = m.Items[:0]
		batchPool.Put(m)
		return
	}
	// One allocation for the publications, and their bytes in shared
	// chunks: not two per item.
	pubs := make([]publication, len(m.Items))
	var arena pubArena
	var subj []byte
	lim := c.b.limits.Load()
	uid, gids := principalIDs(c)
	bt := &pubBatch{c: c, hd: hd, timeout: m.Timeout, pubs: make([]*publication, 0, len(m.Items))}
	fail := func(i int, subject string, code wire.Code, format string, args ...any) {
		bt.failCode = code
		bt.failMsg = fmt.Sprintf("publish %q (item %d of %d): ", subject, i+1, len(m.Items)) + fmt.Sprintf(format, args...)
	}
	last, checked := "", false // the subject that passed the checks last
	for i := range m.Items {
		it := &m.Items[i]
		subject := last
		if !checked || string(it.Subject) != last {
			subject = string(it.Subject)
			switch {
			case topic.ValidSubject(subject) != nil:
				fail(i, subject, wire.CodeInvalid, "%v", topic.ValidSubject(subject))
			case strings.HasPrefix(subject, sysPrefix) || subject == "$SYS":
				fail(i, subject, wire.CodePermission, "subjects under $SYS. are the broker's")
			case !ps.allowed(subject, uid, gids):
				fail(i, subject, wire.CodePermission, "permission denied (the subject's claim denies w)")
			}
			if bt.failCode != wire.OK {
				break
			}
			last, checked, subj = subject, true, []byte(subject)
		}
		if it.Type < 1 {
			fail(i, subject, wire.CodeInvalid, "type must be at least 1, not %d", it.Type)
			break
		}
		if it.Size() > lim.MaxMessage {
			fail(i, subject, wire.CodeTooLarge, "%d bytes (body and headers) exceeds the limit of %d", it.Size(), lim.MaxMessage)
			break
		}
		pub := &pubs[len(bt.pubs)]
		*pub = publication{subject: last, from: c, sender: c.ident, sent: h.now, typ: it.Type}
		pub.subj = subj
		arena, pub.headers, pub.body = arena.copy(it.Headers, it.Body)
		bt.pubs = append(bt.pubs, pub)
	}
	batchPool.Put(m)
	if m.Timeout != 0 && !c.register(hd.Request) {
		c.replyErr(hd, wire.CodeInvalid, fmt.Sprintf("publish batch: request id %d is already in flight", hd.Request))
		return
	}
	ps.runBatch(c, bt)
}

// allowed reports whether the claims let uid (in gids) publish to
// subject.
func (ps *pubsub) allowed(subject string, uid uint32, gids []uint32) bool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.claims.Allowed(subject, uid, gids, topic.PermWrite)
}

// runBatch publishes bt's items and replies, now or, if some wait, when
// the last of them is published. mu is not held.
func (ps *pubsub) runBatch(c *conn, bt *pubBatch) {
	reserved := bt.timeout != 0
	eng := ps.eng // the checks keep "$SYS." out
	ps.mu.Lock()
	for i, pub := range bt.pubs {
		tp := pub.topicPub()
		ps.token++
		token := ps.token
		matched, done := eng.PublishRef(tp, token)
		bt.matched += uint64(matched)
		if done {
			continue
		}
		if bt.timeout == 0 {
			// It does not wait: the subscribers with room have it, the
			// full ones do not, and no later item is published.
			eng.Withdraw(token)
			ps.effects(eng)
			ps.unlock()
			c.replyErrDone(bt.hd, wire.CodeFull, fmt.Sprintf("publish %q (item %d of %d): a subscriber with policy block is full",
				pub.subject, i+1, len(bt.pubs)), i)
			return
		}
		if bt.waits == nil {
			bt.waits = make(map[uint64]int)
		}
		bt.waits[token] = i
		ps.waits[token] = &pubWait{c: c, hd: bt.hd, token: token, eng: eng, matched: matched, subject: pub.subject, batch: bt}
	}
	ps.effects(eng)
	if bt.ended { // its last waiting item was served meanwhile: replied from the after list
		ps.unlock()
		return
	}
	if len(bt.waits) > 0 {
		if bt.timeout > 0 {
			bt.timer = time.AfterFunc(time.Duration(bt.timeout), func() { ps.endBatch(bt, wire.CodeTimeout) })
		}
		ps.unlock()
		return
	}
	bt.ended = true
	ps.unlock()
	c.forget(bt.hd.Request, reserved)
	ps.replyBatch(bt)
}

// replyBatch answers a batch whose items are all published: OK with the
// matched sum, or the check failure after them.
func (ps *pubsub) replyBatch(bt *pubBatch) {
	if bt.failCode != wire.OK {
		bt.c.replyErrDone(bt.hd, bt.failCode, bt.failMsg, len(bt.pubs))
		return
	}
	rep := wire.PublishReply{Matched: uint32(min(bt.matched, math.MaxUint32))}
	bt.c.reply(replyHeader(bt.hd, wire.OK), &rep)
}

// batchItemPublished records that the waiting item with token is
// published; the last one settles the batch. mu is held.
func (ps *pubsub) batchItemPublished(bt *pubBatch, token uint64) {
	delete(bt.waits, token)
	if len(bt.waits) > 0 || bt.ended {
		return
	}
	bt.ended = true
	ps.after = append(ps.after, func() {
		if bt.timer != nil {
			bt.timer.Stop()
		}
		bt.c.forget(bt.hd.Request, true)
		ps.replyBatch(bt)
	})
}

// endBatch ends a batch whose items wait, with code (TIMEOUT, CANCELED,
// CLOSED; OK: its connection is gone, no reply): the waiting items are
// withdrawn, and DONE is the first of them.
func (ps *pubsub) endBatch(bt *pubBatch, code wire.Code) {
	ps.mu.Lock()
	if bt.ended {
		ps.mu.Unlock()
		return
	}
	bt.ended = true
	first := len(bt.pubs)
	for token, i := range bt.waits {
		first = min(first, i)
		if w := ps.waits[token]; w != nil {
			delete(ps.waits, token)
			w.eng.Withdraw(token)
		}
	}
	ps.effects(ps.eng)
	ps.unlock()
	if bt.timer != nil {
		bt.timer.Stop()
	}
	if code == wire.OK {
		return
	}
	bt.c.forget(bt.hd.Request, true)
	what := map[wire.Code]string{wire.CodeTimeout: "timed out", wire.CodeCanceled: "canceled", wire.CodeClosed: "the broker is closing"}[code]
	bt.c.replyErrDone(bt.hd, code, fmt.Sprintf("publish %q (item %d of %d): %s (a subscriber with policy block is full)",
		bt.pubs[first].subject, first+1, len(bt.pubs), what), first)
}
