package wire

import (
	"bytes"
	"errors"
	"reflect"
	"slices"
	"testing"
)

// payload is what every request and reply type implements.
type payload interface {
	Append([]byte) []byte
	Decode([]byte) error
}

// sample is one value of a payload type, with every field set so that a
// field the codec forgets shows up as a difference.
type sample struct {
	name string
	v    payload
	zero func() payload // a fresh value to decode into
}

var testSession = Session{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}

func sampleHeaders() []byte {
	return AppendHeaders(nil, &HeaderFields{ReplyTo: []byte("@4294967297"), CorrelationID: []byte("c-1"),
		Deadline: 1_750_000_000_000_000_000, ContentType: []byte("application/json"),
		User: []KV{{Key: []byte("trace-id"), Value: []byte("abc")}, {Key: []byte("k"), Value: []byte{}}}})
}

func samples() []sample {
	unix := Identity{Kind: PrincipalUnix, UID: 1000, GID: 100, PID: 31337, Endpoint: 1<<32 | 7}
	ext := AppendExt(nil, 0x0042, []byte("future"))
	return []sample{
		{"Hello", &Hello{MinVersion: 2, MaxVersion: 3, Client: []byte("pbctl/1.0"), Caps: CapDescriptors,
			Session: testSession, Ext: ext}, func() payload { return new(Hello) }},
		{"HelloReply", &HelloReply{Version: 2, Endpoint: 1<<32 | 7, Caps: CapDescriptors, Epoch: 0xdeadbeef,
			Session: testSession, Principal: unix, MaxFrame: DefaultMaxFrame, MaxMessage: 4 << 20,
			Server: []byte("postbox 0.2")}, func() payload { return new(HelloReply) }},
		{"Create", &Create{Name: []byte("jobs/high"), Capacity: 128, Mode: 0o660, Durable: true,
			MaxBytes: 1 << 30, TTL: 60e9, MaxDeliveries: 5, DeadLetter: []byte("jobs/dead")},
			func() payload { return new(Create) }},
		{"CreateNoOptions", &Create{Name: []byte("r"), Capacity: -1, Mode: 0o600},
			func() payload { return new(Create) }},
		{"Name", &Name{Name: []byte("jobs.high"), Ext: ext}, func() payload { return new(Name) }},
		{"Chmod", &Chmod{Name: []byte("jobs"), Mode: 0o644}, func() payload { return new(Chmod) }},
		{"Send", &Send{Target: []byte("@7"), Timeout: -1, Msgs: []SendMsg{
			{Type: 3, Priority: 9, Headers: sampleHeaders(), Body: []byte("hello, world")}}},
			func() payload { return new(Send) }},
		{"SendBatch", &Send{Target: []byte("jobs"), Timeout: 0, Msgs: []SendMsg{
			{Type: 1, Body: []byte("a")}, {Type: 2, Priority: 1, Body: []byte{}}, {Type: 3, Body: []byte("c")}},
			Ext: ext}, func() payload { return new(Send) }},
		{"SendReply", &SendReply{IDs: []uint64{99, 100, 102}}, func() payload { return new(SendReply) }},
		{"SendReplyTaken", &SendReply{IDs: []uint64{100}, Taken: true, Receipt: unix},
			func() payload { return new(SendReply) }},
		{"Recv", &Recv{Name: []byte("jobs"), Type: -5, Timeout: 1e9}, func() payload { return new(Recv) }},
		{"Consume", &Consume{Name: []byte("jobs"), Type: 2, Credit: 64}, func() payload { return new(Consume) }},
		{"Credit", &Credit{N: 17}, func() payload { return new(Credit) }},
		{"Leases", &Leases{Ranges: []LeaseRange{{1, 2}, {10, 1}, {1 << 63, 3}}}, func() payload { return new(Leases) }},
		{"AckReply", &AckReply{Done: 3, Failed: []LeaseFailure{{Lease: 4, Status: CodeStaleLease}}},
			func() payload { return new(AckReply) }},
		{"Delivery", &Delivery{Lease: 77, ID: 12, Type: 3, Priority: 200, Redeliveries: 2, Sender: unix,
			SentUnixNano: 1_700_000_000_000_000_000, Headers: sampleHeaders(), Body: []byte("payload")},
			func() payload { return new(Delivery) }},
		{"DeliveryOffer", &Delivery{Lease: 1, ID: 2, Type: 1, Reason: ReasonExpired, Flags: DeliveryChannelOffer,
			Body: make([]byte, TokenSize)}, func() payload { return new(Delivery) }},
		{"MailboxInfo", sampleInfo("jobs"), func() payload { return new(MailboxInfo) }},
		{"List", &List{Cursor: []byte("jobs"), Limit: 10}, func() payload { return new(List) }},
		{"ListReply", &ListReply{Infos: []MailboxInfo{*sampleInfo("a"), *sampleInfo("b")}, Next: []byte("b")},
			func() payload { return new(ListReply) }},
		{"Channel", &Channel{Target: []byte("@3"), Type: 1, Priority: 2, Timeout: -1, RingSize: 1 << 16},
			func() payload { return new(Channel) }},
		{"Attach", &Attach{Token: [TokenSize]byte{1, 2, 3, 15: 16}}, func() payload { return new(Attach) }},
		{"Error", &ErrorReply{Message: []byte("mailbox is full"), Done: 2, HasDone: true},
			func() payload { return new(ErrorReply) }},
		{"Empty", &Empty{Ext: ext}, func() payload { return new(Empty) }},
	}
}

