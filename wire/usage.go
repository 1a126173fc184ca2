package wire

// USAGE: per-uid usage and quotas.

// OpUsage asks for the broker's per-uid usage and quotas.
const OpUsage Op = 0x15

func init() { opNames[OpUsage] = "USAGE" }

// Usage asks for usage: `filter u8 | uid u32 | ext`. Filter 0 asks for
// every bucket the caller may see (uid is then 0), 1 for that uid's only.
type Usage struct {
	Filter bool
	UID    uint32
	Ext    []byte
}

func (m *Usage) Append(b []byte) []byte {
	f := byte(0)
	if m.Filter {
		f = 1
	}
	return append(AppendU32(append(b, f), m.UID), m.Ext...)
}

func (m *Usage) Decode(p []byte) error {
	*m = Usage{}
	d := NewDecoder(p)
	f := d.U8()
	m.UID, m.Ext = d.U32(), d.Ext()
	switch {
	case d.Err() != nil:
	case f > 1, f == 0 && m.UID != 0:
		d.Fail(ErrMalformed)
	}
	m.Filter = f == 1
	return d.Err()
}

// UsageEntry is one bucket: `kind u8 | uid u32 | used 4 x i64 | quota 4 x
// i64`, the four being connections, mailboxes, queued bytes and leases.
// Kind 1 is a uid, 0 the anonymous bucket (principals without a uid; uid
// 0). A quota of -1 is unlimited.
type UsageEntry struct {
	Anonymous bool
	UID       uint32
	Used      UsageCounts
	Quota     UsageCounts
}

// UsageCounts are a bucket's four counters (or bounds).
type UsageCounts struct {
	Connections, Mailboxes, Bytes, Leases int64
}

func (c *UsageCounts) append(b []byte) []byte {
	return AppendI64(AppendI64(AppendI64(AppendI64(b, c.Connections), c.Mailboxes), c.Bytes), c.Leases)
}

func (c *UsageCounts) decode(d *Decoder) {
	c.Connections, c.Mailboxes, c.Bytes, c.Leases = d.I64(), d.I64(), d.I64(), d.I64()
}

// usageEntrySize is an entry's encoded size.
const usageEntrySize = 1 + 4 + 8*8

// UsageReply is the buckets, uids in order then anonymous: `count u32 |
// count x UsageEntry | ext`.
type UsageReply struct {
	Entries []UsageEntry
	Ext     []byte
}

func (m *UsageReply) Append(b []byte) []byte {
	b = AppendU32(b, uint32(len(m.Entries)))
	for i := range m.Entries {
		e := &m.Entries[i]
		k := byte(1)
		if e.Anonymous {
			k = 0
		}
		b = AppendU32(append(b, k), e.UID)
		b = e.Quota.append(e.Used.append(b))
	}
	return append(b, m.Ext...)
}

func (m *UsageReply) Decode(p []byte) error {
	d := NewDecoder(p)
	n := d.U32()
	m.Entries, m.Ext = m.Entries[:0], nil
	if uint64(n)*usageEntrySize > uint64(d.Len()) {
		d.Fail(ErrMalformed)
		return d.Err()
	}
	for range n {
		var e UsageEntry
		k := d.U8()
		e.UID = d.U32()
		e.Used.decode(&d)
		e.Quota.decode(&d)
		if k > 1 || k == 0 && e.UID != 0 {
			d.Fail(ErrMalformed)
			break
		}
		e.Anonymous = k == 0
		m.Entries = append(m.Entries, e)
	}
	m.Ext = d.Ext()
	return d.Err()
}

// TagPrincipalUsage (UsageReply ext, repeated): one TLS principal's
// bucket, `name string | used 4 x i64 | quota 4 x i64`, after the uid
// entries and in name order. Not critical: a client that does not know
// it sees only the uid and anonymous buckets.
const TagPrincipalUsage uint16 = 0x0020

// PrincipalUsage is a TLS principal's bucket in a UsageReply's ext.
type PrincipalUsage struct {
	Name        []byte
	Used, Quota UsageCounts
}

// AppendPrincipalUsage appends a PRINCIPAL_USAGE entry.
func AppendPrincipalUsage(b []byte, u *PrincipalUsage) []byte {
	b = appendExtHead(b, TagPrincipalUsage, 2+len(u.Name)+64)
	return u.Quota.append(u.Used.append(AppendString(b, u.Name)))
}

// PrincipalUsages reads the PRINCIPAL_USAGE entries of a UsageReply's
// ext tail (aliasing it).
func PrincipalUsages(tail []byte) ([]PrincipalUsage, error) {
	var out []PrincipalUsage
	it := NewExtIter(tail)
	for f, ok := it.Next(); ok; f, ok = it.Next() {
		if f.Tag != TagPrincipalUsage {
			continue
		}
		d := NewDecoder(f.Value)
		u := PrincipalUsage{Name: d.String()}
		u.Used.decode(&d)
		u.Quota.decode(&d)
		if d.Finish() != nil || len(u.Name) == 0 {
			return nil, ErrMalformed
		}
		out = append(out, u)
	}
	return out, it.Err()
}
