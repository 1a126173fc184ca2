package wire

import (
	"bytes"
	"testing"
)

// callVectors are the conformance vectors of CALL, the REPLY flag and
// INTERRUPT (call.json).
func callVectors() []vecSpec {
	inbox := []byte("@11400714785074694145")
	reqHdr := AppendHeaders(nil, &HeaderFields{ReplyTo: inbox, CorrelationID: []byte("c-1"), Deadline: 1_750_000_001_000_000_000})
	call := &Send{Target: []byte("svc"), Timeout: 1e9, Msgs: []SendMsg{{Type: 1, Headers: reqHdr, Body: []byte("ping")}}}
	repHdr := AppendHeaders(nil, &HeaderFields{CorrelationID: []byte("c-1")})
	answer := &Send{Target: inbox, Msgs: []SendMsg{{Type: 1, Headers: repHdr, Body: []byte("pong")}}}
	acked := *answer
	acked.AckLease = 7
	who := vecPeer
	callReply := &CallReply{Request: 3, Delivery: Delivery{Type: 1, Sender: vecPeer,
		SentUnixNano: 1_750_000_000_500_000_000, Headers: repHdr, Body: []byte("pong")}}
	outcome := func(o uint8, r *Identity) []byte { return AppendCallError(nil, "", o, r)[2:] }
	sp := answer.Append(nil)
	return []vecSpec{
		ok("call", req(OpCall, 30), "Send", call),
		ok("call-reply", rep(OpCall, 30), "CallReply", callReply),
		ok("call-canceled-withdrawn", Header{Op: OpCall | OpReply, Flags: FlagUrgent, Status: CodeCanceled, Request: 30},
			"Error", &ErrorReply{Message: []byte(`call "svc": canceled`), Ext: outcome(OutcomeWithdrawn, nil)}),
		ok("call-timeout-in-progress", fail(OpCall, CodeTimeout, 31), "Error",
			&ErrorReply{Message: []byte(`call "svc": timed out`), Ext: outcome(OutcomeInProgress, &who)}),
		ok("call-timeout-settled", fail(OpCall, CodeTimeout, 32), "Error",
			&ErrorReply{Message: []byte(`call "svc": timed out`), Ext: outcome(OutcomeSettled, &who)}),
		ok("call-invalid-no-correlation", fail(OpCall, CodeInvalid, 33), "Error",
			&ErrorReply{Message: []byte(`call "svc": a CALL needs a CORRELATION_ID`)}),
		ok("send-reply-flag", Header{Op: OpSend, Flags: FlagReply, Request: 40}, "Send", answer),
		ok("send-reply-flag-ack-lease", Header{Op: OpSend, Flags: FlagReply, Request: 41}, "Send", &acked),
		ok("send-reply-claimed", rep(OpSend, 40), "SendReply", &SendReply{IDs: []uint64{0}, Taken: true, Receipt: vecClient}),
		ok("send-reply-dropped", rep(OpSend, 41), "SendReply", &SendReply{IDs: []uint64{0}}),
		ok("interrupt", Header{Op: OpInterrupt, Flags: FlagPush | FlagUrgent}, "Interrupt", &Interrupt{Lease: 7, Reason: CodeCanceled}),
		bad("send-ack-lease-len-4", Header{Op: OpSend, Flags: FlagReply, Request: 42}, "Send",
			cat(sp, AppendExt(nil, TagAckLease, []byte{7, 0, 0, 0})), "malformed"),
		bad("send-ack-lease-twice", Header{Op: OpSend, Flags: FlagReply, Request: 42}, "Send",
			cat(sp, AppendExt(nil, TagAckLease, AppendU64(nil, 7)), AppendExt(nil, TagAckLease, AppendU64(nil, 7))), "malformed"),
		bad("call-reply-truncated", rep(OpCall, 30), "CallReply", AppendU64(nil, 3)[:7], "malformed"),
		bad("interrupt-short", Header{Op: OpInterrupt, Flags: FlagPush | FlagUrgent}, "Interrupt", AppendU64(nil, 7), "malformed"),
	}
}

// TestSendAckLeaseAnywhereInTheTailReencodesByteForByte: ACK_LEASE may
// come after other entries; the decoded Send keeps the tail as it came.
func TestSendAckLeaseAnywhereInTheTailReencodesByteForByte(t *testing.T) {
	base := (&Send{Target: []byte("@1"), Msgs: []SendMsg{{Type: 1}}}).Append(nil)
	p := cat(base, AppendExt(nil, 0x0042, []byte("x")), AppendExt(nil, TagAckLease, AppendU64(nil, 9)))
	var m Send
	if err := m.Decode(p); err != nil || m.AckLease != 9 {
		t.Fatalf("decode: %v, ack lease %d", err, m.AckLease)
	}
	if re := m.Append(nil); !bytes.Equal(re, p) {
		t.Fatalf("re-encoded\n%x\nwant\n%x", re, p)
	}
}