func sampleInfo(name string) *MailboxInfo {
	return &MailboxInfo{
		Name: []byte(name), UID: 1, GID: 2, Mode: 0o640, Capacity: 10, Flags: MailboxDurable,
		Depth: 3, Bytes: 300, Receivers: 1, Consumers: 2, InFlight: 4, BlockedSenders: 5,
		Sent: 6, Received: 7, Redelivered: 8, CreatedUnix: 9, DiskBytes: 10, OldestUnix: 11,
		DeadLettered: 12, MaxBytes: 13, TTL: 14, MaxDeliveries: 15, DeadLetter: []byte("dead"),
	}
}

func TestEveryPayloadRoundTrips(t *testing.T) {
	for _, s := range samples() {
		t.Run(s.name, func(t *testing.T) {
			enc := s.v.Append(nil)
			got := s.zero()
			if err := got.Decode(enc); err != nil {
				t.Fatalf("Decode(%x): %v", enc, err)
			}
			if re := got.Append(nil); !bytes.Equal(re, enc) {
				t.Fatalf("re-encoding differs:\n got %x\nwant %x", re, enc)
			}
			if !reflect.DeepEqual(clearScratch(got), s.v) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, s.v)
			}
		})
	}
}

func clearScratch(p payload) payload {
	if l, ok := p.(*Leases); ok {
		l.sorted = nil
	}
	return p
}

func TestZeroValuesRoundTrip(t *testing.T) {
	for _, s := range samples() {
		t.Run(s.name, func(t *testing.T) {
			enc := s.zero().Append(nil)
			err := s.zero().Decode(enc)
			switch s.v.(type) {
			case *Send, *Leases: // count 0 is malformed
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("zero %s decodes: %v", s.name, err)
				}
				return
			case *Hello: // version range 0..0
				if !errors.Is(err, ErrVersion) {
					t.Fatalf("zero Hello decodes: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode(%x): %v", enc, err)
			}
		})
	}
}

// Every proper prefix of an encoding must fail, except where a shorter
// payload is itself valid: the cut falls exactly at the start of the ext
// tail or between its entries.
func TestTruncatedPayloadsAreMalformed(t *testing.T) {
	for _, s := range samples() {
		enc := s.v.Append(nil)
		for n := range len(enc) {
			err := s.zero().Decode(enc[:n])
			if err == nil {
				if _, ok := s.v.(*List); ok && n == 0 {
					continue
				}
				if extEntryBoundary(s, enc, n) {
					continue
				}
				t.Errorf("%s cut to %d of %d bytes decodes", s.name, n, len(enc))
			}
		}
	}
}

// extEntryBoundary reports whether enc[:n] ends where the fixed fields or
// an ext entry end.
func extEntryBoundary(s sample, enc []byte, n int) bool {
	fixed := len(enc)
	switch v := s.v.(type) {
	case *ErrorReply:
		fixed = 2 + len(v.Message)
	case *Create:
		c := *v
		c.Durable, c.MaxBytes, c.TTL, c.MaxDeliveries, c.DeadLetter = false, 0, 0, 0, nil
		fixed = len(c.Append(nil))
	default:
		if f := reflect.ValueOf(s.v).Elem().FieldByName("Ext"); f.IsValid() {
			fixed -= f.Len()
		}
	}
	for off := fixed; off <= len(enc); {
		if off == n {
			return true
		}
		if off+4 > len(enc) {
			break
		}
		off += 4 + int(enc[off+2]) | int(enc[off+3])<<8
	}
	return false
}

