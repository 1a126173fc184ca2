package shm

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"
)

// pattern supplies message contents: message seq of length n is
// pattern[off(seq):][:n] with its first 8 bytes replaced by seq, so a
// check is one bytes.Equal rather than a loop the race detector slows.
var pattern = func() []byte {
	p := make([]byte, 6<<20+1<<16)
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < len(p); i += 8 {
		binary.LittleEndian.PutUint64(p[i:], r.Uint64())
	}
	return p
}()

func patternOff(seq uint64) uint64 { return seq * 4099 % (1 << 16) }

func makeMsg(dst []byte, seq uint64) {
	copy(dst, pattern[patternOff(seq):])
	if len(dst) >= 8 {
		binary.LittleEndian.PutUint64(dst, seq)
	}
}

func checkMsg(t testing.TB, got []byte, seq uint64) {
	t.Helper()
	want := pattern[patternOff(seq):][:len(got)]
	if len(got) >= 8 {
		if s := binary.LittleEndian.Uint64(got); s != seq {
			t.Fatalf("message %d: carries seq %d", seq, s)
		}
		got, want = got[8:], want[8:]
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("message %d (%d bytes): content differs", seq, len(got)+8)
	}
}

// TestRingWrapsWithRandomSizesAndInterleavings drives one producer and one
// consumer over a small ring from a single goroutine, in a random
// interleaving, so millions of records and wrap-arounds run quickly and
// deterministically (no goroutines, no timing).
func TestRingWrapsWithRandomSizesAndInterleavings(t *testing.T) {
	t.Parallel() // one goroutine over its own memory
	count := uint64(1_000_000)
	if testing.Short() {
		count = 100_000
	}
	const size = 4096
	mem := make([]byte, headerSize+size)
	g := geometry{ringSize: size}
	p := producer{ring: ringAt(mem, g, 0)}
	c := consumer{ring: ringAt(mem, g, 0)}
	r := rand.New(rand.NewPCG(3, 4))
	var sent, got uint64
	var sizes []uint64 // sizes in flight, FIFO
	for got < count {
		if sent < count && r.IntN(2) == 0 {
			n := uint64(r.IntN(int(p.maxInline()) + 1))
			if r.IntN(4) != 0 {
				n = uint64(r.IntN(64))
			}
			pos, err := p.reserve(n)
			if errors.Is(err, ErrFull) {
				p.publish()
				if r.IntN(2) == 0 {
					c.publish()
				}
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			makeMsg(p.data[pos+recHeader:pos+recHeader+n], sent)
			p.commit(pos, n, recInline)
			sizes = append(sizes, n)
			sent++
			if r.IntN(8) == 0 {
				p.publish()
			}
			continue
		}
		rec, err := c.peek()
		if errors.Is(err, ErrEmpty) {
			p.publish()
			c.publish()
			continue
		}
		if err != nil {
			t.Fatalf("record %d: %v", got, err)
		}
		if rec.kind != recInline || rec.n != sizes[0] {
			t.Fatalf("record %d: kind %d size %d, want inline %d", got, rec.kind, rec.n, sizes[0])
		}
		checkMsg(t, c.data[rec.body:rec.body+rec.n], got)
		sizes = sizes[1:]
		c.read, c.head = rec.end, rec.end
		if r.IntN(4) == 0 {
			c.publish()
		}
		got++
	}
	if c.read < 100*size {
		t.Fatalf("only %d bytes went through; expected many wraps", c.read)
	}
}

// TestChanWrapsWithRandomSizes runs the same over a Chan, producer and
// consumer in separate goroutines, across all three tiers.
func TestChanWrapsWithRandomSizes(t *testing.T) {
	// Its own segment and goroutines; leaks are caught by VerifyTestMain.
	t.Parallel()
	count := 300_000
	if testing.Short() {
		count = 30_000
	}
	cfg := Config{RingSize: 4096, BlockSize: 4096, Blocks: 8, MaxMessage: 64 << 10}
	a, b := pair(t, cfg, cfg)
	ctx := guardCtx(t)
	sizeOf := func(r *rand.Rand) int {
		switch r.IntN(100) {
		case 0:
			return 32<<10 + r.IntN(32<<10) // memfd
		case 1, 2, 3, 4:
			return 2048 + r.IntN(30<<10) // pool
		}
		return r.IntN(2040)
	}
	errc := make(chan error, 1)
	go func() {
		r := rand.New(rand.NewPCG(5, 6))
		buf := make([]byte, 64<<10)
		batch := make([][]byte, 0, 8)
		for seq := 0; seq < count; {
			n := sizeOf(r)
			switch r.IntN(3) {
			case 0:
				makeMsg(buf[:n], uint64(seq))
				if err := a.Send(ctx, buf[:n]); err != nil {
					errc <- err
					return
				}
				seq++
			case 1:
				res, err := a.Reserve(ctx, n)
				if err != nil {
					errc <- err
					return
				}
				makeMsg(res.Bytes(), uint64(seq))
				if err := res.Commit(); err != nil {
					errc <- err
					return
				}
				seq++
			case 2:
				batch = batch[:0]
				for k := 0; k < 8 && seq+k < count; k++ {
					m := make([]byte, sizeOf(r))
					makeMsg(m, uint64(seq+k))
					batch = append(batch, m)
				}
				sent, err := a.SendBatch(ctx, batch)
				seq += sent
				if err != nil {
					errc <- err
					return
				}
			}
		}
		errc <- nil
	}()
	r := rand.New(rand.NewPCG(7, 8))
	buf := make([]byte, 64<<10)
	for seq := 0; seq < count; {
		if r.IntN(3) == 0 {
			n, err := b.ReceiveBatch(ctx, 1+r.IntN(16), func(m []byte) { checkMsg(t, m, uint64(seq)); seq++ })
			if err != nil || n == 0 {
				t.Fatalf("receive batch at %d: %d, %v", seq, n, err)
			}
			continue
		}
		if r.IntN(2) == 0 {
			n, err := b.Receive(ctx, buf)
			if err != nil {
				t.Fatalf("receive %d: %v", seq, err)
			}
			checkMsg(t, buf[:n], uint64(seq))
			seq++
			continue
		}
		l, err := b.ReceiveLoan(ctx)
		if err != nil {
			t.Fatalf("loan %d: %v", seq, err)
		}
		checkMsg(t, l.Bytes(), uint64(seq))
		if err := l.Release(); err != nil {
			t.Fatal(err)
		}
		seq++
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if _, err := b.TryReceive(buf); !errors.Is(err, ErrEmpty) {
		t.Fatalf("after all messages: %v, want ErrEmpty", err)
	}
	_ = context.Background
}
