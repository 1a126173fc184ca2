package postbox

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/postbox-ipc/postbox/wire"
)

// Publish/subscribe.
//
// Publish sends a publication to a subject: dot-separated tokens such as
// "orders.eu.created". Every subscription whose pattern matches gets a
// copy (Subscribe: "*" matches one token, ">" the rest, as NATS has
// them); the members of a queue group share one copy. A subscription's
// buffer is bounded, and its policy says what a publication does when it
// finds the buffer full: PolicyBlock makes Publish wait, PolicyDropOldest
// and PolicyDropNewest drop and count (the next Event's Missed says how
// many), PolicyDisconnect ends the subscription with ErrLimit. Bind routes
// a pattern into a mailbox, so publications wait there (durably, if the
// mailbox is) for a receiver that is not running yet. Claim gives a
// pattern an owner and a mode, as a mailbox has: w may publish, r may
// subscribe. Subjects under "$SYS." carry the broker's own events.

// PublishOption configures Publish: Type, ContentType, WithHeader.
type PublishOption interface{ applyPublish(*publishOptions) }

type publishOptions struct {
	typ int64
	hdr outHeaders
}

func (t typeOption) applyPublish(o *publishOptions) { o.typ = int64(t) }
func (f anyHeader) applyPublish(o *publishOptions)  { f(&o.hdr) }

// Publish publishes body to subject and returns how many subscriptions
// (a queue group counts once) and bindings took it. With a subscriber
// of policy PolicyBlock whose buffer is full it waits, until ctx ends
// (ErrTimeout at its deadline; the subscribers with room have the
// publication, the full ones do not). Options: Type (default 1),
// ContentType, WithHeader. Errors: ErrInvalid (a subject that is not
// valid, or under "$SYS."), ErrPermission (a claim denies w),
// ErrTooLarge.
func (c *Client) Publish(ctx context.Context, subject string, body []byte, opts ...PublishOption) (int, error) {
	o := publishOptions{typ: 1}
	for _, op := range opts {
		op.applyPublish(&o)
	}
	if o.typ < 1 {
		return 0, fmt.Errorf("%w: publish to %q: message type must be at least 1", ErrInvalid, subject)
	}
	var hdr []byte
	if !o.hdr.empty() {
		var err error
		if hdr, err = appendHeaders(nil, &o.hdr); err != nil {
			return 0, fmt.Errorf("publish to %q: %w", subject, err)
		}
	}
	req := wire.Publish{Subject: []byte(subject), Timeout: timeoutOf(ctx, false), Type: o.typ, Headers: hdr, Body: body}
	p, err := c.roundTrip(ctx, wire.OpPublish, 0, req.Append)
	if err != nil {
		return 0, fmt.Errorf("publish to %q: %w", subject, err)
	}
	var rep wire.PublishReply
	if err := rep.Decode(p); err != nil {
		return 0, fmt.Errorf("publish to %q: reply: %w", subject, ErrMalformed)
	}
	return int(rep.Matched), nil
}

// Bind binds pattern to the mailbox: from now on every publication whose
// subject matches is also sent into it, as a best-effort SEND from the
// publisher would be (admitted at once, or dropped and counted in the
// mailbox's Dropped when it is full). The binding lasts as long as the
// mailbox; a durable mailbox's bindings survive a broker restart. It
// needs w on the mailbox and r on every claim the pattern reaches.
func (c *Client) Bind(ctx context.Context, pattern, mailbox string) error {
	return c.bind(ctx, pattern, mailbox, 0)
}

// Unbind removes a binding made by Bind (ErrNotFound if there is none).
func (c *Client) Unbind(ctx context.Context, pattern, mailbox string) error {
	return c.bind(ctx, pattern, mailbox, wire.FlagUnbind)
}

func (c *Client) bind(ctx context.Context, pattern, mailbox string, flags uint8) error {
	req := wire.Bind{Pattern: []byte(pattern), Mailbox: []byte(mailbox)}
	if _, err := c.roundTrip(ctx, wire.OpBind, flags, req.Append); err != nil {
		verb := "bind"
		if flags != 0 {
			verb = "unbind"
		}
		return fmt.Errorf("%s %q to %q: %w", verb, pattern, mailbox, err)
	}
	return nil
}

