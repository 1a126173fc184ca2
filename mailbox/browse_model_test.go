package mailbox

import (
	"cmp"
	"reflect"
	"slices"
)

// checkBrowse checks Browse against the model after every step of the
// randomized test: with a random selector and page size, the pages list
// exactly the queued messages that are not offers and that the selector
// matches, in msgrcv order, and browsing changes nothing.
func (md *model) checkBrowse() {
	md.t.Helper()
	if md.destroyed {
		return
	}
	sel := []int64{0, 1, 2, 3, -1, -2, -3}[md.rng.IntN(7)]
	size := 1 + md.rng.IntN(4)
	var want []*Message
	// Browse lists urgent messages in their priority's place.
	q := md.queueOrder()
	slices.SortStableFunc(q, func(a, b *modelMsg) int {
		if c := cmp.Compare(b.msg.Priority, a.msg.Priority); c != 0 {
			return c
		}
		return cmp.Compare(a.msg.Seq, b.msg.Seq)
	})
	for _, mm := range q {
		if mm.msg.offer == nil && matches(sel, mm.msg.Type) {
			want = append(want, mm.msg)
		}
	}
	if sel < 0 {
		slices.SortStableFunc(want, func(a, b *Message) int { return cmp.Compare(a.Type, b.Type) })
	}
	before, effs := md.m.Stats(), len(md.m.Effects())
	var got []*Message
	var after Position
	for {
		page, more, err := md.m.Browse(sel, after, size, nil)
		if err != nil {
			md.fatalf("browse %d: %v", sel, err)
		}
		got = append(got, page...)
		if !more {
			break
		}
		after = PositionOf(page[len(page)-1])
	}
	if !slices.Equal(got, want) {
		md.fatalf("browse %d in pages of %d: %d messages, want %d", sel, size, len(got), len(want))
	}
	if !reflect.DeepEqual(before, md.m.Stats()) || len(md.m.Effects()) != effs {
		md.fatalf("browse %d changed the mailbox", sel)
	}
}
