package broker

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestLeaseTableAgainstAMap drives a leaseTable and a plain map with the
// same random puts (mostly increasing ids, some out of order, from a few
// mailboxes), takes (in order, out of order, stale and unknown ids) and
// box removals, and checks they always agree.
func TestLeaseTableAgainstAMap(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 14))
		boxes := []*box{{}, {}, {}}
		var tb leaseTable
		model := map[uint64]*box{}
		var next uint64 = 1
		held := func() []uint64 {
			var ids []uint64
			for id := range model {
				ids = append(ids, id)
			}
			slices.Sort(ids)
			return ids
		}
		for step := range 20000 {
			switch r := rng.IntN(100); {
			case r < 45: // deliver, usually the next id
				id := next
				if rng.IntN(10) == 0 && next > 3 {
					id = next - uint64(1+rng.IntN(3)) // raced: an older id arrives late
					if _, ok := model[id]; ok {
						continue
					}
				}
				next++
				bx := boxes[rng.IntN(len(boxes))]
				tb.put(id, bx)
				model[id] = bx
			case r < 90: // settle: oldest held, a random held one, or unknown
				ids := held()
				var id uint64
				switch {
				case len(ids) > 0 && rng.IntN(3) > 0:
					id = ids[0]
				case len(ids) > 0 && rng.IntN(2) == 0:
					id = ids[rng.IntN(len(ids))]
				default:
					id = uint64(rng.IntN(int(next) + 5))
				}
				want := model[id]
				delete(model, id)
				if got := tb.take(id); got != want {
					t.Fatalf("seed %d step %d: take(%d) = %p, want %p", seed, step, id, got, want)
				}
			case r < 91: // a mailbox goes away
				bx := boxes[rng.IntN(len(boxes))]
				var want []uint64
				for id, b := range model {
					if b == bx {
						want = append(want, id)
						delete(model, id)
					}
				}
				got := tb.removeBox(bx)
				slices.Sort(got)
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Fatalf("seed %d step %d: removeBox = %v, want %v", seed, step, got, want)
				}
			default: // a long-held lease stays while others flow (no growth)
			}
			if tb.len() != len(model) {
				t.Fatalf("seed %d step %d: len %d, want %d", seed, step, tb.len(), len(model))
			}
		}
		if dead := len(tb.ents) - tb.live; dead > 64 && dead > tb.live+1 {
			t.Fatalf("seed %d: %d settled entries kept beside %d held", seed, dead, tb.live)
		}
	}
}

// TestLeaseTableOneHeldLeaseDoesNotGrowIt: a consumer keeps one lease
// while a million others are handed out and settled; the table stays
// small.
func TestLeaseTableOneHeldLeaseDoesNotGrowIt(t *testing.T) {
	var tb leaseTable
	bx := &box{}
	tb.put(1, bx)
	for id := uint64(2); id < 1_000_000; id++ {
		tb.put(id, bx)
		if tb.take(id) != bx {
			t.Fatalf("take(%d) lost its box", id)
		}
	}
	if tb.len() != 1 || cap(tb.ents) > 1024 {
		t.Fatalf("len %d, %d entries of room kept", tb.len(), cap(tb.ents))
	}
	if tb.take(1) != bx || tb.len() != 0 {
		t.Fatal("the held lease was lost")
	}
}

func BenchmarkLeaseTable(b *testing.B) {
	var tb leaseTable
	bx := &box{}
	var id uint64
	for b.Loop() {
		for range 256 {
			id++
			tb.put(id, bx)
		}
		for i := id - 255; i <= id; i++ {
			tb.take(i)
		}
	}
}

func BenchmarkLeaseMap(b *testing.B) {
	m := map[uint64]*box{}
	bx := &box{}
	var id uint64
	for b.Loop() {
		for range 256 {
			id++
			m[id] = bx
		}
		for i := id - 255; i <= id; i++ {
			_ = m[i]
			delete(m, i)
		}
	}
}
