package postbox

import (
	"os"
	"slices"
	"time"
)

// Options say where they apply: each call takes its own option type, and
// an option implements the types of every call it means something for,
// so an option that means nothing for a call does not compile there
// (Send(ctx, b, Durable()) is a compile error).
//
//	option                     Create  Send  Receive  Consume  Publisher  Call  Reply
//	Capacity, Unbounded,       x
//	  Rendezvous, Mode,
//	  Durable, MaxBytes, TTL,
//	  MaxDeliveries, DeadLetter,
//	  Service
//	Type                               x     x        x        x          x
//	Priority                           x                       x          x
//	WithReceipt                        x                       x
//	NoWait                             x     x
//	AutoAck                                  x        x
//	Prefetch, ManualCredit                            x
//	ReplyTo                            x                       x
//	CorrelationID,                     x                       x          x
//	  MessageDeadline
//	ContentType, WithHeader            x                       x          x     x
//	AckRequest                                                                  x
//
// Send's options also apply to SendBatch (as defaults for each message's
// zero fields) and OfferChannel (Type, Priority and NoWait; headers and
// WithReceipt are refused there with ErrInvalid).
//
// CreateOption configures Create.
type CreateOption interface{ applyCreate(*createOptions) }

// SendOption configures Send, SendBatch and OfferChannel.
type SendOption interface{ applySend(*sendOptions) }

// ReceiveOption configures Receive.
type ReceiveOption interface{ applyReceive(*receiveOptions) }

// ConsumeOption configures Consume.
type ConsumeOption interface{ applyConsume(*consumeOptions) }

// PublisherOption configures a Publisher: it applies to every message the
// Publisher sends.
type PublisherOption interface{ applyPublisher(*publisherOptions) }

// CallOption configures Mailbox.Call (the request message): Type,
// Priority, CorrelationID, ContentType, WithHeader and MessageDeadline.
// ReplyTo and WithReceipt are not: a call's reply goes to the caller's
// inbox, and its request is taken when it is answered.
type CallOption interface{ applyCall(*sendOptions) }

// ReplyOption configures Message.Reply: ContentType, WithHeader and
// AckRequest.
type ReplyOption interface{ applyReply(*replyOptions) }

// MessageOption is an option of Send, a Publisher and Call.
type MessageOption interface {
	SendOption
	PublisherOption
	CallOption
}

// HeaderOption is an option of Send, a Publisher, Call and Reply.
type HeaderOption interface {
	MessageOption
	ReplyOption
	PublishOption
}

type createOptions struct {
	capacity      int64
	mode          uint32
	durable       bool
	maxBytes      int64
	ttl           int64
	maxDeliveries uint32
	deadLetter    string
	hasDeadLetter bool
	service       bool
	cluster       bool // cluster.go
	replicas      uint8
}

// outHeaders are the headers an option set asks for.
type outHeaders struct {
	replyTo       string
	correlationID []byte
	contentType   string
	deadline      time.Time
	user          []userHeader // sorted by key (stable: a key's values in the order added), as the wire has them
}

func (h *outHeaders) empty() bool {
	return h.replyTo == "" && h.correlationID == nil && h.contentType == "" && h.deadline.IsZero() && len(h.user) == 0
}

type sendOptions struct {
	typ      int64
	priority uint8
	receipt  bool
	nowait   bool
	hdr      outHeaders
	urgent   bool       // Urgent (withdraw.go)
	files    []*os.File // WithFiles (files.go)
}

type receiveOptions struct {
	typ     int64
	nowait  bool
	autoAck bool
}

type consumeOptions struct {
	typ      int64
	autoAck  bool
	prefetch uint32
	manual   bool
}

type publisherOptions struct{ sendOptions }

type replyOptions struct {
	hdr outHeaders
	ack bool // AckRequest
}

func createDefaults(opts []CreateOption) createOptions {
	o := createOptions{capacity: -1, mode: 0o600}
	for _, opt := range opts {
		opt.applyCreate(&o)
	}
	return o
}

func sendDefaults(opts []SendOption) sendOptions {
	o := sendOptions{typ: 1}
	for _, opt := range opts {
		opt.applySend(&o)
	}
	return o
}

func receiveDefaults(opts []ReceiveOption) receiveOptions {
	var o receiveOptions
	for _, opt := range opts {
		opt.applyReceive(&o)
	}
	return o
}

func consumeDefaults(opts []ConsumeOption) consumeOptions {
	o := consumeOptions{prefetch: 256}
	for _, opt := range opts {
		opt.applyConsume(&o)
	}
	return o
}

func publisherDefaults(opts []PublisherOption) publisherOptions {
	o := publisherOptions{sendOptions{typ: 1}}
	for _, opt := range opts {
		opt.applyPublisher(&o)
	}
	return o
}

// Create options.

type capacityOption int64

func (c capacityOption) applyCreate(o *createOptions) { o.capacity = int64(c) }

