package wire

// Extension tails.
//
// Every v2 payload is its fixed fields followed by an ext tail: zero or
// more entries `tag u16 | len u16 | value[len]` up to the end of the
// payload. A tag with TagCritical set must be understood: a receiver that
// does not know one refuses the payload (ErrUnknownCritical). Unknown
// non-critical tags are skipped. An entry whose len runs past the end is
// ErrMalformed, and a structural error anywhere in the tail wins over an
// unknown critical tag, so the error does not depend on the order of
// entries.
//
// Decoded payloads keep their tail in an Ext field, aliasing the frame;
// Append writes Ext back verbatim after the fields it encodes, so a
// decoded payload re-encodes byte for byte and a relay passes on tags it
// does not know. Payloads whose tail has tags of their own (Create,
// ErrorReply) keep only the tags they do not know in Ext.
//
// The entries of a message headers block have the same layout; ExtIter
// reads both.

// TagCritical marks an ext tag a receiver must understand.
const TagCritical uint16 = 0x8000

// ExtField is one entry of an ext tail or a headers block.
type ExtField struct {
	Tag   uint16
	Value []byte // aliases the payload
}

// Critical reports whether the entry's tag has TagCritical set.
func (f ExtField) Critical() bool { return f.Tag&TagCritical != 0 }

// ExtIter iterates over the entries of an ext tail or a headers block:
//
//	it := wire.NewExtIter(tail)
//	for f, ok := it.Next(); ok; f, ok = it.Next() { ... }
//	if it.Err() != nil { ... }
//
// It does not allocate.
type ExtIter struct {
	p   []byte
	bad bool
}

// NewExtIter returns an iterator over the entries in p.
func NewExtIter(p []byte) ExtIter { return ExtIter{p: p} }

// Next returns the next entry, or ok == false at the end or at an entry
// that runs past the end (then Err is ErrMalformed).
func (it *ExtIter) Next() (f ExtField, ok bool) {
	if it.bad || len(it.p) == 0 {
		return f, false
	}
	if len(it.p) < 4 {
		it.bad = true
		return f, false
	}
	n := int(it.p[2]) | int(it.p[3])<<8
	if 4+n > len(it.p) {
		it.bad = true
		return f, false
	}
	f = ExtField{Tag: uint16(it.p[0]) | uint16(it.p[1])<<8, Value: it.p[4 : 4+n : 4+n]}
	it.p = it.p[4+n:]
	return f, true
}

// Err returns ErrMalformed if an entry ran past the end.
func (it *ExtIter) Err() error {
	if it.bad {
		return ErrMalformed
	}
	return nil
}

// AppendExt appends one ext entry. A value longer than 65535 bytes is
// truncated (no tag defined allows that much).
func AppendExt(b []byte, tag uint16, value []byte) []byte {
	if len(value) > 0xffff {
		value = value[:0xffff]
	}
	b = AppendU16(AppendU16(b, tag), uint16(len(value)))
	return append(b, value...)
}

// appendExtHead appends an entry's tag and length; the caller appends the
// n value bytes.
func appendExtHead(b []byte, tag uint16, n int) []byte {
	return AppendU16(AppendU16(b, tag), uint16(n))
}

// CheckExt checks an ext tail of a payload that defines no tags of its own:
// ErrMalformed if an entry runs past the end, else ErrUnknownCritical if
// any tag is critical.
func CheckExt(tail []byte) error {
	it := NewExtIter(tail)
	critical := false
	for f, ok := it.Next(); ok; f, ok = it.Next() {
		critical = critical || f.Critical()
	}
	if err := it.Err(); err != nil {
		return err
	}
	if critical {
		return ErrUnknownCritical
	}
	return nil
}

// Ext reads the rest of the payload as an ext tail with no tags of its own
// (see CheckExt) and returns it. It is the last read of a decode function.
func (d *Decoder) Ext() []byte {
	if d.err != nil {
		return nil
	}
	tail := d.Rest()
	if err := CheckExt(tail); err != nil {
		d.Fail(err)
		return nil
	}
	if len(tail) == 0 {
		return nil
	}
	return tail
}

// Empty is the payload of frames with no fields of their own (PING and its
// reply, CANCEL, the OK replies to CREATE, DESTROY, CHMOD): only an ext
// tail, usually empty.
type Empty struct{ Ext []byte }

func (m *Empty) Append(b []byte) []byte { return append(b, m.Ext...) }

func (m *Empty) Decode(p []byte) error {
	d := NewDecoder(p)
	m.Ext = d.Ext()
	return d.Err()
}
