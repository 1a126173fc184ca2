package broker

import (
	"fmt"
	"slices"

	"github.com/postbox-ipc/postbox/wire"
)

// Access entries (ACL): which remote principals may send to or receive
// from a mailbox. Mode bits decide for Unix peers; a TLS principal that
// does not own a mailbox may do only what the entries matching its name
// grant (ModeAuthorizer). Only the owner changes them (ActACL), one
// entry per ACL request; a durable mailbox records them in its
// definition, as CHMOD records the mode.

func (h *handler) doACL(hd wire.Header, p []byte) {
	c := h.c
	var m wire.ACL
	if !h.decode(hd, p, &m) {
		return
	}
	invalid := func(why string) {
		c.replyErr(hd, wire.CodeInvalid, fmt.Sprintf("acl %q: %s", m.Name, why))
	}
	switch {
	case m.Action != wire.ACLSet && m.Action != wire.ACLRemove:
		invalid(fmt.Sprintf("unknown action %d (1 set, 2 remove)", m.Action))
		return
	case !wire.ValidPattern(m.Pattern):
		invalid(fmt.Sprintf("pattern %q: want 1..%d bytes of path.Match syntax", m.Pattern, wire.MaxPatternLen))
		return
	case m.Action == wire.ACLSet && (m.Perms == 0 || m.Perms&^(wire.PermRead|wire.PermWrite) != 0):
		invalid(fmt.Sprintf("perms %#o: want r (4), w (2) or both", m.Perms))
		return
	case m.Action == wire.ACLRemove && m.Perms != 0:
		invalid("a removal carries no perms (0)")
		return
	}
	if t := h.named(hd, ActACL, m.Name); t != nil {
		t.setAccess(c, hd, m.Action, string(m.Pattern), m.Perms)
	}
}

// setAccess is target.setAccess for the local queue: the entries are
// replaced whole (readers hold the old slice).
func (bx *box) setAccess(c *conn, hd wire.Header, action uint8, pattern string, perms uint8) {
	bx.mu.Lock()
	if bx.core.Destroyed() {
		bx.mu.Unlock()
		c.replyErr(hd, wire.CodeNotFound, fmt.Sprintf("acl %q: no such mailbox", bx.name))
		return
	}
	var old []AccessEntry
	if a := bx.access.Load(); a != nil {
		old = *a
	}
	i := slices.IndexFunc(old, func(e AccessEntry) bool { return e.Pattern == pattern })
	entries := slices.Clone(old)
	switch {
	case action == wire.ACLRemove && i < 0:
		bx.mu.Unlock()
		c.replyErr(hd, wire.CodeNotFound, fmt.Sprintf("acl %q: no entry for %q", bx.name, pattern))
		return
	case action == wire.ACLRemove:
		entries = slices.Delete(entries, i, i+1)
	case i >= 0:
		entries[i].Perms = perms
	case len(entries) >= wire.MaxACLEntries:
		bx.mu.Unlock()
		c.replyErr(hd, wire.CodeLimit, fmt.Sprintf("acl %q: it has %d entries, the most a mailbox may have", bx.name, len(entries)))
		return
	default:
		entries = append(entries, AccessEntry{Pattern: pattern, Perms: perms})
	}
	if len(entries) == 0 {
		bx.access.Store(nil)
	} else {
		bx.access.Store(&entries)
	}
	var st step
	if bx.durable {
		st.add(c.b.st.PutMailbox(bx.def()))
	}
	bx.mu.Unlock()
	c.b.log.Info("mailbox access changed", "mailbox", bx.name, "pattern", pattern, "perms", permText(perms),
		"by", c.ident.Name, "uid", c.ident.UID)
	var r completions
	c.b.after(&r, st, func(err error) {
		if err != nil {
			code, text := storageError(fmt.Sprintf("acl %q", bx.name), err)
			c.replyErr(hd, code, text)
			return
		}
		c.replyEmpty(hd)
	})
	r.run()
}

// accessExt is bx's MailboxInfo ext tail: OWNER for an owner without a
// uid, one ACCESS per entry; nil for a Unix-owned mailbox without entries.
func (bx *box) accessExt() []byte {
	var b []byte
	if bx.ownerKind != KindUnix {
		b = wire.AppendMailboxOwner(b, uint8(bx.ownerKind), bx.ownerName)
	}
	if a := bx.access.Load(); a != nil {
		for _, e := range *a {
			b = wire.AppendAccess(b, wire.AccessEntry{Perms: e.Perms, Pattern: e.Pattern})
		}
	}
	return b
}

// permText is perms as "rw", "r-", "-w".
func permText(perms uint8) string {
	b := []byte("--")
	if perms&wire.PermRead != 0 {
		b[0] = 'r'
	}
	if perms&wire.PermWrite != 0 {
		b[1] = 'w'
	}
	return string(b)
}
