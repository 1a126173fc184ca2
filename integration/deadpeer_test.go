package integration_test

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/broker"
)

// TestDeadPeerStoppedTCPReceiverHasItsLeaseReturned: a receiver process
// connected over TCP takes a message and is then stopped with SIGSTOP
// (it neither pings nor closes: to the broker it has vanished without a
// FIN). After the dead-peer time the broker closes its connection, the
// lease returns, and another receiver gets the message, redelivered once.
func TestDeadPeerStoppedTCPReceiverHasItsLeaseReturned(t *testing.T) {
	const dead = 500 * time.Millisecond
	b := start(t, limits(func(c *broker.Config) { c.DeadPeer = dead }))
	addr := b.ServeTCP(t)
	c := b.Dial(t)
	mb := create(t, c, "jobs", postbox.Mode(0o666))
	send(t, mb, "work")

	holder := startChildEnv(t, []string{tcpEnv + "=" + addr}, nil, "hold", "jobs")
	if r := holder.result(t); r.Err != "" || r.Body != "work" {
		t.Fatalf("holder: %+v", r)
	}
	pid := holder.cmd.Process.Pid
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGCONT) })
	waitFor(t, fmt.Sprintf("holder %d stopped", pid), func() bool { return procState(pid) == 'T' })
	stopped := time.Now()

	m := recv(t, mb) // waits: the lease is held until the broker gives up on the holder
	waited := time.Since(stopped)
	if string(m.Body) != "work" || m.Redeliveries != 1 {
		t.Fatalf("got %q redelivered %d times, want \"work\" once", m.Body, m.Redeliveries)
	}
	if waited < dead/2 {
		t.Fatalf("the lease returned %v after the holder stopped: before the dead-peer time %v", waited, dead)
	}
	if err := m.Ack(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	t.Logf("lease returned %v after SIGSTOP (dead peer %v)", waited, dead)
}
