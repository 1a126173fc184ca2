package topic

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Claim errors.
var (
	// ErrClaimed: the pattern overlaps a claim of another owner.
	ErrClaimed = errors.New("topic: subject claimed by another owner")
	// ErrNoClaim: there is no claim with that pattern.
	ErrNoClaim = errors.New("topic: no such claim")
	// ErrNotOwner: only a claim's owner (or root) may change it, and only
	// root may claim for someone else.
	ErrNotOwner = errors.New("topic: not the claim's owner")
	// ErrInvalidMode: a claim's mode has bits outside 0777.
	ErrInvalidMode = errors.New("topic: invalid mode")
)

// Permission bits, as for files: subscribing needs read, publishing
// write.
const (
	PermRead  uint32 = 4
	PermWrite uint32 = 2
)

// A Claim gives the subjects a pattern matches an owner, a group and a
// mode, like a file's: publishing needs w (PermWrite), subscribing r
// (PermRead), from the owner, group or other triple that applies.
type Claim struct {
	Pattern    string
	Owner, GID uint32
	Mode       uint32
}

// Claims holds the claims of one broker. The zero value holds none. It
// is not safe for concurrent use.
//
// A subject no claim matches is open to everyone. A subject several claims
// match belongs to the most specific of them (see MoreSpecific).
// Claims of different owners may not overlap (Intersects), except that
// root (uid 0) may claim anything: so one user cannot claim subjects that
// another's claim already covers, nor a wider pattern that would take
// them over.
type Claims struct {
	byPattern map[string]*Claim
	index     Sublist[*Claim]
}

// Claim claims pattern for owner (who is the claimer): ClaimBy(owner,
// pattern, owner, gid, mode).
func (c *Claims) Claim(pattern string, owner, gid, mode uint32) error {
	return c.ClaimBy(owner, pattern, owner, gid, mode)
}

// ClaimBy is a claim made by uid by for owner. Only root (by 0) may claim
// for another uid or over another owner's claim. Claiming a pattern
// already claimed by the same owner (or by root, whoever owns it) replaces
// that claim's owner, group and mode. Errors: ErrInvalidPattern,
// ErrInvalidMode, ErrNotOwner, ErrClaimed (naming the claim in the way).
func (c *Claims) ClaimBy(by uint32, pattern string, owner, gid, mode uint32) error {
	if err := ValidPattern(pattern); err != nil {
		return err
	}
	if mode&^0o777 != 0 {
		return fmt.Errorf("%w: %#o has bits outside 0777", ErrInvalidMode, mode)
	}
	if by != 0 && by != owner {
		return fmt.Errorf("%w: uid %d may not claim %q for uid %d", ErrNotOwner, by, pattern, owner)
	}
	if by != 0 {
		for _, x := range c.sorted() {
			if x.Owner != owner && Intersects(x.Pattern, pattern) {
				return fmt.Errorf("%w: %q overlaps %q of uid %d", ErrClaimed, pattern, x.Pattern, x.Owner)
			}
		}
	}
	if x := c.byPattern[pattern]; x != nil {
		x.Owner, x.GID, x.Mode = owner, gid, mode
		return nil
	}
	if c.byPattern == nil {
		c.byPattern = make(map[string]*Claim)
	}
	x := &Claim{Pattern: pattern, Owner: owner, GID: gid, Mode: mode}
	c.byPattern[pattern] = x
	return c.index.Insert(pattern, x)
}

// Release removes the claim with exactly this pattern, reporting whether
// there was one.
func (c *Claims) Release(pattern string) bool {
	x := c.byPattern[pattern]
	if x == nil {
		return false
	}
	delete(c.byPattern, pattern)
	c.index.Remove(pattern, x)
	return true
}

// ReleaseBy is Release by uid by, who must be the claim's owner or root.
// Errors: ErrNoClaim, ErrNotOwner.
func (c *Claims) ReleaseBy(by uint32, pattern string) error {
	x := c.byPattern[pattern]
	switch {
	case x == nil:
		return fmt.Errorf("%w: %q", ErrNoClaim, pattern)
	case by != 0 && by != x.Owner:
		return fmt.Errorf("%w: %q belongs to uid %d", ErrNotOwner, pattern, x.Owner)
	}
	c.Release(pattern)
	return nil
}

// Get returns the claim with exactly this pattern.
func (c *Claims) Get(pattern string) (Claim, bool) {
	if x := c.byPattern[pattern]; x != nil {
		return *x, true
	}
	return Claim{}, false
}

