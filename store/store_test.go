package store_test

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox/store"
	"go.uber.org/goleak"
)

func TestRoundTripThroughCloseAndOpen(t *testing.T) {
	dir := t.TempDir()
	o := testOptions(dir, nil)
	o.NoSync = false // one test with real fsyncs
	s := mustOpen(t, o)
	d := def("jobs")
	d.TTL, d.MaxDeliveries, d.DeadLetter, d.MaxBytes = time.Minute, 3, "jobs.dead", 1<<20
	wait(t, s.PutMailbox(d))
	wait(t, s.PutMailbox(def("jobs.dead")))
	m := msg("jobs", 1, 5, "hello")
	m.DeadReason = "none yet"
	tk := s.Append(m)
	m.Body[0] = 'J' // the store copied it
	wait(t, tk)
	wait(t, s.Append(msg("jobs", 2, 0, "")))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := s.Append(msg("jobs", 3, 0, "late")).Wait(context.Background()); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Append after Close: %v, want ErrClosed", err)
	}

	s = mustOpen(t, o)
	defer s.Close()
	r := s.Recovered()
	if len(r.Mailboxes) != 2 || !reflect.DeepEqual(r.Mailboxes[0], d) || !reflect.DeepEqual(r.Mailboxes[1], def("jobs.dead")) {
		t.Fatalf("mailboxes = %+v", r.Mailboxes)
	}
	got := r.Messages["jobs"]
	want := *msg("jobs", 1, 5, "hello")
	want.DeadReason = "none yet"
	if len(got) != 2 || got[0].Seq != 1 || !bytes.Equal(got[0].Body, want.Body) {
		t.Fatalf("messages = %+v", got)
	}
	got[0].Body, want.Body = nil, nil
	if got[0].Mailbox != want.Mailbox || got[0].SentUnixNano != want.SentUnixNano || got[0].SenderPID != 42 ||
		got[0].Type != want.Type || got[0].DeadReason != "none yet" || got[0].SenderEndpoint != 9 {
		t.Fatalf("message = %+v, want %+v", got[0], want)
	}
	if r.NextSeq["jobs"] != 3 || r.NextSeq["jobs.dead"] != 1 {
		t.Fatalf("NextSeq = %v", r.NextSeq)
	}
	if r.DroppedBytes != 0 || len(r.Corrupt) != 0 {
		t.Fatalf("clean log reported damage: %+v", r)
	}
}

func TestRecoveryOrderIsPriorityDescThenSeqAsc(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, testOptions(dir, nil))
	wait(t, s.PutMailbox(def("q")))
	prios := []uint8{0, 3, 0, 9, 3, 0, 9}
	var last store.Ticket
	for i, p := range prios {
		last = s.Append(msg("q", uint64(i+1), p, "m"))
	}
	wait(t, last)
	s.Close()
	s = mustOpen(t, testOptions(dir, nil))
	defer s.Close()
	if got, want := seqs(s.Recovered(), "q"), []uint64{4, 7, 2, 5, 1, 3, 6}; !slices.Equal(got, want) {
		t.Fatalf("order = %v, want %v", got, want)
	}
}

func TestNextSeqSurvivesAckingEverything(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, testOptions(dir, nil))
	wait(t, s.PutMailbox(def("q")))
	for i := uint64(1); i <= 10; i++ {
		s.Append(msg("q", i, 0, "m"))
	}
	var last store.Ticket
	for i := uint64(1); i <= 10; i++ {
		last = s.Ack("q", i)
	}
	wait(t, last)
	s.Close()
	for range 2 { // NextSeq must also survive a restart that writes nothing
		s = mustOpen(t, testOptions(dir, nil))
		r := s.Recovered()
		if len(r.Messages["q"]) != 0 || r.NextSeq["q"] != 11 {
			t.Fatalf("messages %v NextSeq %d, want none and 11", seqs(r, "q"), r.NextSeq["q"])
		}
		s.Close()
	}
}

func TestLeasedAtCrashComeBackWithOneMoreRedelivery(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, testOptions(dir, nil))
	wait(t, s.PutMailbox(def("q")))
	for i := uint64(1); i <= 4; i++ {
		s.Append(msg("q", i, 0, "m"))
	}
	s.Lease("q", 1)
	s.Lease("q", 2)
	s.Return("q", 2, 5) // returned: not leased, count 5
	s.Lease("q", 3)
	wait(t, s.Return("q", 4, 2))
	s.Close()

	want := map[uint64]uint32{1: 1, 2: 5, 3: 1, 4: 2}
	for round := range 2 {
		s = mustOpen(t, testOptions(dir, nil))
		got := map[uint64]uint32{}
		for _, m := range s.Recovered().Messages["q"] {
			got[m.Seq] = m.Redeliveries
		}
		for seq, n := range want {
			if got[seq] != n {
				t.Fatalf("round %d: redeliveries = %v, want %v", round, got, want)
			}
		}
		if st := s.Stats("q"); st.Leased != 0 || st.Messages != 4 {
			t.Fatalf("stats after recovery = %+v", st)
		}
		s.Close()
		// The increment was made durable by Open, so a second restart
		// without new leases changes nothing.
	}
}

