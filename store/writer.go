package store

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"runtime"
	"slices"
)

// The writer goroutine (run) owns the files: it alone writes, syncs,
// rotates, reclaims and compacts, and it alone updates the live index
// (under s.idx, so Stats can read it). Because it applies a batch to the
// index only after the batch is durable, the index is always exactly what
// a replay of the log would produce, and a failed batch leaves no trace.

// writer is the state owned by the writer goroutine.
type writer struct {
	f      *os.File // active segment
	id     uint64
	size   int64    // bytes written to the active segment
	nextID uint64   // id for the next segment
	segs   []uint64 // ids of the segment files, ascending; last is active
	failed error    // sticky; mirrors Store.failed
	spare  []byte   // the previous pending buffer, reused
	dirty  bool     // the active segment has lazy records not yet fdatasynced

	// compaction of the oldest segment
	cID     uint64
	cList   []compactItem
	cFile   *os.File
	cBuf    []byte
	stuck   uint64 // a segment compaction gave up on (0 = none)
	paused  bool   // a compaction write failed; wait for a user batch to succeed
	scratch []byte
}

type compactItem struct {
	mailbox string
	seq     uint64
	off     int64
}

func (s *Store) run() {
	defer close(s.writerDone)
	for {
		if s.needCompact() {
			// One chunk of compaction, then whatever users enqueued
			// meanwhile: compaction never holds a user batch back by
			// more than one chunk.
			s.compactStep()
			select {
			case <-s.quit:
				s.flush()
				return
			case <-s.wake:
				s.flush()
			case req := <-s.compactReq:
				req <- s.compactAll()
			default:
			}
			continue
		}
		select {
		case <-s.quit:
			s.flush()
			return
		case <-s.wake:
			s.flush()
		case req := <-s.compactReq:
			req <- s.compactAll()
		}
	}
}

// compactAll runs compaction until the thresholds are met, writing user
// batches between steps.
func (s *Store) compactAll() error {
	for {
		s.flush()
		if !s.needCompact() {
			break
		}
		s.compactStep()
	}
	return s.w.failed
}

// flush takes everything enqueued so far and commits it as one batch.
func (s *Store) flush() {
	// Writers whose records just became durable are runnable now and
	// about to enqueue their next record; letting them run first puts
	// those records in this batch instead of the next one (one more
	// fsync). It costs a scheduler pass, nothing when no one is waiting.
	runtime.Gosched()
	s.mu.Lock()
	buf, b := s.pending, s.cur
	s.pending, s.cur = s.w.spare[:0], nil
	s.mu.Unlock()
	if b == nil {
		s.w.spare = buf
		return
	}
	// A record accepted while low on space (refused found room again)
	// goes after the reserve is back: restoring it is the writer's job,
	// never the submitter's.
	s.refill()
	b.err = s.commit(buf, b.sync)
	if b.err == nil {
		s.w.paused = false
		if s.low.on.Load() {
			s.reclaimLow()
		}
	}
	close(b.done)
	if cap(buf) <= 8<<20 {
		s.w.spare = buf[:0]
	} else {
		s.w.spare = nil
	}
}

