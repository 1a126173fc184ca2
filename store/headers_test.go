package store_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/postbox-ipc/postbox/store"
)

// Headers and the sender's kind are stored with the message and come
// back byte for byte after a restart, after compaction copies the
// message forward, and after a dead-letter move.
func TestHeadersSurviveRestartCompactionAndDeadLetterMove(t *testing.T) {
	dir := t.TempDir()
	o := testOptions(dir, nil)
	o.SegmentSize = 8 << 10
	s := mustOpen(t, o)
	wait(t, s.PutMailbox(def("q")))
	wait(t, s.PutMailbox(def("dlq")))
	hdr := func(seq uint64) []byte { return []byte{2, 0, 3, 0, 'c', byte('0' + seq%10), 'x'} }
	const n = 600
	var last store.Ticket
	for seq := uint64(1); seq <= n; seq++ {
		m := msg("q", seq, 0, body(seq, 200))
		m.SenderKind = uint8(seq % 3)
		m.Headers = hdr(seq)
		s.Append(m)
		if seq%100 != 0 {
			last = s.Ack("q", seq)
		}
	}
	wait(t, last)
	wait(t, s.DeadLetter("q", 100, "dlq", 1, "max deliveries reached"))
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
	check := func(m store.Message, seq uint64) {
		t.Helper()
		if !bytes.Equal(m.Headers, hdr(seq)) || m.SenderKind != uint8(seq%3) || m.Body == nil {
			t.Fatalf("message %d: headers %q kind %d, want %q kind %d", seq, m.Headers, m.SenderKind, hdr(seq), seq%3)
		}
	}
	if len(r.Messages["q"]) != n/100-1 {
		t.Fatalf("recovered %d in q", len(r.Messages["q"]))
	}
	for i, m := range r.Messages["q"] {
		check(m, uint64(i+2)*100)
	}
	if d := r.Messages["dlq"]; len(d) != 1 || d[0].DeadReason != "max deliveries reached" {
		t.Fatalf("dlq %+v", d)
	} else {
		check(d[0], 100)
	}
}
