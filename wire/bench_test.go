package wire

import (
	"bytes"
	"testing"
)

// The message hot path (SEND in, DELIVER out, frames read) must not allocate
// per message. The benchmarks show it with -benchmem; this test enforces it.
func TestHotPathDoesNotAllocate(t *testing.T) {
	send, delivery, leases := benchSend(), benchDelivery(), benchLeases()
	sendEnc, delivEnc, leasesEnc := send.Append(nil), delivery.Append(nil), leases.Append(nil)
	headers := sampleHeaders()
	reply := &SendReply{IDs: []uint64{7}}
	replyEnc := reply.Append(nil)
	var sink uint64
	buf := make([]byte, 0, 4096)
	r := NewReader(&loopReader{data: benchStream()}, 0, 0)
	for name, f := range map[string]func(){
		"Send.Append":      func() { buf = send.Append(buf[:0]) },
		"Send.Decode":      func() { send.Decode(sendEnc) },
		"Delivery.Append":  func() { buf = delivery.Append(buf[:0]) },
		"Delivery.Decode":  func() { delivery.Decode(delivEnc) },
		"Leases.Decode":    func() { leases.Decode(leasesEnc) },
		"ValidateHeaders":  func() { ValidateHeaders(headers) },
		"SendReply.Decode": func() { reply.Decode(replyEnc) },
		"Leases.All": func() {
			for id := range leases.All() {
				sink += id
			}
		},
		"framed Send": func() {
			b, off := StartFrame(buf[:0], Header{Op: OpSend, Request: 1})
			buf = FinishFrame(send.Append(b), off)
		},
		"Reader.Next": func() { r.Next() },
	} {
		if n := testing.AllocsPerRun(1000, f); n != 0 {
			t.Errorf("%s: %v allocations per run, want 0", name, n)
		}
	}
}

func benchSend() *Send {
	return &Send{Target: []byte("jobs/high"), Timeout: -1, Msgs: []SendMsg{{Type: 1, Priority: 5,
		Headers: AppendHeaders(nil, &HeaderFields{CorrelationID: []byte("42")}),
		Body:    bytes.Repeat([]byte{'m'}, 128)}}}
}

func benchDelivery() *Delivery {
	return &Delivery{Lease: 1, ID: 2, Type: 1, Priority: 5,
		Sender:       Identity{Kind: PrincipalUnix, UID: 1000, GID: 1000, PID: 99, Endpoint: 3},
		SentUnixNano: 1, Headers: AppendHeaders(nil, &HeaderFields{CorrelationID: []byte("42")}),
		Body: bytes.Repeat([]byte{'m'}, 128)}
}

func benchLeases() *Leases {
	return &Leases{Ranges: RangesOf([]uint64{1, 2, 3, 4, 7, 8, 10}, nil)}
}

// benchStream is many small DELIVER frames back to back.
func benchStream() []byte {
	d := benchDelivery()
	var b []byte
	for i := range 64 {
		off := 0
		b, off = StartFrame(b, Header{Op: OpDeliver, Request: uint64(i + 1)})
		b = FinishFrame(d.Append(b), off)
	}
	return b
}

// loopReader returns data over and over without allocating.
type loopReader struct {
	data []byte
	off  int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := copy(p, l.data[l.off:])
	l.off = (l.off + n) % len(l.data)
	return n, nil
}

func BenchmarkSendAppend(b *testing.B) {
	m := benchSend()
	buf := make([]byte, 0, 4096)
	b.SetBytes(int64(len(m.Msgs[0].Body)))
	b.ReportAllocs()
	for b.Loop() {
		buf = m.Append(buf[:0])
	}
}

func BenchmarkSendDecode(b *testing.B) {
	enc := benchSend().Append(nil)
	var m Send
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if err := m.Decode(enc); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDeliveryAppend(b *testing.B) {
	m := benchDelivery()
	buf := make([]byte, 0, 4096)
	b.SetBytes(int64(len(m.Body)))
	b.ReportAllocs()
	for b.Loop() {
		off := 0
		buf, off = StartFrame(buf[:0], Header{Op: OpDeliver, Request: 1})
		buf = FinishFrame(m.Append(buf), off)
	}
}

func BenchmarkDeliveryDecode(b *testing.B) {
	enc := benchDelivery().Append(nil)
	var m Delivery
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if err := m.Decode(enc); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReaderNext(b *testing.B) {
	stream := benchStream()
	r := NewReader(&loopReader{data: stream}, 0, 0)
	b.SetBytes(int64(len(stream) / 64))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := r.Next(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSendDecodeBatch64(b *testing.B) {
	m := benchSend()
	for range 63 {
		m.Msgs = append(m.Msgs, m.Msgs[0])
	}
	enc := m.Append(nil)
	var d Send
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if err := d.Decode(enc); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLeasesDecode(b *testing.B) {
	enc := benchLeases().Append(nil)
	var m Leases
	b.ReportAllocs()
	for b.Loop() {
		if err := m.Decode(enc); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidateHeaders(b *testing.B) {
	h := sampleHeaders()
	b.SetBytes(int64(len(h)))
	b.ReportAllocs()
	for b.Loop() {
		if err := ValidateHeaders(h); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEventDecode(b *testing.B) {
	ev := Event{Subject: []byte("bench.fanout.64.4"), Sender: Identity{Kind: 1, UID: 1000, GID: 1000, PID: 4242, Endpoint: 1 << 33},
		SentUnixNano: 1, Type: 1, Body: make([]byte, 64)}
	enc := ev.Append(nil)
	var m Event
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if err := m.Decode(enc); err != nil {
			b.Fatal(err)
		}
	}
}
