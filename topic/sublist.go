package topic

import "strings"

// Sublist is an index from patterns to values that answers "which values
// were inserted under a pattern matching this subject" without looking at
// the patterns that cannot match.
//
// It is a trie with one level per token. A level has a map from literal
// tokens to child nodes, at most one "*" child and at most one ">" child;
// a node holds the values whose pattern ends there. Matching a subject of
// n tokens follows, at each level, the literal child for the subject's
// token, the "*" child and the ">" child (which ends the walk), so its
// cost depends on how many patterns actually match, not on how many
// there are.
//
// Results are cached per subject: a hit returns the slice of the earlier
// walk. The cache holds at most CacheSize subjects; when full, a quarter
// of it is evicted. Insert and Remove drop exactly the cached subjects the
// changed pattern matches, so the cache never answers with a stale result
// (a literal pattern drops one entry; a wildcard one scans the cache).
//
// Match returns one entry per matching (pattern, value) pair, in a
// deterministic order fixed by the trie (literal before "*" before ">",
// then insertion order), so a value inserted under two patterns that both
// match appears twice. Inserting a pair that is already present changes
// nothing.
//
// A Sublist is not safe for concurrent use, not even for concurrent Match
// calls (a match fills the cache): its owner serialises all calls.
type Sublist[T comparable] struct {
	root  level[T]
	count int
	cache map[string][]T
	// CacheSize bounds the match cache (subjects remembered); 0 means
	// DefaultCacheSize, a negative value disables the cache.
	CacheSize int
}

// DefaultCacheSize is the number of subjects a Sublist remembers unless
// its CacheSize says otherwise.
const DefaultCacheSize = 1024

type level[T comparable] struct {
	lits map[string]*node[T]
	star *node[T]
	rest *node[T] // the ">" child: values only, no further level
}

type node[T comparable] struct {
	next level[T]
	vals []T
}

func (l *level[T]) empty() bool { return len(l.lits) == 0 && l.star == nil && l.rest == nil }

func (n *node[T]) empty() bool { return len(n.vals) == 0 && n.next.empty() }

// NewSublist returns an empty Sublist. The zero Sublist is ready to use
// too.
func NewSublist[T comparable]() *Sublist[T] { return &Sublist[T]{} }

// Len is the number of (pattern, value) pairs in s.
func (s *Sublist[T]) Len() int { return s.count }

// Insert adds v under pattern. It fails only with ErrInvalidPattern.
func (s *Sublist[T]) Insert(pattern string, v T) error {
	if err := ValidPattern(pattern); err != nil {
		return err
	}
	l := &s.root
	var n *node[T]
	for start := 0; ; {
		tok, end := nextToken(pattern, start)
		switch tok {
		case "*":
			if l.star == nil {
				l.star = &node[T]{}
			}
			n = l.star
		case ">":
			if l.rest == nil {
				l.rest = &node[T]{}
			}
			n = l.rest
		default:
			n = l.lits[tok]
			if n == nil {
				if l.lits == nil {
					l.lits = make(map[string]*node[T])
				}
				n = &node[T]{}
				l.lits[tok] = n
			}
		}
		if end == len(pattern) {
			break
		}
		l, start = &n.next, end+1
	}
	for _, x := range n.vals {
		if x == v {
			return nil
		}
	}
	n.vals = append(n.vals, v)
	s.count++
	s.invalidate(pattern)
	return nil
}

// Remove takes v out from under pattern, reporting whether it was there.
func (s *Sublist[T]) Remove(pattern string, v T) bool {
	if ValidPattern(pattern) != nil {
		return false
	}
	if !s.root.remove(pattern, 0, v) {
		return false
	}
	s.count--
	s.invalidate(pattern)
	return true
}

// remove takes v out of the subtree of l for the pattern's tokens from
// start on, pruning nodes left empty.
func (l *level[T]) remove(pattern string, start int, v T) bool {
	tok, end := nextToken(pattern, start)
	var n *node[T]
	switch tok {
	case "*":
		n = l.star
	case ">":
		n = l.rest
	default:
		n = l.lits[tok]
	}
	if n == nil {
		return false
	}
	if end == len(pattern) {
		i := -1
		for j, x := range n.vals {
			if x == v {
				i = j
				break
			}
		}
		if i < 0 {
			return false
		}
		// Keep insertion order (Match's order is part of its contract).
		copy(n.vals[i:], n.vals[i+1:])
		var zero T
		n.vals[len(n.vals)-1] = zero
		n.vals = n.vals[:len(n.vals)-1]
	} else if !n.next.remove(pattern, end+1, v) {
		return false
	}
	if n.empty() {
		switch tok {
		case "*":
			l.star = nil
		case ">":
			l.rest = nil
		default:
			delete(l.lits, tok)
		}
	}
	return true
}

// Match returns the values whose pattern matches subject (nothing for an
// invalid subject). The slice belongs to s: do not modify it, and do not
// keep it past the next Insert or Remove.
func (s *Sublist[T]) Match(subject string) []T {
	if r, ok := s.cache[subject]; ok {
		return r
	}
	if ValidSubject(subject) != nil {
		return nil
	}
	var out []T
	out = s.root.match(subject, 0, out)
	if max := s.cacheSize(); max > 0 {
		if s.cache == nil {
			s.cache = make(map[string][]T)
		}
		if len(s.cache) >= max {
			s.evict(max)
		}
		// The key is a copy: subject may be a view of a buffer the caller
		// reuses (a frame decoded without copying).
		s.cache[strings.Clone(subject)] = out
	}
	return out
}

func (s *Sublist[T]) cacheSize() int {
	switch {
	case s.CacheSize == 0:
		return DefaultCacheSize
	case s.CacheSize < 0:
		return 0
	}
	return s.CacheSize
}

// evict drops about a quarter of a full cache (whichever entries the map
// yields first: eviction changes speed, never results).
func (s *Sublist[T]) evict(max int) {
	n := max/4 + 1
	for k := range s.cache {
		delete(s.cache, k)
		if n--; n == 0 {
			return
		}
	}
}

// match appends to out the values of the subtree of l that match the
// subject's tokens from start on.
func (l *level[T]) match(subject string, start int, out []T) []T {
	tok, end := nextToken(subject, start)
	last := end == len(subject)
	if n := l.lits[tok]; n != nil {
		if last {
			out = append(out, n.vals...)
		} else {
			out = n.next.match(subject, end+1, out)
		}
	}
	if n := l.star; n != nil {
		if last {
			out = append(out, n.vals...)
		} else {
			out = n.next.match(subject, end+1, out)
		}
	}
	if n := l.rest; n != nil {
		out = append(out, n.vals...)
	}
	return out
}

// invalidate drops the cached results of the subjects pattern matches:
// exactly the results a change under pattern can alter. A literal pattern
// matches one subject, itself; a wildcard pattern costs a scan of the
// cache (at most CacheSize matches).
func (s *Sublist[T]) invalidate(pattern string) {
	if len(s.cache) == 0 {
		return
	}
	if !strings.ContainsAny(pattern, "*>") {
		delete(s.cache, pattern)
		return
	}
	for subj := range s.cache {
		if match(pattern, subj) {
			delete(s.cache, subj)
		}
	}
}
