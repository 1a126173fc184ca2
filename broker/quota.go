package broker

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/postbox-ipc/postbox/mailbox"
	"github.com/postbox-ipc/postbox/wire"
)

// Per-user quotas, in the manner of dbus-broker: every uid has its own
// bounds on what it may hold of the broker, so one user who floods or
// hoards is refused before anyone else is, and the broker-wide limits
// (Limits) stay the last resort.
//
// What is charged to whom:
//
//   - connections: to the uid of the connection's principal, from HELLO
//     (admitted) until its cleanup;
//   - mailboxes: to the uid that created a named mailbox, until it is
//     destroyed (endpoints' inboxes are not counted: they come with the
//     connection);
//   - queued bytes: to the uid that sent a message (its Sender), while a
//     mailbox holds it: queued, leased or waiting to enter. Released when
//     it is acked, auto-acked, withdrawn, expired, dropped or destroyed.
//     A dead letter moved to a dead-letter mailbox keeps its Sender, so it
//     stays charged to the original sender (who caused it to be held);
//   - leases: to the uid of the connection holding them, from delivery
//     (taken by the mailbox core through mailbox.Config.TryLease, which
//     passes over a receiver whose uid is at its quota) until ACK, NACK
//     or the connection's end (a lease of a destroyed mailbox counts
//     until it is settled, stale, or the connection ends). A stalled
//     mailbox is remembered per bucket and retried when the bucket
//     settles leases (wake, Broker.retryStalled).
//
// A TLS principal has its own bucket, keyed by its name (Principal.Name),
// with the same defaults as a uid and overrides in Quotas.Principal.
// Principals without a uid or a name (KindNone) share one bucket,
// "anonymous". Buckets are created on first use and kept for the
// broker's lifetime (one per uid that ever connected or sent).
//
// The table is a deterministic core: no I/O, no clock, no callbacks. Its
// counters are atomics in buckets found without a lock (sync.Map), so a
// charge taken under a mailbox lock (mailbox.Config.Charge) is a leaf.

// QuotaLimits are one uid's bounds. In configuration 0 means "inherit"
// (the defaults, then the built-in value) and -1 means unlimited.
type QuotaLimits struct {
	Connections int64 `json:"connections,omitempty"`
	Mailboxes   int64 `json:"mailboxes,omitempty"`
	QueuedBytes int64 `json:"queued_bytes,omitempty"`
	Leases      int64 `json:"leases,omitempty"`
}

// Built-in per-uid defaults: generous for a single-user machine, but no
// one uid can take the whole broker. The queued-bytes default is a
// quarter of Limits.MaxQueuedBytes.
const (
	DefaultQuotaConnections = 256
	DefaultQuotaMailboxes   = 1024
	DefaultQuotaLeases      = 65536
)

// Unlimited is the QuotaLimits value that bounds nothing.
const Unlimited = -1

// quotaAnonymous is the bucket name (and Quotas.UID key) of principals
// without a uid.
const quotaAnonymous = "anonymous"

// account names a bucket: a uid, a TLS principal's name, or the
// anonymous bucket.
type account struct {
	anon bool
	uid  uint32
	name string // a TLS principal's (uid 0, anon false)
}

func accountOf(id mailbox.Identity) account {
	switch PrincipalKind(id.Kind) {
	case KindUnix:
		return account{uid: id.UID}
	case KindTLS:
		if id.Name != "" {
			return account{name: id.Name}
		}
	}
	return account{anon: true}
}

func (a account) String() string {
	switch {
	case a.anon:
		return quotaAnonymous
	case a.name != "":
		return "principal " + strconv.Quote(a.name)
	}
	return "uid " + strconv.FormatUint(uint64(a.uid), 10)
}

func (a account) key() string {
	if a.anon {
		return quotaAnonymous
	}
	return strconv.FormatUint(uint64(a.uid), 10)
}

// usage is one bucket's counters and its resolved bounds (math.MaxInt64
// for unlimited).
type usage struct {
	acct                    account
	max                     QuotaLimits
	conns, boxes, bytes, ls atomic.Int64
}

// quotaTable is every bucket. Its methods are safe for concurrent use.
type quotaTable struct {
	cfg         Quotas
	queuedLimit int64 // Limits.MaxQueuedBytes at creation, for the bytes default

	// by is the buckets (account → *usage), read on every message
	// (lock-free once a bucket exists) and added to on first use.
	by sync.Map
	// uids caches Unix uids' buckets by uid modulo its size: the lookup
	// taken on every charge and lease is then an atomic load and a
	// compare, not an account hashed through an interface into by (that
	// was 15 % of the broker's CPU at 64 B). Buckets are never removed
	// from by, so a cached one stays right; a collision only costs the
	// slow path.
	uids [64]atomic.Pointer[usage]

	mu    sync.Mutex      // guards owned, stalled
	owned map[*box]*usage // named mailboxes and whom they are charged to
	// stalled: per bucket, the mailboxes where TryLease refused one of its
	// receivers, to Retry once it settles leases.
	stalled map[*usage]map[*box]struct{}
}

