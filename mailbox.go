package postbox

import (
	"context"
	"fmt"
	"iter"
	"os"
	"strconv"
	"time"

	"github.com/postbox-ipc/postbox/internal/mux"
	"github.com/postbox-ipc/postbox/wire"
)

// Mailbox is a handle on a named mailbox, or on an endpoint's inbox
// ("@<id>"). Making one costs nothing; the broker checks the name and the
// caller's permissions on each call. Its methods are safe for concurrent
// use.
type Mailbox struct {
	c    *Client
	name string
}

// Mailbox returns a handle on the mailbox called name.
func (c *Client) Mailbox(name string) *Mailbox { return &Mailbox{c: c, name: name} }

// Inbox returns this client's private inbox: anyone may send to it, only
// this client may receive from it. It lives as long as the connection.
func (c *Client) Inbox() *Mailbox { return c.Mailbox(InboxName(c.link().self.Endpoint)) }

// InboxName is the address of endpoint id's inbox.
func InboxName(id uint64) string { return "@" + strconv.FormatUint(id, 10) }

// Name returns the mailbox's name.
func (m *Mailbox) Name() string { return m.name }

// Create makes a mailbox owned by the caller's uid and gid. Options:
// Capacity (default unbounded), Mode (default 0600), Durable, MaxBytes,
// TTL, MaxDeliveries, DeadLetter, Service.
func (c *Client) Create(ctx context.Context, name string, opts ...CreateOption) (*Mailbox, error) {
	o := createDefaults(opts)
	req := wire.Create{Name: []byte(name), Capacity: o.capacity, Mode: o.mode, Durable: o.durable,
		MaxBytes: o.maxBytes, TTL: o.ttl, MaxDeliveries: o.maxDeliveries, Service: o.service,
		Cluster: o.cluster, Replicas: o.replicas}
	if o.hasDeadLetter {
		req.DeadLetter = []byte(o.deadLetter)
	}
	if _, err := c.roundTrip(ctx, wire.OpCreate, 0, req.Append); err != nil {
		return nil, err
	}
	return c.Mailbox(name), nil
}

// Destroy removes the mailbox. Blocked senders and receivers fail with
// ErrDestroyed. Only the owner or root may.
func (m *Mailbox) Destroy(ctx context.Context) error {
	req := wire.Name{Name: []byte(m.name)}
	_, err := m.c.roundTrip(ctx, wire.OpDestroy, 0, req.Append)
	return err
}

// Chmod changes the permission bits. Only the owner or root may.
func (m *Mailbox) Chmod(ctx context.Context, mode os.FileMode) error {
	req := wire.Chmod{Name: []byte(m.name), Mode: uint32(mode.Perm())}
	_, err := m.c.roundTrip(ctx, wire.OpChmod, 0, req.Append)
	return err
}