// Capacity (Create): -1 unbounded (the default), 0 rendezvous, n > 0 at
// most n queued messages.
func Capacity(n int64) CreateOption { return capacityOption(n) }

// Unbounded (Create) is Capacity(-1).
func Unbounded() CreateOption { return Capacity(-1) }

// Rendezvous (Create) is Capacity(0): a send completes only when a
// receiver takes the message.
func Rendezvous() CreateOption { return Capacity(0) }

type modeOption uint32

func (m modeOption) applyCreate(o *createOptions) { o.mode = uint32(m) }

// Mode (Create) sets the permission bits: like a file's, w = may send,
// r = may receive. The default is 0600.
func Mode(m os.FileMode) CreateOption { return modeOption(m.Perm()) }

type durableOption struct{}

func (durableOption) applyCreate(o *createOptions) { o.durable = true }

// Durable (Create) asks for a mailbox kept on disk (the broker needs a
// data directory).
func Durable() CreateOption { return durableOption{} }

type maxDeliveriesOption uint32

func (n maxDeliveriesOption) applyCreate(o *createOptions) { o.maxDeliveries = uint32(n) }

// MaxDeliveries (Create): after n deliveries without an ack a message
// leaves the mailbox: to its DeadLetter mailbox if it has one, else it is
// dropped. 0 means unlimited.
func MaxDeliveries(n uint32) CreateOption { return maxDeliveriesOption(n) }

type maxBytesOption int64

func (n maxBytesOption) applyCreate(o *createOptions) { o.maxBytes = int64(n) }

// MaxBytes (Create) also bounds the queued bytes (bodies and headers); a
// send past it waits or fails with ErrFull as for a full mailbox. 0 means
// no bound.
func MaxBytes(n int64) CreateOption { return maxBytesOption(n) }

type ttlOption time.Duration

func (d ttlOption) applyCreate(o *createOptions) { o.ttl = int64(d) }

// TTL (Create): queued messages older than d are removed (moved to the
// dead-letter mailbox, if there is one, with reason "expired").
func TTL(d time.Duration) CreateOption { return ttlOption(d) }

type deadLetterOption string

func (n deadLetterOption) applyCreate(o *createOptions) {
	o.deadLetter, o.hasDeadLetter = string(n), true
}

// DeadLetter (Create) names an existing mailbox, which the creator may
// send to, that receives this mailbox's dead letters: messages past
// MaxDeliveries or their TTL, with their original sender identity and a
// Reason.
func DeadLetter(name string) CreateOption { return deadLetterOption(name) }

type serviceOption struct{}

func (serviceOption) applyCreate(o *createOptions) { o.service = true }

// Service (Create) marks the mailbox as an RPC service's: STAT and LIST
// report it (Info.Service), and Info.Consumers counts its servers.
// Delivery is the same as any mailbox's.
func Service() CreateOption { return serviceOption{} }

// Options of several calls.

type typeOption int64

func (t typeOption) applySend(o *sendOptions)           { o.typ = int64(t) }
func (t typeOption) applyReceive(o *receiveOptions)     { o.typ = int64(t) }
func (t typeOption) applyConsume(o *consumeOptions)     { o.typ = int64(t) }
func (t typeOption) applyPublisher(o *publisherOptions) { o.typ = int64(t) }
func (t typeOption) applyCall(o *sendOptions)           { o.typ = int64(t) }

// TypeOption is what Type returns: a SendOption, ReceiveOption,
// ConsumeOption, PublisherOption and BrowseOption.
type TypeOption interface {
	SendOption
	ReceiveOption
	ConsumeOption
	PublisherOption
	BrowseOption
	CallOption
	PublishOption
}

// Type (Send, Publisher, Call) sets the message type (>= 1, default 1).
// (Receive, Consume) selects by type with msgrcv rules: 0 any, > 0
// exactly, < 0 the lowest type <= |t|.
func Type(t int64) TypeOption { return typeOption(t) }

// SendPublisherOption is an option of Send and of a Publisher.
type SendPublisherOption interface {
	SendOption
	PublisherOption
}

type priorityOption uint8

func (p priorityOption) applySend(o *sendOptions)           { o.priority = uint8(p) }
func (p priorityOption) applyPublisher(o *publisherOptions) { o.priority = uint8(p) }
func (p priorityOption) applyCall(o *sendOptions)           { o.priority = uint8(p) }

// Priority (Send, Publisher, Call): 0-255, higher first. The default is 0.
func Priority(p uint8) MessageOption { return priorityOption(p) }

type receiptOption struct{}

func (receiptOption) applySend(o *sendOptions)           { o.receipt = true }
func (receiptOption) applyPublisher(o *publisherOptions) { o.receipt = true }

// WithReceipt (Send, Publisher): complete only when a receiver has taken
// the message, and say who. If the context ends first the message is
// withdrawn. A Publisher with receipts sends one message per frame.
func WithReceipt() SendPublisherOption { return receiptOption{} }

// SendReceiveOption is an option of Send and Receive.
type SendReceiveOption interface {
	SendOption
	ReceiveOption
}

