package postbox

import (
	"fmt"
	"slices"
	"time"
	"unsafe"

	"github.com/postbox-ipc/postbox/wire"
)

// Header holds a message's user headers: keys to values, like
// net/http.Header, except that keys are case-sensitive ("Trace-Id" and
// "trace-id" are two keys; nothing is canonicalized) because the protocol
// compares them byte for byte. A key is 1..128 bytes of [A-Za-z0-9-_.], a
// value 0..4096 bytes; a key may have several values, kept in order.
// Different keys are sent in sorted order: the order between keys is not
// kept.
type Header map[string][]string

// Get returns the first value of key, "" if none.
func (h Header) Get(key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Values returns every value of key, in order (nil if none). The slice
// is the Header's own.
func (h Header) Values(key string) []string { return h[key] }

// Add appends value to key's values.
func (h Header) Add(key, value string) { h[key] = append(h[key], value) }

// Set replaces key's values with value.
func (h Header) Set(key, value string) { h[key] = []string{value} }

// Del removes key.
func (h Header) Del(key string) { delete(h, key) }

// Clone returns a deep copy of h (nil for nil).
func (h Header) Clone() Header {
	if h == nil {
		return nil
	}
	c := make(Header, len(h))
	for k, v := range h {
		c[k] = slices.Clone(v)
	}
	return c
}

// appendHeaders validates h and appends its headers block (without the
// length) to b. The errors match ErrInvalid and say which limit broke.
func appendHeaders(b []byte, h *outHeaders) ([]byte, error) {
	var f wire.HeaderFields
	start := len(b)
	if h.replyTo != "" {
		if len(h.replyTo) > wire.MaxHeaderValue || !wire.ValidAddress(h.replyTo) {
			return b, invalidHeader("ReplyTo %q is not a mailbox name or @id address of 1..%d bytes", h.replyTo, wire.MaxHeaderValue)
		}
		f.ReplyTo = []byte(h.replyTo)
	}
	if h.correlationID != nil {
		if len(h.correlationID) == 0 || len(h.correlationID) > wire.MaxHeaderValue {
			return b, invalidHeader("CorrelationID is %d bytes, want 1..%d", len(h.correlationID), wire.MaxHeaderValue)
		}
		f.CorrelationID = h.correlationID
	}
	if h.contentType != "" {
		if len(h.contentType) > wire.MaxHeaderValue {
			return b, invalidHeader("ContentType is %d bytes, want 1..%d", len(h.contentType), wire.MaxHeaderValue)
		}
		for i := 0; i < len(h.contentType); i++ {
			if c := h.contentType[i]; c < 0x20 || c > 0x7e {
				return b, invalidHeader("ContentType %q has byte 0x%02x at %d: only printable ASCII and space", h.contentType, c, i)
			}
		}
		f.ContentType = []byte(h.contentType)
	}
	if !h.deadline.IsZero() {
		f.Deadline = h.deadline.UnixNano()
		if f.Deadline == 0 {
			f.Deadline = 1 // 0 means absent on the wire
		}
	}
	b = wire.AppendHeaders(b, &f)
	n := 0
	if f.ReplyTo != nil {
		n++
	}
	if f.CorrelationID != nil {
		n++
	}
	if f.ContentType != nil {
		n++
	}
	if f.Deadline != 0 {
		n++
	}
	for _, kv := range h.user {
		k, v := kv.key, kv.value
		if !validUserKey(k) {
			return b[:start], invalidHeader("header key %q: want 1..%d bytes of A-Z a-z 0-9 - _ .", k, wire.MaxHeaderUserKey)
		}
		if len(v) > wire.MaxHeaderUserValue {
			return b[:start], invalidHeader("header %q: value is %d bytes, at most %d", k, len(v), wire.MaxHeaderUserValue)
		}
		b = wire.AppendU16(b, wire.HeaderUser)
		b = wire.AppendU16(b, uint16(1+len(k)+len(v)))
		b = append(b, byte(len(k)))
		b = append(b, k...)
		b = append(b, v...)
		n++
	}
	if n > wire.MaxHeaderEntries {
		return b[:start], invalidHeader("%d header entries, at most %d", n, wire.MaxHeaderEntries)
	}
	if len(b)-start > wire.MaxHeaderBytes {
		return b[:start], invalidHeader("headers take %d bytes, at most %d", len(b)-start, wire.MaxHeaderBytes)
	}
	return b, nil
}

// userHeader is one user header of a message being sent.
type userHeader struct{ key, value string }

// sorted returns h's headers in wire order: by key, a key's values in
// order (nil for an empty h).
func (h Header) sorted() []userHeader {
	if len(h) == 0 {
		return nil
	}
	keys := make([]string, 0, len(h))
	n := 0
	for k, vs := range h {
		keys = append(keys, k)
		n += len(vs)
	}
	slices.Sort(keys)
	out := make([]userHeader, 0, n)
	for _, k := range keys {
		for _, v := range h[k] {
			out = append(out, userHeader{k, v})
		}
	}
	return out
}

func invalidHeader(format string, args ...any) error {
	return fmt.Errorf("%w: message headers: "+format, append([]any{ErrInvalid}, args...)...)
}

func validUserKey(k string) bool {
	if len(k) == 0 || len(k) > wire.MaxHeaderUserKey {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// setHeaders fills m's headers from a received headers block (the
// broker validated it). Reserved tags are skipped.
func (m *Message) setHeaders(raw []byte) error {
	var f wire.HeaderFields
	if err := f.Parse(raw); err != nil {
		return err
	}
	h := &messageHeaders{files: m.Files()}
	if f.CorrelationID != nil {
		h.correlationID = slices.Clone(f.CorrelationID)
	}
	if f.Deadline != 0 {
		h.deadline = time.Unix(0, f.Deadline)
	}
	// One string holds the text headers (REPLY_TO, CONTENT_TYPE, every
	// user key and value), and one array the user values: a few
	// allocations per message, not two per header.
	n := len(f.ReplyTo) + len(f.ContentType)
	for _, kv := range f.User {
		n += len(kv.Key) + len(kv.Value)
	}
	if n == 0 && len(f.User) == 0 {
		m.hdr = h
		return nil
	}
	buf := make([]byte, 0, n)
	buf = append(append(buf, f.ReplyTo...), f.ContentType...)
	for _, kv := range f.User {
		buf = append(append(buf, kv.Key...), kv.Value...)
	}
	all := unsafe.String(unsafe.SliceData(buf), len(buf)) // buf is never written again
	take := func(k int) string {
		v := all[:k]
		all = all[k:]
		return v
	}
	h.replyTo = take(len(f.ReplyTo))
	h.contentType = take(len(f.ContentType))
	if len(f.User) > 0 {
		vals := make([]string, len(f.User))
		h.user = make(Header, len(f.User))
		for i, kv := range f.User {
			k := take(len(kv.Key))
			vals[i] = take(len(kv.Value))
			if vs, ok := h.user[k]; ok {
				h.user[k] = append(vs, vals[i])
			} else {
				h.user[k] = vals[i : i+1 : i+1] // a second value copies out
			}
		}
	}
	m.hdr = h
	return nil
}
