package broker_test

import (
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox/broker"
	"github.com/postbox-ipc/postbox/wire"
)

// Bounds on what a peer that does not read can make the broker hold
// (backlog.go, accept.go, channel.go). Memory is measured as the test
// process's live heap after a collection: the broker runs in process, and
// the test's own clients hold little (one reused body, frames read one at
// a time). Assertions are bounds with generous margins, never timings.

const MiB = 1 << 20

// heapInuse is the live heap after a collection, returned to the OS
// where it can be (so VmRSS, logged beside it, follows).
func heapInuse() uint64 {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// vmRSS is /proc/self/status VmRSS in bytes (0 if unreadable).
func vmRSS() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			var kb uint64
			for _, f := range strings.Fields(rest) {
				for _, r := range f {
					if r >= '0' && r <= '9' {
						kb = kb*10 + uint64(r-'0')
					}
				}
				break
			}
			return kb << 10
		}
	}
	return 0
}

// stat returns target's STAT as seen by rc.
func stat(t *testing.T, rc *rawConn, name string) wire.MailboxInfo {
	t.Helper()
	hd, p := rc.roundTrip(t, wire.OpStat, 0, (&wire.Name{Name: []byte(name)}).Append(nil))
	must(t, "STAT "+name, hd, p, wire.OK)
	var info wire.MailboxInfo
	if err := info.Decode(p); err != nil {
		t.Fatal(err)
	}
	return info
}

// An auto-ack consumer with unlimited credit that never reads its socket
// must not make the broker buffer everything sent to its mailbox: its
// backlog counts against the limits and it stops being handed messages,
// which stay queued; the sender sees LIMIT once max_queued_bytes is
// reached.
func TestNeverReadingAutoAckConsumerDoesNotGrowTheBroker(t *testing.T) {
	neverReadingConsumer(t, false, 32*MiB, 320*MiB)
}

// The same for a durable mailbox, whose deliveries leave once their
// records are on disk.
func TestNeverReadingAutoAckConsumerOfADurableMailboxDoesNotGrowTheBroker(t *testing.T) {
	neverReadingConsumer(t, true, 8*MiB, 64*MiB)
}

func neverReadingConsumer(t *testing.T, durable bool, queued int64, total int) {
	dir := t.TempDir()
	b := startBroker(t, func(c *broker.Config) {
		c.MaxQueuedBytes = queued
		c.SlowConsumerTimeout = 0 // this one stays: only its memory is bounded
		if durable {
			c.DataDir, c.NoSync = dir, true
		}
	})
	base := heapInuse()
	rc := dialRaw(t, b.socket)
	rc.create(t, wire.Create{Name: []byte("flood"), Capacity: -1, Durable: durable})
	f, _ := rc.frame(wire.OpConsume, wire.FlagAutoAck, (&wire.Consume{Name: []byte("flood"), Credit: math.MaxUint32}).Append(nil))
	rc.write(t, f) // and never read again

	sender := dialRaw(t, b.socket)
	const size = 256 << 10
	body := make([]byte, size)
	m := wire.Send{Target: []byte("flood")}
	for range 4 {
		m.Msgs = append(m.Msgs, wire.SendMsg{Type: 1, Body: body})
	}
	payload := m.Append(nil)
	var accepted, limited int
	for sent := 0; sent < total; sent += 4 * size {
		hd, p := sender.roundTrip(t, wire.OpSend, 0, payload)
		switch hd.Status {
		case wire.OK:
			accepted += 4
		case wire.CodeLimit:
			_, done := wire.DecodeError(p)
			accepted += int(done)
			limited++
		default:
			must(t, "SEND", hd, p, wire.OK)
		}
	}
	held := heapInuse()
	info := stat(t, sender, "flood")
	t.Logf("accepted %d MiB of %d MiB (%d SENDs answered LIMIT); mailbox holds %d messages, handed out %d; heap %d MiB over base, VmRSS %d MiB",
		accepted*size/MiB, total/MiB, limited, info.Depth, info.Received, (held-base)/MiB, vmRSS()/MiB)
	if limited == 0 {
		t.Error("the sender never saw LIMIT: all of it was accepted")
	}
	// The consumer's backlog is 1 MiB; one step may hand it what the
	// mailbox held; the kernel's socket buffers hold a little more.
	if out := int64(info.Received) * size; out > queued+8*MiB {
		t.Errorf("%d MiB handed to a consumer that reads nothing", out/MiB)
	}
	if bound := uint64(queued + 64*MiB); held-base > bound {
		t.Errorf("heap grew by %d MiB, over %d MiB", (held-base)/MiB, bound/MiB)
	}

	// When it leaves, what it was not handed stays queued: nothing more
	// is lost than its unread backlog.
	rc.nc.Close()
	deadline := time.Now().Add(hangGuard)
	for stat(t, sender, "flood").Consumers != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the consumer is still registered")
		}
		time.Sleep(time.Millisecond)
	}
	after := stat(t, sender, "flood")
	if after.Depth == 0 || after.Depth+after.Received != uint64(accepted) {
		t.Errorf("after the consumer left: depth %d + handed out %d, want %d accepted and some still queued",
			after.Depth, after.Received, accepted)
	}
	t.Logf("after it left: %d messages queued, heap %d MiB over base", after.Depth, (heapInuse()-base)/MiB)
}