// Info is a mailbox's live state.
type Info struct {
	Name     string      `json:"name"`
	UID      uint32      `json:"uid"`
	GID      uint32      `json:"gid"`
	Mode     os.FileMode `json:"mode"`
	Capacity int64       `json:"capacity"`
	Durable  bool        `json:"durable"`
	Inbox    bool        `json:"inbox"`
	// Service: created with Service(), an RPC service's mailbox;
	// Consumers then counts its servers.
	Service        bool   `json:"service,omitempty"`
	Depth          uint64 `json:"depth"`
	Bytes          uint64 `json:"bytes"`
	Receivers      uint32 `json:"receivers"`
	Consumers      uint32 `json:"consumers"`
	InFlight       uint32 `json:"in_flight"`
	BlockedSenders uint32 `json:"blocked_senders"`
	Sent           uint64 `json:"sent"`
	Received       uint64 `json:"received"`
	Redelivered    uint64 `json:"redelivered"`
	DeadLettered   uint64 `json:"dead_lettered"`
	// Dropped counts best-effort messages the broker dropped instead of
	// admitting (Mailbox.SendBestEffort) since creation or restart.
	Dropped       uint64        `json:"dropped"`
	MaxDeliveries uint32        `json:"max_deliveries,omitempty"`
	MaxBytes      int64         `json:"max_bytes,omitempty"`
	TTL           time.Duration `json:"ttl,omitempty"`
	DeadLetter    string        `json:"dead_letter,omitempty"`
	DiskBytes     uint64        `json:"disk_bytes,omitempty"`
	Created       time.Time     `json:"created"`
	// Oldest is when the oldest queued message was sent (zero if none).
	Oldest time.Time `json:"oldest,omitzero"`
	// OwnerKind is how the owner was known: KindUnix (UID and GID), or
	// KindTLS (OwnerName, the creator's certificate name; UID and GID
	// are then wire.NoOwnerID), or KindUnknown (an unauthenticated peer).
	OwnerKind IdentityKind `json:"owner_kind"`
	OwnerName string       `json:"owner_name,omitempty"`
	// Access is the access entries for TLS principals (SetAccess), in
	// the order they were set.
	Access []AccessEntry `json:"access,omitempty"`

	// Closed: closed for sending (CloseSend, or a pipe with no writer
	// left); receivers get ErrEndOfStream once they have drained it.
	Closed bool `json:"closed,omitempty"`
	// Pipe: a pipe (Client.CreatePipe).
	Pipe bool `json:"pipe,omitempty"`
	// Cluster is set for a cluster mailbox (created with Cluster): the
	// name of the cluster holding it, its replica count, and its stream
	// and that stream's state as the cluster reports it.
	Cluster     string `json:"cluster,omitempty"`
	Replicas    int    `json:"replicas,omitempty"`
	Stream      string `json:"stream,omitempty"`
	StreamState string `json:"stream_state,omitempty"`
}

// AccessEntry grants the TLS principals whose name matches Pattern (an
// exact name, or path.Match syntax: "spiffe://example.org/*") receive
// (Read) and/or send (Write) on a mailbox. Mode bits decide for local
// users; for a TLS peer other than the owner the entries matching its
// name decide, and none matching is no access.
type AccessEntry struct {
	Pattern string `json:"pattern"`
	Read    bool   `json:"read"`
	Write   bool   `json:"write"`
}

// String is the entry as `postbox acl` takes it: PATTERN=rw.
func (e AccessEntry) String() string {
	p := ""
	if e.Read {
		p += "r"
	}
	if e.Write {
		p += "w"
	}
	return e.Pattern + "=" + p
}

// SetAccess adds an access entry to the mailbox, or changes the
// permissions of the entry with that pattern (at least one of read and
// write). Only the mailbox's owner may.
func (m *Mailbox) SetAccess(ctx context.Context, pattern string, read, write bool) error {
	var perms uint8
	if read {
		perms |= wire.PermRead
	}
	if write {
		perms |= wire.PermWrite
	}
	req := wire.ACL{Name: []byte(m.name), Action: wire.ACLSet, Perms: perms, Pattern: []byte(pattern)}
	_, err := m.c.roundTrip(ctx, wire.OpACL, 0, req.Append)
	return err
}

// RemoveAccess removes the access entry with that pattern (ErrNotFound
// if there is none). Only the mailbox's owner may.
func (m *Mailbox) RemoveAccess(ctx context.Context, pattern string) error {
	req := wire.ACL{Name: []byte(m.name), Action: wire.ACLRemove, Pattern: []byte(pattern)}
	_, err := m.c.roundTrip(ctx, wire.OpACL, 0, req.Append)
	return err
}

