package mailbox

import (
	"fmt"
	"testing"
)

// An urgent message sent to a mailbox with a backlog of 10,000 and taken
// at once, against an ordinary one of the top priority (the baseline: it
// is taken at once too). Both should cost the same: the urgent lane is one
// more lane, looked at first.
func BenchmarkTakeAheadOfBacklog(b *testing.B) {
	for _, urgent := range []bool{false, true} {
		b.Run(fmt.Sprintf("urgent=%v", urgent), func(b *testing.B) {
			m := New(Config{Capacity: -1})
			for i := range 10_000 {
				m.Send(&Message{Type: 1, Priority: uint8(i % 200), Body: make([]byte, 64)}, false, nil)
			}
			msg := &Message{Type: 1, Priority: 255, Urgent: urgent, Body: make([]byte, 64)}
			r := &Receiver{Ref: "r", Ident: Identity{Endpoint: 1}}
			b.ReportAllocs()
			for b.Loop() {
				msg.Seq = 0
				if _, done, err := m.Send(msg, false, nil); !done || err != nil {
					b.Fatal(done, err)
				}
				if err := m.Receive(r, false); err != nil || m.Effects()[0].Msg != msg {
					b.Fatal(err)
				}
				if err := m.Ack(1, m.Effects()[0].Lease); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// Withdrawing one queued message by id from a backlog of 10,000 spread
// over 200 priorities, and sending it again.
func BenchmarkWithdrawIDFromBacklog(b *testing.B) {
	m := New(Config{Capacity: -1})
	by := Identity{Kind: 1, UID: 7}
	for i := range 10_000 {
		m.Send(&Message{Type: 1, Priority: uint8(i % 200), Sender: by}, false, nil)
	}
	msg := &Message{Type: 1, Priority: 100, Sender: by}
	ids := make([]uint64, 1)
	var dst []Withdrawal
	b.ReportAllocs()
	for b.Loop() {
		msg.Seq = 0
		m.Send(msg, false, nil)
		ids[0] = msg.Seq
		var err error
		if dst, err = m.WithdrawIDs(by, false, ids, dst[:0]); err != nil || dst[0].Outcome != Withdrawn {
			b.Fatal(err, dst)
		}
	}
}
