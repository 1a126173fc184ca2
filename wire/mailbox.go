package wire

// Mailbox administration: CREATE, DESTROY, STAT, CHMOD.

// CREATE's options: tags of its ext tail, all critical, each at most once.
const (
	TagDurable       uint16 = 0x8001 // empty value
	TagMaxBytes      uint16 = 0x8002 // i64
	TagTTL           uint16 = 0x8003 // i64 nanoseconds
	TagMaxDeliveries uint16 = 0x8004 // u32
	TagDeadLetter    uint16 = 0x8005 // a valid mailbox name (1..200 bytes)
	TagService       uint16 = 0x8006 // empty value: the mailbox is an RPC service's
)

// Create makes a mailbox: `name string | capacity i64 | mode u32 | ext`,
// the options being tags of the tail. Zero option fields are not sent.
type Create struct {
	Name          []byte
	Capacity      int64 // -1 unbounded, 0 rendezvous, N bounded
	Mode          uint32
	Durable       bool
	MaxBytes      int64
	TTL           int64
	MaxDeliveries uint32
	// DeadLetter: nil for none. A non-nil empty value is sent, and refused
	// (ErrInvalid), as the protocol says.
	DeadLetter []byte
	// Service marks the mailbox as an RPC service's (TagService): STAT
	// and LIST report it (MailboxService); delivery is unchanged.
	Service bool
	// Pipe makes the mailbox a pipe (TagPipe, wire/pipe.go) whose
	// buffer is PipeBuffer bytes (0: DefaultPipeBuffer).
	Pipe       bool
	PipeBuffer uint32
	// Cluster makes the mailbox on the broker's cluster (TagCluster,
	// wire/cluster.go) with Replicas replicas (0: the cluster's default).
	Cluster  bool
	Replicas uint8
	// Ext is appended after the options by Append. Decode leaves it nil:
	// unknown non-critical entries are skipped, not kept, so a decoded
	// Create re-encodes canonically (options in tag order).
	Ext []byte
}

func (m *Create) Append(b []byte) []byte {
	b = AppendString(b, m.Name)
	b = AppendI64(b, m.Capacity)
	b = AppendU32(b, m.Mode)
	if m.Durable {
		b = appendExtHead(b, TagDurable, 0)
	}
	if m.MaxBytes != 0 {
		b = AppendI64(appendExtHead(b, TagMaxBytes, 8), m.MaxBytes)
	}
	if m.TTL != 0 {
		b = AppendI64(appendExtHead(b, TagTTL, 8), m.TTL)
	}
	if m.MaxDeliveries != 0 {
		b = AppendU32(appendExtHead(b, TagMaxDeliveries, 4), m.MaxDeliveries)
	}
	if m.DeadLetter != nil {
		b = AppendExt(b, TagDeadLetter, m.DeadLetter)
	}
	if m.Service {
		b = appendExtHead(b, TagService, 0)
	}
	if m.Pipe {
		b = AppendU32(appendExtHead(b, TagPipe, 4), m.PipeBuffer)
	}
	if m.Cluster {
		b = append(appendExtHead(b, TagCluster, 1), m.Replicas)
	}
	return append(b, m.Ext...)
}

// Decode reads a CREATE. Errors: ErrMalformed (a field or entry runs past
// the end, an option's value has the wrong length, an option repeats),
// ErrUnknownCritical (a critical tag that is no option), ErrInvalid
// (DEAD_LETTER empty or not a valid name; whether it exists is the
// broker's question).
func (m *Create) Decode(p []byte) error {
	d := NewDecoder(p)
	*m = Create{Name: d.String(), Capacity: d.I64(), Mode: d.U32()}
	if d.err != nil {
		return d.err
	}
	it := NewExtIter(d.Rest())
	var seen uint8
	var bad error
	for f, ok := it.Next(); ok; f, ok = it.Next() {
		v := NewDecoder(f.Value)
		if f.Tag >= TagDurable && f.Tag <= TagCluster {
			bit := uint8(1) << (f.Tag - TagDurable)
			if seen&bit != 0 {
				return ErrMalformed
			}
			seen |= bit
		}
		switch f.Tag {
		case TagDurable:
			m.Durable = true
		case TagService:
			m.Service = true
		case TagPipe:
			m.Pipe, m.PipeBuffer = true, v.U32()
		case TagCluster:
			m.Cluster, m.Replicas = true, v.U8()
		case TagMaxBytes:
			m.MaxBytes = v.I64()
		case TagTTL:
			m.TTL = v.I64()
		case TagMaxDeliveries:
			m.MaxDeliveries = v.U32()
		case TagDeadLetter:
			m.DeadLetter = v.Rest()
			if !ValidName(m.DeadLetter) && bad == nil {
				bad = ErrInvalid
			}
		default:
			if f.Critical() {
				bad = ErrUnknownCritical
			}
			continue
		}
		if v.Finish() != nil {
			return ErrMalformed
		}
	}
	if err := it.Err(); err != nil {
		return err
	}
	return bad
}

// Name is the payload of DESTROY and STAT: `name string | ext`.
type Name struct {
	Name []byte
	Ext  []byte
}

func (m *Name) Append(b []byte) []byte { return append(AppendString(b, m.Name), m.Ext...) }

func (m *Name) Decode(p []byte) error {
	d := NewDecoder(p)
	m.Name, m.Ext = d.String(), d.Ext()
	return d.Err()
}

// Chmod changes a mailbox's mode bits: `name string | mode u32 | ext`.
type Chmod struct {
	Name []byte
	Mode uint32
	Ext  []byte
}

func (m *Chmod) Append(b []byte) []byte {
	return append(AppendU32(AppendString(b, m.Name), m.Mode), m.Ext...)
}

func (m *Chmod) Decode(p []byte) error {
	d := NewDecoder(p)
	m.Name, m.Mode, m.Ext = d.String(), d.U32(), d.Ext()
	return d.Err()
}
