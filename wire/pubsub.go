package wire

// Publish/subscribe: PUBLISH, SUBSCRIBE and its pushed EVENT frames, BIND,
// TOPICS and CLAIM (PROTOCOL.md 8.20).
//
// A publication goes to a subject (dot-separated tokens); a subscription
// names a pattern (`*` one token, `>` the rest) and gets an EVENT for
// every matching publication, or shares one copy with the other members
// of its queue group. A subscription holds at most Buffer events that the
// client has not credited back (CREDIT, with the SUBSCRIBE's request id);
// when a publication finds it full, its policy decides: PolicyBlock makes
// the PUBLISH wait, PolicyDropOldest and PolicyDropNewest drop and count
// (the next EVENT's Missed says how many), PolicyDisconnect ends the
// SUBSCRIBE with CodeLimit. BIND routes a pattern into a mailbox.

import "encoding/binary"

const (
	OpPublish   Op = 0x40 // a publication; its reply is a PublishReply
	OpSubscribe Op = 0x41 // streaming, like CONSUME: pushed EVENTs, then one final reply
	OpBind      Op = 0x42 // bind (FlagUnbind: unbind) a pattern to a mailbox
	OpTopics    Op = 0x43 // list subjects, bindings and claims
	OpClaim     Op = 0x46 // claim (or release) a subject pattern: owner and mode
	// OpEvent is pushed to a subscriber (FlagPush set), with the
	// SUBSCRIBE's request id: one Event.
	OpEvent Op = 0x62
)

// FlagUnbind (BIND): remove the binding instead of adding it.
const FlagUnbind uint8 = 1 << 0

// FlagPublishBatch (PUBLISH): the payload is a PublishBatch, up to
// MaxBatch publications in one frame, instead of one Publish.
const FlagPublishBatch uint8 = 1 << 0

func init() {
	opNames[OpPublish] = "PUBLISH"
	opNames[OpSubscribe] = "SUBSCRIBE"
	opNames[OpBind] = "BIND"
	opNames[OpTopics] = "TOPICS"
	opNames[OpClaim] = "CLAIM"
	opNames[OpEvent] = "EVENT"
}

// Overflow policies (Subscribe.Policy): what a publication does when it
// finds a subscription's buffer full.
const (
	PolicyBlock      uint8 = 0 // the PUBLISH waits for room (its timeout bounds the wait)
	PolicyDropOldest uint8 = 1 // the oldest event not yet sent is dropped, counted
	PolicyDropNewest uint8 = 2 // the new publication is dropped for it, counted
	PolicyDisconnect uint8 = 3 // the SUBSCRIBE ends with CodeLimit
)

// Subscription bounds.
const (
	MaxSubscribeBuffer = 65536 // Subscribe.Buffer is 1..this
	MaxSubjectLen      = 255   // subjects and patterns are 1..this bytes
	MaxQueueName       = 255   // a queue group's name, 0 (none) ..this bytes
	MaxFilterConds     = 16    // header conditions of one subscription
)

// Publish is one publication: `subject string | timeout i64 | type i64 |
// headers | body bytes | ext`. Its OK reply is a PublishReply.
type Publish struct {
	Subject []byte
	Timeout int64 // ns: -1 wait forever, 0 do not wait, > 0 at most this long (PolicyBlock)
	Type    int64 // >= 1
	Headers []byte
	Body    []byte
	Ext     []byte
}

func (m *Publish) Append(b []byte) []byte {
	b = AppendI64(AppendI64(AppendString(b, m.Subject), m.Timeout), m.Type)
	b = AppendBytes(AppendBytes(b, m.Headers), m.Body)
	return append(b, m.Ext...)
}

func (m *Publish) Decode(p []byte) error {
	d := NewDecoder(p)
	m.Subject, m.Timeout, m.Type = d.String(), d.I64(), d.I64()
	m.Headers, m.Body, m.Ext = d.Headers(), d.Bytes(), d.Ext()
	return d.Err()
}

