package wire

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
)

// The hex dumps in docs/PROTOCOL.md are produced here, by this package, and
// this test fails if the document and the code disagree. To regenerate:
//
//	go test ./wire -run TestProtocolDocExamples -examples
var printExamples = flag.Bool("examples", false, "print the protocol document's examples")

// field is a run of bytes in an example and what it means.
type field struct {
	n     int
	label string
}

type docExample struct {
	name   string
	frame  []byte
	fields []field
}

func header(op, flags, status string, request uint64) []field {
	return []field{
		{4, "size"}, {1, "op = " + op}, {1, "flags = " + flags}, {2, "status = " + status},
		{8, fmt.Sprintf("request id = %d", request)},
	}
}

func str(name, s string) []field {
	return []field{{2, fmt.Sprintf("%s length = %d", name, len(s))}, {len(s), fmt.Sprintf("%s = %q", name, s)}}
}

func fields(groups ...[]field) []field {
	var out []field
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}

func encodeFrame(h Header, m interface{ Append([]byte) []byte }) []byte {
	b, off := StartFrame(nil, h)
	if m != nil {
		b = m.Append(b)
	}
	return FinishFrame(b, off)
}

type errMsg string

func (e errMsg) Append(b []byte) []byte { return AppendError(b, string(e)) }

func docExamples() []docExample {
	// A message sent by endpoint 7 (pid 4242) and received by endpoint 8.
	d1 := &Delivery{Lease: 1, ID: 1, Type: 1, UID: 1000, GID: 1000, PID: 4242, Endpoint: 7,
		SentUnixNano: 1_750_000_000_123_456_789, Body: []byte("hi")}
	d2 := &Delivery{Lease: 2, ID: 2, Type: 3, Priority: 9, Redeliveries: 1, UID: 1000, GID: 1000,
		PID: 4242, Endpoint: 7, SentUnixNano: 1_750_000_000_223_456_789, Body: []byte("job")}
	return []docExample{
		{"hello", encodeFrame(Header{Op: OpHello, Request: 1},
			&Hello{MinVersion: 1, MaxVersion: 1, Client: []byte("demo")}),
			fields(header("0x01 HELLO", "0", "0", 1),
				[]field{{4, `magic = "PBOX"`}, {2, "min version = 1"}, {2, "max version = 1"}},
				str("client", "demo"))},
		{"hello-reply", encodeFrame(Header{Op: OpHello | OpReply, Request: 1},
			&HelloReply{Version: 1, Endpoint: 7, UID: 1000, GID: 1000, PID: 4242,
				MaxFrame: DefaultMaxFrame, MaxMessage: 1 << 20, Server: []byte("postbox")}),
			fields(header("0x81 HELLO-REPLY", "0", "0 OK", 1),
				[]field{{2, "version = 1"}, {8, "endpoint id = 7 (inbox \"@7\")"},
					{4, "uid = 1000"}, {4, "gid = 1000"}, {4, "pid = 4242"},
					{4, "max frame = 16777216"}, {4, "max message = 1048576"}},
				str("server", "postbox"))},
		{"hello-version", encodeFrame(Header{Op: OpHello | OpReply, Status: CodeVersion, Request: 1},
			errMsg("no common protocol version")),
			fields(header("0x81 HELLO-REPLY", "0", "2 VERSION", 1),
				str("message", "no common protocol version"))},
		{"create", encodeFrame(Header{Op: OpCreate, Request: 2},
			&Create{Name: []byte("jobs"), Capacity: 100, Mode: 0o620, MaxDeliveries: 5}),
			fields(header("0x10 CREATE", "0", "0", 2), str("name", "jobs"),
				[]field{{8, "capacity = 100"}, {4, "mode = 0620"},
					{2, "option tag = 4 (max deliveries)"}, {2, "option length = 4"}, {4, "max deliveries = 5"}})},
		{"create-reply", encodeFrame(Header{Op: OpCreate | OpReply, Request: 2}, nil),
			header("0x90 CREATE-REPLY", "0", "0 OK", 2)},
		{"send", encodeFrame(Header{Op: OpSend, Request: 3},
			&Send{Target: []byte("jobs"), Type: 1, Priority: 0, Timeout: -1, Body: []byte("hi")}),
			fields(header("0x20 SEND", "0", "0", 3), str("target", "jobs"),
				[]field{{8, "type = 1"}, {1, "priority = 0"}, {8, "timeout = -1 (wait forever)"},
					{2, `body = "hi"`}})},
		{"send-reply", encodeFrame(Header{Op: OpSend | OpReply, Request: 3}, &SendReply{ID: 1}),
			fields(header("0xa0 SEND-REPLY", "0", "0 OK", 3),
				[]field{{8, "message id = 1"}, {1, "taken = 0"}})},
		{"send-receipt", encodeFrame(Header{Op: OpSend, Flags: FlagReceipt, Request: 4},
			&Send{Target: []byte("@8"), Type: 2, Priority: 5, Timeout: 1_000_000_000, Body: []byte("ping")}),
			fields(header("0x20 SEND", "0x01 RECEIPT", "0", 4), str("target", "@8"),
				[]field{{8, "type = 2"}, {1, "priority = 5"}, {8, "timeout = 1000000000 (1 s)"},
					{4, `body = "ping"`}})},
		{"send-receipt-reply", encodeFrame(Header{Op: OpSend | OpReply, Request: 4},
			&SendReply{ID: 1, Taken: true, Receipt: Receipt{Endpoint: 8, UID: 1001, GID: 1001, PID: 5150}}),
			fields(header("0xa0 SEND-REPLY", "0", "0 OK", 4),
				[]field{{8, "message id = 1"}, {1, "taken = 1"}, {8, "receiver endpoint = 8"},
					{4, "receiver uid = 1001"}, {4, "receiver gid = 1001"}, {4, "receiver pid = 5150"}})},
		{"send-notfound", encodeFrame(Header{Op: OpSend | OpReply, Status: CodeNotFound, Request: 5},
			errMsg(`no mailbox "jbos"`)),
			fields(header("0xa0 SEND-REPLY", "0", "5 NOT_FOUND", 5), str("message", `no mailbox "jbos"`))},
		{"recv", encodeFrame(Header{Op: OpRecv, Request: 6},
			&Recv{Name: []byte("jobs"), Type: 0, Timeout: -1}),
			fields(header("0x21 RECV", "0", "0", 6), str("name", "jobs"),
				[]field{{8, "type = 0 (any)"}, {8, "timeout = -1 (wait forever)"}})},
		{"recv-reply", encodeFrame(Header{Op: OpRecv | OpReply, Request: 6}, d1),
			fields(header("0xa1 RECV-REPLY", "0", "0 OK", 6), deliveryFields(d1))},
		{"consume", encodeFrame(Header{Op: OpConsume, Request: 9},
			&Consume{Name: []byte("jobs"), Type: 0, Credit: 16}),
			fields(header("0x22 CONSUME", "0", "0", 9), str("name", "jobs"),
				[]field{{8, "type = 0 (any)"}, {4, "credit = 16"}})},
		{"deliver", encodeFrame(Header{Op: OpDeliver, Request: 9}, d2),
			fields(header("0xff DELIVER", "0", "0", 9), deliveryFields(d2))},
		{"credit", encodeFrame(Header{Op: OpCredit, Request: 9}, &Credit{N: 1}),
			fields(header("0x23 CREDIT", "0", "0", 9), []field{{4, "n = 1"}})},
		{"ack", encodeFrame(Header{Op: OpAck, Request: 10}, &Leases{IDs: []uint64{1, 2}}),
			fields(header("0x24 ACK", "0", "0", 10),
				[]field{{4, "count = 2"}, {8, "lease id = 1"}, {8, "lease id = 2"}})},
		{"ack-reply", encodeFrame(Header{Op: OpAck | OpReply, Request: 10}, &AckReply{Done: 2}),
			fields(header("0xa4 ACK-REPLY", "0", "0 OK", 10), []field{{4, "done = 2"}})},
		{"cancel", encodeFrame(Header{Op: OpCancel, Request: 9}, nil),
			header("0x26 CANCEL", "0", "0", 9)},
		{"consume-reply", encodeFrame(Header{Op: OpConsume | OpReply, Status: CodeCanceled, Request: 9},
			errMsg("canceled")),
			fields(header("0xa2 CONSUME-REPLY", "0", "15 CANCELED", 9), str("message", "canceled"))},
	}
}

