package wire

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

// groupsVectors are the conformance vectors of JOIN, multicast and
// broadcast SENDs, WATCH and NOTICE (groups.json).
func groupsVectors() []vecSpec {
	join := &Join{Group: []byte("#workers")}
	joinBox := &Join{Group: []byte("#workers"), Mailbox: []byte("jobs")}
	multicast := &Send{Target: []byte("#workers"), Msgs: []SendMsg{{Type: 1, Body: []byte("hi all")}}}
	broadcast := &Send{Target: []byte("@*"), Msgs: []SendMsg{{Type: 1, Body: []byte("shutdown at noon")}}}
	fanOut := &SendReply{IDs: []uint64{0}, Ext: AppendRecipients(nil, 3)}
	exited := &Notice{Kind: NoticeEndpointExited, Reason: ExitProcessExited, Flags: NoticeStatusKnown,
		Target: AppendInbox(nil, vecPeer.Endpoint), Endpoint: vecPeer.Endpoint, PID: vecPeer.PID, UID: vecPeer.UID,
		Status: 9, UnixNano: 1_750_000_000_000_000_000}
	armed := &Notice{Kind: NoticeArmed, Flags: NoticeExists, Target: []byte("jobs"), Depth: 2, UnixNano: 1_750_000_000_000_000_000}
	nonEmpty := &Notice{Kind: NoticeNonEmpty, Target: []byte("jobs"), Depth: 1, UnixNano: 1_750_000_000_000_000_001}
	np := nonEmpty.Append(nil)
	return []vecSpec{
		ok("join", req(OpJoin, 50), "Join", join),
		ok("join-mailbox", req(OpJoin, 51), "Join", joinBox),
		ok("leave", Header{Op: OpJoin, Flags: FlagLeave, Request: 52}, "Join", join),
		ok("join-reply", rep(OpJoin, 50), "Empty", &Empty{}),
		ok("send-multicast", req(OpSend, 53), "Send", multicast),
		ok("send-multicast-reply", rep(OpSend, 53), "SendReply", fanOut),
		ok("send-broadcast", req(OpSend, 54), "Send", broadcast),
		ok("send-broadcast-denied", fail(OpSend, CodePermission, 54), "Error",
			&ErrorReply{Message: []byte(`send to "@*": broadcast is for root or the broadcast owner`), HasDone: true}),
		ok("watch-endpoint", req(OpWatch, 60), "Watch", &Watch{Target: AppendInbox(nil, vecPeer.Endpoint)}),
		ok("watch-mailbox", req(OpWatch, 61), "Watch", &Watch{Target: []byte("jobs")}),
		ok("notice-armed", Header{Op: OpNotice, Flags: FlagPush, Request: 61}, "Notice", armed),
		ok("notice-non-empty", Header{Op: OpNotice, Flags: FlagPush, Request: 61}, "Notice", nonEmpty),
		ok("notice-endpoint-exited", Header{Op: OpNotice, Flags: FlagPush, Request: 60}, "Notice", exited),
		ok("watch-ended", rep(OpWatch, 60), "Empty", &Empty{}),
		ok("watch-canceled", Header{Op: OpWatch | OpReply, Status: CodeCanceled, Request: 61},
			"Error", &ErrorReply{Message: []byte(`watch "jobs": canceled`)}),
		bad("join-truncated", req(OpJoin, 50), "Join", AppendString(nil, "#workers"), "malformed"),
		bad("notice-truncated", Header{Op: OpNotice, Flags: FlagPush, Request: 61}, "Notice", np[:len(np)-1], "malformed"),
		bad("watch-critical-ext", req(OpWatch, 62), "Watch",
			cat(AppendString(nil, "jobs"), AppendExt(nil, TagCritical|0x0061, nil)), "critical"),
	}
}

func TestValidTargetTakesGroupsAndBroadcastButValidAddressDoesNot(t *testing.T) {
	for _, tc := range []struct {
		s               string
		target, address bool
	}{
		{"jobs", true, true},
		{"@17", true, true},
		{"#workers", true, false},
		{"#a.b/c", true, false},
		{"@*", true, false},
		{"#", false, false},
		{"##x", false, false},
		{"#bad name", false, false},
		{"@**", false, false},
		{"*", false, false},
		{"", false, false},
	} {
		if got := ValidTarget(tc.s); got != tc.target {
			t.Errorf("ValidTarget(%q) = %v, want %v", tc.s, got, tc.target)
		}
		if got := ValidAddress(tc.s); got != tc.address {
			t.Errorf("ValidAddress(%q) = %v, want %v", tc.s, got, tc.address)
		}
	}
}

func TestRecipientsRoundTripsAndRefusesABadLength(t *testing.T) {
	n, ok, err := Recipients(AppendRecipients(AppendExt(nil, 0x0042, []byte("x")), 7))
	if err != nil || !ok || n != 7 {
		t.Fatalf("Recipients = %d %v %v, want 7 true nil", n, ok, err)
	}
	if _, ok, err := Recipients(nil); ok || err != nil {
		t.Fatalf("no entry: %v %v", ok, err)
	}
	if _, _, err := Recipients(AppendExt(nil, TagRecipients, []byte{1, 2})); !errors.Is(err, ErrMalformed) {
		t.Fatalf("2-byte value: %v, want ErrMalformed", err)
	}
	twice := AppendRecipients(AppendRecipients(nil, 1), 2)
	if _, _, err := Recipients(twice); !errors.Is(err, ErrMalformed) {
		t.Fatalf("twice: %v, want ErrMalformed", err)
	}
}

// TestGroupsPayloadsReencodeWhatTheyDecode mutates valid Join, Watch and
// Notice payloads at random: whatever decodes re-encodes byte for byte,
// and every failure is one of the package's sentinels. (FuzzPayload does
// the same without bound: go test ./wire -fuzz FuzzPayload.)
func TestGroupsPayloadsReencodeWhatTheyDecode(t *testing.T) {
	r := rand.New(rand.NewPCG(10, 44))
	seeds := []payload{
		&Join{Group: []byte("#workers"), Mailbox: []byte("jobs")},
		&Watch{Target: []byte("@17")},
		&Notice{Kind: NoticeEndpointExited, Reason: ExitProcessExited, Flags: NoticeStatusKnown, Target: []byte("@17"),
			Endpoint: 17, PID: 4242, UID: 1000, Status: 9, UnixNano: 1},
	}
	news := []func() payload{func() payload { return new(Join) }, func() payload { return new(Watch) }, func() payload { return new(Notice) }}
	for i, s := range seeds {
		base := s.Append(nil)
		for range 20000 {
			p := append([]byte(nil), base...)
			switch r.IntN(3) {
			case 0:
				if len(p) > 0 {
					p[r.IntN(len(p))] = byte(r.UintN(256))
				}
			case 1:
				p = p[:r.IntN(len(p)+1)]
			case 2:
				p = append(p, AppendExt(nil, uint16(r.UintN(1<<16)), []byte("x"))...)
			}
			m := news[i]()
			if err := m.Decode(p); err != nil {
				if !knownError(err) {
					t.Fatalf("% x: %v", p, err)
				}
				continue
			}
			if re := m.Append(nil); !bytes.Equal(re, p) {
				t.Fatalf("% x re-encodes to % x", p, re)
			}
		}
	}
}
