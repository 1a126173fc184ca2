package wire

// withdrawVectors are the conformance vectors of WITHDRAW, the
// URGENT_MSG SEND flag and the urgent Delivery flag (withdraw.json).
func withdrawVectors() []vecSpec {
	corr := AppendHeaders(nil, &HeaderFields{CorrelationID: []byte("job-7")})
	user := AppendHeaders(nil, &HeaderFields{User: []KV{{Key: []byte("batch"), Value: []byte("42")}}})
	two := AppendHeaders(nil, &HeaderFields{CorrelationID: []byte("a"), ContentType: []byte("text/plain")})
	replyTo := AppendHeaders(nil, &HeaderFields{ReplyTo: []byte("@7")})
	name := AppendString(nil, "jobs")
	return []vecSpec{
		ok("send-urgent", Header{Op: OpSend, Flags: FlagUrgentMsg | FlagUrgent, Request: 40}, "Send",
			&Send{Target: []byte("jobs"), Timeout: -1, Msgs: []SendMsg{{Type: 1, Body: []byte("stop")}}}),
		ok("deliver-urgent", Header{Op: OpDeliver, Flags: FlagPush | FlagUrgent, Request: 41}, "Delivery",
			&Delivery{Lease: 9, ID: 12, Type: 1, Flags: DeliveryUrgent, Sender: vecClient,
				SentUnixNano: 1_750_000_000_123_456_789, Body: []byte("stop")}),
		ok("withdraw-ids", req(OpWithdraw, 42), "Withdraw", &Withdraw{Name: []byte("jobs"), IDs: []uint64{3, 4, 99}}),
		ok("withdraw-correlation-id", req(OpWithdraw, 43), "Withdraw", &Withdraw{Name: []byte("jobs"), Match: corr}),
		ok("withdraw-user-header-after", Header{Op: OpWithdraw, Flags: FlagAnySender, Request: 44}, "Withdraw",
			&Withdraw{Name: []byte("jobs"), Match: user, After: 1024}),
		ok("withdraw-reply", rep(OpWithdraw, 42), "WithdrawReply", &WithdrawReply{Outcomes: []WithdrawOutcome{
			{ID: 3, Outcome: OutcomeWithdrawn},
			{ID: 4, Outcome: OutcomeInProgress, Holder: vecPeer},
			{ID: 99, Outcome: OutcomeNoSuchMessage},
		}}),
		ok("withdraw-reply-more", rep(OpWithdraw, 43), "WithdrawReply",
			&WithdrawReply{Outcomes: []WithdrawOutcome{{ID: 2, Outcome: OutcomeSettled}}, More: true}),
		ok("withdraw-not-sender", fail(OpWithdraw, CodePermission, 45), "Error",
			&ErrorReply{Message: []byte(`withdraw from "jobs": message 5 is not yours to withdraw`)}),
		bad("withdraw-neither", req(OpWithdraw, 42), "Withdraw",
			cat(name, AppendU32(nil, 0), AppendBytes(nil, nil), AppendU64(nil, 0)), "invalid"),
		bad("withdraw-both", req(OpWithdraw, 42), "Withdraw",
			cat(name, AppendU32(nil, 1), AppendU64(nil, 3), AppendBytes(nil, corr), AppendU64(nil, 0)), "invalid"),
		bad("withdraw-ids-with-after", req(OpWithdraw, 42), "Withdraw",
			cat(name, AppendU32(nil, 1), AppendU64(nil, 3), AppendBytes(nil, nil), AppendU64(nil, 2)), "invalid"),
		bad("withdraw-match-two-entries", req(OpWithdraw, 42), "Withdraw",
			cat(name, AppendU32(nil, 0), AppendBytes(nil, two), AppendU64(nil, 0)), "invalid"),
		bad("withdraw-match-reply-to", req(OpWithdraw, 42), "Withdraw",
			cat(name, AppendU32(nil, 0), AppendBytes(nil, replyTo), AppendU64(nil, 0)), "invalid"),
		bad("withdraw-count-past-end", req(OpWithdraw, 42), "Withdraw",
			cat(name, AppendU32(nil, 3), AppendU64(nil, 3)), "malformed"),
		bad("withdraw-reply-more-2", rep(OpWithdraw, 42), "WithdrawReply", cat(AppendU32(nil, 0), []byte{2}), "malformed"),
		bad("withdraw-reply-truncated", rep(OpWithdraw, 42), "WithdrawReply",
			cat(AppendU32(nil, 1), AppendU64(nil, 3), []byte{1}), "malformed"),
	}
}