func TestTrailingGarbageIsMalformed(t *testing.T) {
	for _, s := range samples() {
		enc := append(s.v.Append(nil), 0x01) // an ext entry cut after 1 byte
		if err := s.zero().Decode(enc); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s with a trailing byte: %v, want ErrMalformed", s.name, err)
		}
	}
}

func TestUnknownCriticalTagIsRefusedAndNonCriticalSkipped(t *testing.T) {
	for _, s := range samples() {
		enc := AppendExt(s.v.Append(nil), 0x8fff, []byte{1})
		if err := s.zero().Decode(enc); !errors.Is(err, ErrUnknownCritical) {
			t.Errorf("%s with critical tag 0x8fff: %v, want ErrUnknownCritical", s.name, err)
		}
		enc = AppendExt(s.v.Append(nil), 0x0fff, []byte{1, 2})
		if err := s.zero().Decode(enc); err != nil {
			t.Errorf("%s with non-critical tag 0x0fff: %v", s.name, err)
		}
	}
}

func TestExtEntryPastTheEndWinsOverCritical(t *testing.T) {
	enc := (&Name{Name: []byte("a")}).Append(nil)
	enc = AppendExt(enc, 0x8001, nil)
	enc = append(enc, 0x01, 0x00, 0x05, 0x00, 'x') // len 5, one byte
	if err := new(Name).Decode(enc); !errors.Is(err, ErrMalformed) {
		t.Fatalf("got %v, want ErrMalformed", err)
	}
}

func TestHelloOutsideVersionRangeIsErrVersionEvenIfV1Shaped(t *testing.T) {
	v1 := AppendString(AppendU16(AppendU16(AppendU32(nil, Magic), 1), 1), "old client")
	var h Hello
	if err := h.Decode(v1); !errors.Is(err, ErrVersion) || h.MinVersion != 1 || h.MaxVersion != 1 {
		t.Fatalf("v1 HELLO: %v %+v, want ErrVersion with range 1..1", err, h)
	}
	if CodeOf(ErrVersion) != CodeVersion {
		t.Fatal("ErrVersion does not map to CodeVersion")
	}
	min, max, err := PeekVersion(v1)
	if err != nil || min != 1 || max != 1 {
		t.Fatalf("PeekVersion: %d %d %v", min, max, err)
	}
	bad := AppendU32(nil, 0x12345678)
	if err := h.Decode(append(bad, 1, 0, 2, 0)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("bad magic: %v", err)
	}
}

func TestHelloClientNameOver255IsMalformed(t *testing.T) {
	h := Hello{MinVersion: 2, MaxVersion: 2, Client: bytes.Repeat([]byte{'c'}, 256)}
	if err := new(Hello).Decode(h.Append(nil)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("got %v", err)
	}
	h.Client = h.Client[:255]
	if err := new(Hello).Decode(h.Append(nil)); err != nil {
		t.Fatalf("255 bytes: %v", err)
	}
}

func TestSendCountMustBe1To1024(t *testing.T) {
	var s Send
	for _, n := range []int{1, MaxBatch} {
		s.Msgs = make([]SendMsg, n)
		if err := new(Send).Decode(s.Append(nil)); err != nil {
			t.Errorf("count %d: %v", n, err)
		}
	}
	for _, n := range []int{0, MaxBatch + 1} {
		s.Msgs = make([]SendMsg, n)
		if err := new(Send).Decode(s.Append(nil)); !errors.Is(err, ErrMalformed) {
			t.Errorf("count %d: %v, want ErrMalformed", n, err)
		}
	}
}

func TestSendDecodeReusesMsgs(t *testing.T) {
	enc := (&Send{Target: []byte("q"), Msgs: make([]SendMsg, 3)}).Append(nil)
	var s Send
	s.Decode(enc)
	p := &s.Msgs[0]
	if s.Decode(enc) != nil || &s.Msgs[0] != p {
		t.Fatal("second Decode did not reuse Msgs")
	}
}

