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
// them in submission order (group commit completes batches in log order)
// and runs them holding no lock. A reply that needs no wait (nothing was
// written, or the store refused a record at once) is not run in place
// either: it goes on the caller's completions list (ready.go), run after
// the mailbox lock is released, because the reply to a refused send takes
// that lock to withdraw the message.

// syncer runs deferred completions once their ticket is durable.
type syncer struct {
	mu     sync.Mutex // guards queue, queued, done
	cond   sync.Cond  // signalled when queue grows or done advances
	queue  []deferred
	queued uint64 // completions ever queued
	done   uint64 // completions ever run
}

type deferred struct {
	st step
	fn func(error)
}

// step is the store records one core step (or one request's steps)
// wrote. Its outcome is the first error among them: a record refused at
// once (the disk is full) or a batch that failed must fail the reply even
// if a later record of the step was written. Batches complete in log
// order, so when the last is done every earlier one is too; but a step
// can span many batches (a SEND of up to 1024 messages), and one in the
// middle can fail while later ones succeed (the disk fills, then the
// store's reserve is released), so the step keeps one ticket of every
// batch between its first and last (mid; nil for the common step of at
// most two batches) and err checks them all.
type step struct {
	first, last store.Ticket
	mid         []store.Ticket
	tracked     bool // first is set
	n           int
	refused     error // a record refused at submission
}

func (s *step) add(t store.Ticket) {
	select {
	case <-t.Done(): // refused outright (or its batch already done)
		if err := t.Wait(context.Background()); err != nil && s.refused == nil {
			s.refused = err
		}
	default:
	}
	s.track(t)
	s.n++
}

// track records t as the step's newest ticket, keeping the previous one
// in mid when it is of a batch other than both the first's and t's.
func (s *step) track(t store.Ticket) {
	switch {
	case !s.tracked:
		s.first, s.tracked = t, true
	case !t.SameBatch(s.last) && !s.last.SameBatch(s.first):
		s.mid = append(s.mid, s.last)
	}
	s.last = t
}

// join adds every record of o.
func (s *step) join(o step) {
	if o.n == 0 {
		return
	}
	if o.refused != nil && s.refused == nil {
		s.refused = o.refused
	}
	s.track(o.first)
	for _, t := range o.mid {
		s.track(t)
	}
	s.track(o.last)
	s.n += o.n
}

// wrote reports whether the step wrote anything.
func (s step) wrote() bool { return s.n > 0 }

// err is the step's outcome; call it once s.last is done.
func (s step) err() error {
	if s.refused != nil {
		return s.refused
	}
	if err := s.first.Wait(context.Background()); err != nil {
		return err
	}
	for _, t := range s.mid {
		if err := t.Wait(context.Background()); err != nil {
			return err
		}
	}
	return s.last.Wait(context.Background())
}