// Len is the number of claims.
func (c *Claims) Len() int { return len(c.byPattern) }

// List returns every claim, sorted by pattern.
func (c *Claims) List() []Claim {
	out := make([]Claim, 0, len(c.byPattern))
	for _, x := range c.sorted() {
		out = append(out, *x)
	}
	return out
}

func (c *Claims) sorted() []*Claim {
	out := make([]*Claim, 0, len(c.byPattern))
	for _, x := range c.byPattern {
		out = append(out, x)
	}
	slices.SortFunc(out, func(a, b *Claim) int { return cmp.Compare(a.Pattern, b.Pattern) })
	return out
}

// Lookup returns the claim subject belongs to: the most specific claim
// whose pattern matches it. ok is false when no claim matches (the
// subject is open to all) or subject is not a valid subject.
func (c *Claims) Lookup(subject string) (claim Claim, ok bool) {
	var best *Claim
	for _, x := range c.index.Match(subject) {
		if best == nil || MoreSpecific(x.Pattern, best.Pattern) {
			best = x
		}
	}
	if best == nil {
		return Claim{}, false
	}
	return *best, true
}

// MoreSpecific reports whether pattern a is more specific than pattern
// b, the order in which claims win: the one with more literal tokens;
// then the one with fewer wildcard tokens; then, at the first token where
// the two differ in kind, literal beats "*" and "*" beats ">"; then the
// lesser string (only patterns that never match the same subject get this
// far). It is a strict total order on distinct valid patterns.
func MoreSpecific(a, b string) bool {
	la, wa := shape(a)
	lb, wb := shape(b)
	if la != lb {
		return la > lb
	}
	if wa != wb {
		return wa < wb
	}
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		at, ae := nextToken(a, i)
		bt, be := nextToken(b, j)
		if ka, kb := kind(at), kind(bt); ka != kb {
			return ka < kb
		}
		i, j = ae+1, be+1
	}
	return a < b
}

// shape counts a pattern's literal and wildcard tokens.
func shape(p string) (literals, wildcards int) {
	for _, t := range strings.Split(p, ".") {
		if t == "*" || t == ">" {
			wildcards++
		} else {
			literals++
		}
	}
	return
}

// kind orders token kinds from most to least specific.
func kind(t string) int {
	switch t {
	case "*":
		return 1
	case ">":
		return 2
	}
	return 0
}

// Allowed reports whether uid, with groups gids, has every bit of want
// (PermRead to subscribe, PermWrite to publish) on subjectOrPattern.
//
// For a subject, the claim it belongs to decides (Lookup); an unclaimed
// subject allows everything. For a pattern with wildcards, every claim
// that may own some subject the pattern matches must allow it: each claim
// the pattern Intersects, except those that can never win there because
// a more specific claim Covers the whole pattern. So ">" cannot read
// another user's claimed subjects, while "public.*" needs only the claim
// "public.>" even if root also claimed ">".
//
// Root (uid 0) is allowed everything. Otherwise the owner triple applies
// if uid is the claim's owner, else the group triple if gids contains its
// GID, else the other triple. An invalid subject or pattern is not
// allowed.
func (c *Claims) Allowed(subjectOrPattern string, uid uint32, gids []uint32, want uint32) bool {
	if ValidPattern(subjectOrPattern) != nil {
		return false
	}
	if uid == 0 || len(c.byPattern) == 0 {
		return true
	}
	if ValidSubject(subjectOrPattern) == nil {
		x, ok := c.Lookup(subjectOrPattern)
		return !ok || x.permits(uid, gids, want)
	}
	all := c.sorted()
	for _, x := range all {
		if !Intersects(x.Pattern, subjectOrPattern) || x.permits(uid, gids, want) {
			continue
		}
		shadowed := slices.ContainsFunc(all, func(y *Claim) bool {
			return y != x && Covers(y.Pattern, subjectOrPattern) && MoreSpecific(y.Pattern, x.Pattern)
		})
		if !shadowed {
			return false
		}
	}
	return true
}

// permits applies x's mode to uid and gids (not root).
func (x *Claim) permits(uid uint32, gids []uint32, want uint32) bool {
	bits := x.Mode
	switch {
	case uid == x.Owner:
		bits >>= 6
	case slices.Contains(gids, x.GID):
		bits >>= 3
	}
	return bits&want == want
}
