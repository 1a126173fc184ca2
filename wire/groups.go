package wire

import "strconv"

// Groups, broadcast and notifications (PROTOCOL.md 8.21, 8.22).
//
// A group is named "#name", name a mailbox name (ValidName). Its members
// are endpoints (each receives through its inbox) and named mailboxes;
// JOIN adds one, JOIN with FlagLeave removes it. A SEND whose target is a
// group delivers a copy of each message to every member, and "@*"
// (broadcast) to every connected endpoint's inbox; the SendReply of
// either says how many got the copies (ext RECIPIENTS).
//
// WATCH is a streaming request, like CONSUME: the broker pushes NOTICE
// frames (op 0x63, FlagPush, the WATCH's request id) until the final
// reply ends it; CANCEL ends it with CANCELED.

const (
	// OpJoin joins (or, with FlagLeave, leaves) a group: Join.
	OpJoin Op = 0x44
	// OpWatch watches an endpoint ("@id") or a mailbox: Watch. Streaming.
	OpWatch Op = 0x45
	// OpNotice is pushed to a WATCH (FlagPush set): one Notice.
	OpNotice Op = 0x63
)

// FlagLeave (JOIN): leave the group instead of joining it.
const FlagLeave uint8 = 1 << 0

// TagRecipients (SendReply ext, u32): how many members of a group (or
// endpoints of a broadcast) received the copies. Not critical.
const TagRecipients uint16 = 0x0060

// Broadcast is the target of a broadcast SEND: every connected endpoint.
const Broadcast = "@*"

// IsGroup reports whether target is meant as a group ("#..."), well-formed
// or not.
func IsGroup[S ~string | ~[]byte](target S) bool { return len(target) > 0 && target[0] == '#' }

// ValidGroup reports whether g is a well-formed group name: '#' and a
// valid mailbox name.
func ValidGroup[S ~string | ~[]byte](g S) bool { return IsGroup(g) && ValidName(g[1:]) }

// IsBroadcast reports whether target is the broadcast target "@*".
func IsBroadcast[S ~string | ~[]byte](target S) bool { return string(target) == Broadcast }

// ValidTarget reports whether target is valid as a SEND's target: an
// address (ValidAddress), a group ("#name") or the broadcast "@*". Only a
// SEND takes groups and broadcast; everything else takes an address.
func ValidTarget[S ~string | ~[]byte](target S) bool {
	return ValidAddress(target) || ValidGroup(target) || IsBroadcast(target)
}

// Join is JOIN's payload: `group string | mailbox string | ext`. An empty
// mailbox joins (or leaves) the requesting endpoint itself; else the
// named mailbox is the member.
type Join struct {
	Group   []byte
	Mailbox []byte
	Ext     []byte
}

func (m *Join) Append(b []byte) []byte {
	return append(AppendString(AppendString(b, m.Group), m.Mailbox), m.Ext...)
}

func (m *Join) Decode(p []byte) error {
	d := NewDecoder(p)
	m.Group, m.Mailbox = d.String(), d.String()
	m.Ext = d.Ext()
	return d.Err()
}

// Watch is WATCH's payload: `target string | ext`, the target an inbox
// address ("@id": watch that endpoint) or a mailbox name.
type Watch struct {
	Target []byte
	Ext    []byte
}

func (m *Watch) Append(b []byte) []byte { return append(AppendString(b, m.Target), m.Ext...) }

func (m *Watch) Decode(p []byte) error {
	d := NewDecoder(p)
	m.Target, m.Ext = d.String(), d.Ext()
	return d.Err()
}

// NoticeKind says what a Notice reports.
type NoticeKind uint8

const (
	// NoticeArmed is the first notice of every watch: it is in place.
	// For a mailbox, NoticeExists says whether it exists and Depth is
	// its queued messages; for an endpoint, PID and UID are its peer's.
	NoticeArmed NoticeKind = 0
	// NoticeEndpointExited: the watched endpoint is gone (Reason says
	// how). It is the last notice: the final reply (OK) follows.
	NoticeEndpointExited NoticeKind = 1
	// NoticeCreated: a mailbox of the watched name was created.
	NoticeCreated NoticeKind = 2
	// NoticeDestroyed: the watched mailbox was destroyed.
	NoticeDestroyed NoticeKind = 3
	// NoticeNonEmpty: the mailbox's queue went from no messages to some.
	NoticeNonEmpty NoticeKind = 4
	// NoticeBelowCapacity: the mailbox's queue went from full (its
	// capacity) to below it.
	NoticeBelowCapacity NoticeKind = 5
)

