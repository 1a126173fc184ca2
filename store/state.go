package store

import (
	"cmp"
	"slices"
	"time"
)

// state is the deterministic core of the store: the live index that every
// record is applied to, in log order, both when replaying segments on Open
// and after each batch is made durable at run time. It does no I/O and
// reads no clock, so replay and run time cannot disagree about what a
// record means.
//
// It knows, for every live message, where its Append record lives
// (segment, offset, size) and its current lease state; for every mailbox,
// its definition and next sequence number; for every segment, how many
// live bytes it still holds. That is exactly what reclamation, compaction,
// snapshots and Stats need.
type state struct {
	mbs  map[string]*mbox
	segs map[uint64]*segInfo
	// keep makes Append records decode the whole message (recovery only),
	// so Recovered can be built without rereading the log.
	keep bool
}

type mbox struct {
	name    string
	def     MailboxDef
	defined bool
	nextSeq uint64 // 1 + highest seq seen
	msgs    map[uint64]entry
	bytes   int64 // sum of entry.size
	leased  int
}

// entry locates one live message.
type entry struct {
	seg          uint64
	off          int64
	size         int64 // whole record, header included
	sent         int64
	redeliveries uint32
	priority     uint8
	leased       bool
	// moved is set when the message was dead-lettered after its record was
	// written: the record still names the old mailbox and seq, and reason
	// is the DeadReason to use instead of the recorded one.
	moved  bool
	reason string
	msg    *Message // recovery only
}

type segInfo struct {
	id    uint64
	size  int64 // bytes in the file
	live  int64 // bytes of Append records of live messages
	count int   // live messages whose record is here
}

func newState(keep bool) *state {
	return &state{mbs: make(map[string]*mbox), segs: make(map[uint64]*segInfo), keep: keep}
}

// mailbox returns the named mailbox, creating an undefined one if needed.
// Looking up an existing name from a []byte does not allocate.
func (st *state) mailbox(name []byte) *mbox {
	if mb := st.mbs[string(name)]; mb != nil {
		return mb
	}
	mb := &mbox{name: string(name), msgs: make(map[uint64]entry)}
	st.mbs[mb.name] = mb
	return mb
}

func (st *state) insert(mb *mbox, seq uint64, e entry) {
	st.remove(mb, seq)
	mb.msgs[seq] = e
	mb.bytes += e.size
	if e.leased {
		mb.leased++
	}
	if si := st.segs[e.seg]; si != nil {
		si.live += e.size
		si.count++
	}
}

func (st *state) remove(mb *mbox, seq uint64) (entry, bool) {
	e, ok := mb.msgs[seq]
	if !ok {
		return e, false
	}
	delete(mb.msgs, seq)
	mb.bytes -= e.size
	if e.leased {
		mb.leased--
	}
	if si := st.segs[e.seg]; si != nil {
		si.live -= e.size
		si.count--
	}
	return e, true
}

func (mb *mbox) sawSeq(seq uint64) {
	if seq+1 > mb.nextSeq {
		mb.nextSeq = seq + 1
	}
}

