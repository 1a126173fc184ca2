package postbox

import (
	"context"
	"fmt"

	"github.com/postbox-ipc/postbox/wire"
)

// Groups and broadcast (PROTOCOL.md 8.21).
//
// A group is named "#name" (name as for a mailbox). Its members are
// endpoints, which receive through their inbox (Client.Inbox), and named
// mailboxes. A send to the group gives every member a copy; it never
// waits: a member that is full gets no copy (its DROPPED counts it). An
// endpoint's memberships last as long as its connection (a client that
// reconnects joins again); a mailbox's until it leaves or is destroyed.

// Join makes this client's endpoint a member of group ("#name"): what is
// sent to the group arrives in its inbox. Joining twice is no error.
func (c *Client) Join(ctx context.Context, group string) error {
	return c.join(ctx, group, "", 0)
}

// Leave takes this client's endpoint out of group. Leaving a group one is
// not in is no error.
func (c *Client) Leave(ctx context.Context, group string) error {
	return c.join(ctx, group, "", wire.FlagLeave)
}

// JoinMailbox makes the mailbox a member of group: copies sent to the
// group are queued there. It needs receive permission on the mailbox.
func (c *Client) JoinMailbox(ctx context.Context, group, mailbox string) error {
	return c.join(ctx, group, mailbox, 0)
}

// LeaveMailbox takes the mailbox out of group.
func (c *Client) LeaveMailbox(ctx context.Context, group, mailbox string) error {
	return c.join(ctx, group, mailbox, wire.FlagLeave)
}

func (c *Client) join(ctx context.Context, group, mailbox string, flags uint8) error {
	verb := "join"
	if flags&wire.FlagLeave != 0 {
		verb = "leave"
	}
	if !wire.ValidGroup(group) {
		return fmt.Errorf("%w: %s %q: a group is # and a mailbox name", ErrInvalid, verb, group)
	}
	req := wire.Join{Group: []byte(group), Mailbox: []byte(mailbox)}
	if _, err := c.roundTrip(ctx, wire.OpJoin, flags, req.Append); err != nil {
		return fmt.Errorf("%s %q: %w", verb, group, err)
	}
	return nil
}

// Multicast sends body to every member of group and returns how many got
// it. A group with no members is no error: 0 received it. Options: Type,
// Priority and the header options; Receipt is refused (ErrInvalid), and
// NoWait changes nothing (a multicast never waits).
func (c *Client) Multicast(ctx context.Context, group string, body []byte, opts ...SendOption) (int, error) {
	if !wire.ValidGroup(group) {
		return 0, fmt.Errorf("%w: send to %q: a group is # and a mailbox name", ErrInvalid, group)
	}
	return c.fanOut(ctx, group, body, opts)
}

// Broadcast sends body to the inbox of every other endpoint connected to
// the broker and returns how many got it. Only root and the broker's
// broadcast owner (postbox serve --broadcast-owner) may: ErrPermission
// for anyone else. Options as for Multicast.
func (c *Client) Broadcast(ctx context.Context, body []byte, opts ...SendOption) (int, error) {
	return c.fanOut(ctx, wire.Broadcast, body, opts)
}

func (c *Client) fanOut(ctx context.Context, target string, body []byte, opts []SendOption) (int, error) {
	o := sendDefaults(opts)
	switch {
	case o.typ < 1:
		return 0, fmt.Errorf("%w: send to %q: message type must be at least 1", ErrInvalid, target)
	case o.receipt:
		return 0, fmt.Errorf("%w: send to %q: a receipt names one receiver; a group has many", ErrInvalid, target)
	}
	var hdr []byte
	if !o.hdr.empty() {
		var err error
		if hdr, err = appendHeaders(nil, &o.hdr); err != nil {
			return 0, fmt.Errorf("send to %q: %w", target, err)
		}
	}
	cl := c.conn().NewCall()
	msgs := [1]wire.SendMsg{{Type: o.typ, Priority: o.priority, Headers: hdr, Body: body}}
	req := wire.Send{Target: []byte(target), Timeout: timeoutOf(ctx, o.nowait), Msgs: msgs[:]}
	if _, err := c.start(ctx, cl, wire.OpSend, 0, req.Append); err != nil {
		c.conn().Release(cl)
		return 0, err
	}
	err := c.wait(ctx, cl, wire.OpSend, target)
	n, _, rerr := wire.Recipients(cl.Send.Ext)
	c.conn().Release(cl)
	if err != nil {
		return 0, err
	}
	if rerr != nil {
		return 0, fmt.Errorf("%w: send to %q: RECIPIENTS: %v", ErrMalformed, target, rerr)
	}
	return int(n), nil
}