type noWaitOption struct{}

func (noWaitOption) applySend(o *sendOptions)       { o.nowait = true }
func (noWaitOption) applyReceive(o *receiveOptions) { o.nowait = true }

// NoWait (Send, Receive): fail at once with ErrFull or ErrEmpty instead of
// waiting.
func NoWait() SendReceiveOption { return noWaitOption{} }

// ReceiveConsumeOption is an option of Receive and Consume.
type ReceiveConsumeOption interface {
	ReceiveOption
	ConsumeOption
}

type autoAckOption struct{}

func (autoAckOption) applyReceive(o *receiveOptions) { o.autoAck = true }
func (autoAckOption) applyConsume(o *consumeOptions) { o.autoAck = true }

// AutoAck (Receive, Consume): the broker removes the message as it
// delivers it; there is no lease and no redelivery.
func AutoAck() ReceiveConsumeOption { return autoAckOption{} }

type prefetchOption uint32

func (n prefetchOption) applyConsume(o *consumeOptions) { o.prefetch = max(uint32(n), 1) }

// Prefetch (Consume): how many messages the broker may send ahead of the
// application (default 256).
func Prefetch(n uint32) ConsumeOption { return prefetchOption(n) }

type manualCreditOption struct{}

func (manualCreditOption) applyConsume(o *consumeOptions) { o.manual = true }

// ManualCredit (Consume): Next never grants credit by itself. The broker
// sends the Prefetch window's worth of messages and then only as many
// more as the application grants with Consumer.Credit, so a message is
// delivered only when the application is ready for it (the others stay
// in the mailbox, where other receivers can take them and a cancelled
// call withdraws its request). A consumer that takes a message, works on
// it and then calls Credit(1) holds at most Prefetch messages at once.
func ManualCredit() ConsumeOption { return manualCreditOption{} }

// Header options (Send, Publisher; Call and Reply as each says): they
// set the message's headers (see Message and docs/PROTOCOL.md, "Message
// headers"). Limits are checked before anything is sent: a value past
// them fails the call with ErrInvalid.

// headerOption is a header of Send and Publisher only (ReplyTo).
type headerOption func(*outHeaders)

func (f headerOption) applySend(o *sendOptions)           { f(&o.hdr) }
func (f headerOption) applyPublisher(o *publisherOptions) { f(&o.hdr) }

// messageHeader is a header of Call's request too.
type messageHeader func(*outHeaders)

func (f messageHeader) applySend(o *sendOptions)           { f(&o.hdr) }
func (f messageHeader) applyPublisher(o *publisherOptions) { f(&o.hdr) }
func (f messageHeader) applyCall(o *sendOptions)           { f(&o.hdr) }

// anyHeader is a header of a reply too.
type anyHeader func(*outHeaders)

func (f anyHeader) applySend(o *sendOptions)           { f(&o.hdr) }
func (f anyHeader) applyPublisher(o *publisherOptions) { f(&o.hdr) }
func (f anyHeader) applyCall(o *sendOptions)           { f(&o.hdr) }
func (f anyHeader) applyReply(o *replyOptions)         { f(&o.hdr) }

// ReplyTo (Send, Publisher) sets the REPLY_TO header: the address (a
// mailbox name or "@id", 1..255 bytes) a receiver should answer to.
func ReplyTo(addr string) SendPublisherOption {
	return headerOption(func(h *outHeaders) { h.replyTo = addr })
}

// CorrelationID (Send, Publisher, Call) sets the CORRELATION_ID header:
// 1..255 opaque bytes that tie a reply to its request (Call generates one
// unless given). b is not copied: it must not change until the call
// returns.
func CorrelationID(b []byte) MessageOption {
	return messageHeader(func(h *outHeaders) { h.correlationID = b })
}

// ContentType (Send, Publisher, Call, Reply) sets the CONTENT_TYPE
// header: 1..255 bytes of printable ASCII (space included), e.g.
// "application/json".
func ContentType(s string) HeaderOption {
	return anyHeader(func(h *outHeaders) { h.contentType = s })
}

// MessageDeadline (Send, Publisher, Call) sets the DEADLINE header: when
// the sender stops caring about an answer. The broker carries it; it does
// not act on it (use TTL for that). Call sets it from its context's
// deadline unless given.
func MessageDeadline(t time.Time) MessageOption {
	return messageHeader(func(h *outHeaders) { h.deadline = t })
}

// WithHeader (Send, Publisher, Call, Reply) adds a user header: key is
// 1..128 bytes of [A-Za-z0-9-_.] (case-sensitive), value 0..4096 bytes.
// Repeat it to add more values, under the same key or others.
func WithHeader(key, value string) HeaderOption {
	return anyHeader(func(h *outHeaders) {
		i := len(h.user)
		for i > 0 && h.user[i-1].key > key {
			i--
		}
		h.user = slices.Insert(h.user, i, userHeader{key, value})
	})
}
