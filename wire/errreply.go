package wire

// Error replies: any reply with a status other than OK.

// TagDone (error replies, u32): how many leading items of a batch took
// effect before the failure (SEND: messages admitted, which stay queued).
const TagDone uint16 = 0x0001

// ErrorReply is the payload of a reply whose status is not OK: `message
// string | ext`. Act on the status, never on Message.
type ErrorReply struct {
	Message []byte
	Done    uint32
	HasDone bool   // the tail carries TagDone
	Ext     []byte // tail entries other than TagDone, appended after it
}

func (m *ErrorReply) Append(b []byte) []byte {
	b = AppendString(b, m.Message)
	if m.HasDone {
		b = AppendU32(appendExtHead(b, TagDone, 4), m.Done)
	}
	return append(b, m.Ext...)
}

// Decode reads an error reply. TagDone must be 4 bytes and appear once
// (else ErrMalformed). If it is the first entry of the tail, Ext holds
// the entries after it; else the entries are skipped and Ext stays nil.
func (m *ErrorReply) Decode(p []byte) error {
	d := NewDecoder(p)
	*m = ErrorReply{Message: d.String()}
	if d.err != nil {
		return d.err
	}
	tail := d.Rest()
	if err := checkErrorTail(tail, m); err != nil {
		*m = ErrorReply{}
		return err
	}
	if !m.HasDone {
		if len(tail) > 0 {
			m.Ext = tail
		}
	} else if len(tail) >= 8 && tail[0] == byte(TagDone) && tail[1] == 0 && len(tail) > 8 {
		m.Ext = tail[8:]
	}
	return nil
}

func checkErrorTail(tail []byte, m *ErrorReply) error {
	it := NewExtIter(tail)
	critical := false
	for f, ok := it.Next(); ok; f, ok = it.Next() {
		switch {
		case f.Tag == TagDone:
			if m.HasDone || len(f.Value) != 4 {
				return ErrMalformed
			}
			v := NewDecoder(f.Value)
			m.Done, m.HasDone = v.U32(), true
		case f.Critical():
			critical = true
		}
	}
	if err := it.Err(); err != nil {
		return err
	}
	if critical {
		return ErrUnknownCritical
	}
	return nil
}

// AppendError appends an error reply's payload with no DONE.
func AppendError(b []byte, msg string) []byte { return AppendString(b, msg) }

// AppendErrorDone appends an error reply's payload with DONE = done.
func AppendErrorDone(b []byte, msg string, done uint32) []byte {
	return AppendU32(appendExtHead(AppendString(b, msg), TagDone, 4), done)
}

// DecodeError reads an error reply's payload: its message, and DONE (0 if
// absent). A payload that does not decode yields an empty message and 0:
// the status alone still says what failed.
func DecodeError(p []byte) (msg string, done uint32) {
	var m ErrorReply
	if m.Decode(p) != nil {
		return "", 0
	}
	return string(m.Message), m.Done
}