// commit appends buf (whole records, checksums not yet filled in) to the
// log, makes it durable and applies it to the index. On a write error the
// file is cut back to where it was, so the next batch follows valid data.
//
// With sync false (a batch of lazy records) the data is written but not
// fdatasynced; w.dirty remembers it, and the next synced commit, rotation
// or Close covers it.
func (s *Store) commit(buf []byte, sync bool) error {
	if s.w.failed != nil {
		return s.w.failed
	}
	// A segment is sealed once it has reached SegmentSize; the batch that
	// crosses the line still goes into it, so no batch is ever split.
	if s.w.f == nil || s.w.size >= s.opts.SegmentSize {
		if err := s.rotate(); err != nil {
			if s.w.f == nil || s.w.failed != nil {
				return err
			}
			s.log.Warn("store: cannot start a new segment, continuing in the current one", "dir", s.opts.Dir, "err", err)
		}
	}
	n := sealRecords(buf)
	off := s.w.size
	name := segName(s.w.id)
	_, err := s.w.f.WriteAt(buf, off)
	if err != nil && errors.Is(classify("write", err), ErrDiskFull) {
		// The reserve's room is for records that free space or only
		// change state: a batch of those is retried there; a batch that
		// adds messages fails.
		if s.spendReserve() && !addsData(buf) && s.w.f.Truncate(off) == nil {
			_, err = s.w.f.WriteAt(buf, off)
		}
	}
	if err != nil {
		err = classify("write "+name, err)
		if terr := s.w.f.Truncate(off); terr != nil {
			return s.fail(fmt.Errorf("%w; cutting it back also failed: %w", err, classify("truncate "+name, terr)))
		}
		s.log.Warn("store: write failed, batch cut back", "segment", name, "records", n, "err", err)
		return err
	}
	if !s.opts.NoSync && !sync {
		s.w.dirty = true
	} else if !s.opts.NoSync {
		if err := s.datasync(s.w.f); err != nil {
			// After a failed fsync the kernel may have dropped the dirty
			// pages; nothing written since the last good sync can be
			// trusted, so stop rather than build on it.
			return s.fail(classify("fdatasync "+name, err))
		}
		s.fsyncs.Add(1)
		s.w.dirty = false
	}
	s.w.size += int64(len(buf))
	s.idx.Lock()
	if si := s.st.segs[s.w.id]; si != nil {
		si.size = s.w.size
	}
	for p := 0; p < len(buf); {
		size := recHeaderSize + int(binary.LittleEndian.Uint32(buf[p+4:]))
		if !s.st.apply(buf[p+8], buf[p+recHeaderSize:p+size], s.w.id, off+int64(p), int64(size)) {
			s.log.Error("store: record did not decode after writing (bug)", "segment", name, "offset", off+int64(p))
		}
		p += size
	}
	s.idx.Unlock()
	s.records.Add(uint64(n))
	s.batches.Add(1)
	s.reclaim()
	return nil
}

// sealRecords fills in the checksum of every record in buf and returns
// how many there are.
func sealRecords(buf []byte) int {
	n := 0
	for p := 0; p < len(buf); n++ {
		size := recHeaderSize + int(binary.LittleEndian.Uint32(buf[p+4:]))
		binary.LittleEndian.PutUint32(buf[p:], crc32.Checksum(buf[p+4:p+size], castagnoli))
		p += size
	}
	return n
}

// addsData reports whether a batch holds records that add data (new
// messages, mailbox definitions) rather than free it.
func addsData(buf []byte) bool {
	for p := 0; p+recHeaderSize <= len(buf); {
		switch buf[p+8] {
		case recAppend, recPutMailbox:
			return true
		}
		p += recHeaderSize + int(binary.LittleEndian.Uint32(buf[p+4:]))
	}
	return false
}

// fail makes the store refuse every further write with err.
func (s *Store) fail(err error) error {
	err = fmt.Errorf("%w: %w", ErrFailed, err)
	s.w.failed = err
	s.mu.Lock()
	s.failed = err
	s.mu.Unlock()
	s.log.Error("store: failed; writes are refused until the store is reopened", "dir", s.opts.Dir, "err", err)
	return err
}