// Size is the publication's message size: body plus headers block.
func (m *Publish) Size() int { return len(m.Body) + len(m.Headers) }

// PublishReply is PUBLISH's OK reply: `matched u32 | ext`, how many
// subscriptions (a queue group counts once) and bindings took it.
type PublishReply struct {
	Matched uint32
	Ext     []byte
}

func (m *PublishReply) Append(b []byte) []byte { return append(AppendU32(b, m.Matched), m.Ext...) }

func (m *PublishReply) Decode(p []byte) error {
	d := NewDecoder(p)
	m.Matched, m.Ext = d.U32(), d.Ext()
	return d.Err()
}

// publishItemMin is the smallest encoding of one PublishItem.
const publishItemMin = 2 + 8 + 4 + 4

// PublishItem is one publication of a PublishBatch.
type PublishItem struct {
	Subject []byte
	Type    int64 // >= 1 (the broker checks)
	Headers []byte
	Body    []byte
}

// Size is the publication's message size: body plus headers block.
func (m *PublishItem) Size() int { return len(m.Body) + len(m.Headers) }

// PublishBatch is a PUBLISH with FlagPublishBatch: `timeout i64 | count
// u16 (1..MaxBatch) | count x {subject string | type i64 | headers | body
// bytes} | ext`. The broker publishes the items in order, each as a
// single PUBLISH would be, the timeout bounding all of the batch's waits
// together. Its OK reply is a PublishReply whose Matched is the sum over
// the items (saturated at 2^32-1); an error reply's DONE (TagDone) says
// how many leading items were published before the one that failed.
type PublishBatch struct {
	Timeout int64
	Items   []PublishItem
	Ext     []byte
}

func (m *PublishBatch) Append(b []byte) []byte {
	b = AppendU16(AppendI64(b, m.Timeout), uint16(len(m.Items)))
	for i := range m.Items {
		it := &m.Items[i]
		b = AppendI64(AppendString(b, it.Subject), it.Type)
		b = AppendBytes(AppendBytes(b, it.Headers), it.Body)
	}
	return append(b, m.Ext...)
}

// Decode reads a batched PUBLISH, reusing Items' backing array. Every
// item's headers are validated, so the error is ErrMalformed,
// ErrInvalidHeaders or ErrUnknownCritical.
func (m *PublishBatch) Decode(p []byte) error {
	d := NewDecoder(p)
	m.Timeout = d.I64()
	n := int(d.U16())
	m.Items, m.Ext = m.Items[:0], nil
	if n == 0 || n > MaxBatch || n*publishItemMin > d.Len() {
		d.Fail(ErrMalformed)
		return d.Err()
	}
	for range n {
		if d.err != nil {
			break
		}
		m.Items = append(m.Items, PublishItem{Subject: d.String(), Type: d.I64(), Headers: d.Headers(), Body: d.Bytes()})
	}
	m.Ext = d.Ext()
	return d.Err()
}

// Subscribe starts a subscription: `pattern string | queue string |
// buffer u32 | policy u8 | ext`. The ext tail may hold filter tags
// (TagFilterType, TagFilterEquals, TagFilterPresent; ParseFilter). The
// stream of EVENTs ends with one SUBSCRIBE reply, never OK.
type Subscribe struct {
	Pattern []byte
	Queue   []byte // "" = no queue group
	Buffer  uint32 // 1..MaxSubscribeBuffer
	Policy  uint8
	Ext     []byte
}

func (m *Subscribe) Append(b []byte) []byte {
	b = AppendU32(AppendString(AppendString(b, m.Pattern), m.Queue), m.Buffer)
	return append(append(b, m.Policy), m.Ext...)
}

func (m *Subscribe) Decode(p []byte) error {
	d := NewDecoder(p)
	m.Pattern, m.Queue, m.Buffer, m.Policy, m.Ext = d.String(), d.String(), d.U32(), d.U8(), d.Ext()
	return d.Err()
}

