package wire

import (
	"bytes"
	"errors"
	"testing"
)

func TestMailboxInfoDroppedRoundTripsWithUnknownTags(t *testing.T) {
	m := MailboxInfo{Name: []byte("metrics"), Dropped: 7, Ext: AppendExt(nil, 0x0100, []byte("later"))}
	p := m.Append(nil)
	var got MailboxInfo
	if err := got.Decode(p); err != nil {
		t.Fatal(err)
	}
	if got.Dropped != 7 || !bytes.Equal(got.Ext, m.Ext) {
		t.Fatalf("decoded Dropped %d Ext %x, want 7 %x", got.Dropped, got.Ext, m.Ext)
	}
	if re := got.Append(nil); !bytes.Equal(re, p) {
		t.Fatalf("re-encoded differs:\n%x\n%x", re, p)
	}
}

func TestHelloReplyKnownTagAfterUnknownIsKeptApart(t *testing.T) {
	base := (&HelloReply{Version: 2}).Append(nil)
	unknown := AppendExt(nil, 0x0100, []byte("x"))
	p := AppendI64(appendExtHead(append(base, unknown...), TagKeepalive, 8), 5)
	var m HelloReply
	if err := m.Decode(p); err != nil {
		t.Fatal(err)
	}
	if m.Keepalive != 5 || !bytes.Equal(m.Ext, unknown) {
		t.Fatalf("Keepalive %d Ext %x, want 5 %x", m.Keepalive, m.Ext, unknown)
	}
	crit := AppendExt(bytes.Clone(base), 0x8100, nil)
	if err := m.Decode(crit); !errors.Is(err, ErrUnknownCritical) {
		t.Fatalf("unknown critical tag: %v", err)
	}
}

// TestOwnTagAfterAnUnknownOneReencodesStably: a HelloReply whose DEAD_PEER
// follows an unknown entry (found by FuzzPayload) decodes; its encoding
// puts DEAD_PEER first, and that encoding decodes to the same value and
// re-encodes to itself.
func TestOwnTagAfterAnUnknownOneReencodesStably(t *testing.T) {
	in := HelloReply{Version: 2, Server: []byte("s")}
	p := in.Append(nil)
	p = append(appendExtHead(p, 0x0042, 2), 'x', 'y') // unknown, non-critical
	p = AppendI64(appendExtHead(p, TagDeadPeer, 8), 5e9)
	var m HelloReply
	if err := m.Decode(p); err != nil {
		t.Fatal(err)
	}
	if m.DeadPeer != 5e9 || len(m.Ext) != 6 {
		t.Fatalf("decoded DeadPeer %d, Ext % x", m.DeadPeer, m.Ext)
	}
	enc := m.Append(nil)
	var again HelloReply
	if err := again.Decode(enc); err != nil {
		t.Fatal(err)
	}
	if again.DeadPeer != m.DeadPeer || !bytes.Equal(again.Ext, m.Ext) || !bytes.Equal(again.Append(nil), enc) {
		t.Fatalf("re-encoding not stable: % x then % x", enc, again.Append(nil))
	}
}
