package mux

import (
	"errors"
	"fmt"
	"time"

	"github.com/postbox-ipc/postbox/wire"
)

// ErrDeadPeer: the broker sent nothing for Config.DeadPeer although the
// client kept pinging it (stopped, wedged, or unreachable).
var ErrDeadPeer = errors.New("mux: no frame from the broker for the dead-peer time")

// keepalive runs while the connection does: every half Config.Keepalive
// it sends a PING unless the writer wrote something since the last look
// (its own PING counts, so an idle connection pings every Keepalive; the
// broker closes a connection silent for its dead-peer time), and it
// closes the connection if nothing was read for Config.DeadPeer (the
// broker answers every PING, so a live broker is never that quiet).
// The PING's reply finds no call waiting and is discarded.
func (c *Conn) keepalive() {
	defer c.wg.Done()
	tick := c.cfg.Keepalive / 2
	t := time.NewTicker(tick)
	defer t.Stop()
	var silent time.Duration
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		if !c.wrote.Swap(false) {
			c.Post(true, wire.Header{Op: wire.OpPing, Flags: wire.FlagUrgent, Request: c.NewID()}, nil)
		}
		if c.heard.Swap(false) {
			silent = 0
			continue
		}
		silent += tick
		if c.cfg.DeadPeer > 0 && silent >= c.cfg.DeadPeer {
			err := fmt.Errorf("%w (%v)", ErrDeadPeer, c.cfg.DeadPeer)
			c.dead.Store(&err)
			c.nc.Close() // the reader stops, and stop fails what is in flight
			return
		}
	}
}
