package store

import (
	"bytes"
	"testing"
)

// sampleLog is a valid segment: header, snapshot and one record of each
// type.
func sampleLog() []byte {
	st := newState(false)
	st.mbs["q"] = &mbox{name: "q", defined: true, def: MailboxDef{Name: "q", Capacity: -1}, nextSeq: 3, msgs: map[uint64]entry{}}
	b := st.appendSnapshot(encodeSegHeader(7))
	rec := func(typ byte, payload func([]byte) []byte) {
		var start int
		b, start = beginRecord(b, typ)
		b = payload(b)
		endRecord(b, start)
	}
	rec(recPutMailbox, func(b []byte) []byte { return appendDef(b, &MailboxDef{Name: "dlq"}) })
	m := &Message{Mailbox: "q", Seq: 3, Priority: 2, Body: []byte("hello")}
	rec(recAppend, func(b []byte) []byte { return appendMessage(b, m, m.Mailbox, m.Seq, 0) })
	rec(recLease, func(b []byte) []byte { return putU64(putStr(b, "q"), 3) })
	rec(recReturn, func(b []byte) []byte { return putU32(putU64(putStr(b, "q"), 3), 1) })
	rec(recDeadLetter, func(b []byte) []byte {
		return putStr(putU64(putStr(putU64(putStr(b, "q"), 3), "dlq"), 1), "too many")
	})
	rec(recAck, func(b []byte) []byte { return putU64(putStr(b, "dlq"), 1) })
	rec(recDeleteMailbox, func(b []byte) []byte { return putStr(b, "dlq") })
	return b
}

func TestSampleLogReplays(t *testing.T) {
	b := sampleLog()
	st := newState(true)
	st.segs[7] = &segInfo{id: 7}
	var types []byte
	r := scanSegment("s", b, true, func(typ byte, p []byte, off, size int64) bool {
		types = append(types, typ)
		return st.apply(typ, p, 7, off, size)
	})
	if !r.headerOK || r.torn != 0 || len(r.corrupt) != 0 || r.end != int64(len(b)) {
		t.Fatalf("scan = %+v", r)
	}
	if !bytes.Equal(types, []byte{recSnapshot, recPutMailbox, recAppend, recLease, recReturn, recDeadLetter, recAck, recDeleteMailbox}) {
		t.Fatalf("types = %v", types)
	}
	if q := st.mbs["q"]; q == nil || len(q.msgs) != 0 || q.nextSeq != 4 || st.mbs["dlq"] != nil || st.segs[7].count != 0 {
		t.Fatalf("state after replay: q=%+v dlq=%+v seg=%+v", q, st.mbs["dlq"], st.segs[7])
	}
}

// FuzzScanSegment: whatever the bytes, scanning never panics, its ranges
// stay inside the input, and every byte is accounted for exactly once as
// valid, corrupt or torn.
func FuzzScanSegment(f *testing.F) {
	good := sampleLog()
	f.Add(good, true)
	f.Add(good[:len(good)-3], true)
	f.Add(good[:len(good)-3], false)
	flipped := bytes.Clone(good)
	flipped[60] ^= 1
	f.Add(flipped, false)
	f.Add([]byte{}, true)
	f.Add(make([]byte, 100), true)
	f.Fuzz(func(t *testing.T, b []byte, last bool) {
		st := newState(true)
		st.segs[1] = &segInfo{id: 1}
		valid := int64(0)
		r := scanSegment("s", b, last, func(typ byte, p []byte, off, size int64) bool {
			if off < segHeaderSize || off+size > int64(len(b)) {
				t.Fatalf("record %d+%d outside %d bytes", off, size, len(b))
			}
			valid += size
			return st.apply(typ, p, 1, off, size)
		})
		var bad int64
		hdr := int64(segHeaderSize) // counted as corrupt if reported
		for _, c := range r.corrupt {
			if c.Reason == "bad segment header" {
				hdr = 0
			}
			if c.Offset < 0 || c.Length <= 0 || c.Offset+c.Length > int64(len(b)) {
				t.Fatalf("corrupt range %+v outside %d bytes", c, len(b))
			}
			if c.Reason != "malformed payload" {
				bad += c.Length
			}
		}
		if r.torn < 0 || r.end+r.torn != int64(len(b)) && len(b) >= segHeaderSize {
			t.Fatalf("end %d + torn %d != %d", r.end, r.torn, len(b))
		}
		if len(b) >= segHeaderSize && valid+bad+r.torn+hdr != int64(len(b)) {
			t.Fatalf("valid %d + corrupt %d + torn %d + header != %d", valid, bad, r.torn, len(b))
		}
	})
}
