package store_test

import (
	"context"
	"testing"
)

// An urgent message stays urgent (Append flag bit 4) after a restart,
// after compaction copies it forward, and after a dead-letter move.
func TestUrgentSurvivesRestartCompactionAndDeadLetterMove(t *testing.T) {
	dir := t.TempDir()
	o := testOptions(dir, nil)
	o.SegmentSize = 8 << 10
	s := mustOpen(t, o)
	wait(t, s.PutMailbox(def("q")))
	wait(t, s.PutMailbox(def("dlq")))
	urgent := func(seq uint64) bool { return seq%200 == 0 }
	const n = 600
	for seq := uint64(1); seq <= n; seq++ {
		m := msg("q", seq, 0, body(seq, 200))
		m.Urgent = urgent(seq)
		s.Append(m)
		if seq%100 != 0 {
			s.Ack("q", seq)
		}
	}
	wait(t, s.DeadLetter("q", 200, "dlq", 1, "max deliveries reached"))
	if err := s.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s.DiskStats().CopiedRecords == 0 {
		t.Fatal("compaction copied nothing forward: the test does not test it")
	}
	s.Close()

	s = mustOpen(t, o)
	defer s.Close()
	r := s.Recovered()
	got := r.Messages["q"]
	if len(got) != n/100-1 {
		t.Fatalf("recovered %d in q", len(got))
	}
	for _, m := range got {
		if m.Urgent != urgent(m.Seq) {
			t.Fatalf("message %d: urgent %v", m.Seq, m.Urgent)
		}
	}
	if d := r.Messages["dlq"]; len(d) != 1 || !d[0].Urgent {
		t.Fatalf("dlq %+v", d)
	}
}