// Subscribe ext tags: the filter, evaluated by the broker. All the
// conditions present must hold.
const (
	// TagFilterType: `min i64 | max i64`: the type is in [min, max].
	TagFilterType uint16 = 0x0001
	// TagFilterEquals: `klen u8 | key | value`: a USER header with the
	// key has exactly the value. Repeatable.
	TagFilterEquals uint16 = 0x0002
	// TagFilterPresent: `key`: a USER header with the key exists.
	// Repeatable.
	TagFilterPresent uint16 = 0x0003
)

// Filter is a subscription's filter as its ext tags say it. The zero
// value passes everything.
type Filter struct {
	HasType          bool
	TypeMin, TypeMax int64
	Equals           []KV     // USER key == value
	Present          [][]byte // USER key exists
}

// AppendFilter appends f's ext tags.
func AppendFilter(b []byte, f *Filter) []byte {
	if f.HasType {
		b = AppendI64(AppendI64(appendExtHead(b, TagFilterType, 16), f.TypeMin), f.TypeMax)
	}
	for _, kv := range f.Equals {
		b = appendExtHead(b, TagFilterEquals, 1+len(kv.Key)+len(kv.Value))
		b = append(append(append(b, byte(len(kv.Key))), kv.Key...), kv.Value...)
	}
	for _, k := range f.Present {
		b = AppendExt(b, TagFilterPresent, k)
	}
	return b
}

// ParseFilter reads the filter from a Subscribe's ext tail: ErrMalformed
// if the tail does not parse or a filter tag's value does not fit its
// layout, ErrInvalid if it breaks a rule (a key that is not a USER key,
// min > max, a repeated TYPE, more than MaxFilterConds conditions).
// Other tags are skipped.
func ParseFilter(ext []byte) (Filter, error) {
	var f Filter
	it := NewExtIter(ext)
	for e, ok := it.Next(); ok; e, ok = it.Next() {
		v := e.Value
		switch e.Tag {
		case TagFilterType:
			if len(v) != 16 {
				return Filter{}, ErrMalformed
			}
			if f.HasType {
				return Filter{}, ErrInvalid
			}
			d := NewDecoder(v)
			f.HasType, f.TypeMin, f.TypeMax = true, d.I64(), d.I64()
			if f.TypeMin > f.TypeMax {
				return Filter{}, ErrInvalid
			}
		case TagFilterEquals:
			if len(v) < 1 || 1+int(v[0]) > len(v) {
				return Filter{}, ErrMalformed
			}
			k := v[1 : 1+int(v[0])]
			if !validUserKey(k) || len(v)-1-len(k) > MaxHeaderUserValue {
				return Filter{}, ErrInvalid
			}
			f.Equals = append(f.Equals, KV{Key: k, Value: v[1+len(k):]})
		case TagFilterPresent:
			if !validUserKey(v) {
				return Filter{}, ErrInvalid
			}
			f.Present = append(f.Present, v)
		}
	}
	if err := it.Err(); err != nil {
		return Filter{}, err
	}
	if len(f.Equals)+len(f.Present) > MaxFilterConds {
		return Filter{}, ErrInvalid
	}
	return f, nil
}

func validUserKey(k []byte) bool {
	if len(k) < 1 || len(k) > MaxHeaderUserKey {
		return false
	}
	for _, c := range k {
		if !userKeyByte(c) {
			return false
		}
	}
	return true
}

// EventGap (Event.Flags): the EVENT carries no publication, only Missed
// (its subject, type, headers and body are empty, its sender zero).
const EventGap uint8 = 1 << 0

