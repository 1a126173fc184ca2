package wire

import (
	"errors"
	"reflect"
	"testing"
)

// TestDeliveryDecodeFastPathAgreesWithFieldByField: the fixed fields
// decoded at their offsets equal the field-by-field decoding, for a full
// delivery and for every truncation of it (each an error).
func TestDeliveryDecodeFastPathAgreesWithFieldByField(t *testing.T) {
	in := Delivery{Lease: 1<<63 + 5, ID: 77, Type: -3, Priority: 9, Reason: ReasonExpired, Flags: DeliveryChannelOffer,
		Redeliveries: 1<<31 + 1, Sender: Identity{Kind: 1, UID: 1000, GID: 100, PID: -7, Endpoint: 1<<40 + 3},
		SentUnixNano: -1, Body: []byte("body bytes")}
	p := in.Append(nil)
	var out, slow Delivery
	if err := out.Decode(p); err != nil {
		t.Fatal(err)
	}
	slow.decodeSlow(p)
	if !reflect.DeepEqual(out, in) || !reflect.DeepEqual(slow, in) {
		t.Fatalf("decoded %+v\nslow    %+v\nwant    %+v", out, slow, in)
	}
	for n := range len(p) {
		var d Delivery
		if err := d.Decode(p[:n]); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%d of %d bytes: %v, want ErrMalformed", n, len(p), err)
		}
	}
}

// TestEventDecodeFastPathAgreesWithFieldByField is the same for EVENT:
// with headers, a TLS sender's name (ext) and an empty subject (a gap
// notice), and every truncation.
func TestEventDecodeFastPathAgreesWithFieldByField(t *testing.T) {
	hdr := AppendExt(nil, HeaderContentType, []byte("text/plain"))
	for _, in := range []Event{
		{Flags: 0, Missed: 1<<63 + 2, Subject: []byte("orders.eu.created"), Sender: Identity{Kind: 1, UID: 1000, GID: 100, PID: -7, Endpoint: 1<<40 + 3},
			SentUnixNano: -1, Type: 1<<62 + 9, Headers: hdr, Body: []byte("body bytes"), Ext: AppendPrincipalName(nil, "spiffe://x/y")},
		{Flags: EventGap, Missed: 12},
	} {
		p := in.Append(nil)
		var out, slow Event
		if err := out.Decode(p); err != nil {
			t.Fatal(err)
		}
		slow.decodeSlow(p)
		if !reflect.DeepEqual(out, slow) || !reflect.DeepEqual(out.Append(nil), p) {
			t.Fatalf("decoded %+v\nslow    %+v\nfrom    %+v", out, slow, in)
		}
		for n := range len(p) {
			var d, ds Event
			err := d.Decode(p[:n])
			ds.decodeSlow(p[:n])
			// Cut exactly before the ext, it is an EVENT without one.
			if valid := n == len(p)-len(in.Ext); valid != (err == nil) || !valid && !errors.Is(err, ErrMalformed) {
				t.Fatalf("%d of %d bytes: %v", n, len(p), err)
			}
			if !reflect.DeepEqual(d, ds) {
				t.Fatalf("%d of %d bytes: decoded %+v, slow %+v", n, len(p), d, ds)
			}
		}
	}
}
