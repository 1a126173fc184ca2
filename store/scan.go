package store

// scanResult is what scanning one segment's bytes found.
type scanResult struct {
	headerOK bool
	records  int   // valid records passed to the callback
	end      int64 // where valid data ends: the file is truncated here if torn > 0
	torn     int64 // bytes of torn tail (last segment only)
	corrupt  []Corruption
}

// scanSegment walks the records of one segment held in b, calling fn for
// each valid record in order. fn reports false for a record whose payload
// does not decode; that record is reported as corrupt.
//
// An invalid record (short header, impossible length, unknown type or
// checksum mismatch) at offset p is classified by looking for the next
// valid record after it:
//
//   - a valid record at q > p: bytes [p, q) are corrupt, reported, and
//     scanning continues at q;
//   - none, in the last segment: [p, end) is a torn tail, to be truncated;
//   - none, in a sealed segment: [p, end) is corrupt and reported (a
//     sealed segment was fully synced before the next one was created, so
//     a short tail there is damage, not an interrupted write).
//
// It does no I/O; Open decides what to do with the result.
func scanSegment(file string, b []byte, last bool, fn func(typ byte, p []byte, off, size int64) bool) scanResult {
	var r scanResult
	_, r.headerOK = decodeSegHeader(b)
	if !r.headerOK && len(b) > 0 {
		n := min(len(b), segHeaderSize)
		if !last || len(b) > segHeaderSize {
			r.corrupt = append(r.corrupt, Corruption{Segment: file, Offset: 0, Length: int64(n), Reason: "bad segment header"})
		}
	}
	off := segHeaderSize
	for off < len(b) {
		typ, p, n, ok := parseRecord(b[off:])
		if ok {
			if fn(typ, p, int64(off), int64(n)) {
				r.records++
			} else {
				r.corrupt = append(r.corrupt, Corruption{Segment: file, Offset: int64(off), Length: int64(n), Reason: "malformed payload"})
			}
			off += n
			continue
		}
		next := resync(b, off+1)
		switch {
		case next >= 0:
			r.corrupt = append(r.corrupt, Corruption{Segment: file, Offset: int64(off), Length: int64(next - off), Reason: "checksum mismatch"})
			off = next
		case last:
			r.end, r.torn = int64(off), int64(len(b)-off)
			return r
		default:
			r.corrupt = append(r.corrupt, Corruption{Segment: file, Offset: int64(off), Length: int64(len(b) - off), Reason: "invalid record at end of sealed segment"})
			off = len(b)
		}
	}
	r.end = int64(max(off, len(b)))
	if len(b) < segHeaderSize {
		r.end = int64(len(b))
		if last {
			// A segment whose header never fully reached the disk.
			r.end, r.torn = 0, int64(len(b))
		}
	}
	return r
}

// resync returns the offset of the first valid record at or after from,
// or -1.
func resync(b []byte, from int) int {
	for i := from; i+recHeaderSize <= len(b); i++ {
		if _, _, _, ok := parseRecord(b[i:]); ok {
			return i
		}
	}
	return -1
}