func newQuotaTable(q Quotas, maxQueued int64) *quotaTable {
	return &quotaTable{cfg: q, queuedLimit: maxQueued, owned: make(map[*box]*usage),
		stalled: make(map[*usage]map[*box]struct{})}
}

// of is the bucket of the principal id.
func (t *quotaTable) of(id mailbox.Identity) *usage { return t.get(accountOf(id)) }

// limits resolves a's bounds: built-ins (root unlimited), then the
// configured defaults (not for root), then a's own override.
func (t *quotaTable) limits(a account) QuotaLimits {
	l := QuotaLimits{DefaultQuotaConnections, DefaultQuotaMailboxes, max(1, t.queuedLimit/4), DefaultQuotaLeases}
	if !a.anon && a.name == "" && a.uid == 0 {
		l = QuotaLimits{Unlimited, Unlimited, Unlimited, Unlimited}
	} else {
		l = overlay(l, t.cfg.QuotaLimits)
	}
	if a.name != "" {
		if o, ok := t.cfg.Principal[a.name]; ok {
			l = overlay(l, o)
		}
	} else if o, ok := t.cfg.UID[a.key()]; ok {
		l = overlay(l, o)
	}
	for _, p := range []*int64{&l.Connections, &l.Mailboxes, &l.QueuedBytes, &l.Leases} {
		if *p < 0 {
			*p = math.MaxInt64
		}
	}
	return l
}

func overlay(l, o QuotaLimits) QuotaLimits {
	set := func(dst *int64, v int64) {
		if v != 0 {
			*dst = v
		}
	}
	set(&l.Connections, o.Connections)
	set(&l.Mailboxes, o.Mailboxes)
	set(&l.QueuedBytes, o.QueuedBytes)
	set(&l.Leases, o.Leases)
	return l
}

// get returns a's bucket, creating it.
func (t *quotaTable) get(a account) *usage {
	if a.anon || a.name != "" {
		return t.lookup(a)
	}
	slot := &t.uids[a.uid%uint32(len(t.uids))]
	if u := slot.Load(); u != nil && u.acct == a {
		return u
	}
	u := t.lookup(a)
	slot.Store(u)
	return u
}

// lookup is get without the uid cache.
func (t *quotaTable) lookup(a account) *usage {
	if u, ok := t.by.Load(a); ok {
		return u.(*usage)
	}
	u, _ := t.by.LoadOrStore(a, &usage{acct: a, max: t.limits(a)})
	return u.(*usage)
}

// QuotaError is a refusal by a uid's quota; the broker answers it with
// CodeLimit and its text.
type QuotaError struct {
	Account  string // "uid 1000", `principal "CN=alice"` or "anonymous"
	Resource string // "connections", "mailboxes", "bytes of queued messages", "leases"
	Held     int64
	Quota    int64
}

func (e *QuotaError) Error() string {
	return fmt.Sprintf("%s holds %d %s, its quota", e.Account, e.Held, e.Resource)
}

// take adds n to *ctr if that stays within max, else refuses, naming
// what. It is one compare-and-swap loop: concurrent takers never pass
// the quota together.
func (u *usage) take(ctr *atomic.Int64, n, max int64, what string) error {
	for {
		cur := ctr.Load()
		if cur+n > max {
			return &QuotaError{Account: u.acct.String(), Resource: what, Held: cur, Quota: max}
		}
		if ctr.CompareAndSwap(cur, cur+n) {
			return nil
		}
	}
}

// admitConn counts a connection, or refuses it.
func (u *usage) admitConn() error { return u.take(&u.conns, 1, u.max.Connections, "connections") }

// releaseConn ends a connection's charge, and its leases'.
func (u *usage) releaseConn(leases int) {
	u.conns.Add(-1)
	u.ls.Add(-int64(leases))
}

// admitMailbox counts a created mailbox, or refuses it.
func (u *usage) admitMailbox() error { return u.take(&u.boxes, 1, u.max.Mailboxes, "mailboxes") }

func (u *usage) releaseMailbox() { u.boxes.Add(-1) }

