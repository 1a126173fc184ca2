package topic

import (
	"slices"
	"strings"
	"testing"
)

// FuzzSyntax checks, for any string, the relations that must hold between
// the validators, the matchers and the trie: a subject is a pattern that
// matches itself and only itself among its own prefixes; a pattern covers
// and intersects itself; ">" matches every subject; and a Sublist holding
// the string agrees with Match. Run with go test -fuzz FuzzSyntax.
func FuzzSyntax(f *testing.F) {
	for _, c := range matchCases {
		f.Add(c.pattern, c.subject)
	}
	f.Add("a.b.c", "a.*.c")
	f.Add("ü.\u00a0", "*")
	f.Fuzz(func(t *testing.T, a, b string) {
		subjErr, patErr := ValidSubject(a), ValidPattern(a)
		if subjErr == nil && patErr != nil {
			t.Fatalf("%q is a subject but not a pattern: %v", a, patErr)
		}
		if subjErr == nil {
			if !Match(a, a) || !Match(">", a) {
				t.Fatalf("%q does not match itself or >", a)
			}
			if i := strings.LastIndexByte(a, '.'); i > 0 && Match(a, a[:i]) {
				t.Fatalf("%q matches its prefix %q", a, a[:i])
			}
		}
		if patErr == nil && (!Covers(a, a) || !Intersects(a, a) || !Covers(">", a)) {
			t.Fatalf("%q does not cover or intersect itself, or > does not cover it", a)
		}
		var s Sublist[int]
		if err := s.Insert(a, 1); (err == nil) != (patErr == nil) {
			t.Fatalf("Insert(%q) = %v, ValidPattern = %v", a, err, patErr)
		}
		if got := slices.Contains(s.Match(b), 1); got != Match(a, b) {
			t.Fatalf("Sublist(%q).Match(%q) = %v, Match = %v", a, b, got, Match(a, b))
		}
		if Covers(a, b) && ValidSubject(b) == nil && !Match(a, b) {
			t.Fatalf("%q covers subject %q but does not match it", a, b)
		}
		if Match(a, b) && !Intersects(a, b) {
			t.Fatalf("%q matches %q but they do not intersect", a, b)
		}
	})
}
