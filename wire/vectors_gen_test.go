package wire

import (
	"bytes"
	"encoding/json"
	"testing"
)

// vectorFiles are the conformance vectors, by file. Each valid vector is
// built from a value and checked to decode; each invalid one is built from
// bytes and checked to fail with its class, so a vector cannot say what
// the code does not do.
func vectorFiles() []vectorFile {
	return []vectorFile{
		{"hello.json", helloVectors()},
		{"send.json", sendVectors()},
		{"deliver.json", deliverVectors()},
		{"ack.json", ackVectors()},
		{"list.json", listVectors()},
		{"browse.json", browseVectors()},
		{"create.json", createVectors()},
		{"errors.json", errorVectors()},
		{"misc.json", miscVectors()},
		{"usage.json", usageVectors()},
		{"call.json", callVectors()},
		{"tls.json", tlsVectors()},
		{"pubsub.json", pubsubVectors()},
		{"withdraw.json", withdrawVectors()},
		{"groups.json", groupsVectors()},
		{"fds.json", fdsVectors()},
		{"info.json", infoVectors()},
	}
}

type vectorFile struct {
	name string
	vs   []vecSpec
}

// vecSpec is a vector before encoding: a value (valid) or raw payload
// bytes with the error class they must fail with.
type vecSpec struct {
	name string
	h    Header
	typ  string
	m    payload // valid vectors
	raw  []byte  // invalid vectors, or valid non-canonical ones with m == nil
	err  string
}

func ok(name string, h Header, typ string, m payload) vecSpec {
	return vecSpec{name: name, h: h, typ: typ, m: m}
}

func bad(name string, h Header, typ string, raw []byte, class string) vecSpec {
	return vecSpec{name: name, h: h, typ: typ, raw: raw, err: class}
}

type genFile struct {
	name string
	data []byte
}

func generateVectors(t *testing.T) []genFile {
	var out []genFile
	for _, f := range vectorFiles() {
		var vs []vector
		for _, s := range f.vs {
			vs = append(vs, buildVector(t, s))
		}
		data, err := json.MarshalIndent(vs, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, genFile{f.name, append(data, '\n')})
	}
	return out
}

