package broker

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/postbox-ipc/postbox/mailbox"
	"github.com/postbox-ipc/postbox/store"
	"github.com/postbox-ipc/postbox/wire"
)

// This file connects durable mailboxes to the store.
//
// The promise: on a durable mailbox nothing leaves the broker before the
// log records that explain it are on disk. A SEND is answered, an ACK
// confirmed, a message delivered, a CREATE, CHMOD or DESTROY answered only
// once every journal record its mailbox core emitted in that step is
// written and fdatasynced. The records are submitted under the mailbox's
// lock, so their order in the log is the order of the core's decisions;
// the replies wait for their ticket on the syncer goroutine, which takes
// them in submission order (group commit completes batches in log order).

// syncer runs deferred completions once their ticket is durable.
type syncer struct {
	mu     sync.Mutex // guards queue, queued, done
	cond   sync.Cond  // signalled when queue grows or done advances
	queue  []deferred
	queued uint64 // completions ever queued
	done   uint64 // completions ever run
}

type deferred struct {
	t  store.Ticket
	fn func(error)
}

// after runs fn once t is durable, with t's error; at once when there was
// nothing to wait for (no store, or no record written).
func (b *Broker) after(t store.Ticket, wrote bool, fn func(error)) {
	if b.st == nil || !wrote {
		fn(nil)
		return
	}
	s := &b.sync
	s.mu.Lock()
	s.queue = append(s.queue, deferred{t, fn})
	s.queued++
	s.cond.Broadcast()
	s.mu.Unlock()
}

// drainSync waits until every completion queued so far has run (their
// replies are then in their connections' output), or ctx ends. Shutdown
// calls it before closing connections, so that requests whose records
// became durable are answered.
func (b *Broker) drainSync(ctx context.Context) {
	if b.st == nil {
		return
	}
	s := &b.sync
	stop := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
	})
	defer stop()
	s.mu.Lock()
	target := s.queued
	for s.done < target && ctx.Err() == nil {
		s.cond.Wait()
	}
	s.mu.Unlock()
}

// syncLoop is the syncer goroutine. Shutdown lets it finish what was
// queued before closing connections (drainSync); it stops once the
// connections are closing, dropping what is left, as nobody is there to
// answer.
func (b *Broker) syncLoop() {
	defer b.wg.Done()
	s := &b.sync
	for {
		s.mu.Lock()
		for len(s.queue) == 0 {
			select {
			case <-b.closing:
				s.mu.Unlock()
				return
			default:
			}
			s.cond.Wait()
		}
		batch := s.queue
		s.queue = nil
		s.mu.Unlock()
		for i, d := range batch {
			select {
			case <-d.t.Done():
			case <-b.closing:
				return
			}
			d.fn(d.t.Wait(context.Background()))
			batch[i] = deferred{}
			s.mu.Lock()
			s.done++
			s.cond.Broadcast()
			s.mu.Unlock()
		}
	}
}

// wakeSyncer makes syncLoop notice that the broker stopped.
func (b *Broker) wakeSyncer() {
	b.sync.mu.Lock()
	b.sync.cond.Broadcast()
	b.sync.mu.Unlock()
}

// journal records a durable mailbox's journal effect. bx.mu is held.
func (b *Broker) journal(bx *box, e *mailbox.Effect) store.Ticket {
	m := e.Msg
	switch e.Kind {
	case mailbox.EffEnqueued:
		if mv := bx.moving; mv != nil && mv.msg == m && mv.fromDurable {
			// A dead letter moving between durable mailboxes: one record
			// removes it from its source and adds it here.
			return b.st.DeadLetter(mv.from, mv.seq, bx.name, m.Seq, reasonText(m.Reason))
		}
		return b.st.Append(&store.Message{
			Mailbox: bx.name, Seq: m.Seq, Type: m.Type, Priority: m.Priority,
			SenderUID: m.Sender.UID, SenderGID: m.Sender.GID, SenderPID: m.Sender.PID,
			SenderEndpoint: m.Sender.Endpoint, SentUnixNano: m.SentUnixNano,
			Redeliveries: m.Redeliveries, DeadReason: reasonText(m.Reason), Body: m.Body,
		})
	case mailbox.EffLeased:
		return b.st.Lease(bx.name, m.Seq)
	case mailbox.EffReturned:
		return b.st.Return(bx.name, m.Seq, m.Redeliveries)
	case mailbox.EffRemoved:
		if bx.lazyAck {
			return b.st.AckAsync(bx.name, m.Seq)
		}
		return b.st.Ack(bx.name, m.Seq)
	}
	return store.Ticket{}
}

