package wire

import "path"

// Access entries: who of the remote (TLS) principals may do what to a
// mailbox.
//
// A mailbox's mode bits decide for Unix peers; for a TLS peer that is not
// the mailbox's owner, its access entries decide: an entry whose pattern
// matches the principal's name (path.Match syntax: `*` matches within a
// `/`-separated segment, `?` one byte, `[...]` a class; no pattern
// characters: the exact name) grants its perms, the entries that match
// add up, and no match is no access.

// OpACL sets or removes one access entry of a mailbox (owner only).
const OpACL Op = 0x16

func init() { opNames[OpACL] = "ACL" }

// ACL actions.
const (
	ACLSet    uint8 = 1 // add the entry, or replace the perms of the entry with that pattern
	ACLRemove uint8 = 2 // remove the entry with that pattern (perms ignored, 0)
)

// Access permission bits: the mode's r and w.
const (
	PermRead  uint8 = 4 // RECV, CONSUME, BROWSE
	PermWrite uint8 = 2 // SEND, CALL
)

// MaxACLEntries bounds a mailbox's access entries; MaxPatternLen an
// entry's pattern.
const (
	MaxACLEntries = 64
	MaxPatternLen = MaxPrincipalName
)

// ACL sets or removes an access entry: `name string | action u8 | perms
// u8 | pattern string | ext`. Its OK reply is Empty.
type ACL struct {
	Name    []byte
	Action  uint8
	Perms   uint8
	Pattern []byte
	Ext     []byte
}

func (m *ACL) Append(b []byte) []byte {
	b = append(AppendString(b, m.Name), m.Action, m.Perms)
	return append(AppendString(b, m.Pattern), m.Ext...)
}

func (m *ACL) Decode(p []byte) error {
	d := NewDecoder(p)
	m.Name, m.Action, m.Perms, m.Pattern, m.Ext = d.String(), d.U8(), d.U8(), d.String(), d.Ext()
	return d.Err()
}

// ValidPattern reports whether p is a well-formed access pattern:
// 1..MaxPatternLen bytes, valid path.Match syntax.
func ValidPattern(p []byte) bool {
	if len(p) == 0 || len(p) > MaxPatternLen {
		return false
	}
	_, err := path.Match(string(p), "")
	return err == nil
}

// MatchPattern reports whether name matches the access pattern.
func MatchPattern(pattern, name string) bool {
	ok, err := path.Match(pattern, name)
	return err == nil && ok
}

// MailboxInfo ext tags (STAT and LIST entries).
const (
	// TagOwner: the owner is not a Unix principal: `kind u8 | name`
	// (name empty for kind none). UID and GID are then NoOwnerID.
	TagOwner uint16 = 0x0020
	// TagAccess: one access entry, `perms u8 | pattern`; repeated, one
	// per entry, in the order they were set.
	TagAccess uint16 = 0x0021
)

// NoOwnerID is MailboxInfo.UID and GID of a mailbox whose owner has no
// uid (a TLS or unauthenticated peer created it).
const NoOwnerID = 0xffffffff

// AccessEntry is one access entry as MailboxInfo reports it.
type AccessEntry struct {
	Perms   uint8
	Pattern string
}

// AppendMailboxOwner appends a MailboxInfo OWNER entry.
func AppendMailboxOwner(b []byte, kind uint8, name string) []byte {
	b = append(appendExtHead(b, TagOwner, 1+len(name)), kind)
	return append(b, name...)
}

// AppendAccess appends a MailboxInfo ACCESS entry.
func AppendAccess(b []byte, e AccessEntry) []byte {
	b = append(appendExtHead(b, TagAccess, 1+len(e.Pattern)), e.Perms)
	return append(b, e.Pattern...)
}

// MailboxAccess reads OWNER and ACCESS from a MailboxInfo's ext tail:
// hasOwner false means a Unix owner (UID, GID).
func MailboxAccess(tail []byte) (ownerKind uint8, ownerName string, hasOwner bool, acl []AccessEntry, err error) {
	it := NewExtIter(tail)
	for f, ok := it.Next(); ok; f, ok = it.Next() {
		switch f.Tag {
		case TagOwner:
			if hasOwner || len(f.Value) < 1 {
				return 0, "", false, nil, ErrMalformed
			}
			ownerKind, ownerName, hasOwner = f.Value[0], string(f.Value[1:]), true
		case TagAccess:
			if len(f.Value) < 2 {
				return 0, "", false, nil, ErrMalformed
			}
			acl = append(acl, AccessEntry{Perms: f.Value[0], Pattern: string(f.Value[1:])})
		}
	}
	return ownerKind, ownerName, hasOwner, acl, it.Err()
}
