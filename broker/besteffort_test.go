package broker_test

import (
	"testing"

	"github.com/postbox-ipc/postbox/wire"
)

// stat returns name's MailboxInfo.
func (rc *rawConn) stat(t *testing.T, name string) wire.MailboxInfo {
	t.Helper()
	hd, p := rc.roundTrip(t, wire.OpStat, 0, (&wire.Name{Name: []byte(name)}).Append(nil))
	must(t, "STAT "+name, hd, p, wire.OK)
	var info wire.MailboxInfo
	if err := info.Decode(p); err != nil {
		t.Fatalf("STAT %s: %v", name, err)
	}
	return info
}

// sendBestEffort writes a best-effort SEND (no reply is read: there is none).
func (rc *rawConn) sendBestEffort(t *testing.T, flags uint8, target string, bodies ...string) {
	t.Helper()
	m := wire.Send{Target: []byte(target), Timeout: -1}
	for _, b := range bodies {
		m.Msgs = append(m.Msgs, wire.SendMsg{Type: 1, Body: []byte(b)})
	}
	b, _ := rc.frame(wire.OpSend, wire.FlagBestEffort|flags, m.Append(nil))
	rc.write(t, b)
}

// pingIsNext sends a PING and checks that its reply is the next frame: no
// frame answered anything written before it.
func (rc *rawConn) pingIsNext(t *testing.T) {
	t.Helper()
	b, id := rc.frame(wire.OpPing, 0, nil)
	rc.write(t, b)
	hd, p, err := rc.next(t)
	if err != nil {
		t.Fatal(err)
	}
	if hd.Op != wire.OpPing.Reply() || hd.Request != id {
		msg, _ := wire.DecodeError(p)
		t.Fatalf("got %s (request %d, %s %q) before the PING reply", hd.Op, hd.Request, hd.Status, msg)
	}
}

func TestBestEffortSendDropsWhatDoesNotFitAndCountsIt(t *testing.T) {
	b := startBroker(t, nil)
	rc := dialRaw(t, b.socket)
	rc.create(t, wire.Create{Name: []byte("two"), Capacity: 2})
	rc.create(t, wire.Create{Name: []byte("bytes"), Capacity: -1, MaxBytes: 4})
	rc.create(t, wire.Create{Name: []byte("meet"), Capacity: 0})
	// Timeout -1 would wait forever in a SEND: a best-effort one never does.
	for _, body := range []string{"1", "2", "3", "4", "5"} {
		rc.sendBestEffort(t, 0, "two", body)
	}
	rc.sendBestEffort(t, 0, "bytes", "abc", "de", "f") // "de" passes MAX_BYTES: it and "f" drop
	rc.sendBestEffort(t, 0, "meet", "nobody waits")    // rendezvous, no receiver: full
	rc.pingIsNext(t)

	for _, c := range []struct {
		name           string
		depth, dropped uint64
	}{{"two", 2, 3}, {"bytes", 1, 2}, {"meet", 0, 1}} {
		if info := rc.stat(t, c.name); info.Depth != c.depth || info.Dropped != c.dropped {
			t.Errorf("%s: depth %d dropped %d, want %d and %d", c.name, info.Depth, info.Dropped, c.depth, c.dropped)
		}
	}
	for _, want := range []string{"1", "2"} {
		if d := rc.recv(t, "two", wire.FlagAutoAck); string(d.Body) != want {
			t.Fatalf("got %q, want %q", d.Body, want)
		}
	}
}

func TestBestEffortSendNeverGetsAReplyEvenWhenRefused(t *testing.T) {
	b := startBroker(t, nil)
	rc := dialRaw(t, b.socket)
	rc.create(t, wire.Create{Name: []byte("q"), Capacity: -1})
	rc.sendBestEffort(t, 0, "nosuch", "x")                                // NOT_FOUND for a SEND
	rc.sendBestEffort(t, 0, "bad name!", "x")                             // INVALID
	rc.sendBestEffort(t, wire.FlagReceipt, "q", "x")                      // RECEIPT promises a reply
	rc.sendBestEffort(t, wire.FlagReply, "@1", "x")                       // so does REPLY
	bad, _ := rc.frame(wire.OpSend, wire.FlagBestEffort, []byte{1, 2, 3}) // MALFORMED
	rc.write(t, bad)
	m := wire.Send{Target: []byte("q"), Msgs: []wire.SendMsg{{Type: 0, Body: []byte("type 0")}}}
	typ0, _ := rc.frame(wire.OpSend, wire.FlagBestEffort, m.Append(nil))
	rc.write(t, typ0)
	rc.pingIsNext(t)
	// The frame refused for its message counts; nothing entered q.
	if info := rc.stat(t, "q"); info.Depth != 0 || info.Dropped != 1 {
		t.Fatalf("q: depth %d dropped %d, want 0 and 1 (the type 0 frame; RECEIPT is not counted)", info.Depth, info.Dropped)
	}
}

func TestBestEffortSendIsAdmittedLikeASend(t *testing.T) {
	b := startBroker(t, nil)
	rc := dialRaw(t, b.socket)
	rc.create(t, wire.Create{Name: []byte("q"), Capacity: -1})
	rc.sendBestEffort(t, 0, "q", "a", "b")
	rc.pingIsNext(t)
	for _, want := range []string{"a", "b"} {
		d := rc.recv(t, "q", wire.FlagAutoAck)
		if string(d.Body) != want || d.Sender.Endpoint != rc.hello.Endpoint {
			t.Fatalf("got %q from endpoint %d, want %q from %d", d.Body, d.Sender.Endpoint, want, rc.hello.Endpoint)
		}
	}
	if info := rc.stat(t, "q"); info.Sent != 2 || info.Dropped != 0 {
		t.Fatalf("sent %d dropped %d, want 2 and 0", info.Sent, info.Dropped)
	}
}
