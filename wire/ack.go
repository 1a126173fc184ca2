package wire

import (
	"iter"
	"slices"
)

// Settling leases: ACK and NACK carry lease ranges, their reply says which
// leases failed.

// Lease limits of one ACK or NACK.
const (
	MaxLeaseRanges    = 4096  // ranges in one frame
	MaxLeasesPerFrame = 65536 // leases in one frame, summed over its ranges
)

// LeaseRange is the leases First .. First+N-1 (N >= 1).
type LeaseRange struct {
	First uint64
	N     uint32
}

// Leases is the payload of ACK and NACK: `count u16 (1..MaxLeaseRanges) |
// count x {first u64 | n u32} | ext`. Ranges may not overlap, N >= 1 and
// a range may not run past 2^64-1, and the leases total at most
// MaxLeasesPerFrame: else ErrMalformed. Leases are settled in the order
// given.
type Leases struct {
	Ranges []LeaseRange
	Ext    []byte

	sorted []LeaseRange // scratch for the overlap check of unsorted ranges
}

func (m *Leases) Append(b []byte) []byte {
	b = AppendU16(b, uint16(len(m.Ranges)))
	for _, r := range m.Ranges {
		b = AppendU32(AppendU64(b, r.First), r.N)
	}
	return append(b, m.Ext...)
}

// Decode reads ACK or NACK, reusing Ranges' backing array. Ranges in
// ascending order (as RangesOf makes them) are checked for overlap
// without allocating.
func (m *Leases) Decode(p []byte) error {
	d := NewDecoder(p)
	n := int(d.U16())
	m.Ranges, m.Ext = m.Ranges[:0], nil
	if n == 0 || n > MaxLeaseRanges || n*12 > d.Len() {
		d.Fail(ErrMalformed)
		return d.Err()
	}
	total := 0
	ascending := true
	for i := range n {
		r := LeaseRange{First: d.U64(), N: d.U32()}
		if r.N == 0 || r.First+uint64(r.N)-1 < r.First {
			d.Fail(ErrMalformed)
			return d.Err()
		}
		total += int(r.N)
		if i > 0 && r.First <= last(m.Ranges) {
			ascending = false
		}
		m.Ranges = append(m.Ranges, r)
	}
	if total > MaxLeasesPerFrame || !ascending && m.overlap() {
		d.Fail(ErrMalformed)
		return d.Err()
	}
	m.Ext = d.Ext()
	return d.Err()
}

// last returns the last lease of the last range of rs.
func last(rs []LeaseRange) uint64 {
	r := rs[len(rs)-1]
	return r.First + uint64(r.N) - 1
}

func (m *Leases) overlap() bool {
	m.sorted = append(m.sorted[:0], m.Ranges...)
	slices.SortFunc(m.sorted, func(a, b LeaseRange) int {
		switch {
		case a.First < b.First:
			return -1
		case a.First > b.First:
			return 1
		}
		return 0
	})
	for i := 1; i < len(m.sorted); i++ {
		if m.sorted[i].First <= last(m.sorted[:i]) {
			return true
		}
	}
	return false
}

// Count returns the number of leases in m's ranges.
func (m *Leases) Count() int {
	n := 0
	for _, r := range m.Ranges {
		n += int(r.N)
	}
	return n
}

// All yields every lease of m in order.
func (m *Leases) All() iter.Seq[uint64] {
	return func(yield func(uint64) bool) {
		for _, r := range m.Ranges {
			for i := range uint64(r.N) {
				if !yield(r.First + i) {
					return
				}
			}
		}
	}
}

// Fill sets m.Ranges to the longest prefix of ranges that one frame can
// carry (MaxLeaseRanges ranges, MaxLeasesPerFrame leases) and returns the
// rest. With ranges from RangesOf (none longer than MaxLeasesPerFrame)
// every call takes at least one range.
func (m *Leases) Fill(ranges []LeaseRange) (rest []LeaseRange) {
	total, i := 0, 0
	for ; i < len(ranges) && i < MaxLeaseRanges; i++ {
		if total+int(ranges[i].N) > MaxLeasesPerFrame {
			break
		}
		total += int(ranges[i].N)
	}
	m.Ranges = ranges[:i]
	return ranges[i:]
}

// RangesOf sorts ids in place, drops duplicates, merges consecutive ids
// into ranges of at most MaxLeasesPerFrame leases and appends them to into.
func RangesOf(ids []uint64, into []LeaseRange) []LeaseRange {
	slices.Sort(ids)
	for i, id := range ids {
		if i > 0 && id == ids[i-1] {
			continue
		}
		if k := len(into) - 1; k >= 0 && into[k].N < MaxLeasesPerFrame && into[k].First+uint64(into[k].N) == id {
			into[k].N++
			continue
		}
		into = append(into, LeaseRange{First: id, N: 1})
	}
	return into
}

// LeaseFailure is one lease an ACK or NACK could not settle, and why
// (CodeStaleLease, ...).
type LeaseFailure struct {
	Lease  uint64
	Status Code
}

// AckReply answers ACK and NACK (unless FlagNoReply): `done u32 | nfailed
// u32 | nfailed x {lease u64 | status u16} | ext`. Its status is OK
// whenever the frame was processed; per-lease outcomes are here. Done
// counts the leases settled.
type AckReply struct {
	Done   uint32
	Failed []LeaseFailure
	Ext    []byte
}

func (m *AckReply) Append(b []byte) []byte {
	b = AppendU32(b, m.Done)
	b = AppendU32(b, uint32(len(m.Failed)))
	for _, f := range m.Failed {
		b = AppendU16(AppendU64(b, f.Lease), uint16(f.Status))
	}
	return append(b, m.Ext...)
}

// Decode reads an ACK reply, reusing Failed's backing array.
func (m *AckReply) Decode(p []byte) error {
	d := NewDecoder(p)
	m.Done = d.U32()
	n := d.U32()
	m.Failed, m.Ext = m.Failed[:0], nil
	if n > MaxLeasesPerFrame || int(n)*10 > d.Len() {
		d.Fail(ErrMalformed)
		return d.Err()
	}
	for range n {
		m.Failed = append(m.Failed, LeaseFailure{Lease: d.U64(), Status: Code(d.U16())})
	}
	m.Ext = d.Ext()
	return d.Err()
}