func infoOf(w *wire.MailboxInfo) Info {
	i := Info{
		Name: string(w.Name), UID: w.UID, GID: w.GID, Mode: os.FileMode(w.Mode), Capacity: w.Capacity,
		Durable: w.Flags&wire.MailboxDurable != 0, Inbox: w.Flags&wire.MailboxInbox != 0,
		Service: w.Flags&wire.MailboxService != 0,
		Depth:   w.Depth, Bytes: w.Bytes, Receivers: w.Receivers, Consumers: w.Consumers,
		InFlight: w.InFlight, BlockedSenders: w.BlockedSenders, Sent: w.Sent, Received: w.Received,
		Redelivered: w.Redelivered, DeadLettered: w.DeadLettered, Dropped: w.Dropped, MaxDeliveries: w.MaxDeliveries,
		DiskBytes: w.DiskBytes, Created: time.Unix(0, w.CreatedUnix),
		MaxBytes: w.MaxBytes, TTL: time.Duration(w.TTL), DeadLetter: string(w.DeadLetter),
	}
	if w.OldestUnix != 0 {
		i.Oldest = time.Unix(0, w.OldestUnix)
	}
	i.Closed, i.Pipe = w.Flags&wire.MailboxClosed != 0, w.Flags&wire.MailboxPipe != 0
	i.OwnerKind = KindUnix
	if len(w.Ext) > 0 {
		kind, name, has, acl, err := wire.MailboxAccess(w.Ext)
		if err == nil && has {
			i.OwnerKind, i.OwnerName = IdentityKind(kind), name
		}
		for _, e := range acl {
			i.Access = append(i.Access, AccessEntry{Pattern: e.Pattern, Read: e.Perms&wire.PermRead != 0, Write: e.Perms&wire.PermWrite != 0})
		}
		if ci, ok := wire.ClusterInfoOf(w.Ext); ok {
			i.Cluster, i.Replicas, i.Stream, i.StreamState = ci.Cluster, int(ci.Replicas), ci.Stream, ci.StreamState
		}
	}
	return i
}

// Stat returns the mailbox's live state.
func (m *Mailbox) Stat(ctx context.Context) (Info, error) {
	req := wire.Name{Name: []byte(m.name)}
	p, err := m.c.roundTrip(ctx, wire.OpStat, 0, req.Append)
	if err != nil {
		return Info{}, err
	}
	var w wire.MailboxInfo
	if err := w.Decode(p); err != nil {
		return Info{}, fmt.Errorf("%w: STAT reply", ErrMalformed)
	}
	return infoOf(&w), nil
}

// List returns every mailbox (and inbox), sorted by name. It asks for
// pages of wire.MaxListLimit entries until there are no more (see
// ListPage); mailboxes created or destroyed meanwhile may or may not be
// in the result.
func (c *Client) List(ctx context.Context) ([]Info, error) {
	var all []Info
	for info, err := range c.Mailboxes(ctx) {
		if err != nil {
			return nil, err
		}
		all = append(all, info)
	}
	return all, nil
}

// Mailboxes iterates over every mailbox (and inbox), sorted by name,
// fetching a page at a time. After an error it yields no more.
func (c *Client) Mailboxes(ctx context.Context) iter.Seq2[Info, error] {
	return func(yield func(Info, error) bool) {
		cursor := ""
		for {
			page, next, err := c.ListPage(ctx, cursor, wire.MaxListLimit)
			if err != nil {
				yield(Info{}, err)
				return
			}
			for _, info := range page {
				if !yield(info, nil) {
					return
				}
			}
			if next == "" {
				return
			}
			cursor = next
		}
	}
}

// ListPage returns up to limit mailboxes whose names sort after cursor
// ("" for the first page), and the cursor of the next page ("" when
// there is no more). limit 0 takes the broker's default (256); more than
// 1024 is taken as 1024.
func (c *Client) ListPage(ctx context.Context, cursor string, limit int) ([]Info, string, error) {
	req := wire.List{Cursor: []byte(cursor), Limit: uint32(min(max(limit, 0), wire.MaxListLimit))}
	p, err := c.roundTrip(ctx, wire.OpList, 0, req.Append)
	if err != nil {
		return nil, "", err
	}
	var rep wire.ListReply
	if err := rep.Decode(p); err != nil {
		return nil, "", fmt.Errorf("%w: LIST reply", ErrMalformed)
	}
	infos := make([]Info, len(rep.Infos))
	for i := range rep.Infos {
		infos[i] = infoOf(&rep.Infos[i])
	}
	return infos, string(rep.Next), nil
}

// Ping checks that the broker answers.
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.roundTrip(ctx, wire.OpPing, 0, func(b []byte) []byte { return b })
	return err
}

// Receipt says what became of a sent message.
type Receipt struct {
	// ID is the message's id within its mailbox.
	ID uint64
	// Taken reports whether a receiver had taken the message when Send
	// returned (always for rendezvous mailboxes and WithReceipt); By names
	// that receiver.
	Taken bool
	By    Identity
}

