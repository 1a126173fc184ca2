package store

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
)

// Open locks opts.Dir, recovers the mailboxes and messages recorded there
// (see Recovered), starts a fresh segment and starts the writer goroutine.
// A second Open of the same directory, from this process or another, fails
// with ErrLocked until the first Store is closed or its process exits.
func Open(opts Options) (*Store, error) {
	opts.setDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, classify("create directory", err)
	}
	lock, err := lockDir(opts.Dir)
	if err != nil {
		return nil, err
	}
	return openWith(opts, lock)
}

// openWith is Open once opts.Dir exists and lock holds it. On failure it
// releases lock.
func openWith(opts Options, lock *os.File) (*Store, error) {
	opts.setDefaults()
	if err := opts.Validate(); err != nil {
		unlockDir(lock)
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &Store{
		opts:       opts,
		log:        log,
		lock:       lock,
		wake:       make(chan struct{}, 1),
		compactReq: make(chan chan error),
		quit:       make(chan struct{}),
		writerDone: make(chan struct{}),
		st:         newState(true),
	}
	if err := s.recover(); err != nil {
		s.w.close(true)
		unlockDir(lock)
		return nil, fmt.Errorf("open %s: %w", opts.Dir, err)
	}
	go s.run()
	return s, nil
}

// recover replays every segment in order into s.st, cuts a torn tail off
// the last one, builds s.rec, then starts a new segment (header, snapshot,
// and Return records for messages that were leased) before any new write.
func (s *Store) recover() error {
	dir := s.opts.Dir
	ids, err := listSegments(dir)
	if err != nil {
		return classify("list segments", err)
	}
	var (
		corrupt []Corruption
		dropped int64
	)
	for i, id := range ids {
		name := segName(id)
		path := filepath.Join(dir, name)
		b, err := os.ReadFile(path)
		if err != nil {
			return classify("read "+name, err)
		}
		last := i == len(ids)-1
		s.st.segs[id] = &segInfo{id: id, size: int64(len(b))}
		s.w.nextID = id + 1
		r := scanSegment(name, b, last, func(typ byte, p []byte, off, size int64) bool {
			return s.st.apply(typ, p, id, off, size)
		})
		if last && !r.headerOK && r.records == 0 {
			// The newest segment never got its header to disk: it holds
			// nothing, so it goes.
			s.log.Warn("store: removed a segment whose creation was interrupted", "segment", name, "dropped_bytes", len(b))
			dropped += int64(len(b))
			delete(s.st.segs, id)
			if err := os.Remove(path); err != nil {
				return classify("remove "+name, err)
			}
			if err := s.syncDir(); err != nil {
				return err
			}
			continue
		}
		if r.torn > 0 {
			s.log.Warn("store: truncated torn tail of the last segment", "segment", name, "offset", r.end, "dropped_bytes", r.torn)
			if err := truncateFile(path, r.end, s.opts.NoSync); err != nil {
				return err
			}
			s.st.segs[id].size = r.end
			dropped += r.torn
		}
		for _, c := range r.corrupt {
			s.log.Error("store: skipped corrupt bytes", "segment", c.Segment, "offset", c.Offset, "length", c.Length, "reason", c.Reason)
		}
		corrupt = append(corrupt, r.corrupt...)
		s.w.segs = append(s.w.segs, id)
	}
	if len(corrupt) > 0 && s.opts.FailOnCorruption {
		c := corrupt[0]
		return fmt.Errorf("%w: %d damaged range(s), first in %s at offset %d (%d bytes, %s)",
			ErrCorrupt, len(corrupt), c.Segment, c.Offset, c.Length, c.Reason)
	}
	rec, returned := s.st.recovered()
	rec.DroppedBytes, rec.Corrupt = dropped, corrupt
	if rec.Orphaned > 0 {
		s.log.Error("store: dropped messages whose mailbox has no definition", "messages", rec.Orphaned)
	}
	s.rec = rec
	if s.w.nextID == 0 {
		s.w.nextID = 1
	}
	if err := s.rotate(); err != nil {
		// A full disk must not keep the broker down: freeing space needs
		// a running broker (receivers acking). Go on in the newest
		// segment; the writer starts a new one once there is room.
		if !errors.Is(err, ErrDiskFull) || len(s.w.segs) == 0 {
			return err
		}
		if rerr := s.reopenNewest(); rerr != nil {
			return errors.Join(err, rerr)
		}
		s.log.Warn("store: disk full: cannot start a new segment; appending to the newest one", "dir", dir, "err", err)
	}
	if len(returned) > 0 {
		var buf []byte
		for _, k := range returned {
			var start int
			buf, start = beginRecord(buf, recReturn)
			buf = putStr(buf, k.mailbox)
			buf = putU64(buf, k.seq)
			buf = putU32(buf, k.redeliveries)
			endRecord(buf, start)
		}
		if err := s.commit(buf, true); err != nil {
			if !errors.Is(err, ErrDiskFull) {
				return err
			}
			// The leases are returned in memory all the same; if the
			// broker crashes again before they are recorded, their
			// redelivery counts go up once more than they should.
			s.log.Warn("store: disk full: could not record returned leases", "messages", len(returned), "err", err)
		}
	}
	s.reclaim()
	if !s.makeReserve() {
		s.low.on.Store(true)
		s.log.Warn("store: disk full: no room for the reserve; new messages are refused until space is freed, acks still work", "dir", dir)
	}
	n := 0
	for _, msgs := range rec.Messages {
		n += len(msgs)
	}
	s.log.Debug("store: opened", "dir", dir, "segments", len(s.w.segs), "mailboxes", len(rec.Mailboxes),
		"messages", n, "returned_leases", len(returned), "dropped_bytes", dropped, "corrupt_ranges", len(corrupt))
	return nil
}

func (s *Store) syncDir() error {
	if s.opts.NoSync {
		return nil
	}
	return classify("fsync directory", syncDir(s.opts.Dir))
}

func truncateFile(path string, size int64, noSync bool) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return classify("open "+filepath.Base(path), err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return classify("truncate "+filepath.Base(path), err)
	}
	if !noSync {
		if err := f.Sync(); err != nil {
			return classify("fsync "+filepath.Base(path), err)
		}
	}
	return nil
}

// reopenNewest makes the newest existing segment the one written to.
func (s *Store) reopenNewest() error {
	id := s.w.segs[len(s.w.segs)-1]
	name := segName(id)
	f, err := os.OpenFile(filepath.Join(s.opts.Dir, name), os.O_RDWR, 0)
	if err != nil {
		return classify("open "+name, err)
	}
	s.w.f, s.w.id, s.w.size = f, id, s.st.segs[id].size
	return nil
}
