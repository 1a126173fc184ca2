package store

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a Store. Start from DefaultOptions.
type Options struct {
	// Dir is the data directory, created 0700 if missing.
	Dir string
	// SegmentSize: the active segment is sealed and a new one started
	// once it has reached this size. The batch that crosses the line
	// still goes into it: batches are never split.
	SegmentSize int64
	// NoSync skips fdatasync (and directory fsync). Tests and benchmarks
	// only: nothing is durable against a machine crash.
	NoSync bool
	// Logger receives recovery and disk-trouble reports; nil means
	// slog.Default().
	Logger *slog.Logger
	// CompactLivePercent: the oldest sealed segment is copied forward
	// (its live messages rewritten at the head of the log, then the file
	// deleted) when at most this percentage of its bytes is live.
	CompactLivePercent int
	// CompactGarbageBytes: the oldest sealed segment is also copied
	// forward, whatever its own live share, while the whole log holds
	// more than this many bytes that are not live messages (zero means
	// four segments). Together the two bound disk use, and so recovery time,
	// to about twice the live data plus this much.
	CompactGarbageBytes int64
	// CompactChunkBytes bounds how much is copied per step; user batches
	// are written between steps, so this bounds the pause compaction can
	// add to a write.
	CompactChunkBytes int64
	// ReserveBytes is the size of the reserve file that lets acks be
	// recorded when the disk is full (see reserve.go): 0 means 1 MiB,
	// negative means no reserve.
	ReserveBytes int64
	// FailOnCorruption makes Open fail with ErrCorrupt instead of
	// skipping and reporting records whose checksum does not match.
	FailOnCorruption bool
	// ObserveSync, if set, is told how long each fdatasync of a segment
	// took (a broker's fsync latency histogram). It runs on the writer
	// goroutine and must be a leaf: count, never block.
	ObserveSync func(time.Duration)
}

// DefaultOptions returns the options used in production for dir. A zero
// field in Options passed to Open takes its default; CompactGarbageBytes
// is left zero so that it follows SegmentSize.
func DefaultOptions(dir string) Options {
	o := Options{Dir: dir}
	o.setDefaults()
	o.CompactGarbageBytes = 0
	return o
}

func (o *Options) setDefaults() {
	if o.SegmentSize == 0 {
		o.SegmentSize = 64 << 20
	}
	if o.CompactLivePercent == 0 {
		o.CompactLivePercent = 50
	}
	if o.CompactGarbageBytes == 0 {
		o.CompactGarbageBytes = 4 * o.SegmentSize
	}
	if o.CompactChunkBytes == 0 {
		o.CompactChunkBytes = 1 << 20
	}
	if o.ReserveBytes == 0 {
		o.ReserveBytes = 1 << 20
	}
}

// Validate reports the first bad field.
func (o *Options) Validate() error {
	switch {
	case o.Dir == "":
		return invalid("Dir", "is empty")
	case o.SegmentSize < 4096:
		return invalid("SegmentSize", "is below 4096")
	case o.CompactLivePercent < 0 || o.CompactLivePercent > 100:
		return invalid("CompactLivePercent", "is outside 0..100")
	case o.CompactGarbageBytes < 0:
		return invalid("CompactGarbageBytes", "is negative")
	case o.CompactChunkBytes < 0:
		return invalid("CompactChunkBytes", "is negative")
	}
	return nil
}

// MailboxDef is a mailbox's durable definition.
type MailboxDef struct {
	Name               string
	OwnerUID, OwnerGID uint32
	Mode               uint32
	Capacity           int64 // -1 = unbounded, 0 = rendezvous, N = bounded (messages)
	MaxBytes           int64 // 0 = no byte limit
	TTL                time.Duration
	MaxDeliveries      uint32 // 0 = unlimited; past it a message moves to DeadLetter
	DeadLetter         string // dead-letter mailbox name ("" = none)
	CreatedUnixNano    int64
	// OwnerKind is the creator's principal kind (2, TLS: OwnerName);
	// 0 and 1 are both stored as 1 (OwnerUID and OwnerGID say who).
	OwnerKind uint8
	OwnerName string
	// Access is the mailbox's access entries for remote principals.
	Access []AccessEntry
}