// Claim makes this client's user the owner of the subjects pattern
// matches, with mode's bits as for a file: w = may publish, r = may
// subscribe (the owner, group and other triples). A subject with no claim
// is open to everyone; under claims the most specific one decides. A
// claim that overlaps another user's is ErrPermission (root may claim
// anything). Claiming one's own pattern again changes its mode.
func (c *Client) Claim(ctx context.Context, pattern string, mode os.FileMode) error {
	req := wire.Claim{Pattern: []byte(pattern), Action: wire.ClaimSet, Mode: uint32(mode.Perm())}
	if _, err := c.roundTrip(ctx, wire.OpClaim, 0, req.Append); err != nil {
		return fmt.Errorf("claim %q: %w", pattern, err)
	}
	return nil
}

// ReleaseClaim releases this user's claim on pattern (ErrNotFound if it
// holds none).
func (c *Client) ReleaseClaim(ctx context.Context, pattern string) error {
	req := wire.Claim{Pattern: []byte(pattern), Action: wire.ClaimRelease}
	if _, err := c.roundTrip(ctx, wire.OpClaim, 0, req.Append); err != nil {
		return fmt.Errorf("release claim %q: %w", pattern, err)
	}
	return nil
}

// SubjectStat is one subscribed pattern as Topics reports it.
type SubjectStat struct {
	Pattern     string
	Subscribers int    // subscriptions with this pattern
	Queues      int    // queue groups among them
	Delivered   uint64 // events handed to them
	Dropped     uint64 // publications they dropped
}

// Binding is a pattern bound to a mailbox.
type Binding struct{ Pattern, Mailbox string }

// ClaimInfo is a claimed pattern: its owner and mode.
type ClaimInfo struct {
	Pattern  string
	UID, GID uint32
	Mode     os.FileMode
}

// TopicsInfo is what the broker reports about publish/subscribe.
type TopicsInfo struct {
	Subjects []SubjectStat
	Bindings []Binding
	Claims   []ClaimInfo
}

// Topics lists the subscribed patterns with their counts, the bindings
// and the claims.
func (c *Client) Topics(ctx context.Context) (TopicsInfo, error) {
	p, err := c.roundTrip(ctx, wire.OpTopics, 0, func(b []byte) []byte { return b })
	if err != nil {
		return TopicsInfo{}, fmt.Errorf("topics: %w", err)
	}
	var rep wire.TopicsReply
	if err := rep.Decode(p); err != nil {
		return TopicsInfo{}, fmt.Errorf("topics: reply: %w", ErrMalformed)
	}
	var out TopicsInfo
	for _, s := range rep.Subjects {
		out.Subjects = append(out.Subjects, SubjectStat{string(s.Pattern), int(s.Subscribers), int(s.Queues), s.Delivered, s.Dropped})
	}
	for _, b := range rep.Bindings {
		out.Bindings = append(out.Bindings, Binding{string(b.Pattern), string(b.Mailbox)})
	}
	for _, cl := range rep.Claims {
		out.Claims = append(out.Claims, ClaimInfo{string(cl.Pattern), cl.UID, cl.GID, os.FileMode(cl.Mode)})
	}
	return out, nil
}

// Event is one publication received by a Subscription.
type Event struct {
	Subject string
	Type    int64
	// Sender is the publishing process, as the broker established it;
	// SentAt is when the broker took the publication.
	Sender Identity
	SentAt time.Time
	Body   []byte
	// Missed is how many publications this subscription dropped (its
	// buffer was full) just before this one: a gap notice. An Event with
	// Gap set carries nothing else. A reconnecting client's subscription
	// (WithReconnect) returns one with Gap set and Missed 0 after each
	// reconnect: publications made while it was disconnected did not
	// reach it, and how many is not known.
	Missed uint64
	Gap    bool

	hdr *messageHeaders
}

// ContentType returns the CONTENT_TYPE header.
func (e *Event) ContentType() string {
	if e.hdr == nil {
		return ""
	}
	return e.hdr.contentType
}

// Header returns the user headers (nil if none).
func (e *Event) Header() Header {
	if e.hdr == nil {
		return nil
	}
	return e.hdr.user
}
