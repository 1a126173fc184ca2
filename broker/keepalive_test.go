package broker_test

import (
	"errors"
	"io"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox/broker"
	"github.com/postbox-ipc/postbox/wire"
)

// TestDeadPeerSilentTCPConnectionIsClosedAndItsLeaseReturns: a TCP peer
// that holds a lease and then sends nothing (no FIN either) is closed
// after the dead-peer time, and its message goes to the next receiver
// with its redelivery count up.
func TestDeadPeerSilentTCPConnectionIsClosedAndItsLeaseReturns(t *testing.T) {
	const dead = 300 * time.Millisecond
	b := startBroker(t, func(c *broker.Config) { c.DeadPeer = dead })
	addr := serveTCP(t, b, nil)
	tcp := dialTCP(t, addr)
	if tcp.hello.DeadPeer != int64(dead) || tcp.hello.Keepalive != int64(dead/3) {
		t.Fatalf("HelloReply over TCP: keepalive %v dead peer %v, want %v and %v",
			time.Duration(tcp.hello.Keepalive), time.Duration(tcp.hello.DeadPeer), dead/3, dead)
	}
	tcp.create(t, wire.Create{Name: []byte("jobs"), Capacity: -1, Mode: 0o666})
	tcp.sendOK(t, "jobs", "work")
	d := tcp.recv(t, "jobs", 0)
	if d.Lease == 0 {
		t.Fatal("no lease")
	}
	silent := time.Now()

	local := dialRaw(t, b.socket)
	if local.hello.Keepalive != 0 || local.hello.DeadPeer != 0 {
		t.Fatalf("HelloReply over Unix: keepalive %d dead peer %d, want none (exempt)", local.hello.Keepalive, local.hello.DeadPeer)
	}
	m := wire.Recv{Name: []byte("jobs"), Timeout: int64(20 * dead)}
	hd, p := local.roundTrip(t, wire.OpRecv, 0, m.Append(nil))
	must(t, "RECV of the dead peer's message", hd, p, wire.OK)
	var got wire.Delivery
	if err := got.Decode(p); err != nil {
		t.Fatal(err)
	}
	waited := time.Since(silent)
	if string(got.Body) != "work" || got.Redeliveries != 1 {
		t.Fatalf("got %q redelivered %d times, want \"work\" once", got.Body, got.Redeliveries)
	}
	if waited < dead*15/16 {
		t.Fatalf("the lease returned after %v, before the dead-peer time %v", waited, dead)
	}
	if _, _, err := tcp.next(t); !errors.Is(err, io.EOF) {
		t.Fatalf("the dead peer's connection: %v, want EOF", err)
	}
	// A Unix connection idle for longer than the dead-peer time is not
	// closed: the kernel would have said if its process died.
	time.Sleep(2 * dead)
	local.ping(t)
}

// TestDeadPeerZeroNeverClosesASilentTCPConnection: DeadPeer 0 is never.
func TestDeadPeerZeroNeverClosesASilentTCPConnection(t *testing.T) {
	b := startBroker(t, func(c *broker.Config) { c.DeadPeer = 0 })
	tcp := dialTCP(t, serveTCP(t, b, nil))
	if tcp.hello.Keepalive != 0 || tcp.hello.DeadPeer != 0 {
		t.Fatalf("keepalive %d dead peer %d, want none", tcp.hello.Keepalive, tcp.hello.DeadPeer)
	}
	time.Sleep(300 * time.Millisecond)
	tcp.ping(t)
}

// TestDeadPeerPingsKeepATCPConnectionOpen: a peer that only pings, more
// often than the dead-peer time, stays connected well past it.
func TestDeadPeerPingsKeepATCPConnectionOpen(t *testing.T) {
	const dead = 300 * time.Millisecond
	b := startBroker(t, func(c *broker.Config) { c.DeadPeer = dead })
	tcp := dialTCP(t, serveTCP(t, b, nil))
	for range 10 {
		time.Sleep(time.Duration(tcp.hello.Keepalive))
		tcp.ping(t)
	}
}

func TestConfigDeadPeerBelowMinimumIsInvalid(t *testing.T) {
	cfg := broker.DefaultConfig()
	cfg.DeadPeer = time.Millisecond
	if err := cfg.Validate(); !errors.Is(err, broker.ErrConfig) {
		t.Fatalf("DeadPeer 1ms: %v, want ErrConfig", err)
	}
}
