package replycache

import (
	"errors"
	"math/rand/v2"
	"testing"
)

func newSeen(t *testing.T, cfg SeenConfig) *Seen {
	t.Helper()
	s, err := NewSeen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSeenRecognisesACopy(t *testing.T) {
	s := newSeen(t, SeenConfig{})
	if v := s.Add(id(sessA, 1), 0); v != SeenNew {
		t.Fatalf("first sight: %v", v)
	}
	if v := s.Add(id(sessA, 1), 1); v != SeenRunning {
		t.Fatalf("a copy while it runs: %v", v)
	}
	s.Done(id(sessA, 1))
	s.Done(id(sessA, 9)) // not remembered: ignored
	if v := s.Add(id(sessA, 1), 1); v != SeenDone {
		t.Fatalf("a copy once done: %v", v)
	}
	if s.Add(id(sessA, 2), 1) != SeenNew || s.Add(id(sessB, 1), 1) != SeenNew {
		t.Fatal("another id taken for a copy")
	}
	if s.Len() != 3 {
		t.Fatalf("len %d, want 3", s.Len())
	}
}

func TestSeenForgetsAfterRetention(t *testing.T) {
	s := newSeen(t, SeenConfig{Retention: 100})
	s.Add(id(sessA, 1), 0)
	s.Add(id(sessA, 2), 50)
	if s.Add(id(sessA, 1), 99) == SeenNew {
		t.Fatal("forgotten before its retention")
	}
	if s.Add(id(sessA, 1), 100) != SeenNew {
		t.Fatal("remembered past its retention")
	}
	s.Expire(149)
	if s.Len() != 2 { // 2 (seen at 50) and 1 (again at 100)
		t.Fatalf("len %d, want 2", s.Len())
	}
	s.Expire(10) // time does not go back
	s.Expire(200)
	if s.Len() != 0 {
		t.Fatalf("len %d after every retention passed", s.Len())
	}
}

func TestSeenIsBoundedForgettingTheOldest(t *testing.T) {
	s := newSeen(t, SeenConfig{MaxEntries: 3})
	for seq := uint64(1); seq <= 4; seq++ {
		s.Add(id(sessA, seq), 0)
	}
	if s.Len() != 3 {
		t.Fatalf("len %d, want the bound 3", s.Len())
	}
	for seq := uint64(2); seq <= 4; seq++ {
		if s.Add(id(sessA, seq), 0) == SeenNew {
			t.Fatalf("seq %d forgotten; only the oldest should be", seq)
		}
	}
	if s.Add(id(sessA, 1), 0) != SeenNew {
		t.Fatal("the oldest id still remembered beyond the bound")
	}
}

// TestSeenAgreesWithAList: random adds and expiries against a slice
// model, across the ring's growth and wrap-around.
func TestSeenAgreesWithAList(t *testing.T) {
	for seed := uint64(1); seed <= 50; seed++ {
		rng := rand.New(rand.NewPCG(seed, seed))
		cfg := SeenConfig{MaxEntries: 1 + rng.IntN(200), Retention: int64(1 + rng.IntN(500))}
		s := newSeen(t, cfg)
		type rec struct {
			seq uint64
			at  int64
		}
		var model []rec
		var now int64
		for range 2000 {
			now += int64(rng.IntN(5))
			for len(model) > 0 && now-model[0].at >= cfg.Retention {
				model = model[1:]
			}
			seq := uint64(rng.IntN(300))
			want := true
			for _, r := range model {
				if r.seq == seq {
					want = false
				}
			}
			if want {
				if len(model) == cfg.MaxEntries {
					model = model[1:]
				}
				model = append(model, rec{seq, now})
			}
			if got := s.Add(id(sessA, seq), now) == SeenNew; got != want {
				t.Fatalf("seed %d, cfg %+v: Add(%d) at %d = %v, model %v", seed, cfg, seq, now, got, want)
			}
			if s.Len() != len(model) || s.Len() > cfg.MaxEntries {
				t.Fatalf("seed %d: len %d, model %d", seed, s.Len(), len(model))
			}
		}
	}
}

func TestSeenBadConfigIsErrConfig(t *testing.T) {
	for _, cfg := range []SeenConfig{{MaxEntries: -1}, {Retention: -1}} {
		if _, err := NewSeen(cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("NewSeen(%+v) = %v, want ErrConfig", cfg, err)
		}
	}
}
