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