// A consumer stalled by its full backlog for SlowConsumerTimeout is
// disconnected: it can read why (a last CONSUME reply, LIMIT), and its
// leases go back to the mailbox for another receiver.
func TestSlowConsumerIsDisconnectedWithAReasonAndItsLeasesReturn(t *testing.T) {
	b := startBroker(t, func(c *broker.Config) {
		c.MaxConnBacklog = 64 << 10
		c.SlowConsumerTimeout = 300 * time.Millisecond
	})
	slow := dialRaw(t, b.socket)
	slow.create(t, wire.Create{Name: []byte("work"), Capacity: -1})
	f, consID := slow.frame(wire.OpConsume, 0, (&wire.Consume{Name: []byte("work"), Credit: 1 << 20}).Append(nil))
	slow.write(t, f) // leased deliveries, never read (until the end)

	sender := dialRaw(t, b.socket)
	const n = 64
	body := make([]byte, 32<<10) // 2 MiB in all
	for range n / 8 {
		m := wire.Send{Target: []byte("work")}
		for range 8 {
			m.Msgs = append(m.Msgs, wire.SendMsg{Type: 1, Body: body})
		}
		hd, p := sender.send(t, 0, m)
		must(t, "SEND", hd, p, wire.OK)
	}

	// Another receiver gets every message, those leased to the slow
	// consumer included once it is disconnected.
	other := dialRaw(t, b.socket)
	returned := 0
	for i := range n {
		hd, p := other.roundTrip(t, wire.OpRecv, wire.FlagAutoAck, (&wire.Recv{Name: []byte("work"), Timeout: int64(hangGuard)}).Append(nil))
		if hd.Status != wire.OK {
			msg, _ := wire.DecodeError(p)
			t.Fatalf("RECV %d of %d: %s %q (the slow consumer's leases never came back)", i+1, n, hd.Status, msg)
		}
		var d wire.Delivery
		if err := d.Decode(p); err != nil {
			t.Fatal(err)
		}
		if d.Redeliveries > 0 {
			returned++
		}
	}
	if returned == 0 {
		t.Error("no message came back from the slow consumer")
	}

	// The slow consumer reads now: deliveries, then the reason, then EOF.
	delivered, reason := 0, ""
	for {
		hd, p, err := slow.next(t)
		if err != nil {
			break
		}
		if hd.Push() {
			delivered++
			continue
		}
		if hd.Request == consID && hd.Status == wire.CodeLimit {
			reason, _ = wire.DecodeError(p)
		}
	}
	t.Logf("%d messages came back; the slow consumer read %d deliveries, then %q", returned, delivered, reason)
	if !strings.HasPrefix(reason, "slow consumer: ") {
		t.Fatalf("the slow consumer read no LIMIT reply saying why (got %q)", reason)
	}
}

