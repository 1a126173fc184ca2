package wire

// pubsubVectors are the conformance vectors of publish/subscribe
// (pubsub.json): PUBLISH and its reply, SUBSCRIBE with a filter, EVENT
// and a gap notice, BIND and UNBIND, TOPICS and CLAIM.
func pubsubVectors() []vecSpec {
	hdrs := AppendHeaders(nil, &HeaderFields{User: []KV{{Key: []byte("region"), Value: []byte("eu")}}})
	pub := &Publish{Subject: []byte("orders.eu.created"), Timeout: -1, Type: 1, Headers: hdrs, Body: []byte("order 7")}
	pp := pub.Append(nil)
	filter := AppendFilter(nil, &Filter{HasType: true, TypeMin: 1, TypeMax: 9,
		Equals: []KV{{Key: []byte("region"), Value: []byte("eu")}}, Present: [][]byte{[]byte("trace")}})
	sub := &Subscribe{Pattern: []byte("orders.*.created"), Queue: []byte("billing"), Buffer: 256,
		Policy: PolicyDropOldest, Ext: filter}
	sp := sub.Append(nil)
	ev := &Event{Missed: 3, Subject: []byte("orders.eu.created"), Sender: vecPeer,
		SentUnixNano: 1_750_000_000_123_456_789, Type: 1, Headers: hdrs, Body: []byte("order 7")}
	push := Header{Op: OpEvent, Flags: FlagPush, Request: 41}
	bind := &Bind{Pattern: []byte("orders.>"), Mailbox: []byte("orders-archive")}
	batch := &PublishBatch{Timeout: -1, Items: []PublishItem{
		{Subject: []byte("orders.eu.created"), Type: 1, Headers: hdrs, Body: []byte("order 7")},
		{Subject: []byte("orders.eu.created"), Type: 1, Body: []byte("order 8")},
		{Subject: []byte("orders.us.created"), Type: 2, Body: nil}}}
	bp := batch.Append(nil)
	batchHd := Header{Op: OpPublish, Flags: FlagPublishBatch, Request: 49}
	claim := &Claim{Pattern: []byte("payroll.>"), Action: ClaimSet, Mode: 0o640}
	return []vecSpec{
		ok("publish", req(OpPublish, 40), "Publish", pub),
		ok("publish-no-wait-no-headers", req(OpPublish, 42), "Publish",
			&Publish{Subject: []byte("metrics.cpu"), Timeout: 0, Type: 2, Body: []byte{0x01, 0x02}}),
		ok("publish-reply", rep(OpPublish, 40), "PublishReply", &PublishReply{Matched: 3}),
		ok("publish-timeout", fail(OpPublish, CodeTimeout, 40), "Error",
			&ErrorReply{Message: []byte(`publish "orders.eu.created": timed out (a subscriber with policy block is full)`)}),
		ok("publish-batch", batchHd, "PublishBatch", batch),
		ok("publish-batch-reply", rep(OpPublish, 49), "PublishReply", &PublishReply{Matched: 5}),
		ok("publish-batch-failed-done", fail(OpPublish, CodeInvalid, 49), "Error",
			&ErrorReply{Message: []byte(`publish "orders..x" (item 3 of 3): subject "orders..x": empty token`), Done: 2, HasDone: true}),
		ok("subscribe-filtered-queue", req(OpSubscribe, 41), "Subscribe", sub),
		ok("subscribe-plain", req(OpSubscribe, 43), "Subscribe",
			&Subscribe{Pattern: []byte(">"), Buffer: 64, Policy: PolicyBlock}),
		ok("event", push, "Event", ev),
		ok("event-gap-notice", push, "Event", &Event{Flags: EventGap, Missed: 12}),
		ok("subscribe-credit", req(OpCredit, 41), "Credit", &Credit{N: 128}),
		ok("subscribe-ended-limit", fail(OpSubscribe, CodeLimit, 41), "Error",
			&ErrorReply{Message: []byte(`subscription "orders.*.created": buffer of 256 events full (policy disconnect)`)}),
		ok("bind", req(OpBind, 44), "Bind", bind),
		ok("unbind", Header{Op: OpBind, Flags: FlagUnbind, Request: 45}, "Bind", bind),
		ok("bind-reply", rep(OpBind, 44), "Empty", &Empty{}),
		ok("topics", req(OpTopics, 46), "Empty", &Empty{}),
		ok("topics-reply", rep(OpTopics, 46), "TopicsReply", &TopicsReply{
			Subjects: []SubjectInfo{{Pattern: []byte("orders.*.created"), Subscribers: 2, Queues: 1, Delivered: 10, Dropped: 1}},
			Bindings: []BindingInfo{{Pattern: []byte("orders.>"), Mailbox: []byte("orders-archive")}},
			Claims:   []ClaimInfo{{Pattern: []byte("payroll.>"), UID: 1000, GID: 1000, Mode: 0o640}}}),
		ok("claim", req(OpClaim, 47), "Claim", claim),
		ok("claim-release", req(OpClaim, 48), "Claim", &Claim{Pattern: []byte("payroll.>"), Action: ClaimRelease}),
		bad("publish-truncated-body", req(OpPublish, 40), "Publish", pp[:len(pp)-1], "malformed"),
		bad("publish-bad-headers", req(OpPublish, 40), "Publish",
			cat(AppendI64(AppendI64(AppendString(nil, "a"), -1), 1), AppendBytes(nil, AppendExt(AppendExt(nil, 2, []byte("x")), 2, []byte("y"))), AppendBytes(nil, nil)), "invalid"),
		bad("publish-batch-count-zero", batchHd, "PublishBatch", AppendU16(AppendI64(nil, -1), 0), "malformed"),
		bad("publish-batch-count-past-items", batchHd, "PublishBatch", cat(AppendU16(AppendI64(nil, -1), 4), bp[10:]), "malformed"),
		bad("publish-batch-truncated", batchHd, "PublishBatch", bp[:len(bp)-1], "malformed"),
		bad("subscribe-truncated-policy", req(OpSubscribe, 41), "Subscribe", sp[:len(sp)-len(filter)-1], "malformed"),
		bad("subscribe-unknown-critical-ext", req(OpSubscribe, 41), "Subscribe", AppendExt(cat(sp), 0x8100, nil), "critical"),
		bad("bind-truncated", req(OpBind, 44), "Bind", bind.Append(nil)[:5], "malformed"),
	}
}