func buildVector(t *testing.T, s vecSpec) vector {
	p := s.raw
	if s.m != nil {
		p = s.m.Append(nil)
	}
	b, off := StartFrame(nil, s.h)
	frame := FinishFrame(append(b, p...), off)
	if s.h.Op == 0xfe { // marker: a 16-byte header whose size field is 11
		frame = append(AppendU32(nil, 11), make([]byte, 12)...)
	}
	v := vector{Name: s.name, Hex: hexString(frame), PayloadType: s.typ, Valid: s.err == ""}
	if s.h.Op != 0xfe {
		v.Header = &vectorHeader{Op: uint8(s.h.Op), Flags: s.h.Flags, Status: uint16(s.h.Status), Request: s.h.Request}
	}
	_, m, err := decodeFrame(frame, s.typ)
	if !v.Valid {
		if got := errorClass(err); got != s.err {
			t.Fatalf("vector %s: error %q (%v), want %q", s.name, got, err, s.err)
		}
		v.Error = s.err
		return v
	}
	if err != nil {
		t.Fatalf("vector %s does not decode: %v", s.name, err)
	}
	v.Fields, _ = json.Marshal(fieldsOf(m))
	if re := m.Append(nil); !bytes.Equal(re, p) {
		t.Fatalf("vector %s is not canonical", s.name)
	}
	return v
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

func req(op Op, id uint64) Header { return Header{Op: op, Request: id} }
func rep(op Op, id uint64) Header { return Header{Op: op | OpReply, Request: id} }
func fail(op Op, c Code, id uint64) Header {
	return Header{Op: op | OpReply, Status: c, Request: id}
}

// cat concatenates byte slices.
func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

var (
	vecSession  = Session{0x5e, 0x55, 0x10, 0x4e, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	vecEndpoint = uint64(0x9e3779b9)<<32 | 1
	vecClient   = Identity{Kind: PrincipalUnix, UID: 1000, GID: 1000, PID: 4242, Endpoint: vecEndpoint}
	vecPeer     = Identity{Kind: PrincipalUnix, UID: 1001, GID: 1001, PID: 5150, Endpoint: vecEndpoint + 1}
)

func helloVectors() []vecSpec {
	h := &Hello{MinVersion: 2, MaxVersion: 2, Client: []byte("demo"), Caps: CapDescriptors}
	withSession := *h
	withSession.Session = vecSession
	hp := h.Append(nil)
	v1 := AppendString(AppendU16(AppendU16(AppendU32(nil, Magic), 1), 1), "demo")
	// A TCP connection's reply: no DESCRIPTORS, kind 0, keepalive 10 s,
	// dead peer 30 s.
	keepalive := HelloReply{Version: 2, Endpoint: vecEndpoint, Epoch: 0x9e3779b9, Session: vecSession,
		Principal: Identity{Endpoint: vecEndpoint}, MaxFrame: DefaultMaxFrame, MaxMessage: 4 << 20,
		Server: []byte("postbox"), Keepalive: 10e9, DeadPeer: 30e9}
	return []vecSpec{
		ok("hello", req(OpHello, 1), "Hello", h),
		ok("hello-reconnect-session", req(OpHello, 1), "Hello", &withSession),
		ok("hello-range-1-3", req(OpHello, 1), "Hello", &Hello{MinVersion: 1, MaxVersion: 3, Client: []byte("x")}),
		ok("hello-noncritical-ext-kept", req(OpHello, 1), "Hello",
			&Hello{MinVersion: 2, MaxVersion: 2, Ext: AppendExt(nil, 0x0100, []byte("hint"))}),
		ok("hello-reply", rep(OpHello, 1), "HelloReply", &HelloReply{Version: 2, Endpoint: vecEndpoint,
			Caps: CapDescriptors, Epoch: 0x9e3779b9, Session: vecSession, Principal: vecClient,
			MaxFrame: DefaultMaxFrame, MaxMessage: 4 << 20, Server: []byte("postbox")}),
		ok("hello-version-error", fail(OpHello, CodeVersion, 1), "Error",
			&ErrorReply{Message: []byte("this broker speaks protocol version 2")}),
		bad("hello-v1-is-version", req(OpHello, 1), "Hello", v1, "version"),
		bad("hello-range-3-4-is-version", req(OpHello, 1), "Hello",
			(&Hello{MinVersion: 3, MaxVersion: 4}).Append(nil), "version"),
		bad("hello-bad-magic", req(OpHello, 1), "Hello", cat([]byte("XBOX"), hp[4:]), "malformed"),
		bad("hello-client-256-bytes", req(OpHello, 1), "Hello",
			(&Hello{MinVersion: 2, MaxVersion: 2, Client: bytes.Repeat([]byte{'c'}, 256)}).Append(nil), "malformed"),
		bad("hello-truncated-session", req(OpHello, 1), "Hello", hp[:len(hp)-1], "malformed"),
		bad("hello-unknown-critical-ext", req(OpHello, 1), "Hello", AppendExt(bytes.Clone(hp), 0x8100, nil), "critical"),
		bad("hello-ext-len-past-end", req(OpHello, 1), "Hello", cat(hp, []byte{0x00, 0x01, 0x05, 0x00, 'a'}), "malformed"),
		bad("hello-reply-truncated", rep(OpHello, 1), "HelloReply", make([]byte, 40), "malformed"),
		ok("hello-reply-keepalive", rep(OpHello, 1), "HelloReply", &keepalive),
		bad("hello-reply-keepalive-len-4", rep(OpHello, 1), "HelloReply",
			AppendExt((&HelloReply{Version: 2, Endpoint: vecEndpoint, Epoch: 0x9e3779b9}).Append(nil), TagKeepalive, []byte{1, 2, 3, 4}), "malformed"),
		bad("hello-reply-dead-peer-twice", rep(OpHello, 1), "HelloReply",
			AppendI64(appendExtHead(bytes.Clone(keepalive.Append(nil)), TagDeadPeer, 8), 1), "malformed"),
	}
}

func sendVectors() []vecSpec {
	hdr := AppendHeaders(nil, &HeaderFields{ReplyTo: []byte("@" + "11400714785074694145"),
		CorrelationID: []byte("42"), ContentType: []byte("text/plain")})
	one := &Send{Target: []byte("jobs"), Timeout: -1, Msgs: []SendMsg{{Type: 1, Headers: hdr, Body: []byte("hi")}}}
	batch := &Send{Target: []byte("jobs"), Timeout: 0, Msgs: []SendMsg{
		{Type: 1, Body: []byte("a")}, {Type: 2, Priority: 5, Body: []byte("bb")}, {Type: 1, Body: []byte{}}}}
	withHeaders := func(h []byte) []byte {
		return (&Send{Target: []byte("q"), Msgs: []SendMsg{{Type: 1, Headers: h}}}).Append(nil)
	}
	entry := func(tag uint16, v []byte) []byte { return AppendExt(nil, tag, v) }
	user := func(k, v []byte) []byte { return entry(HeaderUser, cat([]byte{byte(len(k))}, k, v)) }
	bp := batch.Append(nil)
	return []vecSpec{
		ok("send-one-with-headers", req(OpSend, 3), "Send", one),
		ok("send-batch-of-3", req(OpSend, 4), "Send", batch),
		ok("send-receipt-flag-irrelevant-to-decoding", Header{Op: OpSend, Flags: FlagReceipt, Request: 5}, "Send", batch),
		ok("send-user-headers-repeat-keys", req(OpSend, 6), "Send", &Send{Target: []byte("@1"), Timeout: 1e9,
			Msgs: []SendMsg{{Type: 7, Headers: cat(user([]byte("k"), []byte("1")), user([]byte("k"), nil)), Body: []byte("x")}}}),
		ok("send-reserved-header-tag-passed-through", req(OpSend, 7), "Send",
			&Send{Target: []byte("q"), Msgs: []SendMsg{{Type: 1, Headers: entry(9, []byte{1, 2, 3})}}}),
		ok("send-best-effort", Header{Op: OpSend, Flags: FlagBestEffort, Request: 8}, "Send",
			&Send{Target: []byte("metrics"), Msgs: []SendMsg{{Type: 1, Body: []byte("cpu=0.5")}}}),
		ok("send-reply", rep(OpSend, 3), "SendReply", &SendReply{IDs: []uint64{1}}),
		ok("send-reply-batch", rep(OpSend, 4), "SendReply", &SendReply{IDs: []uint64{2, 3, 5}}),
		ok("send-reply-receipt", rep(OpSend, 5), "SendReply", &SendReply{IDs: []uint64{6}, Taken: true, Receipt: vecPeer}),
		ok("send-error-done-2", fail(OpSend, CodeFull, 4), "Error",
			&ErrorReply{Message: []byte("mailbox is full"), Done: 2, HasDone: true}),
		bad("send-count-0", req(OpSend, 1), "Send", (&Send{Target: []byte("q")}).Append(nil), "malformed"),
		bad("send-count-1025", req(OpSend, 1), "Send",
			(&Send{Target: []byte("q"), Msgs: make([]SendMsg, MaxBatch+1)}).Append(nil), "malformed"),
		bad("send-truncated-body", req(OpSend, 1), "Send", bp[:len(bp)-1], "malformed"),
		bad("send-body-len-past-end", req(OpSend, 1), "Send",
			cat(AppendString(nil, "q"), AppendI64(nil, 0), AppendU16(nil, 1), AppendI64(nil, 1), []byte{0},
				AppendU32(nil, 0), AppendU32(nil, 100), []byte("short")), "malformed"),
		bad("send-headers-entry-past-end", req(OpSend, 1), "Send", withHeaders([]byte{1, 0, 9, 0, '@'}), "malformed"),
		bad("send-headers-65-entries", req(OpSend, 1), "Send",
			withHeaders(bytes.Repeat(user([]byte("k"), nil), MaxHeaderEntries+1)), "invalid"),
		bad("send-headers-over-16384-bytes", req(OpSend, 1), "Send",
			withHeaders(bytes.Repeat(user([]byte("k"), make([]byte, 4000)), 5)), "invalid"),
		bad("send-reply-to-twice", req(OpSend, 1), "Send",
			withHeaders(cat(entry(HeaderReplyTo, []byte("a")), entry(HeaderReplyTo, []byte("b")))), "invalid"),
		bad("send-reply-to-leading-zero", req(OpSend, 1), "Send", withHeaders(entry(HeaderReplyTo, []byte("@007"))), "invalid"),
		bad("send-correlation-empty", req(OpSend, 1), "Send", withHeaders(entry(HeaderCorrelationID, nil)), "invalid"),
		bad("send-deadline-len-4", req(OpSend, 1), "Send", withHeaders(entry(HeaderDeadline, []byte{1, 2, 3, 4})), "invalid"),
		bad("send-content-type-control-char", req(OpSend, 1), "Send",
			withHeaders(entry(HeaderContentType, []byte("text/plain\n"))), "invalid"),
		bad("send-user-key-bad-char", req(OpSend, 1), "Send", withHeaders(user([]byte("a b"), nil)), "invalid"),
		bad("send-user-value-4097", req(OpSend, 1), "Send", withHeaders(user([]byte("k"), make([]byte, 4097))), "invalid"),
		bad("send-unknown-critical-ext", req(OpSend, 1), "Send", AppendExt(bytes.Clone(bp), 0x8123, nil), "critical"),
		bad("send-reply-taken-2", rep(OpSend, 1), "SendReply", cat(AppendU16(nil, 1), AppendU64(nil, 1), []byte{2}), "malformed"),
	}
}

func deliverVectors() []vecSpec {
	d := &Delivery{Lease: 1, ID: 1, Type: 1, Sender: vecClient, SentUnixNano: 1_750_000_000_123_456_789,
		Headers: AppendHeaders(nil, &HeaderFields{CorrelationID: []byte("42")}), Body: []byte("hi")}
	dp := d.Append(nil)
	return []vecSpec{
		ok("recv", req(OpRecv, 6), "Recv", &Recv{Name: []byte("jobs"), Type: 0, Timeout: -1}),
		ok("recv-reply", rep(OpRecv, 6), "Delivery", d),
		ok("consume", req(OpConsume, 9), "Consume", &Consume{Name: []byte("jobs"), Type: -3, Credit: 16}),
		ok("deliver-pushed", Header{Op: OpDeliver, Flags: FlagPush, Request: 9}, "Delivery",
			&Delivery{Lease: 2, ID: 7, Type: 3, Priority: 9, Redeliveries: 1, Sender: vecClient,
				SentUnixNano: 1_750_000_000_223_456_789, Body: []byte("job")}),
		ok("deliver-dead-letter-offer", Header{Op: OpDeliver, Flags: FlagPush, Request: 9}, "Delivery",
			&Delivery{Lease: 3, ID: 8, Type: 1, Reason: ReasonMaxDeliveries, Flags: DeliveryChannelOffer,
				Body: make([]byte, TokenSize)}),
		ok("credit", req(OpCredit, 9), "Credit", &Credit{N: 1}),
		bad("recv-truncated-timeout", req(OpRecv, 6), "Recv",
			cat(AppendString(nil, "jobs"), AppendI64(nil, 0), []byte{0xff, 0xff}), "malformed"),
		bad("delivery-truncated", rep(OpRecv, 6), "Delivery", dp[:len(dp)-1], "malformed"),
		bad("delivery-unknown-critical-ext", rep(OpRecv, 6), "Delivery", AppendExt(bytes.Clone(dp), 0xffff, nil), "critical"),
		bad("credit-short", req(OpCredit, 9), "Credit", []byte{1, 0, 0}, "malformed"),
	}
}

func ackVectors() []vecSpec {
	rs := func(r ...LeaseRange) []byte { return (&Leases{Ranges: r}).Append(nil) }
	return []vecSpec{
		ok("ack-one-range", req(OpAck, 10), "Leases", &Leases{Ranges: []LeaseRange{{First: 1, N: 2}}}),
		ok("ack-noreply-ranges", Header{Op: OpAck, Flags: FlagNoReply}, "Leases",
			&Leases{Ranges: []LeaseRange{{First: 3, N: 1}, {First: 7, N: 3}}}),
		ok("nack-unsorted-disjoint", req(OpNack, 11), "Leases",
			&Leases{Ranges: []LeaseRange{{First: 20, N: 1}, {First: 10, N: 5}}}),
		ok("ack-max-leases", req(OpAck, 12), "Leases", &Leases{Ranges: []LeaseRange{{First: 1, N: MaxLeasesPerFrame}}}),
		ok("ack-reply", rep(OpAck, 10), "AckReply", &AckReply{Done: 2}),
		ok("ack-reply-stale", rep(OpAck, 11), "AckReply",
			&AckReply{Done: 5, Failed: []LeaseFailure{{Lease: 20, Status: CodeStaleLease}}}),
		bad("ack-count-0", req(OpAck, 1), "Leases", rs(), "malformed"),
		bad("ack-n-0", req(OpAck, 1), "Leases", rs(LeaseRange{First: 1}), "malformed"),
		bad("ack-overlap", req(OpAck, 1), "Leases", rs(LeaseRange{1, 5}, LeaseRange{5, 1}), "malformed"),
		bad("ack-overlap-unsorted", req(OpAck, 1), "Leases", rs(LeaseRange{10, 2}, LeaseRange{1, 10}), "malformed"),
		bad("ack-over-65536-leases", req(OpAck, 1), "Leases",
			rs(LeaseRange{1, MaxLeasesPerFrame}, LeaseRange{1 << 40, 1}), "malformed"),
		bad("ack-range-wraps", req(OpAck, 1), "Leases", rs(LeaseRange{1<<64 - 1, 2}), "malformed"),
		bad("ack-ext-len-past-end", req(OpAck, 1), "Leases", cat(rs(LeaseRange{1, 1}), []byte{1, 0, 1, 0}), "malformed"),
		bad("ack-reply-nfailed-past-end", rep(OpAck, 1), "AckReply", cat(AppendU32(nil, 0), AppendU32(nil, 2)), "malformed"),
	}
}

func listVectors() []vecSpec {
	a, b := vecInfo("jobs"), vecInfo("jobs/dead")
	grown := vecInfo("logs")
	grown.Ext = AppendExt(nil, 0x0001, []byte("later field"))
	dropped := vecInfo("metrics")
	dropped.Dropped = 12
	clustered := vecInfo("c.jobs")
	clustered.Ext = AppendClusterInfo(nil, ClusterInfo{Cluster: "east", Replicas: 3,
		StreamState: "leader n1, 2/2 followers current", Stream: "PB_0123456789abcdef0123456789abcdef"})
	reply := &ListReply{Infos: []MailboxInfo{*a, *b}, Next: []byte("jobs/dead")}
	rp := reply.Append(nil)
	return []vecSpec{
		ok("list-first-page", req(OpList, 12), "List", &List{Limit: 2}),
		ok("list-next-page", req(OpList, 13), "List", &List{Cursor: []byte("jobs/dead"), Limit: 2}),
		ok("list-reply-page", rep(OpList, 12), "ListReply", reply),
		ok("list-reply-last-page-entry-with-ext", rep(OpList, 13), "ListReply", &ListReply{Infos: []MailboxInfo{*grown}}),
		ok("stat-reply", rep(OpStat, 14), "MailboxInfo", a),
		ok("stat-reply-dropped", rep(OpStat, 15), "MailboxInfo", dropped),
		ok("stat-reply-cluster", rep(OpStat, 16), "MailboxInfo", clustered), // PROTOCOL.md 8.25
		bad("stat-reply-dropped-len-4", rep(OpStat, 15), "MailboxInfo",
			AppendExt(a.Append(nil), TagDropped, []byte{1, 0, 0, 0}), "malformed"),
		bad("list-reply-count-past-end", rep(OpList, 12), "ListReply", cat(AppendU32(nil, 3), rp[4:]), "malformed"),
		bad("list-reply-entry-len-short", rep(OpList, 12), "ListReply",
			cat(AppendU32(nil, 1), AppendU32(nil, 10), rp[8:]), "malformed"),
		bad("list-reply-entry-critical", rep(OpList, 12), "ListReply",
			(&ListReply{Infos: []MailboxInfo{{Name: []byte("x"), Ext: AppendExt(nil, 0x8001, nil)}}}).Append(nil), "critical"),
	}
}

func vecInfo(name string) *MailboxInfo {
	return &MailboxInfo{Name: []byte(name), UID: 1000, GID: 1000, Mode: 0o620, Capacity: 100,
		Depth: 2, Bytes: 5, Consumers: 1, Sent: 7, Received: 5, CreatedUnix: 1_750_000_000_000_000_000}
}

func createVectors() []vecSpec {
	base := (&Create{Name: []byte("jobs"), Capacity: 100, Mode: 0o620}).Append(nil)
	opt := func(parts ...[]byte) []byte { return cat(append([][]byte{base}, parts...)...) }
	return []vecSpec{
		ok("create-with-options", req(OpCreate, 2), "Create", &Create{Name: []byte("jobs"), Capacity: 100,
			Mode: 0o620, MaxDeliveries: 5, DeadLetter: []byte("jobs/dead")}),
		ok("create-all-options", req(OpCreate, 2), "Create", &Create{Name: []byte("orders"), Capacity: -1,
			Mode: 0o600, Durable: true, MaxBytes: 1 << 30, TTL: 3600e9, MaxDeliveries: 3, DeadLetter: []byte("orders.dl")}),
		ok("create-no-options", req(OpCreate, 2), "Create", &Create{Name: []byte("r"), Capacity: 0, Mode: 0o666}),
		ok("create-service", req(OpCreate, 2), "Create", &Create{Name: []byte("svc"), Capacity: -1, Mode: 0o622, Service: true}),
		ok("create-pipe", req(OpCreate, 2), "Create", &Create{Name: []byte("logs"), Capacity: -1, Mode: 0o620, Pipe: true, PipeBuffer: 65536}),
		ok("create-cluster", req(OpCreate, 2), "Create", &Create{Name: []byte("jobs"), Capacity: -1, Mode: 0o660, Cluster: true, Replicas: 3}),
		bad("create-pipe-len-2", req(OpCreate, 2), "Create", opt(AppendExt(nil, TagPipe, []byte{1, 2})), "malformed"),
		ok("create-reply", rep(OpCreate, 2), "Empty", &Empty{}),
		bad("create-unknown-critical-option", req(OpCreate, 2), "Create", opt(AppendExt(nil, 0x8077, nil)), "critical"),
		bad("create-dead-letter-empty", req(OpCreate, 2), "Create", opt(AppendExt(nil, TagDeadLetter, nil)), "invalid"),
		bad("create-dead-letter-bad-name", req(OpCreate, 2), "Create", opt(AppendExt(nil, TagDeadLetter, []byte("dl*"))), "invalid"),
		bad("create-ttl-len-4", req(OpCreate, 2), "Create", opt(AppendExt(nil, TagTTL, []byte{1, 2, 3, 4})), "malformed"),
		bad("create-option-twice", req(OpCreate, 2), "Create",
			opt(AppendExt(nil, TagDurable, nil), AppendExt(nil, TagDurable, nil)), "malformed"),
		bad("create-service-with-value", req(OpCreate, 2), "Create", opt(AppendExt(nil, TagService, []byte{1})), "malformed"),
		bad("create-option-len-past-end", req(OpCreate, 2), "Create", opt([]byte{0x02, 0x80, 0x08, 0x00, 1, 2}), "malformed"),
		bad("create-truncated-mode", req(OpCreate, 2), "Create", base[:len(base)-2], "malformed"),
	}
}

func errorVectors() []vecSpec {
	return []vecSpec{
		ok("error-not-found", fail(OpSend, CodeNotFound, 5), "Error", &ErrorReply{Message: []byte(`no mailbox "jbos"`)}),
		ok("error-unknown-op", Header{Op: 0x5e | OpReply, Status: CodeUnknownOp, Request: 20}, "Error",
			&ErrorReply{Message: []byte("unknown operation 0x5e")}),
		ok("error-canceled-urgent", Header{Op: OpConsume | OpReply, Flags: FlagUrgent, Status: CodeCanceled, Request: 9},
			"Error", &ErrorReply{Message: []byte("canceled")}),
		ok("error-done-0", fail(OpSend, CodeInvalid, 4), "Error",
			&ErrorReply{Message: []byte("message 2: type 0"), HasDone: true}),
		ok("error-empty-message", fail(OpPing, CodeClosed, 1), "Error", &ErrorReply{Message: []byte{}}),
		bad("error-done-len-2", fail(OpSend, CodeFull, 4), "Error",
			cat(AppendString(nil, "x"), AppendExt(nil, TagDone, []byte{1, 0})), "malformed"),
		bad("error-unknown-critical", fail(OpSend, CodeFull, 4), "Error",
			cat(AppendString(nil, "x"), AppendExt(nil, 0x8001, nil)), "critical"),
		bad("error-message-past-end", fail(OpSend, CodeFull, 4), "Error", []byte{9, 0, 'a'}, "malformed"),
	}
}

func miscVectors() []vecSpec {
	return []vecSpec{
		ok("ping", req(OpPing, 1), "Empty", &Empty{}),
		ok("ping-noncritical-ext", req(OpPing, 1), "Empty", &Empty{Ext: AppendExt(nil, 0x0007, []byte{1})}),
		ok("cancel-urgent", Header{Op: OpCancel, Flags: FlagUrgent, Request: 9}, "Empty", &Empty{}),
		ok("destroy", req(OpDestroy, 15), "Name", &Name{Name: []byte("jobs")}),
		ok("stat", req(OpStat, 14), "Name", &Name{Name: []byte("jobs")}),
		ok("chmod", req(OpChmod, 16), "Chmod", &Chmod{Name: []byte("jobs"), Mode: 0o660}),
		ok("channel", req(OpChannel, 17), "Channel", &Channel{Target: []byte("@11400714785074694145"), Type: 1,
			Timeout: -1, RingSize: 1 << 16}),
		ok("attach", req(OpAttach, 18), "Attach", &Attach{Token: [TokenSize]byte{0xa1, 0xb2, 15: 0xff}}),
		bad("ping-critical-ext", req(OpPing, 1), "Empty", AppendExt(nil, 0x8007, nil), "critical"),
		bad("name-critical-ext", req(OpStat, 1), "Name", AppendExt(AppendString(nil, "jobs"), 0x8000, nil), "critical"),
		bad("attach-short-token", req(OpAttach, 1), "Attach", make([]byte, 15), "malformed"),
		bad("frame-size-11", Header{Op: 0xfe}, "Empty", nil, "bad_frame"),
	}
}