// moving describes a dead letter being added to a mailbox, so journal can
// record the move as one change.
type moving struct {
	msg         *mailbox.Message
	from        string
	seq         uint64
	fromDurable bool
}

func reasonText(r uint8) string {
	switch r {
	case wire.ReasonMaxDeliveries:
		return "max deliveries reached"
	case wire.ReasonExpired:
		return "expired"
	}
	return ""
}

// def is bx's durable definition. bx.mu is held.
func (bx *box) def() store.MailboxDef {
	cfg := bx.core.Config()
	return store.MailboxDef{
		Name: bx.name, OwnerUID: bx.uid, OwnerGID: bx.gid, Mode: bx.mode,
		Capacity: cfg.Capacity, MaxBytes: cfg.MaxBytes, TTL: time.Duration(cfg.TTL),
		MaxDeliveries: cfg.MaxDeliveries, DeadLetter: bx.deadLetter,
		CreatedUnixNano: bx.created.UnixNano(),
	}
}

// recover rebuilds the durable mailboxes the store found.
func (b *Broker) recover() error {
	rec := b.st.Recovered()
	n := 0
	for _, d := range rec.Mailboxes {
		bx := &box{name: d.Name, created: time.Unix(0, d.CreatedUnixNano), uid: d.OwnerUID, gid: d.OwnerGID,
			mode: d.Mode, deadLetter: d.DeadLetter, durable: true}
		bx.core = mailbox.New(mailbox.Config{Capacity: d.Capacity, MaxBytes: d.MaxBytes, TTL: int64(d.TTL),
			MaxDeliveries: d.MaxDeliveries, Durable: true, Leases: &b.leases})
		stored := rec.Messages[d.Name]
		msgs := make([]*mailbox.Message, len(stored))
		for i := range stored {
			s := &stored[i]
			msgs[i] = &mailbox.Message{Seq: s.Seq, Type: s.Type, Priority: s.Priority, Redeliveries: s.Redeliveries,
				Sender:       mailbox.Identity{UID: s.SenderUID, GID: s.SenderGID, PID: s.SenderPID, Endpoint: s.SenderEndpoint},
				SentUnixNano: s.SentUnixNano, Body: s.Body, Reason: reasonCode(s.DeadReason)}
		}
		bx.core.Restore(msgs, rec.NextSeq[d.Name])
		b.held.Add(bx.core.HeldBytes())
		b.boxes[bx.name] = bx
		b.named++
		n += len(msgs)
	}
	attrs := []any{"dir", b.cfg.DataDir, "mailboxes", len(rec.Mailboxes), "messages", n}
	if rec.DroppedBytes > 0 {
		attrs = append(attrs, "torn_tail_dropped_bytes", rec.DroppedBytes)
	}
	if len(rec.Corrupt) > 0 {
		attrs = append(attrs, "corrupt_ranges_skipped", len(rec.Corrupt))
	}
	b.log.Info("durable mailboxes recovered", attrs...)
	return nil
}

// openStore opens the data directory and recovers from it.
func (b *Broker) openStore() error {
	opts := store.DefaultOptions(b.cfg.DataDir)
	opts.Logger = b.log
	opts.NoSync = b.cfg.NoSync
	st, err := store.Open(opts)
	if err != nil {
		return fmt.Errorf("broker: data directory %s: %w", b.cfg.DataDir, err)
	}
	b.st = st
	b.sync.cond.L = &b.sync.mu
	return b.recover()
}

// storageError is the reply to a request whose records could not be
// made durable.
func storageError(what string, err error) (wire.Code, string) {
	return wire.CodeStorage, fmt.Sprintf("%s: not made durable: %v", what, err)
}

// DiskStats reports the store's counters (fsyncs, records, bytes on
// disk); ok is false for a broker without a data directory.
func (b *Broker) DiskStats() (st store.DiskStats, ok bool) {
	if b.st == nil {
		return st, false
	}
	return b.st.DiskStats(), true
}
