package broker_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/postbox-ipc/postbox/broker"
	"github.com/postbox-ipc/postbox/wire"
)

func TestV2AckRangesReportStaleLeasesAndApplyTheRest(t *testing.T) {
	b := startBroker(t, nil)
	rc := dialRaw(t, b.socket)
	rc.create(t, wire.Create{Name: []byte("q"), Capacity: -1})
	rc.sendOK(t, "q", "1", "2", "3", "4", "5")
	var ls []uint64
	for range 5 {
		ls = append(ls, rc.recv(t, "q", 0).Lease)
	}
	// Ack the middle lease alone first: it is then stale in the range.
	hd, p := rc.roundTrip(t, wire.OpAck, 0, leases(wire.LeaseRange{First: ls[2], N: 1}))
	must(t, "ACK", hd, p, wire.OK)
	rs := wire.RangesOf(append([]uint64(nil), ls...), nil)
	hd, p = rc.roundTrip(t, wire.OpAck, 0, (&wire.Leases{Ranges: rs}).Append(nil))
	must(t, "ACK of all five", hd, p, wire.OK)
	var r wire.AckReply
	if err := r.Decode(p); err != nil {
		t.Fatal(err)
	}
	if r.Done != 4 || len(r.Failed) != 1 || r.Failed[0] != (wire.LeaseFailure{Lease: ls[2], Status: wire.CodeStaleLease}) {
		t.Fatalf("ack reply %+v, want 4 done and lease %d stale", r, ls[2])
	}
	hd, p = rc.roundTrip(t, wire.OpStat, 0, (&wire.Name{Name: []byte("q")}).Append(nil))
	must(t, "STAT", hd, p, wire.OK)
	var info wire.MailboxInfo
	info.Decode(p)
	if info.InFlight != 0 || info.Depth != 0 || info.Received != 5 {
		t.Fatalf("after acks: %+v", info)
	}
	// Overlapping ranges: the frame as a whole is MALFORMED.
	hd, p = rc.roundTrip(t, wire.OpAck, 0, leases(wire.LeaseRange{First: 1, N: 3}, wire.LeaseRange{First: 2, N: 1}))
	must(t, "overlapping ranges", hd, p, wire.CodeMalformed)
}

func TestV2NackRangesRedeliver(t *testing.T) {
	b := startBroker(t, nil)
	rc := dialRaw(t, b.socket)
	rc.create(t, wire.Create{Name: []byte("q"), Capacity: -1})
	rc.sendOK(t, "q", "1", "2")
	l1, l2 := rc.recv(t, "q", 0).Lease, rc.recv(t, "q", 0).Lease
	hd, p := rc.roundTrip(t, wire.OpNack, 0, (&wire.Leases{Ranges: wire.RangesOf([]uint64{l1, l2}, nil)}).Append(nil))
	must(t, "NACK", hd, p, wire.OK)
	var r wire.AckReply
	r.Decode(p)
	if r.Done != 2 || len(r.Failed) != 0 {
		t.Fatalf("nack reply %+v", r)
	}
	if d := rc.recv(t, "q", wire.FlagAutoAck); string(d.Body) != "1" || d.Redeliveries != 1 {
		t.Fatalf("redelivered %q redeliveries %d", d.Body, d.Redeliveries)
	}
}

func TestV2ListPagesThroughMailboxes(t *testing.T) {
	b := startBroker(t, nil)
	rc := dialRaw(t, b.socket)
	var want []string
	for i := range 7 {
		name := fmt.Sprintf("m%02d", i)
		rc.create(t, wire.Create{Name: []byte(name), Capacity: -1})
		want = append(want, name)
	}
	inbox := fmt.Sprintf("@%d", rc.hello.Endpoint)
	want = append([]string{inbox}, want...) // '@' sorts before 'm'
	var got []string
	cursor := []byte(nil)
	pages := 0
	for {
		hd, p := rc.roundTrip(t, wire.OpList, 0, (&wire.List{Cursor: cursor, Limit: 3}).Append(nil))
		must(t, "LIST", hd, p, wire.OK)
		var r wire.ListReply
		if err := r.Decode(p); err != nil {
			t.Fatal(err)
		}
		pages++
		for _, info := range r.Infos {
			got = append(got, string(info.Name))
		}
		if len(r.Next) == 0 {
			break
		}
		cursor = append([]byte(nil), r.Next...)
	}
	if pages != 3 || strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("%d pages: %v, want 3 pages of %v", pages, got, want)
	}
	// An empty LIST payload is the first page of up to 256.
	hd, p := rc.roundTrip(t, wire.OpList, 0, nil)
	must(t, "LIST without payload", hd, p, wire.OK)
	var r wire.ListReply
	r.Decode(p)
	if len(r.Infos) != len(want) || len(r.Next) != 0 {
		t.Fatalf("LIST without payload: %d entries, next %q", len(r.Infos), r.Next)
	}
}

