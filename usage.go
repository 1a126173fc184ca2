package postbox

import (
	"context"
	"fmt"

	"github.com/postbox-ipc/postbox/wire"
)

// Usage is what one uid holds of the broker against its quotas (a
// broker's per-user quotas; see `postbox usage`).
type Usage struct {
	// Anonymous: the bucket shared by principals without a uid (TCP
	// without TLS); UID is then 0.
	Anonymous bool
	UID       uint32
	// Principal is a TLS principal's name when the bucket is its own
	// (UID is then 0).
	Principal string
	// Used is what the uid holds now; Quota its bounds, Unlimited (-1)
	// where there is none.
	Used, Quota UsageCounts
}

// UsageCounts are the four things a uid's quota bounds.
type UsageCounts struct {
	Connections int64 // open connections
	Mailboxes   int64 // named mailboxes it created
	QueuedBytes int64 // bytes of messages it sent that mailboxes still hold
	Leases      int64 // deliveries it holds unsettled
}

// Unlimited is a quota that bounds nothing.
const Unlimited = -1

// Usage returns the broker's per-uid usage: every uid's (uids in order,
// then the anonymous bucket, then TLS principals' by name) when the
// caller is root, else only the caller's own (a TLS client's: its
// principal's).
func (c *Client) Usage(ctx context.Context) ([]Usage, error) {
	return c.usage(ctx, wire.Usage{})
}

// UsageOf returns uid's usage. Only root may ask for another uid's: for
// anyone else that is ErrPermission.
func (c *Client) UsageOf(ctx context.Context, uid uint32) (Usage, error) {
	us, err := c.usage(ctx, wire.Usage{Filter: true, UID: uid})
	if err != nil {
		return Usage{}, err
	}
	if len(us) != 1 {
		return Usage{}, fmt.Errorf("%w: USAGE reply has %d entries for one uid", ErrMalformed, len(us))
	}
	return us[0], nil
}

func (c *Client) usage(ctx context.Context, req wire.Usage) ([]Usage, error) {
	p, err := c.roundTrip(ctx, wire.OpUsage, 0, req.Append)
	if err != nil {
		return nil, err
	}
	var rep wire.UsageReply
	if err := rep.Decode(p); err != nil {
		return nil, fmt.Errorf("%w: USAGE reply", ErrMalformed)
	}
	pus, err := wire.PrincipalUsages(rep.Ext)
	if err != nil {
		return nil, fmt.Errorf("%w: USAGE reply's principal buckets", ErrMalformed)
	}
	out := make([]Usage, 0, len(rep.Entries)+len(pus))
	for _, e := range rep.Entries {
		out = append(out, Usage{Anonymous: e.Anonymous, UID: e.UID, Used: usageCounts(e.Used), Quota: usageCounts(e.Quota)})
	}
	for _, u := range pus {
		out = append(out, Usage{Principal: string(u.Name), Used: usageCounts(u.Used), Quota: usageCounts(u.Quota)})
	}
	return out, nil
}

func usageCounts(c wire.UsageCounts) UsageCounts {
	return UsageCounts{Connections: c.Connections, Mailboxes: c.Mailboxes, QueuedBytes: c.Bytes, Leases: c.Leases}
}
