package wire

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func sampleInfoReply() *InfoReply {
	return &InfoReply{Version: []byte("v0.5.0 1a2b3c4d5e6f"), GoVersion: []byte("go1.26.8"), PID: 4242,
		StartedUnixNano: 1764700000000000000, UptimeNano: 90e9, Connections: 3, Mailboxes: 2,
		HeapBytes: 4 << 20, SysBytes: 16 << 20, RSSBytes: 24 << 20, Goroutines: 17,
		DataDir: []byte("/var/lib/postbox"), StoreBytes: 1 << 20,
		Limits: InfoLimits{MaxConnections: 4096, MaxMailboxes: 65536, MaxMessage: 4 << 20, MaxQueuedBytes: 1 << 30,
			MaxFrame: 16 << 20, InboxCapacity: 4096},
		Listeners: []InfoListener{{Network: []byte("unix"), Address: []byte("/run/postbox/postbox.sock")},
			{Network: []byte("tcp"), Address: []byte("127.0.0.1:7433")}}}
}

// infoVectors are info.json: INFO and its reply.
func infoVectors() []vecSpec {
	mem := &InfoReply{Version: []byte("(devel)"), GoVersion: []byte("go1.26.8"), PID: 7, RSSBytes: -1, StoreBytes: -1,
		Limits: InfoLimits{1, 1, 1, 1, 1025, -1}}
	good := sampleInfoReply().Append(nil)
	return []vecSpec{
		ok("info", req(OpInfo, 1), "Empty", &Empty{}),
		ok("info-reply", rep(OpInfo, 1), "InfoReply", sampleInfoReply()),
		ok("info-reply-memory-only-no-listeners", rep(OpInfo, 2), "InfoReply", mem),
		ok("info-error-permission", fail(OpInfo, CodePermission, 3), "Error", &ErrorReply{Message: []byte("info: permission denied")}),
		bad("info-reply-empty", rep(OpInfo, 1), "InfoReply", nil, "malformed"),
		bad("info-reply-truncated", rep(OpInfo, 1), "InfoReply", good[:len(good)-3], "malformed"),
		bad("info-reply-listener-count-past-end", rep(OpInfo, 1), "InfoReply",
			cat(mem.Append(nil)[:len(mem.Append(nil))-2], AppendU16(nil, 9)), "malformed"),
		bad("info-reply-empty-network", rep(OpInfo, 1), "InfoReply",
			cat(mem.Append(nil)[:len(mem.Append(nil))-2], AppendU16(nil, 1), AppendString(nil, ""), AppendString(nil, "x")), "malformed"),
	}
}

func TestInfoRoundTrip(t *testing.T) {
	withExt := sampleInfoReply()
	withExt.Ext = appendExtHead(nil, 0x0100, 1)
	withExt.Ext = append(withExt.Ext, 9)
	for i, m := range []*InfoReply{sampleInfoReply(), withExt, {RSSBytes: -1, StoreBytes: -1}} {
		enc := m.Append(nil)
		var got InfoReply
		if err := got.Decode(enc); err != nil {
			t.Fatalf("%+v: %v", m, err)
		}
		if !bytes.Equal(got.Append(nil), enc) {
			t.Fatalf("%+v re-encodes differently", m)
		}
		if i < 2 && !reflect.DeepEqual(&got, m) {
			t.Fatalf("round trip: got %+v, want %+v", &got, m)
		}
	}
}

// Every prefix of a good reply is MALFORMED, and so is every byte string
// of the sizes around the fixed part: nothing panics.
func TestInfoDecodeRefusesEveryTruncation(t *testing.T) {
	good := sampleInfoReply().Append(nil)
	for n := range len(good) {
		var m InfoReply
		if err := m.Decode(good[:n]); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%d of %d bytes: %v, want ErrMalformed", n, len(good), err)
		}
		if m.Listeners != nil {
			t.Fatalf("%d bytes: listeners %v kept after an error", n, m.Listeners)
		}
	}
	for n := infoFixed - 2; n < infoFixed+40; n++ {
		for _, fill := range []byte{0x00, 0xff, 0x41} {
			p := make([]byte, n)
			for i := range p {
				p[i] = fill
			}
			var m InfoReply
			if err := m.Decode(p); err != nil && !knownError(err) {
				t.Fatalf("%d bytes of %#x: %v", n, fill, err)
			}
		}
	}
}

func TestInfoOpName(t *testing.T) {
	if OpInfo != 0x17 || OpInfo.String() != "INFO" || (OpInfo|OpReply).String() != "INFO-REPLY" {
		t.Fatalf("INFO %#x names %s %s", uint8(OpInfo), OpInfo, OpInfo|OpReply)
	}
}
