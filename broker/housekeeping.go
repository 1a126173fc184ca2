package broker

import (
	"time"

	"github.com/postbox-ipc/postbox/mailbox"
	"github.com/postbox-ipc/postbox/wire"
)

// expiryInterval is how often mailboxes with a TTL are swept. A message
// expires at most this late.
const expiryInterval = 100 * time.Millisecond

// deadLetter is a message on its way to a dead-letter mailbox.
type deadLetter struct {
	to          string
	from        string
	fromDurable bool // its removal from the source is not yet recorded
	msg         *mailbox.Message
	reason      uint8
}

// housekeep runs until the broker stops: it expires messages past their
// mailbox's TTL and moves dead letters. Moving happens here, not where a
// message dies, because that code holds the dying mailbox's lock and must
// not take another mailbox's.
func (b *Broker) housekeep() {
	defer b.wg.Done()
	tick := time.NewTicker(expiryInterval)
	defer tick.Stop()
	for {
		select {
		case <-b.done:
			return
		case <-tick.C:
			b.expire(time.Now().UnixNano())
		case <-b.deadReady:
		}
		b.moveDead()
	}
}

// expire sweeps every mailbox that has a TTL.
func (b *Broker) expire(now int64) {
	b.mu.RLock()
	var boxes []*box
	for _, bx := range b.boxes {
		if bx.core.Config().TTL > 0 { // Config never changes after New
			boxes = append(boxes, bx)
		}
	}
	b.mu.RUnlock()
	var r completions
	for _, bx := range boxes {
		bx.mu.Lock()
		before := bx.core.HeldBytes()
		bx.core.Expire(now)
		b.apply(bx, bx.core.Effects(), &r)
		b.account(bx, before)
		bx.mu.Unlock()
		r.run()
	}
}

// queueDead hands a dead message to the housekeeper. Called with the
// source mailbox's lock held: it takes only b.dmu (a leaf) and never
// blocks, and the move itself, which takes the dead-letter mailbox's
// lock, happens on the housekeeper's goroutine (see ready.go).
func (b *Broker) queueDead(d deadLetter) {
	b.dmu.Lock()
	b.dead = append(b.dead, d)
	b.dmu.Unlock()
	select {
	case b.deadReady <- struct{}{}:
	default:
	}
}

// moveDead puts queued dead letters into their dead-letter mailboxes,
// keeping the original sender identity and recording the reason. A
// dead-letter mailbox that is gone or full drops the message, with a log
// line.
func (b *Broker) moveDead() {
	b.dmu.Lock()
	dead := b.dead
	b.dead = nil
	b.dmu.Unlock()
	for _, d := range dead {
		m := d.msg
		moved := &mailbox.Message{Type: m.Type, Priority: m.Priority, Redeliveries: m.Redeliveries,
			Sender: m.Sender, SentUnixNano: m.SentUnixNano, Body: m.Body, Headers: m.Headers, Reason: d.reason}
		dlq := b.lookup([]byte(d.to))
		if dlq == nil {
			b.log.Warn("dead letter dropped: dead-letter mailbox is gone", "mailbox", d.to, "from", d.from, "id", m.Seq)
			b.forgetDead(d)
			continue
		}
		var r completions
		dlq.mu.Lock()
		before := dlq.core.HeldBytes()
		if dlq.durable && d.fromDurable {
			dlq.moving = &moving{msg: moved, from: d.from, seq: m.Seq, fromDurable: true}
		}
		_, _, err := dlq.core.Send(moved, false, nil)
		b.apply(dlq, dlq.core.Effects(), &r)
		dlq.moving = nil
		b.account(dlq, before)
		dlq.mu.Unlock()
		r.run()
		if err != nil {
			b.log.Warn("dead letter dropped", "mailbox", d.to, "from", d.from, "id", m.Seq, "err", err)
			b.forgetDead(d)
		} else if d.fromDurable && !dlq.durable {
			b.forgetDead(d) // now only in memory: off the source's log
		}
	}
}

func reasonCode(r string) uint8 {
	if r == "expired" {
		return wire.ReasonExpired
	}
	return wire.ReasonMaxDeliveries
}

// forgetDead records that a dead letter from a durable mailbox left it
// without being recorded in a durable dead-letter mailbox.
func (b *Broker) forgetDead(d deadLetter) {
	if d.fromDurable {
		b.st.Ack(d.from, d.msg.Seq)
	}
}
