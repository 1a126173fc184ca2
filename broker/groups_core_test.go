package broker

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestGroupMembersAreInJoinOrderAndJoiningTwiceChangesNothing(t *testing.T) {
	var gt groupTable
	for _, m := range []string{"@3", "jobs", "@1"} {
		if added, err := gt.Join("#g", m); !added || err != nil {
			t.Fatalf("join %s: %v %v", m, added, err)
		}
	}
	if added, _ := gt.Join("#g", "jobs"); added {
		t.Fatal("a second join reported a change")
	}
	if got := gt.Members("#g", nil); !slices.Equal(got, []string{"@3", "jobs", "@1"}) {
		t.Fatalf("members %v", got)
	}
	if !gt.Leave("#g", "jobs") || gt.Leave("#g", "jobs") {
		t.Fatal("leave: first must report true, second false")
	}
	if got := gt.Members("#g", nil); !slices.Equal(got, []string{"@3", "@1"}) {
		t.Fatalf("after leave: %v", got)
	}
}

func TestAGroupWithoutMembersIsGone(t *testing.T) {
	var gt groupTable
	gt.Join("#g", "@1")
	gt.Leave("#g", "@1")
	if gt.Len() != 0 || gt.GroupsOf("@1") != 0 || len(gt.Members("#g", nil)) != 0 {
		t.Fatalf("left behind: %d groups, member in %d", gt.Len(), gt.GroupsOf("@1"))
	}
}

func TestADroppedMemberLeavesEveryGroup(t *testing.T) {
	var gt groupTable
	for i := range 5 {
		gt.Join(fmt.Sprintf("#g%d", i), "@7")
		gt.Join(fmt.Sprintf("#g%d", i), "@8")
	}
	if n := gt.dropMember("@7"); n != 5 {
		t.Fatalf("dropped from %d groups, want 5", n)
	}
	for i := range 5 {
		if got := gt.Members(fmt.Sprintf("#g%d", i), nil); !slices.Equal(got, []string{"@8"}) {
			t.Fatalf("#g%d: %v", i, got)
		}
	}
}

func TestAMemberIsInAtMostMaxGroups(t *testing.T) {
	var gt groupTable
	for i := range maxGroupsPerMember {
		if _, err := gt.Join(fmt.Sprintf("#g%d", i), "@1"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := gt.Join("#one-more", "@1"); !errors.Is(err, errTooManyGroups) {
		t.Fatalf("join past the bound: %v", err)
	}
	if added, err := gt.Join("#g0", "@1"); added || err != nil {
		t.Fatalf("rejoining a group it is in: %v %v", added, err)
	}
}

// TestGroupTableMatchesAModel drives the table with random operations
// and checks it against a naive list of (group, member) pairs.
func TestGroupTableMatchesAModel(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var gt groupTable
	type pair struct{ g, m string }
	var model []pair
	groups := []string{"#a", "#b", "#c"}
	members := []string{"@1", "@2", "x", "y"}
	for step := range 5000 {
		g, m := groups[r.IntN(len(groups))], members[r.IntN(len(members))]
		in := slices.Contains(model, pair{g, m})
		switch r.IntN(4) {
		case 0, 1:
			added, _ := gt.Join(g, m)
			if added == in {
				t.Fatalf("step %d: join %s %s added=%v, model has it=%v", step, g, m, added, in)
			}
			if !in {
				model = append(model, pair{g, m})
			}
		case 2:
			if gt.Leave(g, m) != in {
				t.Fatalf("step %d: leave %s %s", step, g, m)
			}
			model = slices.DeleteFunc(model, func(p pair) bool { return p == pair{g, m} })
		case 3:
			n := 0
			for _, p := range model {
				if p.m == m {
					n++
				}
			}
			if got := gt.dropMember(m); got != n {
				t.Fatalf("step %d: drop %s from %d groups, model %d", step, m, got, n)
			}
			model = slices.DeleteFunc(model, func(p pair) bool { return p.m == m })
		}
		for _, g := range groups {
			var want []string
			for _, p := range model {
				if p.g == g {
					want = append(want, p.m)
				}
			}
			if got := gt.Members(g, nil); !slices.Equal(got, want) {
				t.Fatalf("step %d: %s members %v, model %v", step, g, got, want)
			}
		}
	}
}
