package wire

// browseVectors are the conformance vectors of BROWSE (browse.json).
func browseVectors() []vecSpec {
	cur := BrowseCursor{Priority: 5, Type: 2, ID: 6}.Append(nil)
	a := Delivery{ID: 5, Type: 1, Priority: 9, Sender: vecClient, SentUnixNano: 1_750_000_000_123_456_789,
		Headers: AppendHeaders(nil, &HeaderFields{CorrelationID: []byte("42")}), Body: []byte("hi")}
	b := Delivery{ID: 6, Type: 2, Priority: 5, Redeliveries: 1, Sender: vecPeer, SentUnixNano: 1_750_000_000_223_456_789,
		Body: []byte("job")}
	reply := &BrowseReply{Messages: []Delivery{a, b}, Next: cur}
	rp := reply.Append(nil)
	return []vecSpec{
		ok("browse-first-page", req(OpBrowse, 20), "Browse", &Browse{Name: []byte("jobs"), Limit: 2}),
		ok("browse-next-page-lowest-type", req(OpBrowse, 21), "Browse",
			&Browse{Name: []byte("jobs"), Type: -3, Cursor: cur, Limit: 2}),
		ok("browse-default-limit", req(OpBrowse, 22), "Browse", &Browse{Name: []byte("@42")}),
		ok("browse-reply-page", rep(OpBrowse, 20), "BrowseReply", reply),
		ok("browse-reply-last-page", rep(OpBrowse, 21), "BrowseReply", &BrowseReply{Messages: []Delivery{b}}),
		ok("browse-reply-empty", rep(OpBrowse, 22), "BrowseReply", &BrowseReply{}),
		ok("browse-denied", fail(OpBrowse, CodePermission, 23), "Error",
			&ErrorReply{Message: []byte(`browse "secret": permission denied`)}),
		bad("browse-cursor-short", req(OpBrowse, 20), "Browse",
			cat(AppendString(nil, "jobs"), AppendI64(nil, 0), AppendString(nil, cur[:16]), AppendU32(nil, 2)), "invalid"),
		bad("browse-cursor-id-zero", req(OpBrowse, 20), "Browse",
			cat(AppendString(nil, "jobs"), AppendI64(nil, 0), AppendString(nil, BrowseCursor{Priority: 1}.appendAlways(nil)), AppendU32(nil, 2)), "invalid"),
		bad("browse-truncated-limit", req(OpBrowse, 20), "Browse",
			cat(AppendString(nil, "jobs"), AppendI64(nil, 0), AppendString(nil, ""), []byte{2, 0}), "malformed"),
		bad("browse-reply-count-past-end", rep(OpBrowse, 20), "BrowseReply", cat(AppendU32(nil, 3), rp[4:]), "malformed"),
		bad("browse-reply-entry-len-short", rep(OpBrowse, 20), "BrowseReply",
			cat(AppendU32(nil, 1), AppendU32(nil, 10), rp[8:]), "malformed"),
		bad("browse-reply-entry-critical", rep(OpBrowse, 20), "BrowseReply",
			(&BrowseReply{Messages: []Delivery{{ID: 1, Ext: AppendExt(nil, 0x8001, nil)}}}).Append(nil), "critical"),
	}
}

// appendAlways encodes c's 17 bytes even when c is zero (for vectors of
// invalid cursors).
func (c BrowseCursor) appendAlways(b []byte) []byte {
	return AppendU64(AppendI64(append(b, c.Priority), c.Type), c.ID)
}
