package mailbox

import (
	"errors"
	"fmt"
	"slices"
)

// withdraw is the model's withdrawal step: by ids or by a match, as
// endpoint ep's principal (uid ep), sometimes with the owner's right to
// withdraw anybody's. The outcomes are predicted from where the model
// says each message is.
func (md *model) withdraw(ep uint64) {
	rng := md.rng
	by := Identity{Kind: 1, UID: uint32(ep), Endpoint: ep}
	anySender := rng.IntN(4) == 0
	mine := func(mm *modelMsg) bool { return anySender || mm.msg.Sender.UID == by.UID }
	bySeq := map[uint64]*modelMsg{}
	var sent []*modelMsg
	offered := map[*modelMsg]bool{}
	for _, mm := range md.order {
		if mm.msg.Seq != 0 {
			bySeq[mm.msg.Seq] = mm
			sent = append(sent, mm)
			offered[mm] = mm.msg.offer != nil
		}
	}
	// Messages withdrawn outright change place here; offered ones leave
	// through their sender's EffFail, which apply follows.
	take := func(mm *modelMsg) {
		if !offered[mm] {
			mm.place = pWithdrawn
		}
	}
	if rng.IntN(2) == 0 {
		var seqs []uint64
		for range 1 + rng.IntN(3) {
			if len(sent) > 0 && rng.IntN(5) > 0 {
				seqs = append(seqs, sent[rng.IntN(len(sent))].msg.Seq)
			} else {
				seqs = append(seqs, md.m.NextSeq()+uint64(rng.IntN(3)))
			}
		}
		md.log = append(md.log, fmt.Sprintf("withdraw ids %v ep=%d any=%v", seqs, ep, anySender))
		forbidden := false
		for _, seq := range seqs {
			if mm := bySeq[seq]; mm != nil && (mm.place == pQueued || mm.place == pLeased) && !mine(mm) {
				forbidden = true
			}
		}
		before := md.m.Stats()
		got, err := md.m.WithdrawIDs(by, anySender, seqs, nil)
		if forbidden {
			if !errors.Is(err, ErrNotSender) || len(md.m.Effects()) != 0 || md.m.Stats() != before {
				md.fatalf("withdrawing another's message: err %v, effects %q", err, effStrings(md.m.Effects()))
			}
			return
		}
		md.mustOK(err)
		if len(got) != len(seqs) {
			md.fatalf("%d outcomes for %d ids", len(got), len(seqs))
		}
		gone := map[*modelMsg]bool{}
		for i, seq := range seqs {
			mm, w := bySeq[seq], got[i]
			want := Unknown
			switch {
			case mm == nil:
			case gone[mm]:
				want = Gone
			case mm.place == pQueued:
				want, gone[mm] = Withdrawn, true
				take(mm)
			case mm.place == pLeased:
				want = InProgress
				if w.Holder.Endpoint != mm.holder || w.Lease != mm.lease {
					md.fatalf("id %d in progress: holder %d lease %d, model %d %d", seq, w.Holder.Endpoint, w.Lease, mm.holder, mm.lease)
				}
			default:
				want = Gone
			}
			if w.Seq != seq || w.Outcome != want {
				md.fatalf("id %d: outcome %v (id %d), model says %v", seq, w.Outcome, w.Seq, want)
			}
		}
		md.apply(true)
		return
	}
	typ := 1 + rng.Int64N(4)
	limit := 1 + rng.IntN(3)
	md.log = append(md.log, fmt.Sprintf("withdraw type=%d limit=%d ep=%d any=%v", typ, limit, ep, anySender))
	var want []*modelMsg
	for _, mm := range sent {
		if (mm.place == pQueued || mm.place == pLeased) && mine(mm) && mm.msg.Type == typ {
			want = append(want, mm)
		}
	}
	slices.SortFunc(want, func(a, b *modelMsg) int { return int(a.msg.Seq) - int(b.msg.Seq) })
	wantMore := len(want) > limit
	want = want[:min(limit, len(want))]
	got, more, err := md.m.WithdrawMatching(by, anySender, 0, limit, func(m *Message) bool { return m.Type == typ }, nil)
	md.mustOK(err)
	if len(got) != len(want) || more != wantMore {
		md.fatalf("withdraw matching: %d outcomes more=%v, model %d more=%v", len(got), more, len(want), wantMore)
	}
	for i, mm := range want {
		w, o := got[i], Withdrawn
		if mm.place == pLeased {
			o = InProgress
		} else {
			take(mm)
		}
		if w.Seq != mm.msg.Seq || w.Outcome != o {
			md.fatalf("withdraw matching #%d: id %d %v, model id %d %v", i, w.Seq, w.Outcome, mm.msg.Seq, o)
		}
	}
	md.apply(true)
}
