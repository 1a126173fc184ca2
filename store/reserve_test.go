package store_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox/store"
)

// TestFullDiskStillRecordsAcksAndRecoversWhenTheyFreeSpace: when the disk
// fills, new messages are refused with ErrDiskFull, acks are still
// recorded (in the reserve's room), and once the acks free a segment new
// messages are accepted again, with nothing acknowledged lost.
func TestFullDiskStillRecordsAcksAndRecoversWhenTheyFreeSpace(t *testing.T) {
	t.Parallel() // its own tmpfs, mounted on its own temp dir
	mnt := mountTmpfs(t, "1m")
	o := testOptions(filepath.Join(mnt, "data"), nil)
	o.NoSync = false
	s := mustOpen(t, o)
	defer s.Close()
	wait(t, s.PutMailbox(def("q")))

	var acked []uint64
	seq := uint64(0)
	for {
		seq++
		err := s.Append(msg("q", seq, 0, body(seq, 4000))).Wait(context.Background())
		if err != nil {
			if !errors.Is(err, store.ErrDiskFull) {
				t.Fatalf("append on a full disk: %v, want ErrDiskFull", err)
			}
			break
		}
		acked = append(acked, seq)
		if seq > 10000 {
			t.Fatal("a 1 MiB file system never filled")
		}
	}
	if len(acked) < 10 {
		t.Fatalf("only %d messages fitted", len(acked))
	}
	// Still full: new messages refused at once, acks recorded.
	if err := s.Append(msg("q", seq+1, 0, "x")).Wait(context.Background()); !errors.Is(err, store.ErrDiskFull) {
		t.Fatalf("append while full: %v, want ErrDiskFull", err)
	}
	for _, a := range acked {
		if err := s.Ack("q", a).Wait(context.Background()); err != nil {
			t.Fatalf("ack of %d on a full disk: %v", a, err)
		}
	}
	// Everything acked: the space is back and so are appends.
	if err := s.Append(msg("q", seq+2, 0, "after")).Wait(context.Background()); err != nil {
		t.Fatalf("append after the acks freed space: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := mustOpen(t, o)
	defer s2.Close()
	got := s2.Recovered().Messages["q"]
	if len(got) != 1 || string(got[0].Body) != "after" {
		t.Fatalf("after reopen: %d messages, want only the one sent after the acks", len(got))
	}
}

// TestLazyRecordsCostNoFsyncOfTheirOwn: a Lease or AckAsync alone is
// written without an fdatasync; the next synced record, or Close, makes
// it durable.
func TestLazyRecordsCostNoFsyncOfTheirOwn(t *testing.T) {
	o := testOptions(t.TempDir(), nil)
	o.NoSync = false
	s := mustOpen(t, o)
	wait(t, s.PutMailbox(def("q")))
	wait(t, s.Append(msg("q", 1, 0, "a")))
	wait(t, s.Append(msg("q", 2, 0, "b")))
	before := s.DiskStats().Fsyncs
	wait(t, s.Lease("q", 1))
	wait(t, s.AckAsync("q", 2))
	if got := s.DiskStats().Fsyncs; got != before {
		t.Fatalf("lazy records cost %d fsyncs", got-before)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, o)
	defer s.Close()
	got := s.Recovered().Messages["q"]
	if len(got) != 1 || got[0].Seq != 1 || got[0].Redeliveries != 1 {
		t.Fatalf("after Close and Open: %+v, want only seq 1, returned from its lease (redeliveries 1)", got)
	}
}

// TestFullDiskWithAPinnedOldSegmentRecovers: one old message still live
// in the oldest segment must not keep the log from shrinking while the
// disk is full: compaction copies it forward (it is small beside what the
// segment frees) and new messages are accepted again once acks free room.
func TestFullDiskWithAPinnedOldSegmentRecovers(t *testing.T) {
	t.Parallel() // its own tmpfs, mounted on its own temp dir
	mnt := mountTmpfs(t, "2m")
	o := testOptions(filepath.Join(mnt, "data"), nil)
	o.NoSync = false
	o.SegmentSize = 64 << 10
	s := mustOpen(t, o)
	defer s.Close()
	wait(t, s.PutMailbox(def("keep")))
	wait(t, s.PutMailbox(def("q")))
	wait(t, s.Append(msg("keep", 1, 0, "pinned")))
	var acked []uint64
	for seq := uint64(1); ; seq++ {
		err := s.Append(msg("q", seq, 0, body(seq, 4000))).Wait(context.Background())
		if err != nil {
			if !errors.Is(err, store.ErrDiskFull) {
				t.Fatalf("append: %v", err)
			}
			break
		}
		acked = append(acked, seq)
		if seq > 100000 {
			t.Fatal("the file system never filled")
		}
	}
	for _, a := range acked {
		if err := s.Ack("q", a).Wait(context.Background()); err != nil {
			t.Fatalf("ack %d: %v", a, err)
		}
	}
	if err := s.Compact(context.Background()); err != nil {
		t.Fatalf("compact: %v", err)
	}
	if err := s.Append(msg("q", 1<<20, 0, "after")).Wait(context.Background()); err != nil {
		t.Fatalf("append after acking everything but one pinned message: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := mustOpen(t, o)
	defer s2.Close()
	r := s2.Recovered()
	if got := r.Messages["keep"]; len(got) != 1 || string(got[0].Body) != "pinned" {
		t.Fatalf("pinned message after reopen: %+v", got)
	}
	if got := r.Messages["q"]; len(got) != 1 || string(got[0].Body) != "after" {
		t.Fatalf("q after reopen: %d messages", len(got))
	}
}

// TestReserveIsRestoredByTheWriterNotTheSubmitter: once space is back, the
// first Append is accepted at once and the writer goroutine restores the
// reserve (a file write and an fdatasync) before writing it. The
// submitter never waits for that: Append is called under the caller's
// locks (a broker holds a mailbox's), where waiting for the disk stalls
// every client of that mailbox.
func TestReserveIsRestoredByTheWriterNotTheSubmitter(t *testing.T) {
	mnt := mountTmpfs(t, "1m")
	o := testOptions(filepath.Join(mnt, "data"), nil)
	o.NoSync = false
	s := mustOpen(t, o)
	defer s.Close()
	wait(t, s.PutMailbox(def("q")))

	filler := filepath.Join(mnt, "filler")
	fillFile(t, filler)
	if err := s.Append(msg("q", 1, 0, body(1, 4000))).Wait(context.Background()); !errors.Is(err, store.ErrDiskFull) {
		t.Fatalf("append on a full disk: %v, want ErrDiskFull", err)
	}
	if _, err := os.Stat(filepath.Join(o.Dir, "RESERVE")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("reserve after the disk filled: %v, want it spent", err)
	}

	// Whoever writes the reserve now blocks until released.
	entered, release := make(chan struct{}, 1), make(chan struct{})
	store.SetReserveHook(s, func() {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
	})
	defer store.SetReserveHook(s, nil)
	released := false
	unblock := func() {
		if !released {
			released = true
			close(release)
		}
	}
	defer unblock()
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}

	appended := make(chan store.Ticket, 1)
	go func() { appended <- s.Append(msg("q", 2, 0, "after")) }()
	var tk store.Ticket
	select {
	case tk = <-appended:
	case <-time.After(30 * time.Second):
		unblock()
		<-appended
		t.Fatal("Append waited for the reserve to be restored: the refill ran on the submitting goroutine")
	}
	select {
	case <-entered: // the writer restores the reserve before writing the record
	case <-time.After(30 * time.Second):
		t.Fatal("the writer never restored the reserve")
	}
	select {
	case <-tk.Done():
		t.Fatal("the record was written before the reserve was restored")
	default:
	}
	unblock()
	wait(t, tk)
	if _, err := os.Stat(filepath.Join(o.Dir, "RESERVE")); err != nil {
		t.Fatalf("reserve after space came back: %v", err)
	}
}

// fillFile writes path until the file system is full.
func fillFile(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling the disk: %v", err)
			}
			return
		}
	}
}
