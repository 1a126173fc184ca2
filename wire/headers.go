package wire

// Message headers.
//
// A message's headers block travels in SEND and Delivery as a `headers`
// field: u32 n, then n bytes of entries `tag u16 | len u16 | value`. In Go
// the block (the n bytes, without the length) is a raw []byte end to end:
// the broker validates it with ValidateHeaders and stores and forwards it
// byte for byte; senders build it with AppendHeaders, receivers read it
// with ParseHeaders or NewExtIter.
//
//	tag  name            value                                  rule
//	1    REPLY_TO        address (name or "@id"), 1..255 bytes  at most once
//	2    CORRELATION_ID  1..255 opaque bytes                    at most once
//	3    DEADLINE        i64 unix ns (len 8)                    at most once
//	4    CONTENT_TYPE    1..255 bytes of 0x20..0x7e             at most once
//	5    USER            klen u8 | key | value                  repeatable
//	6..  reserved        anything                               skipped
//
// A USER key is 1..128 bytes of [A-Za-z0-9-_.], its value 0..4096 bytes
// (the rest of the entry). A block holds at most MaxHeaderEntries entries
// and MaxHeaderBytes bytes. Entries that do not parse are ErrMalformed;
// a rule broken is ErrInvalidHeaders.

// Header tags.
const (
	HeaderReplyTo       uint16 = 1
	HeaderCorrelationID uint16 = 2
	HeaderDeadline      uint16 = 3
	HeaderContentType   uint16 = 4
	HeaderUser          uint16 = 5
)

// Header limits.
const (
	MaxHeaderEntries   = 64    // entries in one block
	MaxHeaderBytes     = 16384 // bytes of one block
	MaxHeaderValue     = 255   // REPLY_TO, CORRELATION_ID, CONTENT_TYPE
	MaxHeaderUserKey   = 128
	MaxHeaderUserValue = 4096
)

// KV is one USER header.
type KV struct{ Key, Value []byte }

// HeaderFields is a headers block decoded. Byte fields alias the block;
// nil means absent. Deadline 0 means absent.
type HeaderFields struct {
	ReplyTo       []byte
	CorrelationID []byte
	ContentType   []byte
	Deadline      int64
	User          []KV
}

// AppendHeaders appends the entries of h (not the u32 length of the
// `headers` field) in tag order, then the USER entries in order. It does
// not validate: values over the limits are written as they are (truncated
// at 65535 bytes) and ValidateHeaders refuses them.
func AppendHeaders(b []byte, h *HeaderFields) []byte {
	if h.ReplyTo != nil {
		b = AppendExt(b, HeaderReplyTo, h.ReplyTo)
	}
	if h.CorrelationID != nil {
		b = AppendExt(b, HeaderCorrelationID, h.CorrelationID)
	}
	if h.Deadline != 0 {
		b = AppendI64(appendExtHead(b, HeaderDeadline, 8), h.Deadline)
	}
	if h.ContentType != nil {
		b = AppendExt(b, HeaderContentType, h.ContentType)
	}
	for _, kv := range h.User {
		k := kv.Key
		if len(k) > 255 {
			k = k[:255]
		}
		v := kv.Value
		if n := 1 + len(k) + len(v); n > 0xffff {
			v = v[:0xffff-1-len(k)]
		}
		b = appendExtHead(b, HeaderUser, 1+len(k)+len(v))
		b = append(append(append(b, byte(len(k))), k...), v...)
	}
	return b
}

// ValidateHeaders checks a headers block: ErrMalformed if its entries do
// not parse, ErrInvalidHeaders if they break a rule or a limit. It does
// not allocate.
func ValidateHeaders(raw []byte) error {
	_, err := parseHeaders(raw, nil)
	return err
}

// ParseHeaders validates raw and returns its fields. Reserved tags are
// skipped (so AppendHeaders of the result drops them: forward raw, not
// the parsed fields).
func ParseHeaders(raw []byte) (HeaderFields, error) {
	var h HeaderFields
	err := h.Parse(raw)
	return h, err
}

// Parse is ParseHeaders into h, reusing h.User's backing array.
func (h *HeaderFields) Parse(raw []byte) error {
	*h = HeaderFields{User: h.User[:0]}
	_, err := parseHeaders(raw, h)
	if err != nil {
		*h = HeaderFields{User: h.User[:0]}
	}
	return err
}

// parseHeaders validates raw and, if h is not nil, fills it. Structure is
// checked over the whole block before rules, so a malformed block is
// ErrMalformed whatever rule an earlier entry breaks.
func parseHeaders(raw []byte, h *HeaderFields) (int, error) {
	n := 0
	it := NewExtIter(raw)
	for _, ok := it.Next(); ok; _, ok = it.Next() {
		n++
	}
	if err := it.Err(); err != nil {
		return 0, err
	}
	if len(raw) > MaxHeaderBytes || n > MaxHeaderEntries {
		return 0, ErrInvalidHeaders
	}
	var seen uint8
	it = NewExtIter(raw)
	for f, ok := it.Next(); ok; f, ok = it.Next() {
		v := f.Value
		switch f.Tag {
		case HeaderReplyTo, HeaderCorrelationID, HeaderDeadline, HeaderContentType:
			bit := uint8(1) << f.Tag
			if seen&bit != 0 {
				return 0, ErrInvalidHeaders
			}
			seen |= bit
		}
		switch f.Tag {
		case HeaderReplyTo:
			if len(v) == 0 || len(v) > MaxHeaderValue || !ValidAddress(v) {
				return 0, ErrInvalidHeaders
			}
			if h != nil {
				h.ReplyTo = v
			}
		case HeaderCorrelationID:
			if len(v) == 0 || len(v) > MaxHeaderValue {
				return 0, ErrInvalidHeaders
			}
			if h != nil {
				h.CorrelationID = v
			}
		case HeaderDeadline:
			if len(v) != 8 {
				return 0, ErrInvalidHeaders
			}
			if h != nil {
				d := NewDecoder(v)
				h.Deadline = d.I64()
			}
		case HeaderContentType:
			if len(v) == 0 || len(v) > MaxHeaderValue {
				return 0, ErrInvalidHeaders
			}
			for _, c := range v {
				if c < 0x20 || c > 0x7e {
					return 0, ErrInvalidHeaders
				}
			}
			if h != nil {
				h.ContentType = v
			}
		case HeaderUser:
			if len(v) < 1 {
				return 0, ErrInvalidHeaders
			}
			kl := int(v[0])
			if kl < 1 || kl > MaxHeaderUserKey || 1+kl > len(v) || len(v)-1-kl > MaxHeaderUserValue {
				return 0, ErrInvalidHeaders
			}
			key := v[1 : 1+kl : 1+kl]
			for _, c := range key {
				if !userKeyByte(c) {
					return 0, ErrInvalidHeaders
				}
			}
			if h != nil {
				h.User = append(h.User, KV{Key: key, Value: v[1+kl:]})
			}
		}
	}
	return n, nil
}

func userKeyByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '_' || c == '.'
}

// Headers reads a `headers` field and validates it (ValidateHeaders).
func (d *Decoder) Headers() []byte {
	raw := d.Bytes()
	if d.err != nil {
		return nil
	}
	if err := ValidateHeaders(raw); err != nil {
		d.Fail(err)
		return nil
	}
	if len(raw) == 0 {
		return nil
	}
	return raw
}