// AccessEntry is one access entry of a mailbox: a principal name
// pattern and the permission bits it grants.
type AccessEntry struct {
	Pattern string
	Perms   uint8
}

// Message is one durable message.
type Message struct {
	Mailbox string
	// Seq is the per-mailbox sequence number assigned by the mailbox
	// core; queue order is (Priority desc, Seq asc).
	Seq      uint64
	Type     int64
	Priority uint8
	// SenderKind is the sender's principal kind (wire.PrincipalUnix = 1,
	// wire.PrincipalNone = 0, ...). Records written before kinds existed
	// decode as 1.
	SenderKind     uint8
	SenderUID      uint32
	SenderGID      uint32
	SenderPID      int32
	SenderEndpoint uint64
	// SenderName is a TLS sender's principal name ("" otherwise).
	SenderName   string
	SentUnixNano int64
	Redeliveries uint32
	DeadReason   string // set when the message was dead-lettered
	Body         []byte
	// Headers is the message's headers block (see package wire), stored
	// and returned byte for byte; nil for none.
	Headers []byte
	// Urgent: the message is in its mailbox's urgent lane (Append flag
	// bit 4). Records written before it existed decode as not urgent.
	Urgent bool
}

// Recovered is what Open found on disk.
type Recovered struct {
	// Mailboxes are the defined mailboxes, by name.
	Mailboxes []MailboxDef
	// Messages holds each mailbox's live messages in queue order
	// (Priority desc, Seq asc). Messages leased when the store last
	// stopped come back unleased with Redeliveries+1 (already made
	// durable by Open).
	Messages map[string][]Message
	// NextSeq[name] is 1 + the highest seq ever assigned in the mailbox
	// (1 if none), so seqs are never reused after a restart. A mailbox
	// that was deleted and defined again starts over.
	NextSeq map[string]uint64
	// DroppedBytes is the size of the torn tail cut off the last segment.
	DroppedBytes int64
	// Corrupt lists damaged byte ranges that were skipped (never
	// delivered as data). Empty in a healthy log.
	Corrupt []Corruption
	// Orphaned counts live messages dropped because their mailbox has no
	// definition (only possible if records were lost to corruption or
	// appended before their mailbox was defined).
	Orphaned int
}

// Corruption is one damaged range of a segment found by Open.
type Corruption struct {
	Segment string // file name within Dir
	Offset  int64
	Length  int64
	Reason  string
}

// MailboxStats describes one mailbox's durable state (as of the last
// completed batch).
type MailboxStats struct {
	Defined  bool
	Messages int   // live (appended, not acknowledged) messages
	Leased   int   // of which currently leased
	Bytes    int64 // on-disk bytes of their records
	// OldestSentUnixNano is the smallest SentUnixNano among live
	// messages, 0 if none.
	OldestSentUnixNano int64
	NextSeq            uint64
}

// DiskStats describes the log as a whole.
type DiskStats struct {
	Segments          int
	Bytes             int64 // all segment files
	LiveBytes         int64 // records of live messages
	Fsyncs            uint64
	Records           uint64 // records written since Open
	Batches           uint64 // group commits since Open
	ReclaimedSegments uint64
	CopiedRecords     uint64 // messages copied forward by compaction
	Failed            error  // non-nil once the store refuses writes
}

// Store is a durable log of mailbox state. All methods are safe for
// concurrent use. Write methods never block on the disk: they enqueue a
// record and return a Ticket.
type Store struct {
	opts Options
	log  *slog.Logger
	lock *os.File
	rec  *Recovered

	// mu guards pending, cur, closed and failed: the queue between
	// writers (any goroutine) and the writer goroutine.
	mu      sync.Mutex
	pending []byte // records in log order, checksums not yet filled in
	cur     *batch // the batch pending's records belong to; nil if none
	closed  bool
	failed  error // sticky; see ErrFailed

	wake       chan struct{} // cap 1: "pending is not empty"
	compactReq chan chan error
	quit       chan struct{} // closed by Close
	writerDone chan struct{} // closed when the writer goroutine exits
	closeOnce  sync.Once
	closeErr   error

	w writer // owned by the writer goroutine (and by Open before it starts)

	// idx guards st, which the writer updates after each durable batch
	// and Stats/DiskStats read.
	idx sync.Mutex
	st  *state

	fsyncs, records, batches, reclaimed, copied atomic.Uint64

	// low is set while the disk is full and the reserve spent: Append and
	// PutMailbox are refused, everything else is still recorded.
	low lowSpace
	// reserveHook, if set, runs on the goroutine about to write the
	// reserve file (tests: which goroutine that is, and what waits for
	// it).
	reserveHook atomic.Pointer[func()]
}