func deliveryFields(d *Delivery) []field {
	return []field{
		{8, fmt.Sprintf("lease id = %d", d.Lease)}, {8, fmt.Sprintf("message id = %d", d.ID)},
		{8, fmt.Sprintf("type = %d", d.Type)}, {1, fmt.Sprintf("priority = %d", d.Priority)},
		{3, "reason 0, flags 0, padding (zero)"}, {4, fmt.Sprintf("redeliveries = %d", d.Redeliveries)},
		{4, fmt.Sprintf("sender uid = %d", d.UID)}, {4, fmt.Sprintf("sender gid = %d", d.GID)},
		{4, fmt.Sprintf("sender pid = %d", d.PID)}, {8, fmt.Sprintf("sender endpoint = %d", d.Endpoint)},
		{8, fmt.Sprintf("sent = %d (unix ns)", d.SentUnixNano)},
		{len(d.Body), fmt.Sprintf("body = %q", d.Body)},
	}
}

// render prints an example one field per line (long fields wrap at 8
// bytes): offset, bytes in hex, meaning.
func (e docExample) render() string {
	var sb strings.Builder
	off := 0
	for _, f := range e.fields {
		b := e.frame[off : off+f.n]
		for i := 0; i == 0 || i < len(b); i += 8 {
			chunk := b[i:min(i+8, len(b))]
			label := f.label
			switch {
			case i > 0:
				label = ""
			case off == 0:
				label = fmt.Sprintf("size = %d (12 + %d-byte payload)", len(e.frame)-4, len(e.frame)-HeaderSize)
			}
			line := fmt.Sprintf("%04x  %-23s  %s", off+i, fmt.Sprintf("% x", chunk), label)
			sb.WriteString(strings.TrimRight(line, " ") + "\n")
		}
		off += f.n
	}
	return sb.String()
}

func TestProtocolDocExamples(t *testing.T) {
	doc, err := os.ReadFile("../docs/PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range docExamples() {
		n := 0
		for _, f := range e.fields {
			n += f.n
		}
		if n != len(e.frame) {
			t.Errorf("%s: fields cover %d of %d bytes", e.name, n, len(e.frame))
			continue
		}
		block := e.render()
		if *printExamples {
			fmt.Printf("<!-- example %s -->\n```\n%s```\n\n", e.name, block)
		}
		if !strings.Contains(string(doc), block) {
			t.Errorf("docs/PROTOCOL.md lacks example %s:\n%s", e.name, block)
		}
	}
}