// Send puts body into the mailbox. It waits for space while the mailbox is
// full, until ctx ends (ErrTimeout at its deadline); with NoWait it fails
// at once with ErrFull. On a rendezvous mailbox, or WithReceipt, it
// completes only when a receiver has taken the message. Options: Type,
// Priority, WithReceipt, NoWait and the headers (ReplyTo, CorrelationID,
// ContentType, MessageDeadline, WithHeader), whose limits are checked
// before anything is sent (ErrInvalid). The body may be reused when Send
// returns.
func (m *Mailbox) Send(ctx context.Context, body []byte, opts ...SendOption) (Receipt, error) {
	o := sendDefaults(opts)
	if o.typ < 1 {
		return Receipt{}, fmt.Errorf("%w: send to %q: message type must be at least 1", ErrInvalid, m.name)
	}
	var hdr []byte
	if !o.hdr.empty() {
		var err error
		if hdr, err = appendHeaders(nil, &o.hdr); err != nil {
			return Receipt{}, fmt.Errorf("send to %q: %w", m.name, err)
		}
	}
	var flags uint8
	if o.receipt {
		flags |= wire.FlagReceipt
	}
	flags |= o.urgentFlags()
	c := m.c
	cl := c.conn().NewCall()
	msgs := [1]wire.SendMsg{{Type: o.typ, Priority: o.priority, Headers: hdr, Body: body}}
	req := wire.Send{Target: []byte(m.name), Timeout: timeoutOf(ctx, o.nowait), Msgs: msgs[:]}
	var err error
	if o.files != nil {
		_, err = c.startWithFiles(ctx, cl, flags, o.files, &req) // files.go
	} else {
		_, err = c.start(ctx, cl, wire.OpSend, flags, req.Append)
	}
	if err != nil {
		c.conn().Release(cl)
		return Receipt{}, err
	}
	err = c.wait(ctx, cl, wire.OpSend, m.name)
	if err != nil && o.files != nil {
		err = filesError(err)
	}
	var r Receipt
	if len(cl.Send.IDs) > 0 {
		r = Receipt{ID: cl.Send.IDs[0], Taken: cl.Send.Taken, By: identityWithName(cl.Send.Receipt, cl.Send.Ext)}
	}
	c.conn().Release(cl)
	if err != nil {
		return Receipt{}, err
	}
	return r, nil
}

// Receive takes one message. It waits until one arrives or ctx ends
// (ErrTimeout at its deadline); with NoWait it fails at once with
// ErrEmpty. The message is leased to this client until Ack or Nack; if
// the client goes away first it returns to the mailbox. Options: Type,
// NoWait, AutoAck.
func (m *Mailbox) Receive(ctx context.Context, opts ...ReceiveOption) (*Message, error) {
	o := receiveDefaults(opts)
	var flags uint8
	if o.autoAck {
		flags |= wire.FlagAutoAck
	}
	c := m.c
	cl := c.conn().NewCall()
	req := wire.Recv{Name: []byte(m.name), Type: o.typ, Timeout: timeoutOf(ctx, o.nowait)}
	lk, err := c.start(ctx, cl, wire.OpRecv, flags, req.Append)
	if err != nil {
		c.conn().Release(cl)
		return nil, err
	}
	err = c.wait(ctx, cl, wire.OpRecv, m.name)
	var msg *Message
	if err == nil {
		if msg = c.decodeMessage(cl.Payload, m.name); msg != nil {
			msg.lk = lk // its lease is that connection's
			msg.setFiles(cl.Files)
		} else {
			mux.CloseFiles(cl.Files)
			err = fmt.Errorf("%w: receive from %q: undecodable delivery", ErrMalformed, m.name)
			var d wire.Delivery
			if d.Decode(cl.Payload) == nil && d.Lease != 0 {
				lk.m.Nack([]uint64{d.Lease}) // the lease is that connection's
			}
		}
	}
	c.conn().Release(cl)
	if err != nil {
		return nil, err
	}
	return msg, nil
}