// batch is shared by every record of one group commit: one allocation per
// fsync, not per record.
type batch struct {
	done chan struct{}
	err  error // written before done is closed
	// sync: some record in the batch needs an fdatasync. A batch of only
	// lazy records (Lease, AckAsync) is written without one; the next
	// synced batch (or rotation, or Close) makes it durable.
	sync bool
}

// Ticket reports when one record is durable.
type Ticket struct {
	b   *batch
	err error // set if the record was refused outright
}

// Wait returns nil once the record is written and synced, the write error
// if its batch failed, or ctx's error if ctx ends first (the record may
// still become durable).
func (t Ticket) Wait(ctx context.Context) error {
	if t.b == nil {
		return t.err
	}
	select {
	case <-t.b.done:
		return t.b.err
	default:
	}
	select {
	case <-t.b.done:
		return t.b.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// SameBatch reports whether t and o were written by the same batch (a
// refused record is in no batch). A caller tracking many records keeps
// one ticket per batch to learn every batch's outcome.
func (t Ticket) SameBatch(o Ticket) bool { return t.b == o.b }

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Done is closed when Wait would return without blocking.
func (t Ticket) Done() <-chan struct{} {
	if t.b == nil {
		return closedChan
	}
	return t.b.done
}

// Recovered returns what Open found. The caller may keep or modify it; the
// store does not look at it again.
func (s *Store) Recovered() *Recovered { return s.rec }

// Close writes and syncs everything enqueued, stops the writer goroutine
// and releases the directory lock. Records enqueued after Close get
// ErrClosed. Close is idempotent and returns the same error every time.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.quit)
		<-s.writerDone
		s.closeErr = s.w.close(s.opts.NoSync)
		if err := unlockDir(s.lock); s.closeErr == nil {
			s.closeErr = err
		}
	})
	return s.closeErr
}

// Compact copies live messages forward and reclaims segments until the
// log is within Options' compaction thresholds. The writer goroutine does
// the same in the background between batches; Compact is for operators
// and tests that want it done now.
func (s *Store) Compact(ctx context.Context) error {
	req := make(chan error, 1)
	select {
	case s.compactReq <- req:
	case <-s.quit:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stats reports the named mailbox's durable state.
func (s *Store) Stats(mailbox string) MailboxStats {
	s.idx.Lock()
	defer s.idx.Unlock()
	mb := s.st.mbs[mailbox]
	if mb == nil {
		return MailboxStats{}
	}
	ms := MailboxStats{Defined: mb.defined, Messages: len(mb.msgs), Leased: mb.leased, Bytes: mb.bytes, NextSeq: max(mb.nextSeq, 1)}
	for _, e := range mb.msgs {
		if ms.OldestSentUnixNano == 0 || e.sent < ms.OldestSentUnixNano {
			ms.OldestSentUnixNano = e.sent
		}
	}
	return ms
}

// DiskStats reports on the log as a whole.
func (s *Store) DiskStats() DiskStats {
	s.idx.Lock()
	ds := DiskStats{Segments: len(s.st.segs)}
	for _, si := range s.st.segs {
		ds.Bytes += si.size
		ds.LiveBytes += si.live
	}
	s.idx.Unlock()
	s.mu.Lock()
	ds.Failed = s.failed
	s.mu.Unlock()
	ds.Fsyncs, ds.Records, ds.Batches = s.fsyncs.Load(), s.records.Load(), s.batches.Load()
	ds.ReclaimedSegments, ds.CopiedRecords = s.reclaimed.Load(), s.copied.Load()
	return ds
}
