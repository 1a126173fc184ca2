package broker

import (
	"fmt"

	"github.com/postbox-ipc/postbox/wire"
)

// End of stream: SHUT closes a mailbox for sending (flag REOPEN opens it
// again). The rules are the core's (mailbox/eof.go); the broker checks
// the caller may send there, records the state of a durable mailbox in
// its definition (defClosed) and answers once that record is on disk.

// defClosed marks a mailbox closed for sending in its durable
// definition's Mode (beside defService; the store keeps bit 30).
const defClosed = 1 << 29

func (h *handler) doShut(hd wire.Header, p []byte) {
	c := h.c
	var m wire.Name
	if !h.decode(hd, p, &m) {
		return
	}
	verb := "shut"
	if hd.Flags&wire.FlagReopen != 0 {
		verb = "reopen"
	}
	t := h.authorized(hd, verb, m.Name, ActSend)
	if t == nil {
		return
	}
	bx, ok := t.(*box)
	if !ok {
		c.replyErr(hd, wire.CodeInvalid, fmt.Sprintf("%s %q: not a mailbox", verb, m.Name))
		return
	}
	if bx.pipe != nil {
		c.replyErr(hd, wire.CodeInvalid, fmt.Sprintf("%s %q: a pipe ends when its last writer closes (PIPE_CLOSE)", verb, m.Name))
		return
	}
	var r completions
	bx.mu.Lock()
	if bx.core.Destroyed() {
		bx.mu.Unlock()
		c.replyErr(hd, wire.CodeNotFound, fmt.Sprintf("%s %q: no such mailbox", verb, m.Name))
		return
	}
	before := bx.core.HeldBytes()
	var changed bool
	if hd.Flags&wire.FlagReopen != 0 {
		changed = bx.core.ReopenSend()
	} else {
		changed = bx.core.CloseSend()
	}
	st := c.b.apply(bx, bx.core.Effects(), &r)
	if changed && bx.durable && c.b.st != nil {
		st.add(c.b.st.PutMailbox(bx.def()))
	}
	c.b.account(bx, before)
	bx.mu.Unlock()
	c.b.after(&r, st, func(err error) {
		if err != nil {
			code, text := storageError(fmt.Sprintf("%s %q", verb, bx.name), err)
			c.replyErr(hd, code, text)
			return
		}
		c.replyEmpty(hd)
	})
	r.run()
}