// Event is one publication pushed to a subscriber: `flags u8 | missed u64
// | subject string | sender principal | sent i64 | type i64 | headers |
// body bytes | ext`. Missed is how many publications this subscription
// dropped since its previous EVENT (a gap notice, before this one).
type Event struct {
	Flags        uint8
	Missed       uint64
	Subject      []byte
	Sender       Identity
	SentUnixNano int64
	Type         int64
	Headers      []byte
	Body         []byte
	Ext          []byte // PRINCIPAL_NAME for a TLS sender
}

func (m *Event) Append(b []byte) []byte {
	b = AppendU64(append(b, m.Flags), m.Missed)
	b = m.Sender.Append(AppendString(b, m.Subject))
	b = AppendI64(AppendI64(b, m.SentUnixNano), m.Type)
	b = AppendBytes(AppendBytes(b, m.Headers), m.Body)
	return append(b, m.Ext...)
}

// Decode reads the fixed fields (flags .. type, the subject between
// them) at their offsets after two bounds checks: a subscriber decodes
// one EVENT per publication. A payload too short for them is decoded
// field by field (decodeSlow), which sets what is there, and is
// ErrMalformed.
func (m *Event) Decode(p []byte) error {
	const head = 1 + 8 + 2 // flags, missed, the subject's length
	const fixed = IdentitySize + 8 + 8
	if len(p) < head {
		m.decodeSlow(p)
		return ErrMalformed
	}
	le := binary.LittleEndian
	sl := int(le.Uint16(p[9:]))
	if len(p) < head+sl+fixed {
		m.decodeSlow(p)
		return ErrMalformed
	}
	m.Flags, m.Missed = p[0], le.Uint64(p[1:])
	m.Subject = p[head : head+sl : head+sl]
	f := p[head+sl : head+sl+fixed]
	m.Sender = Identity{Kind: f[0], UID: le.Uint32(f[1:]), GID: le.Uint32(f[5:]), PID: int32(le.Uint32(f[9:])), Endpoint: le.Uint64(f[13:])}
	m.SentUnixNano, m.Type = int64(le.Uint64(f[IdentitySize:])), int64(le.Uint64(f[IdentitySize+8:]))
	d := NewDecoder(p[head+sl+fixed:])
	m.Headers, m.Body, m.Ext = d.Headers(), d.Bytes(), d.Ext()
	return d.Err()
}

// decodeSlow is Decode field by field.
func (m *Event) decodeSlow(p []byte) {
	d := NewDecoder(p)
	m.Flags, m.Missed, m.Subject, m.Sender = d.U8(), d.U64(), d.String(), d.Identity()
	m.SentUnixNano, m.Type = d.I64(), d.I64()
	m.Headers, m.Body, m.Ext = d.Headers(), d.Bytes(), d.Ext()
}

// EventOverhead is what an EVENT frame adds to a publication's subject,
// headers and body.
const EventOverhead = HeaderSize + 1 + 8 + 2 + IdentitySize + 8 + 8 + 4 + 4

// Bind binds a pattern to a mailbox (or, with FlagUnbind, removes the
// binding): `pattern string | mailbox string | ext`. Its OK reply is
// Empty.
type Bind struct {
	Pattern []byte
	Mailbox []byte
	Ext     []byte
}

func (m *Bind) Append(b []byte) []byte {
	return append(AppendString(AppendString(b, m.Pattern), m.Mailbox), m.Ext...)
}

func (m *Bind) Decode(p []byte) error {
	d := NewDecoder(p)
	m.Pattern, m.Mailbox, m.Ext = d.String(), d.String(), d.Ext()
	return d.Err()
}

// Claim actions.
const (
	ClaimSet     uint8 = 1 // claim the pattern, or change the mode of one's own claim
	ClaimRelease uint8 = 2 // release one's own claim (mode ignored, 0)
)

// Claim claims or releases a subject pattern: `pattern string | action
// u8 | mode u32 | ext`. Its OK reply is Empty.
type Claim struct {
	Pattern []byte
	Action  uint8
	Mode    uint32 // 0..0777: r = subscribe, w = publish
	Ext     []byte
}

