package broker

import (
	"crypto/tls"
	"errors"
	"net"
	"os"
	"time"
)

// Keepalive and dead peers.
//
// A peer on a Unix socket cannot vanish unnoticed: when its process dies
// the kernel closes the socket (EOF) and, with a pidfd, the broker sees
// the exit even if a child inherited the socket. A peer across a network
// can: its machine loses power, a cable is pulled, a NAT forgets the
// flow, or its process is stopped (SIGSTOP) with the connection open.
// Nothing arrives, not even a FIN, and the leases it holds would be held
// forever.
//
// So on every connection that is not a Unix socket the broker reads with
// a deadline: once it has read nothing for Config.DeadPeer it closes the
// connection as a dead peer, which returns its leases to their mailboxes
// (their messages are redelivered to other receivers), withdraws its
// waiting requests and destroys its inbox, exactly as a disconnect does.
// The HelloReply tells the client DEAD_PEER and KEEPALIVE (DeadPeer/3):
// a client sends a frame, PING if it has nothing else to say, whenever
// KEEPALIVE passes without one, so a live client is never silent for
// DEAD_PEER. TCP connections also get TCP keepalive probes (every
// KEEPALIVE once idle), which end a connection to a machine that is gone
// even while the broker is not reading it (its reader waiting for the
// peer to read its backlog).
//
// The deadline is moved forward at most every DeadPeer/16, so a busy
// connection resets a timer rarely: the broker closes a connection
// silent for between 15/16 and all of DeadPeer. One frame must arrive
// within DeadPeer of the read that starts it: a frame so large that the
// link takes longer than that to carry it would be cut off.

// minDeadPeer is the shortest Config.DeadPeer: a keepalive every third of
// it must still be far above scheduling noise.
const minDeadPeer = 100 * time.Millisecond

// deadPeer is how long c may be silent before it is closed; 0: forever
// (a Unix socket, or DeadPeer 0).
func (c *conn) deadPeer() time.Duration {
	if c.uc != nil {
		return 0
	}
	return c.b.cfg.DeadPeer
}

// keepaliveInterval is what the HelloReply's KEEPALIVE says for c.
func (c *conn) keepaliveInterval() time.Duration { return c.deadPeer() / 3 }

// setTCPKeepalive turns on TCP keepalive probes for a TCP connection,
// idle and interval the keepalive interval (15 s when there is no dead
// peer time), at least a second: TCP counts in seconds. A TLS
// connection's probes go on the TCP connection beneath it.
func setTCPKeepalive(nc net.Conn, ka time.Duration) {
	if t, ok := nc.(*tls.Conn); ok {
		nc = t.NetConn()
	}
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return
	}
	if ka <= 0 {
		ka = 15 * time.Second
	}
	ka = max(ka, time.Second)
	tc.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: ka, Interval: ka, Count: 3})
}

// readDeadline keeps a connection's read deadline DeadPeer ahead of its
// last frame. It belongs to the reader goroutine.
type readDeadline struct {
	c     *conn
	d     time.Duration // 0: no deadline
	armed time.Time     // when the deadline was last moved
}

// arm moves the deadline forward if it was last moved more than d/16 ago.
// It runs before every read of a frame: a reader that waited for the
// backlog to drain (conn.readLoop) must not find its deadline passed.
func (rd *readDeadline) arm() {
	if rd.d == 0 {
		return
	}
	now := time.Now()
	if now.Sub(rd.armed) < rd.d/16 {
		return
	}
	rd.armed = now
	rd.c.nc.SetReadDeadline(now.Add(rd.d))
	if rd.c.stopRead.Load() {
		// closeRead stopped the reader with a deadline in the past,
		// perhaps just before this: keep it stopped.
		rd.c.nc.SetReadDeadline(time.Unix(1, 0))
	}
}

// expired reports whether err is the dead-peer deadline passing (not
// closeRead stopping the reader).
func (rd *readDeadline) expired(err error) bool {
	return rd.d != 0 && errors.Is(err, os.ErrDeadlineExceeded) && !rd.c.stopRead.Load()
}
