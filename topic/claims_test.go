package topic

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestClaimsOwnerModeDecidesAndUnclaimedIsOpen(t *testing.T) {
	var c Claims
	if err := c.Claim("alice.>", 1000, 100, 0o640); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		s    string
		uid  uint32
		gids []uint32
		want uint32
		ok   bool
	}{
		{"alice.x", 1000, nil, PermRead | PermWrite, true},
		{"alice.x", 2000, []uint32{100}, PermRead, true},
		{"alice.x", 2000, []uint32{100}, PermWrite, false},
		{"alice.x", 2000, nil, PermRead, false},
		{"alice.x", 0, nil, PermRead | PermWrite, true},
		{"bob.x", 2000, nil, PermRead | PermWrite, true},
		{">", 2000, nil, PermRead, false},
		{"*.x", 2000, nil, PermRead, false},
		{"bob.>", 2000, nil, PermRead, true},
		{"alice.", 1000, nil, PermRead, false},
	}
	for _, k := range cases {
		if got := c.Allowed(k.s, k.uid, k.gids, k.want); got != k.ok {
			t.Errorf("Allowed(%q, uid %d, gids %v, %o) = %v, want %v", k.s, k.uid, k.gids, k.want, got, k.ok)
		}
	}
}

func TestClaimOverlappingAnotherOwnersClaimIsRefusedUnlessRoot(t *testing.T) {
	var c Claims
	if err := c.Claim("alice.>", 1000, 100, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{">", "*.x", "alice.secret", "alice.>"} {
		if err := c.Claim(p, 2000, 200, 0o600); !errors.Is(err, ErrClaimed) {
			t.Errorf("bob claims %q: %v, want ErrClaimed", p, err)
		}
	}
	if err := c.Claim("alice.mine", 1000, 100, 0o644); err != nil {
		t.Errorf("alice claims inside her own claim: %v", err)
	}
	if err := c.Claim("bob.>", 2000, 200, 0o600); err != nil {
		t.Errorf("bob claims disjoint subjects: %v", err)
	}
	if err := c.ClaimBy(0, "alice.public", 3000, 300, 0o666); err != nil {
		t.Errorf("root claims over alice: %v", err)
	}
	if err := c.ClaimBy(1000, "carol.>", 3000, 300, 0o600); !errors.Is(err, ErrNotOwner) {
		t.Errorf("alice claims for carol: %v, want ErrNotOwner", err)
	}
	if err := c.Claim("x", 1, 1, 0o1777); !errors.Is(err, ErrInvalidMode) {
		t.Errorf("mode 01777: %v, want ErrInvalidMode", err)
	}
	if err := c.Claim("x.", 1, 1, 0o600); !errors.Is(err, ErrInvalidPattern) {
		t.Errorf("bad pattern: %v, want ErrInvalidPattern", err)
	}
	if err := c.ReleaseBy(2000, "alice.>"); !errors.Is(err, ErrNotOwner) {
		t.Errorf("bob releases alice's claim: %v, want ErrNotOwner", err)
	}
	if err := c.ReleaseBy(2000, "nothing"); !errors.Is(err, ErrNoClaim) {
		t.Errorf("release of nothing: %v, want ErrNoClaim", err)
	}
	if err := c.ReleaseBy(1000, "alice.>"); err != nil {
		t.Errorf("alice releases her claim: %v", err)
	}
}

func TestMostSpecificClaimWins(t *testing.T) {
	var c Claims
	for _, p := range []string{">", "orders.>", "orders.*", "orders.eu", "*.eu"} {
		if err := c.Claim(p, 0, 0, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cases := map[string]string{
		"orders.eu":   "orders.eu", // two literals
		"orders.us":   "orders.*",  // one literal, and * beats >
		"orders.us.x": "orders.>",
		"stock.eu":    "*.eu",
		"stock":       ">",
	}
	for subj, want := range cases {
		if got, ok := c.Lookup(subj); !ok || got.Pattern != want {
			t.Errorf("Lookup(%q) = %q, %v; want %q", subj, got.Pattern, ok, want)
		}
	}
}

func TestWildcardSubscriptionNeedsReadOnlyWhereAClaimCanWin(t *testing.T) {
	var c Claims
	c.Claim(">", 0, 0, 0o600)
	c.ClaimBy(0, "public.>", 0, 0, 0o644)
	if !c.Allowed("public.*", 1000, nil, PermRead) {
		t.Error("public.* is covered by public.> (readable), yet refused because of >")
	}
	if c.Allowed("*.x", 1000, nil, PermRead) {
		t.Error("*.x reaches subjects only > owns, yet allowed")
	}
	if !c.Allowed("public.x", 1000, nil, PermRead) || c.Allowed("public.x", 1000, nil, PermWrite) {
		t.Error("public.x: want read, not write")
	}
}

// allSubjects is every subject of 1..4 tokens over {a, b, c}.
func allSubjects() []string {
	var out, level []string
	level = []string{""}
	for range 4 {
		var next []string
		for _, p := range level {
			for _, t := range []string{"a", "b", "c"} {
				if p == "" {
					next = append(next, t)
				} else {
					next = append(next, p+"."+t)
				}
			}
		}
		out = append(out, next...)
		level = next
	}
	return out
}

// TestAllowedPatternImpliesAllowedForEverySubjectItMatches: a wildcard
// subscription that is allowed never receives a subject its subscriber
// could not subscribe to by name; and for subjects, Lookup is the most
// specific matching claim found by brute force.
func TestAllowedPatternImpliesAllowedForEverySubjectItMatches(t *testing.T) {
	subjects := allSubjects()
	r := rand.New(rand.NewPCG(3, 4))
	for round := range 200 {
		var c Claims
		var claims []Claim
		for range 1 + r.IntN(5) {
			x := Claim{Pattern: randomPattern(r), Owner: uint32(1 + r.IntN(3)), GID: uint32(r.IntN(2)), Mode: uint32(r.IntN(0o1000))}
			if err := c.ClaimBy(0, x.Pattern, x.Owner, x.GID, x.Mode); err != nil {
				t.Fatal(err)
			}
			claims = slices.DeleteFunc(claims, func(y Claim) bool { return y.Pattern == x.Pattern })
			claims = append(claims, x)
		}
		for _, subj := range subjects {
			var best *Claim
			for i := range claims {
				if Match(claims[i].Pattern, subj) && (best == nil || MoreSpecific(claims[i].Pattern, best.Pattern)) {
					best = &claims[i]
				}
			}
			got, ok := c.Lookup(subj)
			if ok != (best != nil) || ok && got != *best {
				t.Fatalf("round %d: Lookup(%q) = %+v, %v; brute force %+v (claims %+v)", round, subj, got, ok, best, claims)
			}
		}
		for range 20 {
			p := randomPattern(r)
			uid, gids, want := uint32(1+r.IntN(3)), []uint32{uint32(r.IntN(2))}, []uint32{PermRead, PermWrite}[r.IntN(2)]
			if !c.Allowed(p, uid, gids, want) {
				continue
			}
			for _, subj := range subjects {
				if Match(p, subj) && !c.Allowed(subj, uid, gids, want) {
					t.Fatalf("round %d: %q allowed for uid %d but its subject %q is not (claims %+v)", round, p, uid, subj, claims)
				}
			}
		}
	}
}

func TestMoreSpecificIsAStrictTotalOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var ps []string
	for range 60 {
		if p := randomPattern(r); !slices.Contains(ps, p) {
			ps = append(ps, p)
		}
	}
	for _, a := range ps {
		if MoreSpecific(a, a) {
			t.Fatalf("MoreSpecific(%q, itself)", a)
		}
		for _, b := range ps {
			if a != b && MoreSpecific(a, b) == MoreSpecific(b, a) {
				t.Fatalf("MoreSpecific(%q, %q) = MoreSpecific(%q, %q)", a, b, b, a)
			}
			for _, c := range ps {
				if MoreSpecific(a, b) && MoreSpecific(b, c) && !MoreSpecific(a, c) {
					t.Fatalf("not transitive: %q > %q > %q", a, b, c)
				}
			}
		}
	}
}

// TestClaimsOfDifferentUsersNeverOverlap: whatever order users claim in,
// the claims that succeed never intersect another owner's.
func TestClaimsOfDifferentUsersNeverOverlap(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 9))
	for range 100 {
		var c Claims
		for range 10 {
			uid := uint32(1 + r.IntN(3))
			err := c.Claim(randomPattern(r), uid, uid, 0o600)
			if err != nil && !errors.Is(err, ErrClaimed) {
				t.Fatal(err)
			}
		}
		list := c.List()
		for _, a := range list {
			for _, b := range list {
				if a.Owner != b.Owner && Intersects(a.Pattern, b.Pattern) {
					t.Fatalf("%+v and %+v overlap", a, b)
				}
			}
		}
	}
}

func TestClaimReplacedByItsOwnerAndReleased(t *testing.T) {
	var c Claims
	if c.Len() != 0 || c.Release("a") {
		t.Fatal("zero Claims is not empty")
	}
	c.Claim("a.>", 1000, 100, 0o600)
	if err := c.Claim("a.>", 1000, 200, 0o644); err != nil {
		t.Fatalf("owner re-claims: %v", err)
	}
	if x, ok := c.Get("a.>"); !ok || x.GID != 200 || x.Mode != 0o644 || c.Len() != 1 {
		t.Fatalf("Get = %+v, %v; Len %d", x, ok, c.Len())
	}
	if _, ok := c.Get("a.*"); ok {
		t.Fatal("Get is not exact")
	}
	if !c.Release("a.>") || c.Len() != 0 || !c.Allowed("a.b", 5, nil, PermRead) {
		t.Fatal("Release left the claim in force")
	}
}
