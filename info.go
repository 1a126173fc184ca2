package postbox

import (
	"context"
	"fmt"
	"time"

	"github.com/postbox-ipc/postbox/wire"
)

// BrokerInfo is what the broker process is (INFO, `postbox info`).
type BrokerInfo struct {
	Version   string        `json:"version"`    // module version and VCS revision
	GoVersion string        `json:"go_version"` // the toolchain it was built with
	PID       uint32        `json:"pid"`
	Started   time.Time     `json:"started"`
	Uptime    time.Duration `json:"uptime_ns"`
	// Listeners are the addresses the broker accepts connections on,
	// Unix sockets first.
	Listeners []BrokerListener `json:"listeners"`
	DataDir   string           `json:"data_dir"` // "" for a broker without one (memory only)
	Limits    BrokerLimits     `json:"limits"`
	// Connections is the live connections; Mailboxes the named
	// mailboxes (not endpoints' inboxes).
	Connections uint32 `json:"connections"`
	Mailboxes   uint32 `json:"mailboxes"`
	// HeapBytes is the broker's allocated heap, SysBytes what its Go
	// runtime holds from the system, RSSBytes its resident set (-1
	// unknown).
	HeapBytes  int64  `json:"heap_bytes"`
	SysBytes   int64  `json:"sys_bytes"`
	RSSBytes   int64  `json:"rss_bytes"`
	Goroutines uint32 `json:"goroutines"`
	// StoreBytes is the size of the store's files, -1 without a data
	// directory.
	StoreBytes int64 `json:"store_bytes"`
}

// BrokerListener is one address a broker accepts connections on.
type BrokerListener struct {
	Network string `json:"network"` // "unix", "tcp" (plain, loopback only) or "tls"
	Address string `json:"address"` // a socket path, or host:port
}

// BrokerLimits are the broker-wide limits in force.
type BrokerLimits struct {
	MaxConnections int64 `json:"max_connections"`
	MaxMailboxes   int64 `json:"max_mailboxes"`
	MaxMessage     int64 `json:"max_message_bytes"`
	MaxQueuedBytes int64 `json:"max_queued_bytes"`
	MaxFrame       int64 `json:"max_frame"`
	InboxCapacity  int64 `json:"inbox_capacity"`
}

// Info asks the broker what it is: version, uptime, pid, listeners, data
// directory, limits, connections, memory and store size. Whoever may
// list mailboxes may ask; a broker that predates INFO answers
// ErrUnknownOp.
func (c *Client) Info(ctx context.Context) (*BrokerInfo, error) {
	p, err := c.roundTrip(ctx, wire.OpInfo, 0, func(b []byte) []byte { return b })
	if err != nil {
		return nil, err
	}
	var rep wire.InfoReply
	if err := rep.Decode(p); err != nil {
		return nil, fmt.Errorf("%w: INFO reply", ErrMalformed)
	}
	l := rep.Limits
	in := &BrokerInfo{Version: string(rep.Version), GoVersion: string(rep.GoVersion), PID: rep.PID,
		Started: time.Unix(0, rep.StartedUnixNano), Uptime: time.Duration(rep.UptimeNano), DataDir: string(rep.DataDir),
		Limits: BrokerLimits{MaxConnections: l.MaxConnections, MaxMailboxes: l.MaxMailboxes, MaxMessage: l.MaxMessage,
			MaxQueuedBytes: l.MaxQueuedBytes, MaxFrame: l.MaxFrame, InboxCapacity: l.InboxCapacity},
		Connections: rep.Connections, Mailboxes: rep.Mailboxes, HeapBytes: rep.HeapBytes, SysBytes: rep.SysBytes,
		RSSBytes: rep.RSSBytes, Goroutines: rep.Goroutines, StoreBytes: rep.StoreBytes,
		Listeners: make([]BrokerListener, 0, len(rep.Listeners))}
	for _, ln := range rep.Listeners {
		in.Listeners = append(in.Listeners, BrokerListener{Network: string(ln.Network), Address: string(ln.Address)})
	}
	return in, nil
}