var noticeKindNames = [...]string{"armed", "endpoint-exited", "created", "destroyed", "non-empty", "below-capacity"}

func (k NoticeKind) String() string {
	if int(k) < len(noticeKindNames) {
		return noticeKindNames[k]
	}
	return "kind-" + strconv.Itoa(int(k))
}

// ExitReason says how a watched endpoint ended (NoticeEndpointExited).
type ExitReason uint8

const (
	ExitNone ExitReason = 0
	// ExitProcessExited: the process that opened the connection exited
	// (the broker saw its pidfd), whether or not its socket closed first.
	ExitProcessExited ExitReason = 1
	// ExitDisconnected: the connection closed and the broker did not see
	// the process exit (it may still run).
	ExitDisconnected ExitReason = 2
	// ExitBrokerShutdown: the broker is shutting down.
	ExitBrokerShutdown ExitReason = 3
)

var exitReasonNames = [...]string{"", "process exited", "disconnected", "broker shutdown"}

func (r ExitReason) String() string {
	if int(r) < len(exitReasonNames) {
		return exitReasonNames[r]
	}
	return "reason-" + strconv.Itoa(int(r))
}

// Notice flags.
const (
	// NoticeStatusKnown: Status holds the process's wait status.
	NoticeStatusKnown uint8 = 1 << 0
	// NoticeExists (NoticeArmed for a mailbox): the mailbox exists.
	NoticeExists uint8 = 1 << 1
)

// Notice is a NOTICE's payload: `kind u8 | reason u8 | flags u8 |
// target string | endpoint u64 | pid i32 | uid u32 | status i32 |
// depth u32 | unix_nano i64 | ext`. Target is the WATCH's target.
// Endpoint, PID and UID are the watched endpoint's (0 for a mailbox).
// Status (with NoticeStatusKnown) is the exited process's wait status as
// waitpid(2) reports it: exit code << 8, or the terminating signal.
// Depth is the mailbox's queued messages after the change. UnixNano is
// when the broker saw it.
type Notice struct {
	Kind     NoticeKind
	Reason   ExitReason
	Flags    uint8
	Target   []byte
	Endpoint uint64
	PID      int32
	UID      uint32
	Status   int32
	Depth    uint32
	UnixNano int64
	Ext      []byte
}

func (m *Notice) Append(b []byte) []byte {
	b = append(b, uint8(m.Kind), uint8(m.Reason), m.Flags)
	b = AppendString(b, m.Target)
	b = AppendU64(b, m.Endpoint)
	b = AppendU32(AppendI32(b, m.PID), m.UID)
	b = AppendI32(b, m.Status)
	b = AppendU32(b, m.Depth)
	b = AppendI64(b, m.UnixNano)
	return append(b, m.Ext...)
}

func (m *Notice) Decode(p []byte) error {
	d := NewDecoder(p)
	m.Kind, m.Reason, m.Flags = NoticeKind(d.U8()), ExitReason(d.U8()), d.U8()
	m.Target = d.String()
	m.Endpoint = d.U64()
	m.PID, m.UID = d.I32(), d.U32()
	m.Status = d.I32()
	m.Depth = d.U32()
	m.UnixNano = d.I64()
	m.Ext = d.Ext()
	return d.Err()
}

// AppendRecipients appends a RECIPIENTS entry (SendReply ext).
func AppendRecipients(b []byte, n uint32) []byte {
	return AppendU32(appendExtHead(b, TagRecipients, 4), n)
}

// Recipients returns the RECIPIENTS in an ext tail and whether there is
// one. A value of another length than 4, or a repeated entry, is
// ErrMalformed.
func Recipients(tail []byte) (n uint32, ok bool, err error) {
	it := NewExtIter(tail)
	for f, more := it.Next(); more; f, more = it.Next() {
		if f.Tag != TagRecipients {
			continue
		}
		if ok || len(f.Value) != 4 {
			return 0, false, ErrMalformed
		}
		d := NewDecoder(f.Value)
		n, ok = d.U32(), true
	}
	if err := it.Err(); err != nil {
		return 0, false, err
	}
	return n, ok, nil
}
