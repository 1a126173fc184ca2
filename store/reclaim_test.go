package store_test

import (
	"context"
	"testing"

	"github.com/postbox-ipc/postbox/store"
)

func TestSegmentsAreReclaimedOnceEverythingIsAcked(t *testing.T) {
	dir := t.TempDir()
	o := testOptions(dir, nil)
	o.SegmentSize = 8 << 10
	s := mustOpen(t, o)
	defer s.Close()
	wait(t, s.PutMailbox(def("q")))
	for seq := uint64(1); seq <= 500; seq++ {
		wait(t, s.Append(msg("q", seq, 0, body(seq, 200)))) // one batch each: ~16 segments
	}
	var last store.Ticket
	for seq := uint64(1); seq <= 500; seq++ {
		last = s.Ack("q", seq)
	}
	wait(t, last)
	// Reclamation runs after each batch; the Ack batch that emptied the
	// last old segment reclaimed everything but the active one.
	ds := s.DiskStats()
	if files := segmentFiles(t, dir); len(files) != 1 || ds.Segments != 1 || ds.ReclaimedSegments < 10 || ds.LiveBytes != 0 {
		t.Fatalf("files %v, stats %+v", files, ds)
	}
}

func TestCompactionBoundsWhatRecoveryReads(t *testing.T) {
	t.Parallel() // its own temp dir
	dir := t.TempDir()
	o := testOptions(dir, nil)
	o.SegmentSize = 8 << 10
	s := mustOpen(t, o)
	wait(t, s.PutMailbox(def("q")))
	const n = 4000
	var last store.Ticket
	for seq := uint64(1); seq <= n; seq++ {
		s.Append(msg("q", seq, 0, body(seq, 200)))
		// Keep one message in 100 forever: it pins every segment unless
		// compaction copies it forward.
		if seq%100 != 0 {
			last = s.Ack("q", seq)
		}
	}
	wait(t, last)
	if err := s.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	copied := s.DiskStats().CopiedRecords
	s.Close()
	s = mustOpen(t, o)
	defer s.Close()
	r := s.Recovered()
	if len(r.Messages["q"]) != n/100 || copied == 0 {
		t.Fatalf("recovered %d, want %d", len(r.Messages["q"]), n/100)
	}
	ds := s.DiskStats()
	// Live data is 40 records of ~260 bytes: about 2 segments. Without
	// compaction the log would be ~270 segments.
	if files := segmentFiles(t, dir); len(files) > 8 || ds.Bytes > 2*ds.LiveBytes+5*o.SegmentSize {
		t.Fatalf("%d segments, %d bytes on disk for %d live bytes; copied %d", len(files), ds.Bytes, ds.LiveBytes, ds.CopiedRecords)
	}
}
