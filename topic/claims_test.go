package topic

import (
	"errors"
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