func TestSendInvalidHeadersAreInvalid(t *testing.T) {
	bad := AppendExt(nil, HeaderDeadline, []byte{1, 2, 3}) // len 3
	s := Send{Target: []byte("q"), Msgs: []SendMsg{{Type: 1}, {Type: 1, Headers: bad}}}
	err := new(Send).Decode(s.Append(nil))
	if !errors.Is(err, ErrInvalidHeaders) || CodeOf(err) != CodeInvalid {
		t.Fatalf("got %v", err)
	}
}

func TestSendReplyTakenMustBeZeroOrOne(t *testing.T) {
	enc := (&SendReply{IDs: []uint64{1}}).Append(nil)
	enc[len(enc)-1] = 2
	if err := new(SendReply).Decode(enc); !errors.Is(err, ErrMalformed) {
		t.Fatalf("taken = 2: %v", err)
	}
}

func TestDeliveryLayout(t *testing.T) {
	d := Delivery{Type: 1, Body: []byte("x\x00y")}
	if enc := d.Append(nil); len(enc) != DeliveryFixed+3 {
		t.Fatalf("Delivery encodes to %d bytes, want DeliveryFixed+3 = %d", len(enc), DeliveryFixed+3)
	}
	if DeliveryFixed != 68 {
		t.Fatalf("DeliveryFixed = %d", DeliveryFixed)
	}
}

func TestCodeOfMapsEveryDecodeError(t *testing.T) {
	for err, want := range map[error]Code{
		nil: OK, ErrMalformed: CodeMalformed, ErrUnknownCritical: CodeInvalid,
		ErrInvalidHeaders: CodeInvalid, ErrInvalid: CodeInvalid, ErrVersion: CodeVersion,
	} {
		if got := CodeOf(err); got != want {
			t.Errorf("CodeOf(%v) = %v, want %v", err, got, want)
		}
	}
}

func TestErrorReplyDone(t *testing.T) {
	msg, done := DecodeError(AppendErrorDone(nil, "full", 3))
	if msg != "full" || done != 3 {
		t.Fatalf("got %q %d", msg, done)
	}
	msg, done = DecodeError(AppendError(nil, "nope"))
	if msg != "nope" || done != 0 {
		t.Fatalf("got %q %d", msg, done)
	}
	twice := AppendU32(appendExtHead(AppendErrorDone(nil, "x", 1), TagDone, 4), 2)
	if err := new(ErrorReply).Decode(twice); !errors.Is(err, ErrMalformed) {
		t.Fatalf("DONE twice: %v", err)
	}
	if msg, _ := DecodeError([]byte{5, 0, 'a'}); msg != "" {
		t.Fatalf("undecodable: %q", msg)
	}
}

func TestListEmptyPayloadIsFirstPage(t *testing.T) {
	l := List{Cursor: []byte("x"), Limit: 3}
	if err := l.Decode(nil); err != nil || l.Cursor != nil || l.PageSize() != DefaultListLimit {
		t.Fatalf("%+v %v", l, err)
	}
	l.Limit = 5000
	if l.PageSize() != MaxListLimit {
		t.Fatalf("limit 5000 page %d", l.PageSize())
	}
}

func TestListReplyEntryMayGrow(t *testing.T) {
	info := *sampleInfo("a")
	info.Ext = AppendExt(nil, 0x0077, []byte("new field"))
	enc := (&ListReply{Infos: []MailboxInfo{info}}).Append(nil)
	var r ListReply
	if err := r.Decode(enc); err != nil || len(r.Infos) != 1 || string(r.Infos[0].Name) != "a" {
		t.Fatalf("%v %+v", err, r)
	}
}

