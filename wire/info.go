package wire

// INFO: what the broker process is (version, uptime, pid, listeners, data
// directory, limits, connections, memory, store size), like `nats
// server info`. The request is an empty payload (only an ext tail).

// OpInfo asks for the broker's InfoReply.
const OpInfo Op = 0x17

func init() { opNames[OpInfo] = "INFO" }

// InfoReply is the OK reply to INFO (PROTOCOL.md 8.25):
//
//	version string | go_version string | pid u32 | started_unix_nano i64 |
//	uptime_nano i64 | connections u32 | mailboxes u32 |
//	heap_bytes i64 | sys_bytes i64 | rss_bytes i64 | goroutines u32 |
//	data_dir string | store_bytes i64 | InfoLimits (6 x i64) |
//	listener_count u16 | listener_count x (network string | address string) |
//	ext
//
// RSS and store bytes are -1 when unknown (no /proc; no data directory).
type InfoReply struct {
	Version         []byte // the broker's module version and VCS revision
	GoVersion       []byte // the Go toolchain it was built with
	PID             uint32
	StartedUnixNano int64 // Unix ns
	UptimeNano      int64 // ns, from the broker's monotonic clock
	Connections     uint32
	Mailboxes       uint32 // named mailboxes (not endpoints' inboxes)
	HeapBytes       int64  // bytes of allocated heap objects
	SysBytes        int64  // bytes the Go runtime obtained from the system
	RSSBytes        int64  // resident set size; -1 unknown
	Goroutines      uint32
	DataDir         []byte // empty: none (memory only)
	StoreBytes      int64  // bytes of the store's segment files; -1 without a data directory
	Limits          InfoLimits
	Listeners       []InfoListener
	Ext             []byte
}

// InfoLimits are the broker-wide limits in force (PROTOCOL.md 6.3).
type InfoLimits struct {
	MaxConnections, MaxMailboxes, MaxMessage, MaxQueuedBytes, MaxFrame, InboxCapacity int64
}

// InfoListener is one address the broker accepts connections on.
type InfoListener struct {
	Network []byte // "unix", "tcp", ...; a TLS listener's is its socket's ("tcp")
	Address []byte // a socket path, or host:port
}

// infoFixed is the size of an InfoReply with empty strings, no listeners
// and no ext.
const infoFixed = 2 + 2 + 4 + 8 + 8 + 4 + 4 + 8 + 8 + 8 + 4 + 2 + 8 + 6*8 + 2

func (m *InfoReply) Append(b []byte) []byte {
	b = AppendString(AppendString(b, m.Version), m.GoVersion)
	b = AppendI64(AppendI64(AppendU32(b, m.PID), m.StartedUnixNano), m.UptimeNano)
	b = AppendU32(AppendU32(b, m.Connections), m.Mailboxes)
	b = AppendU32(AppendI64(AppendI64(AppendI64(b, m.HeapBytes), m.SysBytes), m.RSSBytes), m.Goroutines)
	b = AppendI64(AppendString(b, m.DataDir), m.StoreBytes)
	l := &m.Limits
	for _, v := range [...]int64{l.MaxConnections, l.MaxMailboxes, l.MaxMessage, l.MaxQueuedBytes, l.MaxFrame, l.InboxCapacity} {
		b = AppendI64(b, v)
	}
	b = AppendU16(b, uint16(len(m.Listeners)))
	for i := range m.Listeners {
		b = AppendString(AppendString(b, m.Listeners[i].Network), m.Listeners[i].Address)
	}
	return append(b, m.Ext...)
}

// Decode reads an InfoReply, aliasing p. A listener count that the rest
// cannot hold, or a listener with an empty network, is MALFORMED.
func (m *InfoReply) Decode(p []byte) error {
	*m = InfoReply{}
	if len(p) < infoFixed {
		return ErrMalformed
	}
	d := NewDecoder(p)
	m.Version, m.GoVersion = d.String(), d.String()
	m.PID, m.StartedUnixNano, m.UptimeNano = d.U32(), d.I64(), d.I64()
	m.Connections, m.Mailboxes = d.U32(), d.U32()
	m.HeapBytes, m.SysBytes, m.RSSBytes, m.Goroutines = d.I64(), d.I64(), d.I64(), d.U32()
	m.DataDir, m.StoreBytes = d.String(), d.I64()
	l := &m.Limits
	for _, v := range [...]*int64{&l.MaxConnections, &l.MaxMailboxes, &l.MaxMessage, &l.MaxQueuedBytes, &l.MaxFrame, &l.InboxCapacity} {
		*v = d.I64()
	}
	n := int(d.U16())
	if d.Err() == nil && n*4 > d.Len() {
		d.Fail(ErrMalformed)
	}
	if d.Err() == nil && n > 0 {
		m.Listeners = make([]InfoListener, 0, n)
	}
	for range n {
		if d.Err() != nil {
			break
		}
		ln := InfoListener{Network: d.String(), Address: d.String()}
		if d.Err() == nil && len(ln.Network) == 0 {
			d.Fail(ErrMalformed)
		}
		m.Listeners = append(m.Listeners, ln)
	}
	m.Ext = d.Ext()
	if d.Err() != nil {
		m.Listeners = nil
	}
	return d.Err()
}
