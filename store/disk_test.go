package store_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/postbox-ipc/postbox/store"
)

// mountTmpfs mounts a small tmpfs for the test, or skips if not permitted.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount tmpfs (needs root/CAP_SYS_ADMIN): %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

func TestDiskFullFailsTheBatchKeepsAcknowledgedDataAndRecovers(t *testing.T) {
	t.Parallel() // its own tmpfs, mounted on its own temp dir
	mnt := mountTmpfs(t, "1m")
	dir := filepath.Join(mnt, "data")
	o := testOptions(dir, nil)
	o.NoSync = false
	o.SegmentSize = 128 << 10
	s := mustOpen(t, o)
	wait(t, s.PutMailbox(def("q")))

	// Leave little room, then write until the disk is full.
	filler := filepath.Join(mnt, "filler")
	if err := os.WriteFile(filler, make([]byte, 700<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	var acked []uint64
	var full error
	seq := uint64(1)
	for ; seq < 10000; seq++ {
		err := s.Append(msg("q", seq, 0, body(seq, 1000))).Wait(context.Background())
		if err != nil {
			full = err
			break
		}
		acked = append(acked, seq)
	}
	if !errors.Is(full, store.ErrDiskFull) || !errors.Is(full, syscall.ENOSPC) {
		t.Fatalf("write on a full disk = %v, want ErrDiskFull wrapping ENOSPC", full)
	}
	if len(acked) == 0 {
		t.Fatal("nothing fit before the disk filled")
	}
	// Still full: still failing, still not failed for good.
	if err := s.Append(msg("q", seq, 0, body(seq, 1000))).Wait(context.Background()); !errors.Is(err, store.ErrDiskFull) {
		t.Fatalf("second write = %v", err)
	}
	if ds := s.DiskStats(); ds.Failed != nil {
		t.Fatalf("store gave up on ENOSPC: %v", ds.Failed)
	}

	// Space frees: writes work again, including ones that need a new segment.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		seq++
		if err := s.Append(msg("q", seq, 0, body(seq, 1000))).Wait(context.Background()); err != nil {
			t.Fatalf("write %d after space freed: %v", i, err)
		}
		acked = append(acked, seq)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, o)
	defer s.Close()
	r := s.Recovered()
	got := map[uint64]bool{}
	for _, m := range r.Messages["q"] {
		if string(m.Body) != body(m.Seq, 1000) {
			t.Fatalf("seq %d damaged", m.Seq)
		}
		got[m.Seq] = true
	}
	for _, a := range acked {
		if !got[a] {
			t.Fatalf("acknowledged seq %d lost", a)
		}
	}
	if len(got) != len(acked) || len(r.Corrupt) != 0 || r.DroppedBytes != 0 {
		t.Fatalf("recovered %d messages (want %d), corrupt %v, dropped %d: a failed batch left garbage",
			len(got), len(acked), r.Corrupt, r.DroppedBytes)
	}
}

func TestReadOnlyDirectory(t *testing.T) {
	mnt := mountTmpfs(t, "1m")
	dir := filepath.Join(mnt, "data")
	s := mustOpen(t, testOptions(dir, nil))
	wait(t, s.PutMailbox(def("q")))
	wait(t, s.Append(msg("q", 1, 0, "kept")))
	s.Close()

	if out, err := exec.Command("mount", "-o", "remount,ro", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot remount read-only: %v: %s", err, out)
	}
	_, err := store.Open(testOptions(dir, nil))
	if !errors.Is(err, store.ErrReadOnly) || !errors.Is(err, syscall.EROFS) {
		t.Fatalf("Open on a read-only file system = %v, want ErrReadOnly wrapping EROFS", err)
	}
	if out, err := exec.Command("mount", "-o", "remount,rw", mnt).CombinedOutput(); err != nil {
		t.Fatalf("remount rw: %v: %s", err, out)
	}
	s = mustOpen(t, testOptions(dir, nil))
	defer s.Close()
	if got := seqs(s.Recovered(), "q"); len(got) != 1 {
		t.Fatalf("after remount: %v", got)
	}
}
