package broker_test

import (
	"fmt"
	"testing"

	"github.com/postbox-ipc/postbox/wire"
)

// TestJoinPastTheMostGroupsIsLimit: an endpoint in 1024 groups gets LIMIT
// for one more, and stays served.
func TestJoinPastTheMostGroupsIsLimit(t *testing.T) {
	b := startBroker(t, nil)
	rc := dialRaw(t, b.socket)
	for i := range 1024 {
		hd, p := rc.roundTrip(t, wire.OpJoin, 0, (&wire.Join{Group: []byte(fmt.Sprintf("#g%d", i))}).Append(nil))
		must(t, "join", hd, p, wire.OK)
	}
	hd, p := rc.roundTrip(t, wire.OpJoin, 0, (&wire.Join{Group: []byte("#one-more")}).Append(nil))
	must(t, "join 1025th", hd, p, wire.CodeLimit)
	hd, p = rc.roundTrip(t, wire.OpJoin, wire.FlagLeave, (&wire.Join{Group: []byte("#g0")}).Append(nil))
	must(t, "leave", hd, p, wire.OK)
	hd, p = rc.roundTrip(t, wire.OpJoin, 0, (&wire.Join{Group: []byte("#one-more")}).Append(nil))
	must(t, "join after a leave", hd, p, wire.OK)
	for _, bad := range []wire.Join{{Group: []byte("g")}, {Group: []byte("#")}, {Group: []byte("#g"), Mailbox: []byte("@1")}} {
		hd, p := rc.roundTrip(t, wire.OpJoin, 0, bad.Append(nil))
		must(t, fmt.Sprintf("join %q %q", bad.Group, bad.Mailbox), hd, p, wire.CodeInvalid)
	}
	rc.ping(t)
}

// TestACanceledWatchEndsWithCanceledAfterItsNotices: the WATCH-reply to a
// CANCEL is CANCELED, in the data lane, and the last frame with its id;
// a second WATCH with an id in flight is INVALID.
func TestACanceledWatchEndsWithCanceledAfterItsNotices(t *testing.T) {
	b := startBroker(t, nil)
	rc := dialRaw(t, b.socket)
	rc.create(t, wire.Create{Name: []byte("jobs"), Capacity: -1})
	f, id := rc.frame(wire.OpWatch, 0, (&wire.Watch{Target: []byte("jobs")}).Append(nil))
	rc.write(t, f)
	hd, p, err := rc.next(t)
	var n wire.Notice
	if err != nil || hd.Op != wire.OpNotice || !hd.Push() || hd.Request != id || n.Decode(p) != nil ||
		n.Kind != wire.NoticeArmed || n.Flags&wire.NoticeExists == 0 {
		t.Fatalf("first frame: %s %+v (%v), want an ARMED notice", hd.Op, n, err)
	}
	dup := append(wire.AppendHeader(nil, wire.Header{Op: wire.OpWatch, Request: id}, len("\x04\x00jobs")), "\x04\x00jobs"...)
	rc.write(t, dup)
	hd, p = rc.reply(t, id)
	must(t, "a WATCH with an id in flight", hd, p, wire.CodeInvalid)

	dialRaw(t, b.socket).sendOK(t, "jobs", "one") // a NON_EMPTY notice, pushed before the SEND's reply
	rc.write(t, wire.AppendHeader(nil, wire.Header{Op: wire.OpCancel, Flags: wire.FlagUrgent, Request: id}, 0))
	var kinds []wire.NoticeKind
	for {
		hd, p, err := rc.next(t)
		if err != nil {
			t.Fatal(err)
		}
		if hd.Request != id {
			continue // the SEND's reply
		}
		if hd.Push() {
			n.Decode(p)
			kinds = append(kinds, n.Kind)
			continue
		}
		must(t, "the WATCH-reply", hd, p, wire.CodeCanceled)
		if hd.Op != wire.OpWatch|wire.OpReply || hd.Urgent() {
			t.Fatalf("WATCH-reply %s flags %#x, want WATCH-REPLY in the data lane", hd.Op, hd.Flags)
		}
		break
	}
	if len(kinds) != 1 || kinds[0] != wire.NoticeNonEmpty {
		t.Fatalf("notices before the reply: %v, want [non-empty]", kinds)
	}
	rc.ping(t) // nothing more for the id: the next frame is PING's reply
}
