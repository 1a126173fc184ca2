package broker_test

import (
	"testing"

	"github.com/postbox-ipc/postbox/wire"
)

// The frames of publish/subscribe on a raw connection: EVENT frames carry
// the SUBSCRIBE's id and spend its buffer, CREDIT gives room back (and
// releases the gap notice), and the SUBSCRIBE-reply ending a cancelled
// stream is the last frame with its id.

func TestSubscribeEventsSpendTheBufferAndCreditReleasesTheGapNotice(t *testing.T) {
	b := startBroker(t, nil)
	sub := dialRaw(t, b.socket)
	pub := dialRaw(t, b.socket)
	s := wire.Subscribe{Pattern: []byte("t.*"), Buffer: 2, Policy: wire.PolicyDropNewest}
	f, sid := sub.frame(wire.OpSubscribe, 0, s.Append(nil))
	sub.write(t, f)
	sub.ping(t) // the SUBSCRIBE is in
	for i, body := range []string{"a", "b", "c", "d"} {
		p := wire.Publish{Subject: []byte("t.x"), Timeout: 0, Type: 1, Body: []byte(body)}
		hd, rp := pub.roundTrip(t, wire.OpPublish, 0, p.Append(nil))
		must(t, "PUBLISH", hd, rp, wire.OK)
		var r wire.PublishReply
		if err := r.Decode(rp); err != nil || r.Matched != 1 {
			t.Fatalf("publication %d: matched %d (%v)", i, r.Matched, err)
		}
	}
	event := func() wire.Event {
		t.Helper()
		hd, p, err := sub.next(t)
		if err != nil || hd.Op != wire.OpEvent || !hd.Push() || hd.Request != sid {
			t.Fatalf("want an EVENT for %d, got %s flags %#x id %d (%v)", sid, hd.Op, hd.Flags, hd.Request, err)
		}
		var ev wire.Event
		if err := ev.Decode(p); err != nil {
			t.Fatal(err)
		}
		return ev
	}
	if a, bb := event(), event(); string(a.Body) != "a" || string(bb.Body) != "b" || a.Sender.Endpoint == 0 {
		t.Fatalf("events %q %q", a.Body, bb.Body)
	}
	sub.ping(t) // nothing more without credit (c and d were dropped)
	cr := wire.Credit{N: 2}
	f, _ = sub.frame(wire.OpCredit, 0, cr.Append(nil))
	copy(f[8:16], wire.AppendU64(nil, sid)) // CREDIT names the SUBSCRIBE
	sub.write(t, f)
	if g := event(); g.Flags&wire.EventGap == 0 || g.Missed != 2 || len(g.Subject) != 0 {
		t.Fatalf("want a gap notice of 2, got %+v", g)
	}
	// CANCEL: the SUBSCRIBE-reply is CANCELED and nothing follows it.
	f, _ = sub.frame(wire.OpCancel, wire.FlagUrgent, nil)
	copy(f[8:16], wire.AppendU64(nil, sid))
	sub.write(t, f)
	hd, p := sub.reply(t, sid)
	if hd.Op != wire.OpSubscribe|wire.OpReply {
		t.Fatalf("reply op %s", hd.Op)
	}
	must(t, "SUBSCRIBE-reply", hd, p, wire.CodeCanceled)
	sub.ping(t)
}

func TestSubscribeRefusalsEndTheStreamAtOnce(t *testing.T) {
	b := startBroker(t, nil)
	rc := dialRaw(t, b.socket)
	for _, tc := range []struct {
		s    wire.Subscribe
		want wire.Code
	}{
		{wire.Subscribe{Pattern: []byte("a.>.b"), Buffer: 1}, wire.CodeInvalid},
		{wire.Subscribe{Pattern: []byte("a"), Buffer: 0}, wire.CodeInvalid},
		{wire.Subscribe{Pattern: []byte("a"), Buffer: 1, Policy: 9}, wire.CodeInvalid},
		{wire.Subscribe{Pattern: []byte("a"), Buffer: 1, Ext: wire.AppendExt(nil, wire.TagFilterType, []byte{1})}, wire.CodeMalformed},
	} {
		hd, p := rc.roundTrip(t, wire.OpSubscribe, 0, tc.s.Append(nil))
		must(t, string(tc.s.Pattern), hd, p, tc.want)
	}
	rc.ping(t)
}
