package wire

import (
	"reflect"
	"testing"
)

// usageVectors are usage.json: USAGE and its reply.
func usageVectors() []vecSpec {
	reply := &UsageReply{Entries: []UsageEntry{
		{UID: 1000, Used: UsageCounts{2, 1, 8388608, 3}, Quota: UsageCounts{256, 1024, 8388608, 65536}},
		{Anonymous: true, Used: UsageCounts{1, 0, 0, 0}, Quota: UsageCounts{256, 1024, 268435456, 65536}},
	}}
	root := &UsageReply{Entries: []UsageEntry{{UID: 0, Used: UsageCounts{1, 0, 0, 0}, Quota: UsageCounts{-1, -1, -1, -1}}}}
	return []vecSpec{
		ok("usage-all", req(OpUsage, 1), "Usage", &Usage{}),
		ok("usage-uid-1000", req(OpUsage, 2), "Usage", &Usage{Filter: true, UID: 1000}),
		ok("usage-reply", rep(OpUsage, 1), "UsageReply", reply),
		ok("usage-reply-root-unlimited", rep(OpUsage, 2), "UsageReply", root),
		ok("usage-reply-empty", rep(OpUsage, 3), "UsageReply", &UsageReply{}),
		ok("usage-error-limit", fail(OpUsage, CodePermission, 4), "Error",
			&ErrorReply{Message: []byte("uid 1000 may see only its own usage")}),
		bad("usage-empty-payload", req(OpUsage, 1), "Usage", nil, "malformed"),
		bad("usage-filter-2", req(OpUsage, 1), "Usage", cat([]byte{2}, AppendU32(nil, 0)), "malformed"),
		bad("usage-uid-without-filter", req(OpUsage, 1), "Usage", cat([]byte{0}, AppendU32(nil, 7)), "malformed"),
		bad("usage-reply-count-past-end", rep(OpUsage, 1), "UsageReply", AppendU32(nil, 1), "malformed"),
		bad("usage-reply-kind-2", rep(OpUsage, 1), "UsageReply",
			cat(AppendU32(nil, 1), []byte{2}, make([]byte, 4+64)), "malformed"),
	}
}

func TestUsageRoundTrip(t *testing.T) {
	for _, m := range []payload{&Usage{}, &Usage{Filter: true, UID: 65534}, &UsageReply{},
		&UsageReply{Entries: []UsageEntry{{UID: 7, Used: UsageCounts{1, 2, 3, 4}, Quota: UsageCounts{-1, 5, 6, 7}}, {Anonymous: true}}}} {
		enc := m.Append(nil)
		got := reflect.New(reflect.TypeOf(m).Elem()).Interface().(payload)
		if err := got.Decode(enc); err != nil {
			t.Fatalf("%T %+v: %v", m, m, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("round trip: got %+v, want %+v", got, m)
		}
	}
}

func TestUsageOpName(t *testing.T) {
	if OpUsage.String() != "USAGE" || (OpUsage|OpReply).String() != "USAGE-REPLY" {
		t.Fatalf("names %s %s", OpUsage, OpUsage|OpReply)
	}
}