// apply applies one record found at (seg, off) with the given total size.
// It reports false if the payload is malformed; the state is then
// unchanged. Records about messages or mailboxes the state does not know
// (already acknowledged, or whose segment was reclaimed) are no-ops.
func (st *state) apply(typ byte, p []byte, seg uint64, off, size int64) bool {
	d := newDecoder(p)
	switch typ {
	case recSnapshot:
		n := int(d.u32())
		if n > len(p) {
			return false
		}
		defs := make([]MailboxDef, 0, n)
		seqs := make([]uint64, 0, n)
		for range n {
			defs = append(defs, decodeDef(&d))
			seqs = append(seqs, d.u64())
		}
		if !d.done() {
			return false
		}
		// The snapshot is authoritative for definitions: a mailbox it
		// does not list had been deleted when it was written.
		in := make(map[string]bool, n)
		for i, def := range defs {
			mb := st.mailbox([]byte(def.Name))
			mb.def, mb.defined = def, true
			if seqs[i] > mb.nextSeq {
				mb.nextSeq = seqs[i]
			}
			in[def.Name] = true
		}
		for name, mb := range st.mbs {
			if !in[name] {
				mb.defined = false
			}
		}
	case recPutMailbox:
		def := decodeDef(&d)
		if !d.done() {
			return false
		}
		mb := st.mailbox([]byte(def.Name))
		mb.def, mb.defined = def, true
	case recDeleteMailbox:
		name := d.str()
		if !d.done() {
			return false
		}
		if mb := st.mbs[string(name)]; mb != nil {
			for seq := range mb.msgs {
				st.remove(mb, seq)
			}
			delete(st.mbs, mb.name)
		}
	case recAppend:
		var m *Message
		if st.keep {
			m = new(Message)
		}
		h, ok := decodeMessage(p, m, st.keep)
		if !ok {
			return false
		}
		mb := st.mailbox(h.mailbox)
		mb.sawSeq(h.seq)
		st.insert(mb, h.seq, entry{
			seg: seg, off: off, size: size, sent: h.sent,
			redeliveries: h.redeliveries, priority: h.priority,
			leased: h.flags&flagLeased != 0, msg: m,
		})
	case recAck, recLease, recReturn:
		name, seq := d.str(), d.u64()
		var n uint32
		if typ == recReturn {
			n = d.u32()
		}
		if !d.done() {
			return false
		}
		mb := st.mbs[string(name)]
		if mb == nil {
			return true
		}
		e, ok := mb.msgs[seq]
		if !ok {
			return true
		}
		switch typ {
		case recAck:
			st.remove(mb, seq)
		case recLease:
			if !e.leased {
				e.leased = true
				mb.leased++
				mb.msgs[seq] = e
			}
		case recReturn:
			if e.leased {
				e.leased = false
				mb.leased--
			}
			e.redeliveries = n
			mb.msgs[seq] = e
		}
	case recDeadLetter:
		from, seq := d.str(), d.u64()
		to, newSeq := d.str(), d.u64()
		reason := d.str()
		if !d.done() {
			return false
		}
		dst := st.mailbox(to)
		dst.sawSeq(newSeq)
		src := st.mbs[string(from)]
		if src == nil {
			return true
		}
		e, ok := st.remove(src, seq)
		if !ok {
			return true
		}
		e.moved, e.reason, e.leased = true, string(reason), false
		if e.msg != nil {
			e.msg.Mailbox, e.msg.Seq, e.msg.DeadReason = dst.name, newSeq, e.reason
		}
		st.insert(dst, newSeq, e)
	default:
		return false
	}
	return true
}

// appendSnapshot encodes a Snapshot record of every defined mailbox, in
// name order so equal states give equal bytes.
func (st *state) appendSnapshot(b []byte) []byte {
	names := make([]string, 0, len(st.mbs))
	for name, mb := range st.mbs {
		if mb.defined {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	b, start := beginRecord(b, recSnapshot)
	b = putU32(b, uint32(len(names)))
	for _, name := range names {
		mb := st.mbs[name]
		b = appendDef(b, &mb.def)
		b = putU64(b, mb.nextSeq)
	}
	endRecord(b, start)
	return b
}

// recovered builds what Open reports from a replayed state and drops the
// message copies the state held. Messages leased at the crash come back
// with one more redelivery; their keys are returned so the caller can log
// Return records making that count durable. Messages of mailboxes with no
// definition are counted as orphans and dropped from the state.
func (st *state) recovered() (r *Recovered, returned []msgKey) {
	r = &Recovered{Messages: make(map[string][]Message), NextSeq: make(map[string]uint64)}
	for name, mb := range st.mbs {
		if !mb.defined {
			r.Orphaned += len(mb.msgs)
			for seq := range mb.msgs {
				st.remove(mb, seq)
			}
			delete(st.mbs, name)
			continue
		}
		r.Mailboxes = append(r.Mailboxes, mb.def)
		r.NextSeq[name] = max(mb.nextSeq, 1)
		msgs := make([]Message, 0, len(mb.msgs))
		for seq, e := range mb.msgs {
			m := *e.msg
			m.Redeliveries = e.redeliveries
			if e.moved {
				m.DeadReason = e.reason
			}
			if e.leased {
				m.Redeliveries++
				returned = append(returned, msgKey{name, seq, m.Redeliveries})
			}
			msgs = append(msgs, m)
			e.msg = nil
			mb.msgs[seq] = e
		}
		slices.SortFunc(msgs, queueOrder)
		if len(msgs) > 0 {
			r.Messages[name] = msgs
		}
	}
	slices.SortFunc(r.Mailboxes, func(a, b MailboxDef) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortFunc(returned, func(a, b msgKey) int {
		return cmp.Or(cmp.Compare(a.mailbox, b.mailbox), cmp.Compare(a.seq, b.seq))
	})
	st.keep = false
	return r, returned
}

// msgKey names a message; redeliveries is the count to record.
type msgKey struct {
	mailbox      string
	seq          uint64
	redeliveries uint32
}

// queueOrder is delivery order: priority descending, then seq ascending.
func queueOrder(a, b Message) int {
	return cmp.Or(cmp.Compare(b.Priority, a.Priority), cmp.Compare(a.Seq, b.Seq))
}

func durationOf(v uint64) time.Duration { return time.Duration(int64(v)) }
