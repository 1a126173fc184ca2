package store_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postbox-ipc/postbox/store"
)

// recordEnd says where one Append record ended up on disk.
type recordEnd struct {
	file string
	end  int64
}

// writeWaited appends seqs 1..n to mailbox "q", waiting for each, and
// returns where each record ends (index seq-1). With NoSync a Wait still
// means the write(2) happened, so file sizes are exact.
func writeWaited(t *testing.T, o store.Options, n int, bodyLen int) []recordEnd {
	t.Helper()
	s := mustOpen(t, o)
	wait(t, s.PutMailbox(def("q")))
	ends := make([]recordEnd, n)
	for i := range n {
		seq := uint64(i + 1)
		wait(t, s.Append(msg("q", seq, 0, body(seq, bodyLen))))
		files := segmentFiles(t, o.Dir)
		f := files[len(files)-1]
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		ends[i] = recordEnd{filepath.Base(f), fi.Size()}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return ends
}

func checkBodies(t *testing.T, r *store.Recovered, bodyLen int) {
	t.Helper()
	for _, m := range r.Messages["q"] {
		if string(m.Body) != body(m.Seq, bodyLen) {
			t.Fatalf("seq %d delivered with damaged body %q", m.Seq, m.Body)
		}
	}
}

func TestTornTailAtEveryByteOffsetLosesOnlyTheTornRecord(t *testing.T) {
	t.Parallel() // its own temp dir
	const n, last, bodyLen = 20, 3, 24
	tmpl := filepath.Join(t.TempDir(), "tmpl")
	ends := writeWaited(t, testOptions(tmpl, nil), n, bodyLen)
	seg := ends[n-1].file
	if ends[n-1-last].file != seg {
		t.Fatal("last records span segments; raise SegmentSize")
	}
	for j := n - last; j < n; j++ { // record j (seq j+1) is torn
		start, end := ends[j-1].end, ends[j].end
		for cut := start; cut < end; cut++ {
			dir := filepath.Join(t.TempDir(), fmt.Sprint(cut))
			copyDir(t, tmpl, dir)
			if err := os.Truncate(filepath.Join(dir, seg), cut); err != nil {
				t.Fatal(err)
			}
			logs := new(logBuffer)
			s, err := store.Open(testOptions(dir, logs))
			if err != nil {
				t.Fatalf("cut at %d: Open: %v", cut, err)
			}
			r := s.Recovered()
			got := seqs(r, "q")
			if len(got) != j || (j > 0 && got[j-1] != uint64(j)) {
				t.Fatalf("cut at %d (record %d spans %d..%d): recovered %v", cut, j+1, start, end, got)
			}
			checkBodies(t, r, bodyLen)
			if r.DroppedBytes != cut-start || len(r.Corrupt) != 0 {
				t.Fatalf("cut at %d: DroppedBytes=%d Corrupt=%v, want %d and none", cut, r.DroppedBytes, r.Corrupt, cut-start)
			}
			if cut > start && !strings.Contains(logs.String(), "dropped_bytes="+fmt.Sprint(cut-start)) {
				t.Fatalf("cut at %d: no log line about the dropped bytes:\n%s", cut, logs)
			}
			// After the repair the log is clean: a second Open finds nothing to drop.
			s.Close()
			if cut%8 != 0 {
				os.RemoveAll(dir)
				continue
			}
			s = mustOpen(t, testOptions(dir, nil))
			if r := s.Recovered(); r.DroppedBytes != 0 || len(r.Corrupt) != 0 || len(r.Messages["q"]) != j {
				t.Fatalf("cut at %d: second Open found %+v", cut, r)
			}
			s.Close()
			os.RemoveAll(dir)
		}
	}
}

func flipBit(t *testing.T, path string, off int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= 0x10
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestBitFlipIsDetectedAndNeverDelivered(t *testing.T) {
	const n, bodyLen = 200, 100
	tmpl := filepath.Join(t.TempDir(), "tmpl")
	o := testOptions(tmpl, nil)
	o.SegmentSize = 4096
	ends := writeWaited(t, o, n, bodyLen)
	if ends[0].file == ends[n-1].file {
		t.Fatal("want several segments")
	}
	cases := []struct {
		name string
		seq  int // record whose body gets the flip
	}{
		{"sealed segment", 5},
		{"middle of last segment", n - 5},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			copyDir(t, tmpl, dir)
			e := ends[tc.seq-1]
			flipBit(t, filepath.Join(dir, e.file), e.end-10)
			logs := new(logBuffer)
			s := mustOpen(t, testOptions(dir, logs))
			r := s.Recovered()
			s.Close()
			if len(r.Corrupt) != 1 || r.Corrupt[0].Segment != e.file || r.DroppedBytes != 0 {
				t.Fatalf("Corrupt = %+v DroppedBytes = %d", r.Corrupt, r.DroppedBytes)
			}
			got := seqs(r, "q")
			if len(got) != n-1 {
				t.Fatalf("recovered %d messages, want all but the damaged one", len(got))
			}
			for _, seq := range got {
				if seq == uint64(tc.seq) {
					t.Fatalf("damaged seq %d was delivered", seq)
				}
			}
			checkBodies(t, r, bodyLen)
			if !strings.Contains(logs.String(), "corrupt") {
				t.Fatalf("no log line:\n%s", logs)
			}

			// The strict mode refuses instead.
			dir2 := t.TempDir()
			copyDir(t, tmpl, dir2)
			flipBit(t, filepath.Join(dir2, e.file), e.end-10)
			o := testOptions(dir2, nil)
			o.FailOnCorruption = true
			if _, err := store.Open(o); !errors.Is(err, store.ErrCorrupt) || !strings.Contains(err.Error(), e.file) {
				t.Fatalf("strict Open = %v", err)
			}
		})
	}

	// A flip in the very last record cannot be told from a torn write:
	// it is cut off as a torn tail (reported in DroppedBytes).
	t.Run("last record", func(t *testing.T) {
		dir := t.TempDir()
		copyDir(t, tmpl, dir)
		e := ends[n-1]
		flipBit(t, filepath.Join(dir, e.file), e.end-10)
		s := mustOpen(t, testOptions(dir, nil))
		r := s.Recovered()
		s.Close()
		if got := seqs(r, "q"); len(got) != n-1 || got[n-2] != n-1 || r.DroppedBytes != e.end-ends[n-2].end {
			t.Fatalf("recovered %d, DroppedBytes %d", len(got), r.DroppedBytes)
		}
	})
}

func TestInterruptedSegmentCreationIsRemoved(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, testOptions(dir, nil))
	wait(t, s.PutMailbox(def("q")))
	wait(t, s.Append(msg("q", 1, 0, "kept")))
	s.Close()
	// A newest segment holding half a header.
	if err := os.WriteFile(filepath.Join(dir, "00000000000000000099.wal"), []byte("PBOX"), 0o600); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, testOptions(dir, nil))
	defer s.Close()
	if r := s.Recovered(); r.DroppedBytes != 4 || len(seqs(r, "q")) != 1 || len(r.Corrupt) != 0 {
		t.Fatalf("recovered %+v", r)
	}
}
