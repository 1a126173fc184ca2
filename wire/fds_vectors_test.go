package wire

// fdsVectors are the conformance vectors of descriptors on messages
// (fds.json, PROTOCOL.md 8.24). Descriptors themselves travel beside the
// bytes (SCM_RIGHTS), so a vector holds only the FILES tag and the
// Delivery flag; sent alone, without descriptors, the SEND's counts do
// not add up and a live broker answers NO_DESCRIPTORS.
func fdsVectors() []vecSpec {
	one := func(counts ...uint8) *Send {
		m := &Send{Target: []byte("jobs"), Timeout: 0}
		for range counts {
			m.Msgs = append(m.Msgs, SendMsg{Type: 1, Body: []byte("fd")})
		}
		m.Ext = AppendFiles(nil, counts)
		return m
	}
	sp := one(1, 2).Append(nil)
	return []vecSpec{
		ok("send-with-files", req(OpSend, 70), "Send", one(1)),
		ok("send-batch-with-files", req(OpSend, 71), "Send", one(0, 2, 1)),
		ok("deliver-with-files", Header{Op: OpDeliver, Flags: FlagPush, Request: 9}, "Delivery",
			&Delivery{Lease: 5, ID: 4, Type: 1, Flags: DeliveryFiles, Sender: Identity{Kind: PrincipalUnix, UID: 1000, GID: 1000, PID: 4242, Endpoint: vecEndpoint + 1},
				SentUnixNano: 1_750_000_000_523_456_789, Body: []byte("fd")}),
		ok("send-no-descriptors", fail(OpSend, CodeNoDescriptors, 72), "Error",
			&ErrorReply{Message: []byte(`send to "jobs": a durable mailbox cannot hold descriptors (they would not survive a restart)`), HasDone: true}),
		bad("send-files-count-per-message-wrong", req(OpSend, 73), "Send", append(sp[:len(sp)-6], AppendExt(nil, TagFiles, []byte{1})...), "malformed"),
		bad("send-files-twice", req(OpSend, 74), "Send", AppendFiles(cat(one(1).Append(nil)), []uint8{1}), "malformed"),
	}
}
