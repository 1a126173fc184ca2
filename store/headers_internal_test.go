package store

import (
	"bytes"
	"testing"
)

// legacyAppend is an Append payload as written before headers and kinds
// existed: flags bit 0 only, nothing after the body.
func legacyAppend(m *Message) []byte {
	b := putStr(nil, m.Mailbox)
	b = putU64(b, m.Seq)
	b = append(b, 0, m.Priority)
	b = putU64(b, uint64(m.Type))
	b = putU32(b, m.SenderUID)
	b = putU32(b, m.SenderGID)
	b = putU32(b, uint32(m.SenderPID))
	b = putU64(b, m.SenderEndpoint)
	b = putU64(b, uint64(m.SentUnixNano))
	b = putU32(b, m.Redeliveries)
	b = putStr(b, m.DeadReason)
	b = putU32(b, uint32(len(m.Body)))
	return append(b, m.Body...)
}

func TestAppendRecordOfBeforeHeadersDecodesAsAUnixSenderWithoutHeaders(t *testing.T) {
	m := Message{Mailbox: "q", Seq: 4, Type: 2, Priority: 1, SenderUID: 1000, SenderGID: 100, SenderPID: 7,
		SenderEndpoint: 9, SentUnixNano: 11, Redeliveries: 1, DeadReason: "expired", Body: []byte("old")}
	var got Message
	if _, ok := decodeMessage(legacyAppend(&m), &got, true); !ok {
		t.Fatal("legacy record does not decode")
	}
	m.SenderKind = kindUnix
	if got.SenderKind != kindUnix || got.Headers != nil || string(got.Body) != "old" || got.SenderUID != 1000 || got.DeadReason != "expired" {
		t.Fatalf("decoded %+v", got)
	}
	// And a Unix sender without headers is still written in that layout.
	if enc := appendMessage(nil, &m, m.Mailbox, m.Seq, 0); !bytes.Equal(enc, legacyAppend(&m)) {
		t.Fatalf("a headerless Unix message is encoded\n%x\nnot in the old layout\n%x", enc, legacyAppend(&m))
	}
}

func TestAppendRecordCarriesHeadersAndKind(t *testing.T) {
	for _, m := range []Message{
		{Mailbox: "q", Seq: 1, SenderKind: kindUnix, Body: []byte("b"), Headers: []byte{2, 0, 1, 0, 'c'}},
		{Mailbox: "q", Seq: 2, SenderKind: 0, Body: []byte("b")},
		{Mailbox: "q", Seq: 3, SenderKind: 2, Body: nil, Headers: []byte{4, 0, 1, 0, 'x'}},
	} {
		enc := appendMessage(nil, &m, m.Mailbox, m.Seq, flagLeased)
		var got Message
		h, ok := decodeMessage(enc, &got, true)
		if !ok || h.flags&flagLeased == 0 {
			t.Fatalf("seq %d: ok %v flags %#x", m.Seq, ok, h.flags)
		}
		if got.SenderKind != m.SenderKind || !bytes.Equal(got.Headers, m.Headers) || !bytes.Equal(got.Body, m.Body) {
			t.Fatalf("seq %d: decoded %+v, want %+v", m.Seq, got, m)
		}
		// A truncated record (headers length without its bytes) is refused.
		if _, ok := decodeMessage(enc[:len(enc)-1], &got, true); ok {
			t.Fatalf("seq %d: a truncated record decodes", m.Seq)
		}
	}
}
