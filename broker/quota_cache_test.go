package broker

import (
	"sync"
	"testing"

	"github.com/postbox-ipc/postbox/mailbox"
)

// TestQuotaUIDCacheKeepsBucketsApart checks the uid cache in front of the
// bucket map: uids that share a cache slot, root, a TLS principal and the
// anonymous bucket each keep their own counters, and every lookup of one
// account returns the same bucket, also under concurrent lookups.
func TestQuotaUIDCacheKeepsBucketsApart(t *testing.T) {
	q := newQuotaTable(Quotas{}, 1<<30)
	slot := uint32(len(q.uids))
	ids := []mailbox.Identity{
		{Kind: uint8(KindUnix), UID: 7},
		{Kind: uint8(KindUnix), UID: 7 + slot}, // same slot as uid 7
		{Kind: uint8(KindUnix), UID: 7 + 2*slot},
		{Kind: uint8(KindUnix), UID: 0},
		{Kind: uint8(KindTLS), Name: "CN=alice"},
		{Kind: uint8(KindNone), UID: 7}, // anonymous, whatever its uid field says
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				for i, id := range ids {
					q.charge(id, int64(i+1))
				}
			}
		}()
	}
	wg.Wait()
	for i, id := range ids {
		u := q.of(id)
		if u != q.lookup(accountOf(id)) {
			t.Errorf("%v: the cached bucket is not the map's", id)
		}
		if got, want := u.bytes.Load(), int64(4000*(i+1)); got != want {
			t.Errorf("%v (%s): %d bytes charged, want %d", id, u.acct, got, want)
		}
	}
}
