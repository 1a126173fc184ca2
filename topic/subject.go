package topic

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits on subjects and patterns.
const (
	// MaxSubjectLen is the longest subject or pattern, in bytes.
	MaxSubjectLen = 255
	// MaxTokens is the most tokens a subject or pattern may have (a
	// 255-byte subject cannot have more than 128 anyway; the limit bounds
	// the trie's depth and the matcher's recursion).
	MaxTokens = 32
)

// Errors. Each is returned wrapped with the offending input; test with
// errors.Is.
var (
	ErrInvalidSubject = errors.New("topic: invalid subject")
	ErrInvalidPattern = errors.New("topic: invalid pattern")
)

// ValidSubject reports whether s is a subject a publication may carry:
// 1..MaxSubjectLen bytes of valid UTF-8 forming 1..MaxTokens tokens
// separated by single dots, no token empty (so no leading, trailing or
// doubled dot), no whitespace or control characters, and no wildcard
// character ('*' or '>') anywhere.
func ValidSubject(s string) error {
	if err := check(s, false); err != "" {
		return fmt.Errorf("%w %q: %s", ErrInvalidSubject, s, err)
	}
	return nil
}

// ValidPattern reports whether s is a subscription pattern: a subject
// whose tokens may also be the wildcards "*" (exactly one token, any
// value) and ">" (one or more tokens, allowed only as the last token).
// A wildcard character inside a longer token ("foo*", "a>b") is refused.
func ValidPattern(s string) error {
	if err := check(s, true); err != "" {
		return fmt.Errorf("%w %q: %s", ErrInvalidPattern, s, err)
	}
	return nil
}

// check returns why s is not a valid subject (or pattern), or "". It
// runs on every publication, so ASCII takes a byte-at-a-time path.
func check(s string, wild bool) string {
	switch {
	case s == "":
		return "empty"
	case len(s) > MaxSubjectLen:
		return fmt.Sprintf("%d bytes, more than %d", len(s), MaxSubjectLen)
	}
	tokens, start, wilds := 1, 0, 0 // wilds: '*' or '>' bytes in this token
	for i := 0; i <= len(s); {
		if i == len(s) || s[i] == '.' {
			tok := s[start:i]
			switch {
			case tok == "":
				return fmt.Sprintf("empty token at byte %d", start)
			case wilds > 0 && len(tok) > 1:
				return fmt.Sprintf("wildcard inside token %q", tok)
			case wilds > 0 && !wild:
				return fmt.Sprintf("wildcard %q in a subject", tok)
			case tok == ">" && i != len(s):
				return `">" is not the last token`
			}
			if i == len(s) {
				return ""
			}
			if tokens++; tokens > MaxTokens {
				return fmt.Sprintf("more than %d tokens", MaxTokens)
			}
			i++
			start, wilds = i, 0
			continue
		}
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c <= ' ' || c == 0x7f:
				return fmt.Sprintf("whitespace or control character %U at byte %d", c, i)
			case c == '*' || c == '>':
				wilds++
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			return fmt.Sprintf("not valid UTF-8 at byte %d", i)
		case unicode.IsSpace(r) || unicode.IsControl(r):
			return fmt.Sprintf("whitespace or control character %U at byte %d", r, i)
		}
		i += n
	}
	return ""
}

// nextToken returns the token of s starting at start and the index just
// past it (len(s) for the last token).
func nextToken(s string, start int) (tok string, end int) {
	i := strings.IndexByte(s[start:], '.')
	if i < 0 {
		return s[start:], len(s)
	}
	return s[start : start+i], start + i
}

// Match is the reference matcher: it reports whether pattern matches
// subject, token by token, with no index or cache. It is false when
// pattern is not a valid pattern or subject is not a valid subject.
// Sublist gives the same answers for many patterns at once.
func Match(pattern, subject string) bool {
	return ValidPattern(pattern) == nil && ValidSubject(subject) == nil && match(pattern, subject)
}

// match is Match for inputs known to be valid.
func match(pattern, subject string) bool {
	p, s := 0, 0
	for {
		pt, pe := nextToken(pattern, p)
		if pt == ">" {
			return true // s still has at least one token here
		}
		st, se := nextToken(subject, s)
		if pt != "*" && pt != st {
			return false
		}
		pdone, sdone := pe == len(pattern), se == len(subject)
		if pdone || sdone {
			return pdone && sdone
		}
		p, s = pe+1, se+1
	}
}

// Intersects reports whether some subject matches both patterns a and b
// (both must be valid patterns; otherwise it is false). "foo.*" and
// "*.bar" intersect (in "foo.bar"); "foo.>" and "foo" do not.
func Intersects(a, b string) bool {
	if ValidPattern(a) != nil || ValidPattern(b) != nil {
		return false
	}
	i, j := 0, 0
	for {
		at, ae := nextToken(a, i)
		bt, be := nextToken(b, j)
		if at == ">" || bt == ">" {
			return true
		}
		if at != "*" && bt != "*" && at != bt {
			return false
		}
		adone, bdone := ae == len(a), be == len(b)
		if adone || bdone {
			return adone && bdone
		}
		i, j = ae+1, be+1
	}
}

// Covers reports whether every subject that pattern b matches is also
// matched by pattern a (both must be valid patterns; otherwise it is
// false). "foo.>" covers "foo.*.baz"; "foo.*" does not cover "foo.>".
// Every pattern covers itself.
func Covers(a, b string) bool {
	if ValidPattern(a) != nil || ValidPattern(b) != nil {
		return false
	}
	i, j := 0, 0
	for {
		at, ae := nextToken(a, i)
		bt, be := nextToken(b, j)
		switch {
		case at == ">":
			return true
		case bt == ">":
			return false // b reaches lengths a does not
		case at != "*" && at != bt:
			return false // a literal covers only the same literal
		}
		adone, bdone := ae == len(a), be == len(b)
		if adone || bdone {
			return adone && bdone
		}
		i, j = ae+1, be+1
	}
}