// fits says whether n more queued bytes stay within the quota. The bytes
// themselves are charged by the mailboxes as they hold them (charge), so
// concurrent sends of one uid to several mailboxes may pass the quota by
// a frame each, as for Limits.MaxQueuedBytes.
func (u *usage) fits(n int64) error {
	if cur := u.bytes.Load(); cur+n > u.max.QueuedBytes {
		return &QuotaError{Account: u.acct.String(), Resource: "bytes of queued messages", Held: cur, Quota: u.max.QueuedBytes}
	}
	return nil
}

// leaseRoom says whether the uid may take one more lease.
func (u *usage) leaseRoom() error {
	if cur := u.ls.Load(); cur >= u.max.Leases {
		return &QuotaError{Account: u.acct.String(), Resource: "leases", Held: cur, Quota: u.max.Leases}
	}
	return nil
}

// leased counts n leases taken (n > 0) or settled (n < 0).
func (u *usage) leased(n int) { u.ls.Add(int64(n)) }

// leaser is bx's mailbox.Config.TryLease: a lease is taken from the
// receiver's bucket if it has room; if not, bx is remembered as stalled
// for it (and retried by wake).
func (t *quotaTable) leaser(bx *box) func(mailbox.Identity) bool {
	return func(id mailbox.Identity) bool {
		u := t.of(id)
		registered := false
		for {
			cur := u.ls.Load()
			if cur < u.max.Leases {
				if u.ls.CompareAndSwap(cur, cur+1) {
					return true
				}
				continue
			}
			if registered {
				return false
			}
			// Registered before the count is read again: a settle that
			// makes room after that read finds bx in stalled (wake), so
			// no wake-up is lost; one that came before is seen here.
			t.mu.Lock()
			s := t.stalled[u]
			if s == nil {
				s = make(map[*box]struct{})
				t.stalled[u] = s
			}
			s[bx] = struct{}{}
			t.mu.Unlock()
			registered = true
		}
	}
}

// wake returns the mailboxes where id's receivers stalled, if its bucket
// has room for a lease again, and forgets them.
func (t *quotaTable) wake(id mailbox.Identity) []*box {
	u := t.of(id)
	if u.ls.Load() >= u.max.Leases {
		return nil
	}
	t.mu.Lock()
	s := t.stalled[u]
	delete(t.stalled, u)
	t.mu.Unlock()
	boxes := make([]*box, 0, len(s))
	for bx := range s {
		boxes = append(boxes, bx)
	}
	return boxes
}

// charge is mailbox.Config.Charge: bytes held for sender change by n.
func (t *quotaTable) charge(sender mailbox.Identity, n int64) {
	t.get(accountOf(sender)).bytes.Add(n)
}

// own charges bx to its creator, or refuses it. A recovered mailbox is
// counted even past the quota (its error is ignored).
func (t *quotaTable) own(bx *box, creator mailbox.Identity) error {
	u := t.of(creator)
	err := u.admitMailbox()
	if err != nil && creator.Endpoint != 0 {
		return err
	}
	if err != nil {
		u.boxes.Add(1)
	}
	t.mu.Lock()
	t.owned[bx] = u
	t.mu.Unlock()
	return nil
}

// disown ends bx's charge (destroyed, or never created). It may be
// called for a box that was never owned.
func (t *quotaTable) disown(bx *box) {
	t.mu.Lock()
	u := t.owned[bx]
	delete(t.owned, bx)
	t.mu.Unlock()
	if u != nil {
		u.releaseMailbox()
	}
}

// settled ends the charge of the leases an ACK or NACK named that id's
// connection held (boxes[i] non-nil: the lease was in its table).
func (t *quotaTable) settled(id mailbox.Identity, boxes []*box) {
	n := 0
	for _, bx := range boxes {
		if bx != nil {
			n++
		}
	}
	if n > 0 {
		t.of(id).leased(-n)
	}
}

// UsageEntry is one bucket's usage and quota (Broker.Usage, USAGE).
type UsageEntry struct {
	Anonymous bool
	UID       uint32
	Principal string      // a TLS principal's bucket: its name (UID 0)
	Used      QuotaLimits // what the bucket holds now
	Quota     QuotaLimits // its bounds; Unlimited where none
}

// snapshot lists the buckets, uids in order, then TLS principals by
// name, then anonymous; only a's if one is given.
func (t *quotaTable) snapshot(only *account) []UsageEntry {
	var us []*usage
	t.by.Range(func(k, v any) bool {
		if only == nil || *only == k.(account) {
			us = append(us, v.(*usage))
		}
		return true
	})
	sort.Slice(us, func(i, j int) bool {
		a, b := us[i].acct, us[j].acct
		if a.anon != b.anon {
			return b.anon
		}
		if (a.name != "") != (b.name != "") {
			return b.name != ""
		}
		if a.name != b.name {
			return a.name < b.name
		}
		return a.uid < b.uid
	})
	out := make([]UsageEntry, len(us))
	for i, u := range us {
		out[i] = t.entry(u)
	}
	return out
}

