package broker

import "errors"

// Group membership: the deterministic core (no I/O, no lock, no clock).
//
// A member is an address: an endpoint's inbox ("@id") or a named
// mailbox. A group exists while it has members; an empty group and an
// unknown one are the same thing. Members of a group are kept in the
// order they joined, so a multicast's copies go out in a stable order.
// The shell (groups.go) guards a groupTable with a mutex and drops an
// endpoint's memberships when its connection ends, a mailbox's when it is
// destroyed (dropMember).
//
//	Join(g, m)        m in g (again: no change)
//	Leave(g, m)       m no longer in g
//	dropMember(m)     m in no group
//	Members(g)        g's members, in join order

// maxGroupsPerMember bounds the groups one member may be in: what one
// endpoint can make the broker hold.
const maxGroupsPerMember = 1024

var errTooManyGroups = errors.New("member is in the most groups allowed")

type groupTable struct {
	groups  map[string]*group              // by name ("#..."), only non-empty ones
	members map[string]map[string]struct{} // member -> the groups it is in
}

// group is one group's members in join order; index finds a member's place.
type group struct {
	list  []string
	index map[string]int
}

// Join adds member to g. It reports whether member was not in g already;
// errTooManyGroups if member is in maxGroupsPerMember groups.
func (t *groupTable) Join(g, member string) (bool, error) {
	if _, in := t.members[member][g]; in {
		return false, nil
	}
	if len(t.members[member]) >= maxGroupsPerMember {
		return false, errTooManyGroups
	}
	if t.groups == nil {
		t.groups = make(map[string]*group)
		t.members = make(map[string]map[string]struct{})
	}
	gr := t.groups[g]
	if gr == nil {
		gr = &group{index: make(map[string]int)}
		t.groups[g] = gr
	}
	gr.index[member] = len(gr.list)
	gr.list = append(gr.list, member)
	in := t.members[member]
	if in == nil {
		in = make(map[string]struct{})
		t.members[member] = in
	}
	in[g] = struct{}{}
	return true, nil
}

// Leave removes member from g and reports whether it was in it.
func (t *groupTable) Leave(g, member string) bool {
	gr := t.groups[g]
	if gr == nil {
		return false
	}
	i, ok := gr.index[member]
	if !ok {
		return false
	}
	delete(gr.index, member)
	copy(gr.list[i:], gr.list[i+1:])
	gr.list[len(gr.list)-1] = ""
	gr.list = gr.list[:len(gr.list)-1]
	for j := i; j < len(gr.list); j++ {
		gr.index[gr.list[j]] = j
	}
	if len(gr.list) == 0 {
		delete(t.groups, g)
	}
	in := t.members[member]
	delete(in, g)
	if len(in) == 0 {
		delete(t.members, member)
	}
	return true
}

// dropMember removes member from every group it is in and returns how
// many that was.
func (t *groupTable) dropMember(member string) int {
	in := t.members[member]
	n := 0
	for g := range in {
		if t.Leave(g, member) {
			n++
		}
	}
	return n
}

// Members appends g's members, in join order, to dst.
func (t *groupTable) Members(g string, dst []string) []string {
	if gr := t.groups[g]; gr != nil {
		dst = append(dst, gr.list...)
	}
	return dst
}

// GroupsOf returns how many groups member is in.
func (t *groupTable) GroupsOf(member string) int { return len(t.members[member]) }

// Len returns the number of non-empty groups.
func (t *groupTable) Len() int { return len(t.groups) }
