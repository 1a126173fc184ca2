package store

import "encoding/binary"

// The write methods encode their record straight into the shared pending
// buffer under s.mu, so records enter the log in the order the calls took
// the lock: calls made one after another from one goroutine are logged in
// that order. The writer goroutine fills in checksums, so the time spent
// under the lock is a copy. Nothing here allocates per record except
// growth of the pending buffer and one batch per group commit.

// PutMailbox records a mailbox's definition (create or update).
func (s *Store) PutMailbox(def MailboxDef) Ticket {
	if len(def.Name) > maxName || len(def.DeadLetter) > maxName {
		return Ticket{err: ErrTooLarge}
	}
	if s.refused() {
		return Ticket{err: errLowSpace}
	}
	b, start, t := s.begin(recPutMailbox)
	if t.err != nil {
		return t
	}
	b = appendDef(b, &def)
	return s.end(b, start, false)
}

// DeleteMailbox records that a mailbox is gone, with all its messages.
func (s *Store) DeleteMailbox(name string) Ticket {
	if len(name) > maxName {
		return Ticket{err: ErrTooLarge}
	}
	b, start, t := s.begin(recDeleteMailbox)
	if t.err != nil {
		return t
	}
	b = putStr(b, name)
	return s.end(b, start, false)
}

// Append records a new message. It copies what it needs: the caller may
// reuse m, m.Body and m.Headers as soon as it returns.
func (s *Store) Append(m *Message) Ticket {
	if len(m.Mailbox) > maxName || len(m.DeadReason) > maxName || len(m.Body)+len(m.Headers) > maxPayload-1024 {
		return Ticket{err: ErrTooLarge}
	}
	if s.refused() {
		return Ticket{err: errLowSpace}
	}
	b, start, t := s.begin(recAppend)
	if t.err != nil {
		return t
	}
	b = appendMessage(b, m, m.Mailbox, m.Seq, 0)
	return s.end(b, start, false)
}

// Ack records that a message is consumed for good (or expired).
func (s *Store) Ack(mailbox string, seq uint64) Ticket {
	return s.seqRecord(recAck, mailbox, seq, 0, false)
}

// AckAsync is Ack for an ack that nobody waits to see confirmed (a
// receiver's fire-and-forget ack): the record is written with the next
// batch but costs no fdatasync of its own, so its Ticket says only that
// it was written. A crash before the next synced batch loses it, and the
// message is delivered again: at least once, never lost.
func (s *Store) AckAsync(mailbox string, seq uint64) Ticket {
	return s.seqRecord(recAck, mailbox, seq, 0, true)
}

// Lease records that a message was handed to a receiver. If the store
// stops while it is leased, Open returns it with Redeliveries+1. Callers
// normally need not wait on it: losing a Lease only loses that increment.
//
// A Lease is lazy: it costs no fdatasync of its own and is made durable by
// the next batch that needs one (its Ticket says only that it was written).
func (s *Store) Lease(mailbox string, seq uint64) Ticket {
	return s.seqRecord(recLease, mailbox, seq, 0, true)
}

// Return records that a lease ended without an ack (nack, receiver gone);
// redeliveries is the message's new count.
func (s *Store) Return(mailbox string, seq uint64, redeliveries uint32) Ticket {
	return s.seqRecord(recReturn, mailbox, seq, redeliveries, false)
}

// DeadLetter moves message seq of from to mailbox to as newSeq, with the
// given reason, in one record: after a crash the message is in exactly one
// of the two mailboxes. The body is not rewritten. Define to first: a
// mailbox with no definition is dropped on recovery.
func (s *Store) DeadLetter(from string, seq uint64, to string, newSeq uint64, reason string) Ticket {
	if len(from) > maxName || len(to) > maxName || len(reason) > maxName {
		return Ticket{err: ErrTooLarge}
	}
	b, start, t := s.begin(recDeadLetter)
	if t.err != nil {
		return t
	}
	b = putStr(b, from)
	b = putU64(b, seq)
	b = putStr(b, to)
	b = putU64(b, newSeq)
	b = putStr(b, reason)
	return s.end(b, start, false)
}

func (s *Store) seqRecord(typ byte, mailbox string, seq uint64, n uint32, lazy bool) Ticket {
	if len(mailbox) > maxName {
		return Ticket{err: ErrTooLarge}
	}
	b, start, t := s.begin(typ)
	if t.err != nil {
		return t
	}
	b = putStr(b, mailbox)
	b = putU64(b, seq)
	if typ == recReturn {
		b = putU32(b, n)
	}
	return s.end(b, start, lazy)
}

// begin locks s.mu and starts a record in the pending buffer. If the store
// refuses writes it unlocks and returns a Ticket carrying the reason.
func (s *Store) begin(typ byte) ([]byte, int, Ticket) {
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return nil, 0, Ticket{err: ErrClosed}
	case s.failed != nil:
		err := s.failed
		s.mu.Unlock()
		return nil, 0, Ticket{err: err}
	}
	b, start := beginRecord(s.pending, typ)
	return b, start, Ticket{}
}

// end stores the payload length, publishes the record, unlocks s.mu and
// wakes the writer.
func (s *Store) end(b []byte, start int, lazy bool) Ticket {
	binary.LittleEndian.PutUint32(b[start+4:], uint32(len(b)-start-recHeaderSize))
	s.pending = b
	if s.cur == nil {
		s.cur = &batch{done: make(chan struct{})}
	}
	if !lazy {
		s.cur.sync = true
	}
	t := Ticket{b: s.cur}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return t
}
