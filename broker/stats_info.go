package broker

import (
	"cmp"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/postbox-ipc/postbox/wire"
)

// INFO: what the broker process is, for `postbox info`.

// Info describes the running broker.
type Info struct {
	Version   string // module version and VCS revision (BuildVersion)
	GoVersion string
	PID       int
	Started   time.Time
	Uptime    time.Duration
	// Listeners are the addresses being served, Unix sockets first.
	Listeners []Listener
	DataDir   string // "" without one
	Limits    Limits
	MaxFrame  int
	// Connections are the live connections (as Snapshot's); Mailboxes
	// the named mailboxes.
	Connections int64
	Mailboxes   int
	// HeapBytes is the bytes of allocated heap objects, SysBytes what the
	// Go runtime holds from the system (runtime.MemStats), RSSBytes the
	// resident set size (-1 where /proc cannot say).
	HeapBytes, SysBytes uint64
	RSSBytes            int64
	Goroutines          int
	// StoreBytes is the size of the store's segment files, -1 without a
	// data directory.
	StoreBytes int64
}

// Listener is one address the broker accepts connections on.
type Listener struct {
	Network string // "unix", "tcp" or "tls"
	Address string // a socket path, or host:port
}

// Info reports on the running broker. It reads runtime.MemStats, which
// stops the world briefly: it is for an operator's request, not a loop.
func (b *Broker) Info() Info {
	in := Info{Version: BuildVersion(), GoVersion: runtime.Version(), PID: os.Getpid(),
		Started: b.stats.started, Uptime: time.Since(b.stats.started), DataDir: b.cfg.DataDir,
		Limits: b.Limits(), MaxFrame: b.cfg.MaxFrame, Connections: b.nconns.Load(),
		Goroutines: runtime.NumGoroutine(), RSSBytes: rss(), StoreBytes: -1}
	b.mu.RLock()
	in.Mailboxes = b.named
	for l := range b.listeners {
		a := l.Addr()
		in.Listeners = append(in.Listeners, Listener{Network: a.Network(), Address: a.String()})
	}
	b.mu.RUnlock()
	sortListeners(in.Listeners)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	in.HeapBytes, in.SysBytes = ms.HeapAlloc, ms.Sys
	if ds, ok := b.DiskStats(); ok {
		in.StoreBytes = ds.Bytes
	}
	return in
}

// sortListeners orders Unix sockets first, then by network and address.
func sortListeners(ls []Listener) {
	slices.SortFunc(ls, func(x, y Listener) int {
		if ux, uy := x.Network == "unix", y.Network == "unix"; ux != uy {
			if ux {
				return -1
			}
			return 1
		}
		return cmp.Or(strings.Compare(x.Network, y.Network), strings.Compare(x.Address, y.Address))
	})
}

// BuildVersion is the version of the running binary from its build info:
// the main module's version ("(devel)" for a build from a work tree),
// then the VCS revision it was built from, if known, with "+dirty" for
// a modified tree: "(devel) 1a2b3c4d5e6f+dirty".
func BuildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value[:min(12, len(s.Value))]
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev != "" {
		v += " " + rev + dirty
	}
	return v
}

// rss is the resident set size from /proc/self/statm, -1 if unreadable.
func rss() int64 {
	data, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(data))
	if len(f) < 2 {
		return -1
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return -1
	}
	return pages * int64(os.Getpagesize())
}

// doInfo answers INFO. Whoever may LIST may ask.
func (h *handler) doInfo(hd wire.Header, p []byte) {
	var m wire.Empty
	if !h.decode(hd, p, &m) {
		return
	}
	if h.c.b.auth.Authorize(h.c.who, Object{}, ActList) != nil {
		h.c.replyErr(hd, wire.CodePermission, "info: permission denied")
		return
	}
	in := h.c.b.Info()
	rep := wire.InfoReply{Version: []byte(in.Version), GoVersion: []byte(in.GoVersion), PID: uint32(in.PID),
		StartedUnixNano: in.Started.UnixNano(), UptimeNano: int64(in.Uptime), Connections: uint32(in.Connections),
		Mailboxes: uint32(in.Mailboxes), HeapBytes: int64(in.HeapBytes), SysBytes: int64(in.SysBytes),
		RSSBytes: in.RSSBytes, Goroutines: uint32(in.Goroutines), DataDir: []byte(in.DataDir), StoreBytes: in.StoreBytes,
		Limits: wire.InfoLimits{MaxConnections: int64(in.Limits.MaxConnections), MaxMailboxes: int64(in.Limits.MaxMailboxes),
			MaxMessage: int64(in.Limits.MaxMessage), MaxQueuedBytes: in.Limits.MaxQueuedBytes, MaxFrame: int64(in.MaxFrame),
			InboxCapacity: in.Limits.InboxCapacity}}
	for _, l := range in.Listeners {
		rep.Listeners = append(rep.Listeners, wire.InfoListener{Network: []byte(l.Network), Address: []byte(l.Address)})
	}
	h.c.reply(replyHeader(hd, wire.OK), &rep)
}