func (m *Claim) Append(b []byte) []byte {
	return append(AppendU32(append(AppendString(b, m.Pattern), m.Action), m.Mode), m.Ext...)
}

func (m *Claim) Decode(p []byte) error {
	d := NewDecoder(p)
	m.Pattern, m.Action, m.Mode, m.Ext = d.String(), d.U8(), d.U32(), d.Ext()
	return d.Err()
}

// SubjectInfo is one subscribed pattern in a TopicsReply: `pattern string
// | subscribers u32 | queues u32 | delivered u64 | dropped u64`.
type SubjectInfo struct {
	Pattern     []byte
	Subscribers uint32 // subscriptions with this pattern
	Queues      uint32 // distinct queue groups among them
	Delivered   uint64 // events handed to them
	Dropped     uint64 // publications they dropped (overflow)
}

// BindingInfo is one binding in a TopicsReply: `pattern string | mailbox
// string`.
type BindingInfo struct {
	Pattern []byte
	Mailbox []byte
}

// ClaimInfo is one claim in a TopicsReply: `pattern string | uid u32 |
// gid u32 | mode u32`.
type ClaimInfo struct {
	Pattern  []byte
	UID, GID uint32
	Mode     uint32
}

// TopicsReply is TOPICS's OK reply: `nsubjects u32 | SubjectInfo × n |
// nbindings u32 | BindingInfo × n | nclaims u32 | ClaimInfo × n | ext`.
type TopicsReply struct {
	Subjects []SubjectInfo
	Bindings []BindingInfo
	Claims   []ClaimInfo
	Ext      []byte
}

func (m *TopicsReply) Append(b []byte) []byte {
	b = AppendU32(b, uint32(len(m.Subjects)))
	for i := range m.Subjects {
		s := &m.Subjects[i]
		b = AppendU32(AppendU32(AppendString(b, s.Pattern), s.Subscribers), s.Queues)
		b = AppendU64(AppendU64(b, s.Delivered), s.Dropped)
	}
	b = AppendU32(b, uint32(len(m.Bindings)))
	for i := range m.Bindings {
		b = AppendString(AppendString(b, m.Bindings[i].Pattern), m.Bindings[i].Mailbox)
	}
	b = AppendU32(b, uint32(len(m.Claims)))
	for i := range m.Claims {
		c := &m.Claims[i]
		b = AppendU32(AppendU32(AppendU32(AppendString(b, c.Pattern), c.UID), c.GID), c.Mode)
	}
	return append(b, m.Ext...)
}

func (m *TopicsReply) Decode(p []byte) error {
	d := NewDecoder(p)
	// Each entry takes at least its fixed bytes: a count past what the
	// payload can hold is malformed before anything is allocated.
	n := d.U32()
	if int64(n)*26 > int64(d.Len()) {
		return ErrMalformed
	}
	m.Subjects = make([]SubjectInfo, n)
	for i := range m.Subjects {
		s := &m.Subjects[i]
		s.Pattern, s.Subscribers, s.Queues, s.Delivered, s.Dropped = d.String(), d.U32(), d.U32(), d.U64(), d.U64()
	}
	n = d.U32()
	if int64(n)*4 > int64(d.Len()) {
		return ErrMalformed
	}
	m.Bindings = make([]BindingInfo, n)
	for i := range m.Bindings {
		m.Bindings[i].Pattern, m.Bindings[i].Mailbox = d.String(), d.String()
	}
	n = d.U32()
	if int64(n)*14 > int64(d.Len()) {
		return ErrMalformed
	}
	m.Claims = make([]ClaimInfo, n)
	for i := range m.Claims {
		c := &m.Claims[i]
		c.Pattern, c.UID, c.GID, c.Mode = d.String(), d.U32(), d.U32(), d.U32()
	}
	m.Ext = d.Ext()
	return d.Err()
}