// after runs fn once st's records are durable, with the first error
// among them. It never calls fn itself: with nothing to wait for (no
// records, or a record refused outright) fn goes on r, which the caller
// runs once it holds no mailbox lock; otherwise the syncer goroutine runs
// it, holding none either. So fn may take any lock, even the lock of the
// mailbox whose step wrote st (see ready.go).
func (b *Broker) after(r *completions, st step, fn func(error)) {
	if !st.wrote() || b.st == nil { // only durable boxes write: b.st is read only for them (lazystore.go)
		r.addDone(fn, nil)
		return
	}
	if st.refused != nil {
		r.addDone(fn, st.refused) // nothing to wait for: it failed already
		return
	}
	s := &b.sync
	s.mu.Lock()
	s.queue = append(s.queue, deferred{st, fn})
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
	for s.done < target && ctx.Err() == nil && !b.isClosing() {
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
			case <-d.st.last.Done():
			case <-b.closing:
				return
			}
			d.fn(d.st.err())
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
			SenderKind: m.Sender.Kind, SenderUID: m.Sender.UID, SenderGID: m.Sender.GID, SenderPID: m.Sender.PID,
			SenderEndpoint: m.Sender.Endpoint, SenderName: m.Sender.Name, SentUnixNano: m.SentUnixNano,
			Redeliveries: m.Redeliveries, DeadReason: reasonText(m.Reason), Body: m.Body, Headers: m.Headers,
			Urgent: m.Urgent,
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

// defService marks a service mailbox in its durable definition's Mode
// (above the permission bits, which CREATE and CHMOD keep within 0777):
// the record format needs no new field.
const defService = 1 << 31

// def is bx's durable definition. bx.mu is held.
func (bx *box) def() store.MailboxDef {
	cfg := bx.core.Config()
	mode := bx.mode.Load()
	if bx.service {
		mode |= defService
	}
	if bx.core.Closed() {
		mode |= defClosed
	}
	d := store.MailboxDef{
		Name: bx.name, OwnerUID: bx.uid, OwnerGID: bx.gid, Mode: mode,
		Capacity: cfg.Capacity, MaxBytes: cfg.MaxBytes, TTL: time.Duration(cfg.TTL),
		MaxDeliveries: cfg.MaxDeliveries, DeadLetter: bx.deadLetter,
		CreatedUnixNano: bx.created.UnixNano(),
		OwnerKind:       uint8(bx.ownerKind), OwnerName: bx.ownerName,
	}
	if a := bx.access.Load(); a != nil {
		for _, e := range *a {
			d.Access = append(d.Access, store.AccessEntry{Pattern: e.Pattern, Perms: e.Perms})
		}
	}
	return d
}

// ownerOf is the creator of a recovered mailbox: a TLS principal by name,
// else a Unix uid (NoOwnerID: an unauthenticated peer's, KindNone).
func ownerOf(d *store.MailboxDef) mailbox.Identity {
	switch {
	case d.OwnerKind == uint8(KindTLS):
		return mailbox.Identity{Kind: d.OwnerKind, Name: d.OwnerName}
	case d.OwnerUID == wire.NoOwnerID:
		return mailbox.Identity{Kind: uint8(KindNone)}
	}
	return mailbox.Identity{Kind: uint8(KindUnix), UID: d.OwnerUID, GID: d.OwnerGID}
}

// recover rebuilds the durable mailboxes the store found.
func (b *Broker) recover() error {
	rec := b.st.Recovered()
	n := 0
	for _, d := range rec.Mailboxes {
		owner := ownerOf(&d)
		bx := newBox(d.Name, 0, owner, d.Mode&^(defService|defClosed))
		bx.service = d.Mode&defService != 0
		if len(d.Access) > 0 {
			entries := make([]AccessEntry, len(d.Access))
			for i, e := range d.Access {
				entries[i] = AccessEntry{Pattern: e.Pattern, Perms: e.Perms}
			}
			bx.access.Store(&entries)
		}
		bx.created, bx.deadLetter, bx.durable, bx.st = time.Unix(0, d.CreatedUnixNano), d.DeadLetter, true, b.st
		bx.core = mailbox.New(mailbox.Config{Capacity: d.Capacity, MaxBytes: d.MaxBytes, TTL: int64(d.TTL),
			MaxDeliveries: d.MaxDeliveries, Durable: true, Leases: &b.leases, Charge: b.quota.charge, TryLease: b.quota.leaser(bx)})
		b.quota.own(bx, owner) // recovered: counted, never refused
		stored := rec.Messages[d.Name]
		msgs := make([]*mailbox.Message, len(stored))
		for i := range stored {
			s := &stored[i]
			msgs[i] = &mailbox.Message{Seq: s.Seq, Type: s.Type, Priority: s.Priority, Redeliveries: s.Redeliveries,
				Sender:       mailbox.Identity{Kind: s.SenderKind, UID: s.SenderUID, GID: s.SenderGID, PID: s.SenderPID, Endpoint: s.SenderEndpoint, Name: s.SenderName},
				SentUnixNano: s.SentUnixNano, Body: s.Body, Headers: s.Headers, Reason: reasonCode(s.DeadReason), Urgent: s.Urgent}
		}
		bx.core.Restore(msgs, rec.NextSeq[d.Name])
		if d.Mode&defClosed != 0 {
			bx.core.CloseSend() // nobody waits yet: no effects
		}
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

// openStore opens the data directory at Open and recovers from it.
func (b *Broker) openStore() error {
	st, err := store.Open(b.storeOptions())
	if err != nil {
		return fmt.Errorf("broker: data directory %s: %w", b.cfg.DataDir, err)
	}
	b.st = st
	return b.recover()
}

// storageError is the reply to a request whose records could not be
// made durable.
func storageError(what string, err error) (wire.Code, string) {
	return wire.CodeStorage, fmt.Sprintf("%s: not made durable: %v", what, err)
}

// DiskStats reports the store's counters (fsyncs, records, bytes on
// disk); ok is false for a broker without a data directory, or whose
// store is not open yet (no durable mailbox so far: lazystore.go).
func (b *Broker) DiskStats() (st store.DiskStats, ok bool) {
	s := b.openedStore()
	if s == nil {
		return st, false
	}
	return s.DiskStats(), true
}

// isClosing reports whether connections are being closed (the syncer has
// stopped or is stopping).
func (b *Broker) isClosing() bool {
	select {
	case <-b.closing:
		return true
	default:
		return false
	}
}
