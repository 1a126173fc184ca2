package topic

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestSublistMatchesTheTableLikeMatch(t *testing.T) {
	s := NewSublist[int]()
	for i, c := range matchCases {
		if ValidPattern(c.pattern) != nil {
			if err := s.Insert(c.pattern, i); !errors.Is(err, ErrInvalidPattern) {
				t.Fatalf("Insert(%q) = %v, want ErrInvalidPattern", c.pattern, err)
			}
			continue
		}
		if err := s.Insert(c.pattern, i); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range matchCases {
		got := slices.Contains(s.Match(c.subject), i)
		if got != c.want {
			t.Errorf("Sublist: %q matches %q = %v, want %v", c.pattern, c.subject, got, c.want)
		}
	}
}

func TestSublistInsertIsASetAndRemoveReportsPresence(t *testing.T) {
	var s Sublist[string]
	s.Insert("a.*", "x")
	s.Insert("a.*", "x")
	s.Insert("a.>", "x")
	s.Insert("a.*", "y")
	if s.Len() != 3 {
		t.Fatalf("Len = %d, want 3", s.Len())
	}
	if got := s.Match("a.b"); !slices.Equal(got, []string{"x", "y", "x"}) {
		t.Fatalf("Match = %v, want [x y x] (trie order: * before >, then insertion order)", got)
	}
	if !s.Remove("a.*", "x") || s.Remove("a.*", "x") || s.Remove("a.b", "x") || s.Remove("bad.", "x") {
		t.Fatal("Remove reported wrongly")
	}
	if got := s.Match("a.b"); !slices.Equal(got, []string{"y", "x"}) {
		t.Fatalf("after Remove: Match = %v, want [y x]", got)
	}
	s.Remove("a.*", "y")
	s.Remove("a.>", "x")
	if s.Len() != 0 || !s.root.empty() {
		t.Fatalf("after removing everything: Len %d, root empty %v", s.Len(), s.root.empty())
	}
	if got := s.Match("a.b"); len(got) != 0 {
		t.Fatalf("empty sublist matched %v", got)
	}
}

// randomPattern and randomSubject draw from a small alphabet so that
// random patterns and subjects match often.
func randomPattern(r *rand.Rand) string {
	n := 1 + r.IntN(4)
	p := ""
	for i := range n {
		if i > 0 {
			p += "."
		}
		switch x := r.IntN(10); {
		case x == 0 && i == n-1:
			p += ">"
		case x < 3:
			p += "*"
		default:
			p += string(rune('a' + r.IntN(3)))
		}
	}
	return p
}

func randomSubject(r *rand.Rand) string {
	n := 1 + r.IntN(4)
	s := ""
	for i := range n {
		if i > 0 {
			s += "."
		}
		s += string(rune('a' + r.IntN(3)))
	}
	return s
}

// naive is the reference index: a list of pairs scanned with Match.
type naive struct{ pairs []pair }

type pair struct {
	pattern string
	v       int
}

func (n *naive) insert(p string, v int) {
	if !slices.Contains(n.pairs, pair{p, v}) {
		n.pairs = append(n.pairs, pair{p, v})
	}
}

func (n *naive) remove(p string, v int) bool {
	i := slices.Index(n.pairs, pair{p, v})
	if i < 0 {
		return false
	}
	n.pairs = slices.Delete(n.pairs, i, i+1)
	return true
}

func (n *naive) match(subject string) []int {
	var out []int
	for _, x := range n.pairs {
		if Match(x.pattern, subject) {
			out = append(out, x.v)
		}
	}
	slices.Sort(out)
	return out
}

func sorted(x []int) []int {
	x = slices.Clone(x)
	slices.Sort(x)
	return x
}

// TestSublistAgreesWithNaiveScanUnderRandomChanges interleaves random
// inserts, removes and matches, with a cache small enough to evict, and
// checks every match against a scan with Match: a stale cache entry or a
// wrongly pruned trie node shows up as a difference.
func TestSublistAgreesWithNaiveScanUnderRandomChanges(t *testing.T) {
	for _, cacheSize := range []int{-1, 4, 0} {
		t.Run(fmt.Sprintf("cache=%d", cacheSize), func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, uint64(cacheSize+2)))
			s := &Sublist[int]{CacheSize: cacheSize}
			var ref naive
			for step := range 10000 {
				switch x := r.IntN(10); {
				case x < 3:
					p, v := randomPattern(r), r.IntN(5)
					if err := s.Insert(p, v); err != nil {
						t.Fatal(err)
					}
					ref.insert(p, v)
				case x < 5:
					var p string
					var v int
					if len(ref.pairs) > 0 && r.IntN(4) > 0 {
						q := ref.pairs[r.IntN(len(ref.pairs))]
						p, v = q.pattern, q.v
					} else {
						p, v = randomPattern(r), r.IntN(5)
					}
					if got, want := s.Remove(p, v), ref.remove(p, v); got != want {
						t.Fatalf("step %d: Remove(%q, %d) = %v, want %v", step, p, v, got, want)
					}
				default:
					subj := randomSubject(r)
					if got, want := sorted(s.Match(subj)), ref.match(subj); !slices.Equal(got, want) {
						t.Fatalf("step %d: Match(%q) = %v, want %v (pairs %v)", step, subj, got, want, ref.pairs)
					}
				}
				if s.Len() != len(ref.pairs) {
					t.Fatalf("step %d: Len = %d, want %d", step, s.Len(), len(ref.pairs))
				}
				if max := s.cacheSize(); len(s.cache) > max {
					t.Fatalf("step %d: cache holds %d subjects, bound %d", step, len(s.cache), max)
				}
			}
		})
	}
}

// TestSublistCacheNeverStale checks the cache itself: after every random
// insert, remove or match, each cached subject's result equals a fresh
// walk of the trie.
func TestSublistCacheNeverStale(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	var s Sublist[int]
	var pairs []pair
	for step := range 5000 {
		switch x := r.IntN(10); {
		case x < 3:
			p, v := randomPattern(r), r.IntN(5)
			s.Insert(p, v)
			pairs = append(pairs, pair{p, v})
		case x < 6 && len(pairs) > 0:
			i := r.IntN(len(pairs))
			s.Remove(pairs[i].pattern, pairs[i].v)
			pairs = slices.Delete(pairs, i, i+1)
		default:
			s.Match(randomSubject(r))
		}
		for subj, cached := range s.cache {
			if fresh := s.root.match(subj, 0, nil); !slices.Equal(sorted(cached), sorted(fresh)) {
				t.Fatalf("step %d: cache[%q] = %v, the trie says %v", step, subj, cached, fresh)
			}
		}
	}
	if len(s.cache) == 0 {
		t.Fatal("the cache was never used")
	}
}