// Connections that send requests and never read the replies each hold at
// most their backlog bound, and other clients go on working.
func TestNeverReadingRequestersHoldBoundedMemory(t *testing.T) {
	b := startBroker(t, nil)
	admin := dialRaw(t, b.socket)
	// LIST replies are large, so the backlogs fill with few requests.
	for i := range 200 {
		admin.create(t, wire.Create{Name: []byte(strings.Repeat("m", 180) + string(rune('a'+i%26)) + strings.Repeat("x", i/26))})
	}
	base := heapInuse()
	const conns, perConn = 24, 16 * MiB
	list, _ := admin.frame(wire.OpList, 0, (&wire.List{}).Append(nil))
	var batch []byte
	for len(batch) < 64<<10 {
		batch = append(batch, list...)
	}
	done := make(chan int, conns)
	for range conns {
		rc := dialRaw(t, b.socket)
		go func() {
			written := 0
			rc.nc.SetWriteDeadline(time.Now().Add(3 * time.Second)) // the broker stops reading: stop trying
			for written < perConn {
				n, err := rc.nc.Write(batch)
				written += n
				if err != nil {
					break
				}
			}
			done <- written
		}()
	}
	var written int
	for range conns {
		written += <-done
	}
	// Another client still works.
	admin.ping(t)
	admin.create(t, wire.Create{Name: []byte("still")})
	held := heapInuse()
	t.Logf("%d never-reading connections wrote %d MiB of LIST requests; heap %d MiB over base (%d KiB each), VmRSS %d MiB",
		conns, written/MiB, (held-base)/MiB, (held-base)/conns>>10, vmRSS()/MiB)
	// Per connection: the backlog bound, its buffer's growth past it
	// (doubling: up to about twice), the reader's buffer.
	backlog := uint64(broker.DefaultConnBounds().MaxConnBacklog)
	if bound := uint64(conns) * (3*backlog + MiB); held-base > bound {
		t.Errorf("heap grew by %d MiB, over %d MiB for %d connections", (held-base)/MiB, bound/MiB, conns)
	}
}

// Channel offers nobody attaches are bounded per connection: the one past
// it is answered LIMIT, and the broker's descriptors stay bounded.
func TestChannelOffersPastTheBoundGetLimit(t *testing.T) {
	b := startBroker(t, func(c *broker.Config) { c.MaxOffersPerConn, c.MaxOffersPerUID = 4, 6 })
	fds := func() int { e, _ := os.ReadDir("/proc/self/fd"); return len(e) }
	before := fds()
	offer := func(rc *rawConn) (wire.Code, string) {
		hd, p := rc.roundTrip(t, wire.OpChannel, 0, (&wire.Channel{Target: []byte("chans"), Type: 1}).Append(nil))
		msg, _ := wire.DecodeError(p)
		return hd.Status, msg
	}
	rc := dialRaw(t, b.socket)
	rc.create(t, wire.Create{Name: []byte("chans"), Capacity: -1})
	for i := range 4 {
		if code, msg := offer(rc); code != wire.OK {
			t.Fatalf("offer %d: %s %q", i+1, code, msg)
		}
	}
	code, msg := offer(rc)
	t.Logf("5th offer on one connection: %s %q", code, msg)
	if code != wire.CodeLimit {
		t.Fatalf("the 5th offer on one connection: %s %q, want LIMIT", code, msg)
	}
	// Per uid: a second connection of the same uid gets two more.
	rc2 := dialRaw(t, b.socket)
	for i := range 2 {
		if code, msg := offer(rc2); code != wire.OK {
			t.Fatalf("second connection, offer %d: %s %q", i+1, code, msg)
		}
	}
	if code, msg := offer(rc2); code != wire.CodeLimit {
		t.Fatalf("offer past the per-uid bound: %s %q, want LIMIT", code, msg)
	}
	for range 100 {
		offer(rc)
		offer(rc2)
	}
	// Two descriptors per offer, two connections (two ends each), slack.
	if n := fds() - before; n > 2*6+8 {
		t.Errorf("%d more descriptors open with 6 offers outstanding", n)
	} else {
		t.Logf("%d more descriptors with 6 offers outstanding after 206 asked for", n)
	}
	// Another client still works, and an offer's drop gives its slot back.
	rc3 := dialRaw(t, b.socket)
	rc3.ping(t)
	rc2.nc.Close() // its offers stay queued until attached or expired: the uid stays at its bound
	if code, _ := offer(rc3); code != wire.CodeLimit {
		t.Errorf("offer from a third connection of the same uid: %s, want LIMIT", code)
	}
}