func (t *quotaTable) entry(u *usage) UsageEntry {
	q := u.max
	for _, p := range []*int64{&q.Connections, &q.Mailboxes, &q.QueuedBytes, &q.Leases} {
		if *p == math.MaxInt64 {
			*p = Unlimited
		}
	}
	return UsageEntry{Anonymous: u.acct.anon, UID: u.acct.uid, Principal: u.acct.name, Quota: q,
		Used: QuotaLimits{u.conns.Load(), u.boxes.Load(), u.bytes.Load(), u.ls.Load()}}
}

// zero is the entry of a bucket that holds nothing (and need not exist).
func (t *quotaTable) zero(a account) UsageEntry {
	u := usage{acct: a, max: t.limits(a)}
	return t.entry(&u)
}

// validate names the first bad quota setting.
func (q *Quotas) validate() error {
	check := func(where string, l QuotaLimits) error {
		for _, f := range []struct {
			name string
			v    int64
		}{{"connections", l.Connections}, {"mailboxes", l.Mailboxes}, {"queued_bytes", l.QueuedBytes}, {"leases", l.Leases}} {
			if f.v < -1 {
				return fmt.Errorf("%w: quotas%s.%s = %d: must be -1 (unlimited), 0 (default) or more", ErrConfig, where, f.name, f.v)
			}
		}
		return nil
	}
	if err := check("", q.QuotaLimits); err != nil {
		return err
	}
	for k, l := range q.UID {
		if k != quotaAnonymous {
			if _, err := strconv.ParseUint(k, 10, 32); err != nil {
				return fmt.Errorf("%w: quotas.uid[%q]: a key is a uid or %q", ErrConfig, k, quotaAnonymous)
			}
		}
		if err := check(fmt.Sprintf(".uid[%q]", k), l); err != nil {
			return err
		}
	}
	for k, l := range q.Principal {
		if k == "" {
			return fmt.Errorf("%w: quotas.principal: a key is a TLS principal's name, not empty", ErrConfig)
		}
		if err := check(fmt.Sprintf(".principal[%q]", k), l); err != nil {
			return err
		}
	}
	return nil
}

// The broker shell's hooks.

// admitQuota charges a connection being admitted at HELLO to its
// principal's uid, or answers the HELLO with LIMIT (closing the pidfd
// the credential function gave) and reports false.
func (b *Broker) admitQuota(c *conn, hd wire.Header, who Principal) bool {
	err := b.quota.of(mailbox.Identity{Kind: uint8(who.Kind), UID: who.UID, Name: who.Name()}).admitConn()
	if err == nil {
		return true
	}
	// The connection slot counted at accept is given back by cleanup.
	if who.PIDFD != nil {
		who.PIDFD.Close()
	}
	c.replyErr(hd, wire.CodeLimit, "HELLO: "+err.Error())
	return false
}

// releaseQuota ends an admitted connection's charge and that of the
// leases it still held (its cleanup returned them to their mailboxes).
func (b *Broker) releaseQuota(c *conn) {
	c.pmu.Lock()
	n := c.leases.len()
	c.pmu.Unlock()
	b.quota.of(c.ident).releaseConn(n)
	b.retryStalled(c.ident) // its other connections' receivers may lease again
}

// retryStalled serves again the receivers of id's uid that stalled on its
// lease quota, now that it settled some. It takes box locks: the caller
// holds none.
func (b *Broker) retryStalled(id mailbox.Identity) {
	for _, bx := range b.quota.wake(id) {
		var r completions
		bx.mu.Lock()
		before := bx.core.HeldBytes()
		bx.core.Retry()
		b.apply(bx, bx.core.Effects(), &r)
		b.account(bx, before)
		bx.mu.Unlock()
		r.run()
	}
}

// mayLease refuses, with LIMIT, a receive that cannot wait (timeout 0)
// and would take a lease while c's uid holds its quota of leases. A
// receive that may wait, and a consumer, is registered instead and
// stalls: the mailbox core passes it over (TryLease) until the uid
// settles some, and nobody else's deliveries are affected. It reports
// whether the receive may go on.
func (t *quotaTable) mayLease(c *conn, hd wire.Header, name string) bool {
	if err := t.of(c.ident).leaseRoom(); err != nil {
		c.replyErr(hd, wire.CodeLimit, fmt.Sprintf("receive from %q: %v; settle some first", name, err))
		return false
	}
	return true
}