// rotate seals the active segment and starts the next one with a header
// and a snapshot of every mailbox definition, so older segments are never
// needed for definitions or sequence numbers.
func (s *Store) rotate() error {
	if s.w.f != nil && s.w.dirty && !s.opts.NoSync {
		// Lazy records written since the last sync go to disk before the
		// segment is sealed; if that fails nothing after it can be
		// trusted.
		if err := s.datasync(s.w.f); err != nil {
			return s.fail(classify("fdatasync "+segName(s.w.id), err))
		}
		s.fsyncs.Add(1)
		s.w.dirty = false
	}
	id := s.w.nextID
	s.w.nextID++ // even on failure: a leftover file must not block the next try
	name := segName(id)
	path := filepath.Join(s.opts.Dir, name)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return classify("create "+name, err)
	}
	s.idx.Lock()
	buf := s.st.appendSnapshot(encodeSegHeader(id))
	s.idx.Unlock()
	_, err = f.WriteAt(buf, 0)
	if err == nil && !s.opts.NoSync {
		if err = s.datasync(f); err == nil {
			s.fsyncs.Add(1)
			err = syncDir(s.opts.Dir)
		}
	}
	if err != nil {
		f.Close()
		os.Remove(path)
		if !s.opts.NoSync {
			syncDir(s.opts.Dir)
		}
		return classify("start "+name, err)
	}
	if s.w.f != nil {
		s.w.f.Close() // every batch in it is synced (see the top)
	}
	s.w.f, s.w.id, s.w.size = f, id, int64(len(buf))
	s.w.segs = append(s.w.segs, id)
	s.idx.Lock()
	s.st.segs[id] = &segInfo{id: id, size: int64(len(buf))}
	s.idx.Unlock()
	return nil
}

