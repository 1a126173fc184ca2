package broker

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/postbox-ipc/postbox/mailbox"
)

var (
	uid1000 = mailbox.Identity{Kind: uint8(KindUnix), UID: 1000, Endpoint: 1}
	uid1001 = mailbox.Identity{Kind: uint8(KindUnix), UID: 1001, Endpoint: 2}
	rootID  = mailbox.Identity{Kind: uint8(KindUnix), UID: 0, Endpoint: 3}
	anonA   = mailbox.Identity{Kind: uint8(KindNone), UID: 0, Endpoint: 4}
	anonB   = mailbox.Identity{Kind: uint8(KindNone), UID: 1000, Endpoint: 5} // a uid that means nothing
)

const inf = math.MaxInt64

func TestQuotaLimitsResolveBuiltinsDefaultsAndOverrides(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Quotas
		who  account
		want QuotaLimits
	}{
		{"built-ins: bytes are a quarter of the broker's", Quotas{}, account{uid: 1000}, QuotaLimits{256, 1024, 1 << 28, 65536}},
		{"root is unlimited", Quotas{}, account{uid: 0}, QuotaLimits{inf, inf, inf, inf}},
		{"anonymous has the defaults", Quotas{}, account{anon: true}, QuotaLimits{256, 1024, 1 << 28, 65536}},
		{"configured defaults replace built-ins field by field", Quotas{QuotaLimits: QuotaLimits{Connections: 4, QueuedBytes: 100}},
			account{uid: 7}, QuotaLimits{4, 1024, 100, 65536}},
		{"configured defaults do not bind root", Quotas{QuotaLimits: QuotaLimits{Connections: 4}}, account{uid: 0}, QuotaLimits{inf, inf, inf, inf}},
		{"a uid's override wins", Quotas{QuotaLimits: QuotaLimits{Connections: 4}, UID: map[string]QuotaLimits{"7": {Connections: 9, Leases: -1}}},
			account{uid: 7}, QuotaLimits{9, 1024, 1 << 28, inf}},
		{"an override binds root", Quotas{UID: map[string]QuotaLimits{"0": {Mailboxes: 3}}}, account{uid: 0}, QuotaLimits{inf, 3, inf, inf}},
		{"another uid's override does not apply", Quotas{UID: map[string]QuotaLimits{"7": {Connections: 9}}}, account{uid: 8}, QuotaLimits{256, 1024, 1 << 28, 65536}},
		{"anonymous override", Quotas{UID: map[string]QuotaLimits{"anonymous": {Connections: 2}}}, account{anon: true}, QuotaLimits{2, 1024, 1 << 28, 65536}},
		{"-1 default is unlimited", Quotas{QuotaLimits: QuotaLimits{Mailboxes: -1}}, account{uid: 7}, QuotaLimits{256, inf, 1 << 28, 65536}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := newQuotaTable(tc.cfg, 1<<30).limits(tc.who); got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestQuotaPrincipalsWithoutUIDShareTheAnonymousBucket(t *testing.T) {
	q := newQuotaTable(Quotas{}, 1<<30)
	if q.of(anonA) != q.of(anonB) {
		t.Fatal("two principals of kind none have different buckets")
	}
	if q.of(anonB) == q.of(uid1000) {
		t.Fatal("kind none with uid 1000 shares uid 1000's bucket")
	}
	if q.of(mailbox.Identity{Kind: uint8(KindTLS), UID: 5}) != q.of(anonA) {
		t.Fatal("a TLS principal (no uid yet) is not anonymous")
	}
}

// Each step is an operation on one identity's bucket and the outcome.
type quotaStep struct {
	who  mailbox.Identity
	op   string // conn, unconn, box, unbox, fits N, charge N, lease, unlease
	n    int64
	fail string // the refusal's text, "" for none
}

func TestQuotaCountersRefuseTheOffenderOnly(t *testing.T) {
	cfg := Quotas{QuotaLimits: QuotaLimits{Connections: 2, Mailboxes: 1, QueuedBytes: 100, Leases: 2}}
	for _, tc := range []struct {
		name  string
		steps []quotaStep
	}{
		{"the N+1th connection is refused, others' are not", []quotaStep{
			{who: uid1000, op: "conn"}, {who: uid1000, op: "conn"},
			{who: uid1000, op: "conn", fail: "uid 1000 holds 2 connections, its quota"},
			{who: uid1001, op: "conn"}, {who: rootID, op: "conn"}, {who: rootID, op: "conn"}, {who: rootID, op: "conn"},
			{who: uid1000, op: "unconn"}, {who: uid1000, op: "conn"},
		}},
		{"mailboxes", []quotaStep{
			{who: uid1000, op: "box"}, {who: uid1000, op: "box", fail: "uid 1000 holds 1 mailboxes, its quota"},
			{who: uid1001, op: "box"}, {who: uid1000, op: "unbox"}, {who: uid1000, op: "box"},
		}},
		{"queued bytes are charged as held and released", []quotaStep{
			{who: uid1000, op: "fits", n: 100}, {who: uid1000, op: "charge", n: 60},
			{who: uid1000, op: "fits", n: 40}, {who: uid1000, op: "fits", n: 41, fail: "uid 1000 holds 60 bytes of queued messages, its quota"},
			{who: uid1001, op: "fits", n: 100}, {who: anonA, op: "fits", n: 100},
			{who: uid1000, op: "charge", n: -60}, {who: uid1000, op: "fits", n: 100},
		}},
		{"anonymous principals fill one bucket together", []quotaStep{
			{who: anonA, op: "charge", n: 70}, {who: anonB, op: "fits", n: 31, fail: "anonymous holds 70 bytes of queued messages, its quota"},
			{who: uid1000, op: "fits", n: 100},
		}},
		{"leases stall at the quota until settled", []quotaStep{
			{who: uid1000, op: "lease"}, {who: uid1000, op: "lease"},
			{who: uid1000, op: "lease", fail: "uid 1000 holds 2 leases, its quota"},
			{who: uid1001, op: "lease"}, {who: uid1000, op: "unlease"}, {who: uid1000, op: "lease"},
		}},
		{"root is never refused", []quotaStep{
			{who: rootID, op: "charge", n: 1 << 40}, {who: rootID, op: "fits", n: 1 << 40},
			{who: rootID, op: "box"}, {who: rootID, op: "box"}, {who: rootID, op: "lease"}, {who: rootID, op: "lease"}, {who: rootID, op: "lease"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := newQuotaTable(cfg, 1<<30)
			for i, s := range tc.steps {
				u := q.of(s.who)
				var err error
				switch s.op {
				case "conn":
					err = u.admitConn()
				case "unconn":
					u.releaseConn(0)
				case "box":
					err = u.admitMailbox()
				case "unbox":
					u.releaseMailbox()
				case "fits":
					err = u.fits(s.n)
				case "charge":
					q.charge(s.who, s.n)
				case "lease":
					if err = u.leaseRoom(); err == nil {
						u.leased(1)
					}
				case "unlease":
					u.leased(-1)
				}
				var qe *QuotaError
				switch {
				case s.fail == "" && err != nil:
					t.Fatalf("step %d %s: %v", i, s.op, err)
				case s.fail != "" && (err == nil || err.Error() != s.fail || !errors.As(err, &qe)):
					t.Fatalf("step %d %s: %v, want %q", i, s.op, err, s.fail)
				}
			}
		})
	}
}

func TestQuotaConnectionReleaseReturnsItsLeases(t *testing.T) {
	q := newQuotaTable(Quotas{}, 1<<30)
	u := q.of(uid1000)
	u.admitConn()
	u.leased(3)
	u.releaseConn(3)
	if e := q.snapshot(nil)[0]; e.Used != (QuotaLimits{}) {
		t.Fatalf("after the connection: %+v", e.Used)
	}
}

func TestQuotaOwnedMailboxesAreReleasedOnceOnDestroy(t *testing.T) {
	q := newQuotaTable(Quotas{QuotaLimits: QuotaLimits{Mailboxes: 1}}, 1<<30)
	a, b := &box{}, &box{}
	if err := q.own(a, uid1000); err != nil {
		t.Fatal(err)
	}
	if err := q.own(b, uid1000); err == nil {
		t.Fatal("second mailbox admitted past a quota of 1")
	}
	q.disown(b) // never owned: no change
	q.disown(a)
	q.disown(a) // twice: once
	if n := q.of(uid1000).boxes.Load(); n != 0 {
		t.Fatalf("%d mailboxes held after destroy", n)
	}
	// Recovered mailboxes (no endpoint) are counted past the quota.
	q.own(a, mailbox.Identity{Kind: uint8(KindUnix), UID: 1000})
	q.own(b, mailbox.Identity{Kind: uint8(KindUnix), UID: 1000})
	if n := q.of(uid1000).boxes.Load(); n != 2 {
		t.Fatalf("recovered: %d, want 2", n)
	}
}

func TestQuotaSnapshotListsUIDsInOrderThenAnonymous(t *testing.T) {
	q := newQuotaTable(Quotas{}, 1<<30)
	for _, id := range []mailbox.Identity{anonA, uid1001, rootID, uid1000} {
		q.charge(id, 1)
	}
	es := q.snapshot(nil)
	var got []string
	for _, e := range es {
		got = append(got, account{anon: e.Anonymous, uid: e.UID}.String())
	}
	if want := []string{"uid 0", "uid 1000", "uid 1001", "anonymous"}; len(got) != 4 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] || got[3] != want[3] {
		t.Fatalf("order %v, want %v", got, want)
	}
	if es[0].Quota != (QuotaLimits{Unlimited, Unlimited, Unlimited, Unlimited}) {
		t.Fatalf("root's quota %+v, want unlimited (-1)", es[0].Quota)
	}
	only := account{uid: 1001}
	if es := q.snapshot(&only); len(es) != 1 || es[0].UID != 1001 || es[0].Used.QueuedBytes != 1 {
		t.Fatalf("filtered: %+v", es)
	}
}

func TestQuotaConfigValidateNamesTheField(t *testing.T) {
	for _, tc := range []struct {
		q    Quotas
		want string
	}{
		{Quotas{QuotaLimits: QuotaLimits{Leases: -2}}, "quotas.leases = -2"},
		{Quotas{UID: map[string]QuotaLimits{"bob": {}}}, `quotas.uid["bob"]`},
		{Quotas{UID: map[string]QuotaLimits{"1000": {QueuedBytes: -5}}}, `quotas.uid["1000"].queued_bytes = -5`},
	} {
		err := tc.q.validate()
		if err == nil || !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%+v: %v, want %q", tc.q, err, tc.want)
		}
	}
	if err := (&Quotas{UID: map[string]QuotaLimits{"anonymous": {Connections: -1}, "0": {}}}).validate(); err != nil {
		t.Fatal(err)
	}
}

func TestQuotaLeaserStallsAtTheQuotaAndWakeNamesTheMailboxesOnce(t *testing.T) {
	q := newQuotaTable(Quotas{QuotaLimits: QuotaLimits{Leases: 2}}, 1<<30)
	a, b := &box{}, &box{}
	la, lb := q.leaser(a), q.leaser(b)
	for i, want := range []bool{true, true, false} {
		if got := la(uid1000); got != want {
			t.Fatalf("lease %d in a: %v, want %v", i, got, want)
		}
	}
	if !lb(uid1001) {
		t.Fatal("another uid stalled by uid 1000's quota")
	}
	if lb(uid1000) {
		t.Fatal("lease past the quota in another mailbox")
	}
	if got := q.wake(uid1000); got != nil {
		t.Fatalf("wake while still at the quota: %v", got)
	}
	q.of(uid1000).leased(-1) // settled one
	if got := q.wake(uid1000); len(got) != 2 {
		t.Fatalf("wake: %d mailboxes, want a and b", len(got))
	}
	if got := q.wake(uid1000); len(got) != 0 {
		t.Fatalf("second wake: %d mailboxes, want none", len(got))
	}
	if !lb(uid1000) || lb(uid1000) {
		t.Fatal("after settling one: want exactly one more lease")
	}
}
