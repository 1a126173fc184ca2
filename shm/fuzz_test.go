package shm

import (
	"context"
	"encoding/binary"
	"errors"
	"testing"
)

// FuzzRecordHeader writes arbitrary bytes over the receive ring's record
// area, its tail index and the pool's state words, as a hostile or broken
// peer could, and checks that the reader returns messages or errors and
// never panics or reads out of bounds.
func FuzzRecordHeader(f *testing.F) {
	hdr := func(n uint64, kind uint8) []byte {
		return binary.LittleEndian.AppendUint64(nil, recordHeader(n, kind))
	}
	f.Add(uint64(16), hdr(8, recInline))
	f.Add(uint64(24), append(hdr(16, recPool), make([]byte, 16)...))
	f.Add(uint64(24), append(hdr(16, recMemfd), make([]byte, 16)...))
	f.Add(uint64(4096), hdr(4088, recPad))
	f.Add(uint64(8), hdr(1<<31, recInline))
	f.Add(^uint64(0), []byte{1, 2, 3})
	f.Add(uint64(24), append(hdr(16, recPool), binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint64(nil, 5000), 3), 0x10002)...))
	cfg := Config{RingSize: 4096, BlockSize: 4096, Blocks: 4, MaxMessage: 1 << 20}
	f.Fuzz(func(t *testing.T, tail uint64, data []byte) {
		a, b := pair(t, cfg, cfg)
		copy(b.cons.data, data)
		if len(data) > len(b.cons.data) {
			// Spill into the pool words too.
			for i, w := range data[len(b.cons.data):] {
				if i >= len(b.rxPool.words) {
					break
				}
				b.rxPool.words[i].Store(uint32(w) * 0x10001)
			}
		}
		b.cons.ring.tail.Store(tail)
		buf := make([]byte, 1<<20)
		done, cancel := context.WithCancel(context.Background())
		cancel() // ReceiveBatch below takes what is there and never waits
		for i := 0; i < 9; i++ {
			var err error
			switch i % 3 {
			case 0:
				_, err = b.TryReceive(buf)
			case 1:
				_, err = b.ReceiveBatch(done, 4, func(m []byte) { _ = append(buf[:0], m...) })
				if errors.Is(err, context.Canceled) {
					err = ErrEmpty
				}
			default:
				var l Loan
				l, err = b.TryReceiveLoan()
				if err == nil {
					_ = l.Bytes()
					l.Release()
				}
			}
			if err != nil && !errors.Is(err, ErrEmpty) && !errors.Is(err, ErrCorrupt) &&
				!errors.Is(err, ErrShortBuffer) {
				t.Fatalf("unexpected error %v", err)
			}
			if errors.Is(err, ErrCorrupt) {
				// The channel stays failed.
				if _, err := b.TryReceive(buf); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("after corruption: %v", err)
				}
				break
			}
		}
		_ = a
	})
}
