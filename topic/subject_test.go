package topic

import (
	"errors"
	"strings"
	"testing"
)

func TestValidSubjectRefusesWhatIsNotATokenList(t *testing.T) {
	good := []string{"a", "foo.bar", "orders.eu.created", "ü.ñ", "a-b_c.$SYS.1", strings.Repeat("a.", 31) + "a", strings.Repeat("x", 255)}
	for _, s := range good {
		if err := ValidSubject(s); err != nil {
			t.Errorf("ValidSubject(%q) = %v, want nil", s, err)
		}
		if err := ValidPattern(s); err != nil {
			t.Errorf("ValidPattern(%q) = %v, want nil", s, err)
		}
	}
	bad := []string{"", ".", "..", ".foo", "foo.", "foo..bar", "foo bar", "foo\tbar", "foo\n", "foo\x00",
		"foo.\u00a0", "*", ">", "foo.*", "foo.>", "foo*", "f>o", "a.*b", strings.Repeat("x", 256),
		strings.Repeat("a.", 32) + "a", "\xff"}
	for _, s := range bad {
		if err := ValidSubject(s); !errors.Is(err, ErrInvalidSubject) {
			t.Errorf("ValidSubject(%q) = %v, want ErrInvalidSubject", s, err)
		}
	}
}

func TestValidPatternAllowsWildcardsOnlyAsWholeTokensAndGreaterLast(t *testing.T) {
	good := []string{"*", ">", "foo.*", "foo.>", "*.bar", "*.*.>", "foo.*.baz", "a.b.*"}
	for _, s := range good {
		if err := ValidPattern(s); err != nil {
			t.Errorf("ValidPattern(%q) = %v, want nil", s, err)
		}
	}
	bad := []string{"", ">.foo", "foo.>.bar", ">.>", "foo*", "*foo", "foo.b*r", "a.>b", "foo.", ".*", "* ", "a..*"}
	for _, s := range bad {
		if err := ValidPattern(s); !errors.Is(err, ErrInvalidPattern) {
			t.Errorf("ValidPattern(%q) = %v, want ErrInvalidPattern", s, err)
		}
	}
}

// matchCases include the edge cases the NATS documentation spells out.
var matchCases = []struct {
	pattern, subject string
	want             bool
}{
	{"foo", "foo", true},
	{"foo", "bar", false},
	{"foo", "foo.bar", false},
	{"foo.bar", "foo", false},
	{"*", "foo", true},
	{"*", "foo.bar", false}, // * is exactly one token
	{">", "foo", true},      // > alone: everything with at least one token
	{">", "foo.bar.baz", true},
	{"foo.>", "foo", false}, // > needs at least one token
	{"foo.>", "foo.bar", true},
	{"foo.>", "foo.bar.baz", true},
	{"foo.*", "foo.bar", true},
	{"foo.*", "foo.bar.baz", false},
	{"foo.*", "foo", false},
	{"*.bar", "foo.bar", true},
	{"*.bar", "foo.baz", false},
	{"foo.*.baz", "foo.bar.baz", true},
	{"foo.*.baz", "foo.bar.qux", false},
	{"*.*", "a.b", true},
	{"*.*", "a", false},
	{"*.>", "a", false},
	{"*.>", "a.b", true},
	{"time.us.east", "time.us.east", true},
	{"time.*.east", "time.us.east", true},
	{"time.us.*", "time.us.east.atlanta", false},
	{"time.us.>", "time.us.east.atlanta", true},
	{"time.>", "time", false},
	{"foo.bar", "foo.ba", false},
	{"foo.ba", "foo.bar", false},
	{"fo", "foo", false},
	// Invalid input never matches.
	{"foo.", "foo.bar", false},
	{"foo.>", "foo.*", false},
	{"foo*", "foo*", false},
	{"foo", "", false},
}

func TestMatchTable(t *testing.T) {
	for _, c := range matchCases {
		if got := Match(c.pattern, c.subject); got != c.want {
			t.Errorf("Match(%q, %q) = %v, want %v", c.pattern, c.subject, got, c.want)
		}
	}
}

func TestIntersectsAndCovers(t *testing.T) {
	cases := []struct {
		a, b               string
		intersects, covers bool
	}{
		{"foo", "foo", true, true},
		{"foo", "bar", false, false},
		{"foo.*", "*.bar", true, false},
		{"foo.>", "foo", false, false},
		{"foo", "foo.>", false, false},
		{">", "foo.bar", true, true},
		{"foo.bar", ">", true, false},
		{"foo.>", "foo.*.baz", true, true},
		{"foo.*.baz", "foo.>", true, false},
		{"foo.*", "foo.>", true, false},
		{"foo.>", "foo.*", true, true},
		{"*.*", "*.>", true, false},
		{"*.>", "*.*", true, true},
		{"*.*.>", "*.>", true, false},
		{"*.>", "*.*.>", true, true},
		{"a.*.c", "a.b.*", true, false},
		{"a.*.c", "a.*.d", false, false},
		{"*", "foo", true, true},
		{"*", "foo.bar", false, false},
		{"bad.", ">", false, false},
	}
	for _, c := range cases {
		if got := Intersects(c.a, c.b); got != c.intersects {
			t.Errorf("Intersects(%q, %q) = %v, want %v", c.a, c.b, got, c.intersects)
		}
		if got := Intersects(c.b, c.a); got != c.intersects {
			t.Errorf("Intersects(%q, %q) = %v, want %v (symmetric)", c.b, c.a, got, c.intersects)
		}
		if got := Covers(c.a, c.b); got != c.covers {
			t.Errorf("Covers(%q, %q) = %v, want %v", c.a, c.b, got, c.covers)
		}
	}
}