func TestCreateOptionRules(t *testing.T) {
	base := (&Create{Name: []byte("q"), Capacity: 1}).Append(nil)
	for name, tc := range map[string]struct {
		tail []byte
		want error
	}{
		"dead letter empty":   {AppendExt(nil, TagDeadLetter, nil), ErrInvalid},
		"dead letter invalid": {AppendExt(nil, TagDeadLetter, []byte("a*b")), ErrInvalid},
		"ttl short":           {AppendExt(nil, TagTTL, []byte{1, 2, 3}), ErrMalformed},
		"durable with value":  {AppendExt(nil, TagDurable, []byte{1}), ErrMalformed},
		"option twice":        {append(AppendExt(nil, TagDurable, nil), AppendExt(nil, TagDurable, nil)...), ErrMalformed},
		"unknown critical":    {AppendExt(nil, 0x8077, nil), ErrUnknownCritical},
		"unknown skipped":     {AppendExt(nil, 0x0006, []byte{9}), nil},
		"any order":           {append(AppendExt(nil, TagMaxDeliveries, []byte{5, 0, 0, 0}), AppendExt(nil, TagDurable, nil)...), nil},
	} {
		var c Create
		if err := c.Decode(append(bytes.Clone(base), tc.tail...)); !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
}

func TestLeasesRules(t *testing.T) {
	enc := func(rs ...LeaseRange) []byte { return (&Leases{Ranges: rs}).Append(nil) }
	many := make([]LeaseRange, MaxLeaseRanges+1)
	for i := range many {
		many[i] = LeaseRange{uint64(i*2 + 1), 1}
	}
	for name, tc := range map[string]struct {
		p    []byte
		want error
	}{
		"one":               {enc(LeaseRange{1, 1}), nil},
		"max leases":        {enc(LeaseRange{1, MaxLeasesPerFrame}), nil},
		"too many leases":   {enc(LeaseRange{1, MaxLeasesPerFrame}, LeaseRange{1 << 40, 1}), ErrMalformed},
		"max ranges":        {enc(many[:MaxLeaseRanges]...), nil},
		"too many ranges":   {enc(many...), ErrMalformed},
		"count 0":           {enc(), ErrMalformed},
		"n 0":               {enc(LeaseRange{5, 0}), ErrMalformed},
		"overlap ascending": {enc(LeaseRange{1, 5}, LeaseRange{5, 1}), ErrMalformed},
		"overlap unsorted":  {enc(LeaseRange{10, 1}, LeaseRange{1, 10}), ErrMalformed},
		"unsorted disjoint": {enc(LeaseRange{10, 1}, LeaseRange{1, 9}), nil},
		"duplicate":         {enc(LeaseRange{3, 1}, LeaseRange{3, 1}), ErrMalformed},
		"wraps past 2^64-1": {enc(LeaseRange{1<<64 - 1, 2}), ErrMalformed},
		"ends at 2^64-1":    {enc(LeaseRange{1<<64 - 2, 2}), nil},
	} {
		var l Leases
		if err := l.Decode(tc.p); err != tc.want {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
}

func TestRangesOfMergesConsecutiveIDs(t *testing.T) {
	got := RangesOf([]uint64{7, 3, 1, 2, 3, 9, 8}, nil)
	want := []LeaseRange{{1, 3}, {7, 3}}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	l := Leases{Ranges: got}
	if l.Count() != 6 || !slices.Equal(slices.Collect(l.All()), []uint64{1, 2, 3, 7, 8, 9}) {
		t.Fatalf("Count %d, All %v", l.Count(), slices.Collect(l.All()))
	}
}

func TestLeasesFillRespectsFrameLimits(t *testing.T) {
	ids := make([]uint64, 0, 3*MaxLeaseRanges)
	for i := range 3 * MaxLeaseRanges {
		ids = append(ids, uint64(2*i+1))
	}
	rest := RangesOf(ids, nil)
	frames := 0
	var l Leases
	for len(rest) > 0 {
		rest = l.Fill(rest)
		if len(l.Ranges) == 0 || len(l.Ranges) > MaxLeaseRanges || l.Count() > MaxLeasesPerFrame {
			t.Fatalf("frame of %d ranges, %d leases", len(l.Ranges), l.Count())
		}
		frames++
	}
	if frames != 3 {
		t.Fatalf("%d frames, want 3", frames)
	}
}

func TestAckReplyCountBeyondPayloadIsMalformed(t *testing.T) {
	p := AppendU32(AppendU32(nil, 0), 1000)
	if err := new(AckReply).Decode(p); !errors.Is(err, ErrMalformed) {
		t.Fatalf("got %v", err)
	}
}

func TestMailboxInfoMinimumIsTheZeroEncoding(t *testing.T) {
	if n := len((&MailboxInfo{}).Append(nil)); n != mailboxInfoMin {
		t.Fatalf("zero MailboxInfo is %d bytes, mailboxInfoMin %d", n, mailboxInfoMin)
	}
}