func TestDeadLetterMovesMessageAtomically(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, testOptions(dir, nil))
	wait(t, s.PutMailbox(def("q")))
	wait(t, s.PutMailbox(def("dlq")))
	s.Append(msg("q", 1, 2, "poison"))
	s.Append(msg("q", 2, 0, "fine"))
	s.Lease("q", 1)
	wait(t, s.DeadLetter("q", 1, "dlq", 7, "max deliveries"))
	s.Close()
	s = mustOpen(t, testOptions(dir, nil))
	defer s.Close()
	r := s.Recovered()
	if got := seqs(r, "q"); !slices.Equal(got, []uint64{2}) {
		t.Fatalf("q = %v", got)
	}
	d := r.Messages["dlq"]
	if len(d) != 1 || d[0].Seq != 7 || d[0].Mailbox != "dlq" || d[0].DeadReason != "max deliveries" || string(d[0].Body) != "poison" || d[0].Redeliveries != 0 {
		t.Fatalf("dlq = %+v", d)
	}
	if r.NextSeq["dlq"] != 8 {
		t.Fatalf("NextSeq[dlq] = %d", r.NextSeq["dlq"])
	}
}

func TestDeleteMailboxDropsItsMessages(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, testOptions(dir, nil))
	wait(t, s.PutMailbox(def("a")))
	wait(t, s.PutMailbox(def("b")))
	s.Append(msg("a", 1, 0, "x"))
	s.Append(msg("b", 1, 0, "y"))
	wait(t, s.DeleteMailbox("a"))
	if st := s.Stats("a"); st.Defined || st.Messages != 0 {
		t.Fatalf("stats of deleted mailbox = %+v", st)
	}
	chmod := def("b")
	chmod.Mode = 0o600
	wait(t, s.PutMailbox(chmod))
	s.Close()
	s = mustOpen(t, testOptions(dir, nil))
	defer s.Close()
	r := s.Recovered()
	if len(r.Mailboxes) != 1 || r.Mailboxes[0].Mode != 0o600 || len(r.Messages["a"]) != 0 || len(r.Messages["b"]) != 1 {
		t.Fatalf("recovered = %+v", r)
	}
}

func TestStatsCountLiveRecords(t *testing.T) {
	s := mustOpen(t, testOptions(t.TempDir(), nil))
	defer s.Close()
	wait(t, s.PutMailbox(def("q")))
	s.Append(msg("q", 1, 0, "aaaa"))
	s.Append(msg("q", 2, 0, "bbbb"))
	s.Lease("q", 2)
	wait(t, s.Ack("q", 1))
	st := s.Stats("q")
	if !st.Defined || st.Messages != 1 || st.Leased != 1 || st.Bytes <= 4 || st.OldestSentUnixNano != 1_000_002 || st.NextSeq != 3 {
		t.Fatalf("Stats = %+v", st)
	}
	ds := s.DiskStats()
	if ds.Segments != 1 || ds.Records != 5 || ds.Batches == 0 || ds.LiveBytes != st.Bytes || ds.Failed != nil {
		t.Fatalf("DiskStats = %+v", ds)
	}
}

func TestConcurrentWritersKeepPerGoroutineOrder(t *testing.T) {
	dir := t.TempDir()
	o := testOptions(dir, nil)
	o.SegmentSize = 16 << 10 // rotate often while writers race
	s := mustOpen(t, o)
	const writers, each = 32, 200
	for w := range writers {
		wait(t, s.PutMailbox(def(mbName(w))))
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			name := mbName(w)
			for i := uint64(1); i <= each; i++ {
				s.Append(msg(name, i, 0, "payload"))
				// Ack the previous one without waiting: it must land
				// after its Append because both come from this goroutine.
				if i%2 == 0 {
					s.Ack(name, i-1)
				}
				if i%50 == 0 {
					if err := s.Ack(name, i).Wait(context.Background()); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, o)
	defer s.Close()
	r := s.Recovered()
	for w := range writers {
		var want []uint64
		for i := uint64(2); i <= each; i += 2 {
			if i%50 != 0 {
				want = append(want, i)
			}
		}
		if got := seqs(r, mbName(w)); !slices.Equal(got, want) {
			t.Fatalf("%s = %v, want %v", mbName(w), got, want)
		}
	}
	if ds := s.DiskStats(); ds.Bytes > 2*ds.LiveBytes+5*o.SegmentSize {
		t.Errorf("%d bytes on disk in %d segments for %d live bytes", ds.Bytes, ds.Segments, ds.LiveBytes)
	}
}

func mbName(i int) string { return "mb-" + string(rune('a'+i%26)) + string(rune('a'+i/26)) }

// TestCloseStopsTheWriterGoroutine must not run in parallel: goleak sees
// every goroutine in the process, not only this test's.
func TestCloseStopsTheWriterGoroutine(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	for range 5 {
		s := mustOpen(t, testOptions(t.TempDir(), nil))
		s.PutMailbox(def("q"))
		s.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	err := goleak.Find(ignore)
	for err != nil && time.Now().Before(deadline) {
		err = goleak.Find(ignore)
	}
	if err != nil {
		t.Fatalf("goroutines alive after Close: %v", err)
	}
}

func TestTicketWaitHonoursContext(t *testing.T) {
	s := mustOpen(t, testOptions(t.TempDir(), nil))
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	tk := s.PutMailbox(def("q"))
	if err := tk.Wait(ctx); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait = %v", err)
	}
	<-tk.Done()
	if err := tk.Wait(ctx); err != nil {
		t.Fatalf("Wait after Done = %v", err)
	}
}

func TestOptionsValidateNamesTheField(t *testing.T) {
	o := store.DefaultOptions(t.TempDir())
	o.SegmentSize = 10
	if _, err := store.Open(o); !errors.Is(err, store.ErrInvalidOptions) || !bytes.Contains([]byte(err.Error()), []byte("SegmentSize")) {
		t.Fatalf("Open = %v", err)
	}
}
