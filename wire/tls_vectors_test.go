package wire

// tlsVectors are the conformance vectors of remote principals: a TLS
// principal's PRINCIPAL_NAME beside it, the ACL op, and MailboxInfo's
// OWNER and ACCESS tags (tls.json).
func tlsVectors() []vecSpec {
	name := "spiffe://example.org/alice"
	remote := Identity{Kind: PrincipalTLS, Endpoint: vecEndpoint + 2}
	nameExt := AppendPrincipalName(nil, name)
	info := MailboxInfo{Name: []byte("alice/work"), UID: NoOwnerID, GID: NoOwnerID, Mode: 0o600, Capacity: -1,
		CreatedUnix: 1_750_000_000_000_000_000,
		Ext: AppendAccess(AppendAccess(AppendMailboxOwner(nil, PrincipalTLS, name),
			AccessEntry{Perms: PermRead | PermWrite, Pattern: "spiffe://example.org/*"}),
			AccessEntry{Perms: PermWrite, Pattern: "CN=ci,O=Example"})}
	acl := &ACL{Name: []byte("jobs"), Action: ACLSet, Perms: PermRead, Pattern: []byte("spiffe://example.org/*")}
	ap := acl.Append(nil)
	return []vecSpec{
		ok("hello-reply-tls-principal", rep(OpHello, 1), "HelloReply", &HelloReply{Version: 2, Endpoint: remote.Endpoint,
			Epoch: 0x9e3779b9, Session: vecSession, Principal: remote, MaxFrame: DefaultMaxFrame, MaxMessage: 4 << 20,
			Server: []byte("postbox"), Ext: nameExt}),
		ok("deliver-from-tls-sender", Header{Op: OpDeliver, Flags: FlagPush, Request: 9}, "Delivery",
			&Delivery{Lease: 4, ID: 3, Type: 1, Sender: remote, SentUnixNano: 1_750_000_000_423_456_789,
				Body: []byte("hi"), Ext: nameExt}),
		ok("send-reply-receipt-tls-receiver", rep(OpSend, 5), "SendReply",
			&SendReply{IDs: []uint64{6}, Taken: true, Receipt: remote, Ext: nameExt}),
		ok("stat-reply-remote-owner-and-access", rep(OpStat, 12), "MailboxInfo", &info),
		ok("acl-set-read", req(OpACL, 30), "ACL", acl),
		ok("acl-remove", req(OpACL, 31), "ACL", &ACL{Name: []byte("jobs"), Action: ACLRemove, Pattern: []byte("CN=ci,O=Example")}),
		ok("acl-reply", rep(OpACL, 30), "Empty", &Empty{}),
		ok("acl-denied-not-owner", fail(OpACL, CodePermission, 32), "Error",
			&ErrorReply{Message: []byte(`acl "jobs": permission denied (its owner is uid 1000)`)}),
		ok("usage-reply-principal-bucket", rep(OpUsage, 50), "UsageReply", &UsageReply{Entries: []UsageEntry{},
			Ext: AppendPrincipalUsage(nil, &PrincipalUsage{Name: []byte(name),
				Used:  UsageCounts{Connections: 1, Mailboxes: 2, Bytes: 10, Leases: 0},
				Quota: UsageCounts{Connections: 256, Mailboxes: 1024, Bytes: 268435456, Leases: 65536}})}),
		bad("acl-truncated-pattern", req(OpACL, 30), "ACL", ap[:len(ap)-1], "malformed"),
		bad("acl-unknown-critical-ext", req(OpACL, 30), "ACL", AppendExt(cat(ap), 0x8100, nil), "critical"),
	}
}