func TestV2ListPageEndsEarlyToFitMaxFrame(t *testing.T) {
	b := startBroker(t, func(c *broker.Config) { c.MaxMessage = 1; c.MaxFrame = 2048 })
	rc := dialRaw(t, b.socket)
	for i := range 20 {
		rc.create(t, wire.Create{Name: []byte(fmt.Sprintf("%s%02d", strings.Repeat("n", 150), i)), Capacity: -1})
	}
	seen := 0
	var cursor []byte
	for pages := 0; ; pages++ {
		f, id := rc.frame(wire.OpList, 0, (&wire.List{Cursor: cursor, Limit: 1024}).Append(nil))
		rc.write(t, f)
		hd, p := rc.reply(t, id)
		must(t, "LIST", hd, p, wire.OK)
		if len(p)+12 > 2048 {
			t.Fatalf("page of %d bytes, max frame 2048", len(p)+12)
		}
		var r wire.ListReply
		if err := r.Decode(p); err != nil {
			t.Fatal(err)
		}
		seen += len(r.Infos)
		if len(r.Next) == 0 {
			if pages < 3 || seen != 21 {
				t.Fatalf("%d entries in %d pages", seen, pages+1)
			}
			return
		}
		cursor = append([]byte(nil), r.Next...)
	}
}

func TestV2CreateDeadLetterEmptyInvalidMissingNotFound(t *testing.T) {
	b := startBroker(t, nil)
	rc := dialRaw(t, b.socket)
	for name, c := range map[string]struct {
		dl   []byte
		code wire.Code
	}{
		"empty":   {[]byte{}, wire.CodeInvalid},
		"invalid": {[]byte("no*pe"), wire.CodeInvalid},
		"inbox":   {[]byte("@5"), wire.CodeInvalid},
		"missing": {[]byte("nowhere"), wire.CodeNotFound},
	} {
		hd, p := rc.roundTrip(t, wire.OpCreate, 0, (&wire.Create{Name: []byte("src"), Mode: 0o600, DeadLetter: c.dl}).Append(nil))
		must(t, "DEAD_LETTER "+name, hd, p, c.code)
	}
	// An unknown critical option is INVALID.
	p := (&wire.Create{Name: []byte("src"), Mode: 0o600}).Append(nil)
	p = wire.AppendExt(p, 0x8fff, nil)
	hd, rp := rc.roundTrip(t, wire.OpCreate, 0, p)
	must(t, "unknown critical option", hd, rp, wire.CodeInvalid)
	// An unknown non-critical one is skipped.
	p = (&wire.Create{Name: []byte("src"), Mode: 0o600}).Append(nil)
	p = wire.AppendExt(p, 0x0fff, []byte("x"))
	hd, rp = rc.roundTrip(t, wire.OpCreate, 0, p)
	must(t, "unknown non-critical option", hd, rp, wire.OK)
}

func TestV2StatReplyIsMailboxInfo(t *testing.T) {
	b := startBroker(t, nil)
	rc := dialRaw(t, b.socket)
	rc.create(t, wire.Create{Name: []byte("s"), Capacity: 5, MaxDeliveries: 3})
	rc.sendOK(t, "s", "x")
	hd, p := rc.roundTrip(t, wire.OpStat, 0, (&wire.Name{Name: []byte("s")}).Append(nil))
	must(t, "STAT", hd, p, wire.OK)
	var info wire.MailboxInfo
	if err := info.Decode(p); err != nil {
		t.Fatal(err)
	}
	if string(info.Name) != "s" || info.Capacity != 5 || info.Depth != 1 || info.MaxDeliveries != 3 || info.Mode != 0o666 {
		t.Fatalf("%+v", info)
	}
}
