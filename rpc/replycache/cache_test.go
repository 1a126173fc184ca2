package replycache

import (
	"errors"
	"slices"
	"testing"

	"github.com/postbox-ipc/postbox/rpc/envelope"
)

// The rules of the package comment, one test each. Replies are strings
// (their size is their length), waiters are ints.

type testCache = Cache[string, int]

func newCache(t *testing.T, cfg Config) *testCache {
	t.Helper()
	c, err := New[string, int](cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var sessA, sessB = [16]byte{0: 0xa}, [16]byte{0: 0xb}

func id(s [16]byte, seq uint64) envelope.ID { return envelope.NewID(s, seq) }

var sum1, sum2 = Sum("Echo", []byte("one")), Sum("Echo", []byte("two"))

func begin(t *testing.T, c *testCache, i envelope.ID, acked uint64, now int64, want Verdict) string {
	t.Helper()
	v, r := c.Begin(i, sum1, acked, 0, now)
	if v != want {
		t.Fatalf("Begin(%v, acked %d) = %v, want %v", i, acked, v, want)
	}
	return r
}

func finish(t *testing.T, c *testCache, i envelope.ID, reply string, now int64) {
	t.Helper()
	if ws := c.Finish(i, reply, int64(len(reply)), now); len(ws) != 0 {
		t.Fatalf("Finish(%v) returned waiters %v", i, ws)
	}
}

func wantStats(t *testing.T, c *testCache, want Stats) {
	t.Helper()
	if got := c.Stats(); got != want {
		t.Fatalf("stats %+v, want %+v", got, want)
	}
}

func TestNewRequestRuns(t *testing.T) {
	c := newCache(t, Config{})
	begin(t, c, id(sessA, 1), 0, 0, Run)
	if cached, running := c.Lookup(id(sessA, 1)); !cached || !running {
		t.Fatalf("lookup = %v, %v", cached, running)
	}
	wantStats(t, c, Stats{Running: 1, Sessions: 1, Bytes: EntryOverhead + SessionOverhead})
}

func TestDuplicateOfDoneGetsCachedReplyWithoutRunning(t *testing.T) {
	c := newCache(t, Config{})
	begin(t, c, id(sessA, 1), 0, 0, Run)
	finish(t, c, id(sessA, 1), "reply", 1)
	if r := begin(t, c, id(sessA, 1), 0, 2, Replay); r != "reply" {
		t.Fatalf("replayed %q", r)
	}
	if r := begin(t, c, id(sessA, 1), 0, 3, Replay); r != "reply" {
		t.Fatalf("second replay %q", r)
	}
	wantStats(t, c, Stats{Done: 1, Sessions: 1, Bytes: EntryOverhead + SessionOverhead + 5})
}

func TestDuplicateOfRunningJoinsAndFinishHandsBackItsWaiters(t *testing.T) {
	c := newCache(t, Config{})
	c.Begin(id(sessA, 1), sum1, 0, 0, 0)
	for w := 1; w <= 3; w++ {
		if v, _ := c.Begin(id(sessA, 1), sum1, 0, w, 0); v != Join {
			t.Fatalf("duplicate %d: %v", w, v)
		}
	}
	if ws := c.Finish(id(sessA, 1), "r", 1, 1); !slices.Equal(ws, []int{1, 2, 3}) {
		t.Fatalf("waiters %v, want [1 2 3]", ws)
	}
	if ws := c.Finish(id(sessA, 1), "again", 5, 1); ws != nil {
		t.Fatalf("second Finish returned %v", ws)
	}
	begin(t, c, id(sessA, 1), 0, 2, Replay)
}

func TestReusedIDWithDifferentChecksumIsRejected(t *testing.T) {
	c := newCache(t, Config{})
	c.Begin(id(sessA, 1), sum1, 0, 0, 0)
	if v, _ := c.Begin(id(sessA, 1), sum2, 0, 0, 0); v != Mismatch {
		t.Fatalf("running: %v", v)
	}
	c.Finish(id(sessA, 1), "r", 1, 0)
	if v, _ := c.Begin(id(sessA, 1), sum2, 0, 0, 0); v != Mismatch {
		t.Fatalf("done: %v", v)
	}
	if Sum("Echo", []byte("ab")) == Sum("Echoa", []byte("b")) {
		t.Fatal("the checksum does not separate method from arguments")
	}
}

func TestAbortForgetsRunningEntryAndHandsBackWaiters(t *testing.T) {
	c := newCache(t, Config{})
	c.Begin(id(sessA, 1), sum1, 0, 0, 0)
	c.Begin(id(sessA, 1), sum1, 0, 7, 0)
	if ws := c.Abort(id(sessA, 1)); !slices.Equal(ws, []int{7}) {
		t.Fatalf("waiters %v", ws)
	}
	begin(t, c, id(sessA, 1), 0, 1, Run)
	c.Finish(id(sessA, 1), "r", 1, 1)
	if ws := c.Abort(id(sessA, 1)); ws != nil {
		t.Fatal("Abort of a done entry did something")
	}
	begin(t, c, id(sessA, 1), 0, 1, Replay)
}

func TestCumulativeAckReleasesDoneEntriesBelowIt(t *testing.T) {
	c := newCache(t, Config{})
	for seq := uint64(1); seq <= 4; seq++ {
		begin(t, c, id(sessA, seq), 0, 0, Run)
		finish(t, c, id(sessA, seq), "r", 0)
	}
	begin(t, c, id(sessB, 1), 0, 0, Run)
	finish(t, c, id(sessB, 1), "r", 0)
	begin(t, c, id(sessA, 5), 3, 0, Run) // seqs 1 and 2 acknowledged
	for seq, want := range map[uint64]bool{1: false, 2: false, 3: true, 4: true, 5: true} {
		if cached, _ := c.Lookup(id(sessA, seq)); cached != want {
			t.Errorf("seq %d cached = %v, want %v", seq, cached, want)
		}
	}
	if cached, _ := c.Lookup(id(sessB, 1)); !cached {
		t.Error("another session's entry was released")
	}
}

func TestAckBelowRunningEntryReleasesItWhenItFinishes(t *testing.T) {
	c := newCache(t, Config{})
	c.Begin(id(sessA, 1), sum1, 0, 0, 0)
	c.Ack(sessA, 2)
	if cached, running := c.Lookup(id(sessA, 1)); !cached || !running {
		t.Fatal("a running entry was released by an ack")
	}
	c.Finish(id(sessA, 1), "r", 1, 0)
	if cached, _ := c.Lookup(id(sessA, 1)); cached {
		t.Fatal("an acknowledged entry was kept after it finished")
	}
	wantStats(t, c, Stats{Sessions: 1, Bytes: SessionOverhead})
}

func TestLateDuplicateBelowWatermarkIsNotRun(t *testing.T) {
	c := newCache(t, Config{})
	begin(t, c, id(sessA, 1), 0, 0, Run)
	finish(t, c, id(sessA, 1), "r", 0)
	begin(t, c, id(sessA, 2), 2, 0, Run) // acknowledges 1: released
	begin(t, c, id(sessA, 1), 1, 0, Acknowledged)
	// A sequence never seen but below the watermark: its caller gave up.
	c.Ack(sessA, 10)
	begin(t, c, id(sessA, 7), 0, 0, Acknowledged)
}

func TestRetentionReleasesDoneEntries(t *testing.T) {
	c := newCache(t, Config{Retention: 100})
	begin(t, c, id(sessA, 1), 0, 0, Run)
	finish(t, c, id(sessA, 1), "r", 10)
	begin(t, c, id(sessA, 2), 0, 50, Run)
	c.Expire(109)
	if cached, _ := c.Lookup(id(sessA, 1)); !cached {
		t.Fatal("released before its retention passed")
	}
	c.Expire(110)
	if cached, _ := c.Lookup(id(sessA, 1)); cached {
		t.Fatal("kept past its retention")
	}
	c.Expire(1 << 40)
	if cached, running := c.Lookup(id(sessA, 2)); !cached || !running {
		t.Fatal("retention released a running entry")
	}
}

func TestIdleSessionIsForgottenAfterRetention(t *testing.T) {
	c := newCache(t, Config{Retention: 100})
	begin(t, c, id(sessA, 1), 0, 0, Run)
	finish(t, c, id(sessA, 1), "r", 0)
	c.Ack(sessA, 2)
	c.Expire(99)
	begin(t, c, id(sessA, 1), 0, 99, Acknowledged)
	c.Expire(100)
	wantStats(t, c, Stats{})
	begin(t, c, id(sessA, 1), 0, 100, Run) // the watermark is gone with the session
}

func TestTimeNeverGoesBack(t *testing.T) {
	c := newCache(t, Config{Retention: 100})
	begin(t, c, id(sessA, 1), 0, 1000, Run)
	finish(t, c, id(sessA, 1), "r", 5) // counts as 1000
	c.Expire(1099)
	if cached, _ := c.Lookup(id(sessA, 1)); !cached {
		t.Fatal("an earlier time moved the clock back")
	}
}

func TestEntryBoundEvictsOldestDoneFirst(t *testing.T) {
	c := newCache(t, Config{MaxEntries: 3})
	for seq := uint64(1); seq <= 3; seq++ {
		begin(t, c, id(sessA, seq), 0, 0, Run)
		finish(t, c, id(sessA, seq), "r", int64(seq))
	}
	begin(t, c, id(sessA, 4), 0, 5, Run)
	if cached, _ := c.Lookup(id(sessA, 1)); cached {
		t.Fatal("oldest done entry kept")
	}
	for seq := uint64(2); seq <= 4; seq++ {
		if cached, _ := c.Lookup(id(sessA, seq)); !cached {
			t.Fatalf("seq %d evicted", seq)
		}
	}
	// Its record stays: a duplicate learns it ran, and is not run again.
	begin(t, c, id(sessA, 1), 0, 6, Evicted)
	wantStats(t, c, Stats{Running: 1, Done: 2, Sessions: 1, Bytes: 3*EntryOverhead + SessionOverhead + 2, Evicted: 1})
}

// TestEvictedRecordsAreBoundedAndExpire: a done entry evicted for room
// (the entry bound, or the byte bound once no reply is left to drop)
// leaves a record of its id and checksum, outside MaxBytes; the records
// are bounded by MaxEvicted, the oldest going first, and go after the
// retention. A duplicate of a recorded id is Evicted (Mismatch with
// other arguments); once the record is gone it runs again.
func TestEvictedRecordsAreBoundedAndExpire(t *testing.T) {
	c := newCache(t, Config{MaxEntries: 1, MaxEvicted: 2, Retention: 1000})
	for seq := uint64(1); seq <= 3; seq++ {
		begin(t, c, id(sessA, seq), 0, int64(seq), Run)
		finish(t, c, id(sessA, seq), "r", int64(seq))
	}
	begin(t, c, id(sessB, 1), 0, 4, Run) // evicts A3; A1's record went first (bound 2)
	wantStats(t, c, Stats{Running: 1, Sessions: 2, Bytes: EntryOverhead + 2*SessionOverhead, Evicted: 2})
	begin(t, c, id(sessA, 2), 0, 4, Evicted)
	if v, _ := c.Begin(id(sessA, 3), sum2, 0, 0, 4); v != Mismatch {
		t.Fatalf("evicted id with other arguments: %v, want mismatch", v)
	}
	finish(t, c, id(sessB, 1), "r", 5)
	begin(t, c, id(sessA, 1), 0, 6, Run)  // no record: runs again (evicting B1, dropping A2's record)
	begin(t, c, id(sessA, 2), 0, 6, Busy) // no record either, and no room
	c.Expire(1003)                        // A3's record (finished at 3) goes, B1's (5) stays
	wantStats(t, c, Stats{Running: 1, Sessions: 2, Bytes: EntryOverhead + 2*SessionOverhead, Evicted: 1})
	c.Expire(1005)
	wantStats(t, c, Stats{Running: 1, Sessions: 2, Bytes: EntryOverhead + 2*SessionOverhead, Evicted: 0})

	b := newCache(t, Config{MaxBytes: SessionOverhead + EntryOverhead})
	begin(t, b, id(sessA, 1), 0, 0, Run)
	finish(t, b, id(sessA, 1), "", 0)
	begin(t, b, id(sessA, 2), 0, 0, Run) // the byte bound evicts A1
	begin(t, b, id(sessA, 1), 0, 0, Evicted)
	if got := b.Config().MaxEvicted; got != EvictedPerEntry*DefaultMaxEntries {
		t.Fatalf("default MaxEvicted %d", got)
	}
}

func TestRunningEntryIsNeverEvicted(t *testing.T) {
	c := newCache(t, Config{MaxEntries: 2})
	begin(t, c, id(sessA, 1), 0, 0, Run)
	begin(t, c, id(sessA, 2), 0, 0, Run)
	begin(t, c, id(sessA, 3), 0, 0, Busy)
	c.Finish(id(sessA, 1), "r", 1, 0)
	begin(t, c, id(sessA, 3), 0, 0, Run)
	wantStats(t, c, Stats{Running: 2, Sessions: 1, Bytes: 2*EntryOverhead + SessionOverhead, Evicted: 1})
}

func TestByteBoundDropsOldestReplyAndKeepsTombstone(t *testing.T) {
	base := int64(SessionOverhead + 3*EntryOverhead)
	c := newCache(t, Config{MaxBytes: base + 25})
	for seq := uint64(1); seq <= 3; seq++ {
		begin(t, c, id(sessA, seq), 0, 0, Run)
		finish(t, c, id(sessA, seq), "0123456789", 0)
	}
	wantStats(t, c, Stats{Done: 3, Tombstones: 1, Sessions: 1, Bytes: base + 20})
	begin(t, c, id(sessA, 1), 0, 0, Evicted)
	begin(t, c, id(sessA, 2), 0, 0, Replay)
}

func TestReplyLargerThanBoundIsKeptAsTombstone(t *testing.T) {
	c := newCache(t, Config{MaxBytes: SessionOverhead + EntryOverhead + 4})
	begin(t, c, id(sessA, 1), 0, 0, Run)
	finish(t, c, id(sessA, 1), "too large", 0)
	begin(t, c, id(sessA, 1), 0, 0, Evicted)
	wantStats(t, c, Stats{Done: 1, Tombstones: 1, Sessions: 1, Bytes: SessionOverhead + EntryOverhead})
}

func TestByteBoundForgetsIdleSessionsBeforeEntries(t *testing.T) {
	c := newCache(t, Config{MaxBytes: 2*SessionOverhead + 2*EntryOverhead - 1})
	begin(t, c, id(sessA, 1), 0, 0, Run)
	finish(t, c, id(sessA, 1), "", 0)
	c.Ack(sessA, 2) // sessA idle, holding only its watermark
	begin(t, c, id(sessB, 1), 0, 0, Run)
	finish(t, c, id(sessB, 1), "", 0)
	// sessB 2 needs the room sessA holds. (B1's reply is dropped first,
	// which frees nothing here: its size is 0.)
	begin(t, c, id(sessB, 2), 0, 0, Run)
	wantStats(t, c, Stats{Running: 1, Done: 1, Tombstones: 1, Sessions: 1, Bytes: SessionOverhead + 2*EntryOverhead})
	begin(t, c, id(sessB, 1), 0, 0, Evicted)
}

func TestBoundsAreNeverExceeded(t *testing.T) {
	cfg := Config{MaxEntries: 8, MaxBytes: 4 * (EntryOverhead + SessionOverhead)}
	c := newCache(t, cfg)
	for seq := uint64(1); seq <= 200; seq++ {
		s := [16]byte{byte(seq % 5)}
		c.Begin(id(s, seq), sum1, 0, 0, int64(seq))
		c.Finish(id(s, seq), "some reply bytes", 16, int64(seq))
		st := c.Stats()
		if st.Bytes > cfg.MaxBytes || st.Running+st.Done > cfg.MaxEntries {
			t.Fatalf("after %d: %+v", seq, st)
		}
	}
}

func TestConfigValidateNamesBadField(t *testing.T) {
	for _, cfg := range []Config{{MaxEntries: -1}, {MaxBytes: -1}, {MaxBytes: 10}, {Retention: -1}, {MaxEvicted: -1}} {
		_, err := New[string, int](cfg)
		if !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: %v", cfg, err)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestRoomSparesTheEntryItsCallerStillWaitsFor: the session's later
// request said (rpc-acked) that seq 1 is the lowest it has no reply for:
// when room is needed, a younger done entry goes first, and seq 1's retry
// still gets its reply. With nothing else to give up, it goes too.
func TestRoomSparesTheEntryItsCallerStillWaitsFor(t *testing.T) {
	c := newCache(t, Config{MaxEntries: 2})
	begin(t, c, id(sessA, 1), 1, 0, Run)
	begin(t, c, id(sessA, 2), 1, 0, Run) // seq 1 still waits
	finish(t, c, id(sessA, 1), "one", 1)
	finish(t, c, id(sessA, 2), "two", 2)
	begin(t, c, id(sessB, 1), 1, 3, Run) // evicts A2, not the older A1
	if r := begin(t, c, id(sessA, 1), 1, 4, Replay); r != "one" {
		t.Fatalf("replayed %q", r)
	}
	begin(t, c, id(sessA, 2), 1, 4, Evicted)
	begin(t, c, id(sessB, 2), 1, 5, Run) // B1 runs: only A1 is done
	begin(t, c, id(sessA, 1), 1, 6, Evicted)
}
