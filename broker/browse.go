package broker

import (
	"fmt"

	"github.com/postbox-ipc/postbox/mailbox"
	"github.com/postbox-ipc/postbox/wire"
)

// BROWSE: a page of a mailbox's queued messages, read without leasing
// them (mailbox.Browse). It is authorized as a receive (ActReceive: read
// permission; an inbox only by its endpoint), since it reads what a
// receiver would.

// browser is a target that can list its queued messages. The local queue
// is one; a target that is not answers INVALID.
type browser interface {
	browse(c *conn, hd wire.Header, m *wire.Browse)
}

var _ browser = (*box)(nil)

func (h *handler) doBrowse(hd wire.Header, p []byte) {
	c := h.c
	var m wire.Browse
	if !h.decode(hd, p, &m) {
		return
	}
	t := h.authorized(hd, "browse", m.Name, ActReceive)
	if t == nil {
		return
	}
	br, ok := t.(browser)
	if !ok {
		c.replyErr(hd, wire.CodeInvalid, fmt.Sprintf("browse %q: this target cannot be browsed", m.Name))
		return
	}
	br.browse(c, hd, &m)
}

// browse answers a BROWSE from the core's query. The page ends early
// rather than make the reply larger than the max frame, but always holds
// at least one message when there is one (a client reads frames up to the
// max frame plus wire.DeliveryOverhead and the largest headers block, so
// it can take any single message the broker admitted).
func (bx *box) browse(c *conn, hd wire.Header, m *wire.Browse) {
	cur, _ := wire.ParseBrowseCursor(m.Cursor) // Decode checked it
	after := mailbox.Position{Priority: cur.Priority, Type: cur.Type, Seq: cur.ID}
	budget := c.b.cfg.MaxFrame - wire.HeaderSize - 4 - 2 - wire.BrowseCursorSize

	var rep wire.BrowseReply
	bx.mu.Lock()
	msgs, more, err := bx.core.Browse(m.Type, after, m.PageSize(), nil)
	if err == nil {
		rep.Messages = make([]wire.Delivery, 0, len(msgs))
		for i, msg := range msgs {
			// Bodies and headers are never modified once accepted, so the
			// reply may refer to them after the lock is released (as a
			// DELIVER does).
			_, flags := urgentDelivery(hd, msg)
			d := wire.Delivery{
				ID: msg.Seq, Type: msg.Type, Priority: msg.Priority, Reason: msg.Reason, Flags: flags,
				Redeliveries: msg.Redeliveries, Sender: wireIdentity(msg.Sender), SentUnixNano: msg.SentUnixNano,
				Headers: msg.Headers, Body: msg.Body, Ext: wire.AppendPrincipalName(nil, msg.Sender.Name),
			}
			if d.Flags&wire.DeliveryChannelOffer != 0 {
				// The body is the token ATTACH takes the channel with: a
				// browser must receive the offer to get it.
				d.Body = nil
			}
			if budget -= wire.BrowseEntrySize(&d); budget < 0 && i > 0 {
				more = true
				break
			}
			rep.Messages = append(rep.Messages, d)
		}
	}
	bx.mu.Unlock()
	if err != nil {
		code := codeOf(err)
		c.replyErr(hd, code, fmt.Sprintf("browse %q: %s", bx.name, code))
		return
	}
	if more && len(rep.Messages) > 0 {
		last := &rep.Messages[len(rep.Messages)-1]
		rep.Next = wire.BrowseCursor{Priority: last.Priority, Type: last.Type, ID: last.ID}.Append(nil)
	}
	c.reply(replyHeader(hd, wire.OK), &rep)
}