// reclaim deletes old segments that hold no live message, oldest first.
// Only a prefix of the log is ever deleted: a record in a later segment
// (an Ack, say) may be what keeps a message in an earlier one dead, so a
// later segment must not disappear before the earlier ones.
func (s *Store) reclaim() {
	for len(s.w.segs) > 1 && s.w.segs[0] != s.w.id {
		id := s.w.segs[0]
		s.idx.Lock()
		si := s.st.segs[id]
		busy := si != nil && si.count > 0
		s.idx.Unlock()
		if busy {
			return
		}
		if s.w.cFile != nil && s.w.cID == id {
			s.w.cFile.Close()
			s.w.cFile, s.w.cList = nil, nil
		}
		name := segName(id)
		if err := os.Remove(filepath.Join(s.opts.Dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("store: cannot remove reclaimed segment", "segment", name, "err", err)
			return
		}
		if !s.opts.NoSync {
			if err := syncDir(s.opts.Dir); err != nil {
				s.log.Warn("store: directory fsync after removing a segment failed", "segment", name, "err", err)
			}
		}
		s.idx.Lock()
		delete(s.st.segs, id)
		s.idx.Unlock()
		s.w.segs = s.w.segs[1:]
		s.reclaimed.Add(1)
		s.refill()
	}
}

// reclaimLow frees space while the disk is full (when compaction, which
// needs room to copy, is off): once the log is down to one segment with
// no live message, a fresh (small) segment lets it go.
func (s *Store) reclaimLow() {
	s.idx.Lock()
	si := s.st.segs[s.w.id]
	empty := si != nil && si.count == 0 && len(s.w.segs) == 1
	s.idx.Unlock()
	if empty {
		if err := s.rotate(); err != nil {
			return
		}
	}
	s.reclaim()
	s.refill()
}

// needCompact reports whether the oldest segment should be copied
// forward: it is sealed, still pinned by live messages, and either mostly
// dead itself or the log as a whole carries too much dead weight.
func (s *Store) needCompact() bool {
	if s.w.failed != nil || s.w.paused || len(s.w.segs) < 2 || s.w.segs[0] == s.w.id || s.w.segs[0] == s.w.stuck {
		return false
	}
	s.idx.Lock()
	defer s.idx.Unlock()
	si := s.st.segs[s.w.segs[0]]
	if si == nil || si.count == 0 {
		return false
	}
	if s.low.on.Load() {
		// Low on space, copying needs room: copy only what is small
		// beside what deleting the segment frees, so a few live messages
		// cannot pin the log (and keep new messages refused) for good.
		return si.live*16 <= si.size
	}
	if si.live*100 <= si.size*int64(s.opts.CompactLivePercent) {
		return true
	}
	var total, live int64
	for _, x := range s.st.segs {
		total += x.size
		live += x.live
	}
	return total-live > s.opts.CompactGarbageBytes
}

// compactStep copies up to CompactChunkBytes of the oldest segment's live
// messages to the head of the log as Append records carrying their
// current state. Once none is left, reclaim deletes the segment.
func (s *Store) compactStep() {
	id := s.w.segs[0]
	name := segName(id)
	if s.w.cID != id || len(s.w.cList) == 0 {
		if s.w.cID != id && s.w.cFile != nil {
			s.w.cFile.Close()
			s.w.cFile = nil
		}
		s.w.cID, s.w.cList = id, s.w.cList[:0]
		s.idx.Lock()
		for mname, mb := range s.st.mbs {
			for seq, e := range mb.msgs {
				if e.seg == id {
					s.w.cList = append(s.w.cList, compactItem{mname, seq, e.off})
				}
			}
		}
		s.idx.Unlock()
		slices.SortFunc(s.w.cList, func(a, b compactItem) int { return cmp.Compare(a.off, b.off) })
		if len(s.w.cList) == 0 {
			s.w.stuck = id // count says live, index says none: do not spin
			return
		}
	}
	if s.w.cFile == nil {
		f, err := os.Open(filepath.Join(s.opts.Dir, name))
		if err != nil {
			s.log.Error("store: cannot open segment for compaction", "segment", name, "err", err)
			s.w.stuck = id
			return
		}
		s.w.cFile = f
	}
	buf := s.w.cBuf[:0]
	copied := 0
	for len(s.w.cList) > 0 && int64(len(buf)) < s.opts.CompactChunkBytes {
		it := s.w.cList[0]
		s.w.cList = s.w.cList[1:]
		s.idx.Lock()
		var e entry
		ok := false
		if mb := s.st.mbs[it.mailbox]; mb != nil {
			e, ok = mb.msgs[it.seq]
		}
		s.idx.Unlock()
		if !ok || e.seg != id {
			continue // acknowledged or moved since the list was made
		}
		s.w.scratch = slices.Grow(s.w.scratch[:0], int(e.size))[:e.size]
		var m Message
		_, err := s.w.cFile.ReadAt(s.w.scratch, e.off)
		typ, p, _, good := parseRecord(s.w.scratch)
		if err == nil && good && typ == recAppend {
			_, good = decodeMessage(p, &m, true)
		}
		if err != nil || !good || typ != recAppend {
			s.log.Error("store: cannot reread a live message for compaction; segment kept", "segment", name, "offset", e.off, "err", err)
			s.w.stuck = id
			return
		}
		m.Redeliveries = e.redeliveries
		if e.moved {
			m.DeadReason = e.reason
		}
		var flags byte
		if e.leased {
			flags = flagLeased
		}
		var start int
		buf, start = beginRecord(buf, recAppend)
		buf = appendMessage(buf, &m, it.mailbox, it.seq, flags)
		endRecord(buf, start)
		copied++
	}
	s.w.cBuf = buf
	if copied == 0 {
		return
	}
	if err := s.commit(buf, true); err != nil {
		s.log.Warn("store: compaction write failed; retrying after the next successful batch", "segment", name, "err", err)
		s.w.paused = true
		s.w.cList = nil
		return
	}
	s.copied.Add(uint64(copied))
}

// close syncs and closes the files the writer holds.
func (w *writer) close(noSync bool) error {
	var err error
	if w.f != nil {
		if !noSync {
			err = fdatasync(w.f)
		}
		if cerr := w.f.Close(); err == nil {
			err = cerr
		}
		w.f = nil
	}
	if w.cFile != nil {
		w.cFile.Close()
		w.cFile = nil
	}
	return err
}
