package broker

import (
	"fmt"

	"github.com/postbox-ipc/postbox/mailbox"
	"github.com/postbox-ipc/postbox/wire"
)

// USAGE: what each uid and TLS principal holds against its quotas
// (quota.go), like `ipcs -u`. Root (a Unix principal with uid 0) sees
// every bucket, or the uid it names; anyone else sees only its own (a
// TLS principal: its name's; one without a uid or name: the anonymous
// bucket), and naming another uid is PERMISSION.

func (h *handler) doUsage(hd wire.Header, p []byte) {
	c := h.c
	var m wire.Usage
	if !h.decode(hd, p, &m) {
		return
	}
	own := accountOf(c.ident)
	root := !own.anon && own.name == "" && own.uid == 0
	var only *account
	switch {
	case m.Filter && (root || !own.anon && own.name == "" && m.UID == own.uid):
		only = &account{uid: m.UID}
	case m.Filter:
		c.replyErr(hd, wire.CodePermission, fmt.Sprintf("USAGE: permission denied: %s may see only its own usage", own))
		return
	case !root:
		only = &own
	}
	es := c.b.quota.snapshot(only)
	if only != nil && len(es) == 0 {
		// A bucket never used holds nothing; its quotas still apply.
		es = []UsageEntry{c.b.quota.zero(*only)}
	}
	// TLS principals' buckets go in the ext tail (PRINCIPAL_USAGE), after
	// the uid and anonymous entries: the entries have no room for a name.
	reply := wire.UsageReply{Entries: make([]wire.UsageEntry, 0, len(es))}
	for _, e := range es {
		if e.Principal != "" {
			reply.Ext = wire.AppendPrincipalUsage(reply.Ext, &wire.PrincipalUsage{Name: []byte(e.Principal),
				Used: wireCounts(e.Used), Quota: wireCounts(e.Quota)})
			continue
		}
		reply.Entries = append(reply.Entries, wire.UsageEntry{Anonymous: e.Anonymous, UID: e.UID, Used: wireCounts(e.Used), Quota: wireCounts(e.Quota)})
	}
	c.reply(replyHeader(hd, wire.OK), &reply)
}

func wireCounts(l QuotaLimits) wire.UsageCounts {
	return wire.UsageCounts{Connections: l.Connections, Mailboxes: l.Mailboxes, Bytes: l.QueuedBytes, Leases: l.Leases}
}

// Usage returns every bucket's usage and quotas: uids in order, then the
// anonymous bucket.
func (b *Broker) Usage() []UsageEntry { return b.quota.snapshot(nil) }

// UsageOf returns the usage and quotas of id's bucket.
func (b *Broker) UsageOf(id mailbox.Identity) UsageEntry {
	a := accountOf(id)
	if es := b.quota.snapshot(&a); len(es) == 1 {
		return es[0]
	}
	return b.quota.zero(a)
}
