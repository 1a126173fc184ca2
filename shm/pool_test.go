package shm

import (
	"errors"
	"sync/atomic"
	"testing"
)

func testPool(n int) *pool {
	return &pool{data: make([]byte, n*4096), words: make([]atomic.Uint32, n), bs: 4096, n: n}
}

func mustAlloc(t *testing.T, p *pool, count int) int {
	t.Helper()
	first, _, _, err := p.alloc(count)
	if err != nil {
		t.Fatalf("alloc(%d): %v", count, err)
	}
	return first
}

// TestPoolAllocIsNextFitSoFreedBlocksAreReusedLast checks that runs are
// handed out round the pool: a block the consumer just freed is not the
// next one handed out while later blocks are free.
func TestPoolAllocIsNextFitSoFreedBlocksAreReusedLast(t *testing.T) {
	p := testPool(8)
	var got []int
	for i := 0; i < 8; i++ {
		f := mustAlloc(t, p, 1)
		got = append(got, f)
		p.free(uint32(f)) // freed at once, as a fast consumer would
	}
	for i, f := range got {
		if f != i {
			t.Fatalf("allocations went to blocks %v, want 0..7 in order", got)
		}
	}
	if f := mustAlloc(t, p, 1); f != 0 {
		t.Fatalf("after the end, alloc took block %d, want 0", f)
	}
}

// TestPoolAllocSkipsRunsAndFallsBackToTheStart covers a scan that starts
// past the last run, finds no room there, and starts again from block 0,
// never taking the zero words inside a live run for free blocks.
func TestPoolAllocSkipsRunsAndFallsBackToTheStart(t *testing.T) {
	p := testPool(8)
	a := mustAlloc(t, p, 3) // 0..2
	b := mustAlloc(t, p, 4) // 3..6
	if a != 0 || b != 3 {
		t.Fatalf("runs at %d and %d, want 0 and 3", a, b)
	}
	p.free(uint32(a))
	// From block 7 only one block is free: the scan starts again at 0.
	if f := mustAlloc(t, p, 2); f != 0 {
		t.Fatalf("alloc(2) took %d, want 0", f)
	}
	// Now next is 2: blocks 2 and 7 are free, 3..6 are one live run.
	if f := mustAlloc(t, p, 1); f != 2 {
		t.Fatalf("alloc(1) took %d, want 2", f)
	}
	if _, _, used, err := p.alloc(2); !errors.Is(err, ErrPoolExhausted) || used != 7 {
		t.Fatalf("alloc(2) on a full pool: used %d, %v; want 7, ErrPoolExhausted", used, err)
	}
	if f := mustAlloc(t, p, 1); f != 7 {
		t.Fatalf("alloc(1) took %d, want 7", f)
	}
}

// TestPoolAllocRejectsABadStateWord: a word whose count runs past the pool
// is corruption, wherever the scan starts.
func TestPoolAllocRejectsABadStateWord(t *testing.T) {
	p := testPool(8)
	mustAlloc(t, p, 2)
	p.words[5].Store(1<<16 | 9)
	if _, _, _, err := p.alloc(4); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("alloc over a bad word: %v, want ErrCorrupt", err)
	}
}
