package wire

// LIST, paged.

// List limits.
const (
	DefaultListLimit = 256  // List.Limit 0
	MaxListLimit     = 1024 // a larger List.Limit is clamped to this
)

// List asks for a page of mailboxes: `cursor string | limit u32 | ext`.
// An empty payload is a List with every field zero: the first page of
// DefaultListLimit entries.
type List struct {
	Cursor []byte // start after this name; empty: from the start
	Limit  uint32 // 0: DefaultListLimit; more than MaxListLimit is clamped
	Ext    []byte
}

// PageSize returns the number of entries the page should hold at most.
func (m *List) PageSize() int { return pageSize(m.Limit, DefaultListLimit, MaxListLimit) }

// pageSize is a paged request's limit: def for 0, clamped to most.
func pageSize(limit uint32, def, most int) int {
	switch {
	case limit == 0:
		return def
	case int64(limit) > int64(most):
		return most
	}
	return int(limit)
}

// Append encodes m; a zero List still encodes its fields (6 bytes).
func (m *List) Append(b []byte) []byte {
	return append(AppendU32(AppendString(b, m.Cursor), m.Limit), m.Ext...)
}

func (m *List) Decode(p []byte) error {
	*m = List{}
	if len(p) == 0 {
		return nil
	}
	d := NewDecoder(p)
	m.Cursor, m.Limit, m.Ext = d.String(), d.U32(), d.Ext()
	return d.Err()
}

// ListReply is a page of mailboxes, sorted by name (byte order): `count
// u32 | count x {len u32 | MailboxInfo} | next string | ext`. Next is the
// cursor of the following page, empty when there is no more.
type ListReply struct {
	Infos []MailboxInfo
	Next  []byte
	Ext   []byte
}

func (m *ListReply) Append(b []byte) []byte {
	b = AppendU32(b, uint32(len(m.Infos)))
	for i := range m.Infos {
		b = AppendListEntry(b, &m.Infos[i])
	}
	return append(AppendString(b, m.Next), m.Ext...)
}

// AppendListEntry appends one `len u32 | MailboxInfo` entry of a LIST
// reply, so a broker can encode a page straight from its mailboxes: a u32
// count, the entries, then AppendString(b, next) and the ext tail.
func AppendListEntry(b []byte, info *MailboxInfo) []byte {
	off := len(b)
	b = info.Append(AppendU32(b, 0))
	PutU32(b[off:], uint32(len(b)-off-4))
	return b
}

// Decode reads a LIST reply, reusing Infos' backing array.
func (m *ListReply) Decode(p []byte) error {
	d := NewDecoder(p)
	n := d.U32()
	m.Infos, m.Next, m.Ext = m.Infos[:0], nil, nil
	if uint64(n)*(4+mailboxInfoMin) > uint64(d.Len()) {
		d.Fail(ErrMalformed)
		return d.Err()
	}
	for range n {
		entry := d.Bytes()
		if d.err != nil {
			break
		}
		var info MailboxInfo
		if err := info.Decode(entry); err != nil {
			d.Fail(err)
			break
		}
		m.Infos = append(m.Infos, info)
	}
	m.Next, m.Ext = d.String(), d.Ext()
	return d.Err()
}
