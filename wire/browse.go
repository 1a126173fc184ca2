package wire

// BROWSE: reading a mailbox's queued messages without taking them.

// OpBrowse lists queued messages in the order receivers would take them,
// without leasing them or counting a delivery.
const OpBrowse Op = 0x27

func init() { opNames[OpBrowse] = "BROWSE" }

// Browse limits.
const (
	DefaultBrowseLimit = 16  // Browse.Limit 0
	MaxBrowseLimit     = 256 // a larger Browse.Limit is clamped to this
)

// BrowseCursorSize is the length of a non-empty Browse cursor.
const BrowseCursorSize = 1 + 8 + 8

// BrowseCursor is a position in a mailbox's queue order: the key of the
// last message a page listed. The next page starts after it, whether or
// not that message is still queued (a message's priority, type and id
// never change). The zero BrowseCursor (ID 0, no message has it) is the
// start of the queue.
type BrowseCursor struct {
	Priority uint8
	Type     int64
	ID       uint64
}

// Append encodes c as `priority u8 | type i64 | id u64` (17 bytes), or
// nothing for the zero cursor.
func (c BrowseCursor) Append(b []byte) []byte {
	if c == (BrowseCursor{}) {
		return b
	}
	return AppendU64(AppendI64(append(b, c.Priority), c.Type), c.ID)
}

// ParseBrowseCursor decodes a cursor's bytes: empty is the start,
// otherwise exactly BrowseCursorSize bytes with a non-zero id.
func ParseBrowseCursor(p []byte) (BrowseCursor, error) {
	if len(p) == 0 {
		return BrowseCursor{}, nil
	}
	if len(p) != BrowseCursorSize {
		return BrowseCursor{}, ErrInvalid
	}
	d := NewDecoder(p)
	c := BrowseCursor{Priority: d.U8(), Type: d.I64(), ID: d.U64()}
	if c.ID == 0 {
		return BrowseCursor{}, ErrInvalid
	}
	return c, nil
}

// Browse asks for a page of a mailbox's queued messages: `name string |
// type i64 | cursor string | limit u32 | ext`. Type selects as RECV's
// does; Cursor is empty (from the start) or a BrowseCursor from the
// previous page's reply, used with the same Type.
type Browse struct {
	Name   []byte
	Type   int64
	Cursor []byte // empty, or BrowseCursorSize bytes (see BrowseCursor)
	Limit  uint32 // 0: DefaultBrowseLimit; more than MaxBrowseLimit is clamped
	Ext    []byte
}

// PageSize returns the number of messages the page should hold at most.
func (m *Browse) PageSize() int { return pageSize(m.Limit, DefaultBrowseLimit, MaxBrowseLimit) }

func (m *Browse) Append(b []byte) []byte {
	b = AppendString(AppendI64(AppendString(b, m.Name), m.Type), m.Cursor)
	return append(AppendU32(b, m.Limit), m.Ext...)
}

// Decode reads a BROWSE request; a cursor that is not empty or a valid
// BrowseCursor is ErrInvalid.
func (m *Browse) Decode(p []byte) error {
	d := NewDecoder(p)
	m.Name, m.Type, m.Cursor, m.Limit, m.Ext = d.String(), d.I64(), d.String(), d.U32(), d.Ext()
	if err := d.Err(); err != nil {
		return err
	}
	_, err := ParseBrowseCursor(m.Cursor)
	return err
}

// BrowseReply is a page of messages in the order receivers would take
// them: `count u32 | count x {len u32 | Delivery} | next string | ext`.
// Each Delivery has Lease 0. Next is the cursor of the following page,
// empty when there is no more.
type BrowseReply struct {
	Messages []Delivery
	Next     []byte
	Ext      []byte
}

// browseEntryMin is the smallest `len u32 | Delivery` entry.
const browseEntryMin = 4 + DeliveryFixed

func (m *BrowseReply) Append(b []byte) []byte {
	b = AppendU32(b, uint32(len(m.Messages)))
	for i := range m.Messages {
		b = AppendBrowseEntry(b, &m.Messages[i])
	}
	return append(AppendString(b, m.Next), m.Ext...)
}

// AppendBrowseEntry appends one `len u32 | Delivery` entry of a BROWSE
// reply.
func AppendBrowseEntry(b []byte, d *Delivery) []byte {
	off := len(b)
	b = d.Append(AppendU32(b, 0))
	PutU32(b[off:], uint32(len(b)-off-4))
	return b
}

// BrowseEntrySize is the size of d's entry in a BROWSE reply.
func BrowseEntrySize(d *Delivery) int {
	return 4 + DeliveryFixed + len(d.Headers) + len(d.Body) + len(d.Ext)
}

// Decode reads a BROWSE reply, reusing Messages' backing array. The
// deliveries' byte fields alias p.
func (m *BrowseReply) Decode(p []byte) error {
	d := NewDecoder(p)
	n := d.U32()
	m.Messages, m.Next, m.Ext = m.Messages[:0], nil, nil
	if uint64(n)*browseEntryMin > uint64(d.Len()) {
		d.Fail(ErrMalformed)
		return d.Err()
	}
	for range n {
		entry := d.Bytes()
		if d.err != nil {
			break
		}
		var dl Delivery
		if err := dl.Decode(entry); err != nil {
			d.Fail(err)
			break
		}
		m.Messages = append(m.Messages, dl)
	}
	m.Next, m.Ext = d.String(), d.Ext()
	if err := d.Err(); err != nil {
		return err
	}
	if _, err := ParseBrowseCursor(m.Next); err != nil {
		return ErrMalformed
	}
	return nil
}
