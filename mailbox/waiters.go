package mailbox

// Sender is a send waiting in a mailbox: for space (bounded and full), or
// for its offered message to be taken (rendezvous or Receipt). The owner
// allocates it, and uses the same pointer to cancel it.
type Sender struct {
	// Ref is the owner's handle, returned untouched in effects.
	Ref      any
	Endpoint uint64
	Msg      *Message
	// Receipt: complete only when a receiver takes the message.
	Receipt bool

	links[*Sender]      // its place on a list (blocked or offers), if any
	offered        bool // Msg is in the queue as an offer
}

// Receiver is a receive waiting in a mailbox: a one-shot receive, or a
// consumer that takes up to Credit messages and stays registered until it
// is cancelled. The owner allocates it and uses the same pointer to add
// credit or cancel it.
type Receiver struct {
	Ref any
	// Ident is who is receiving; Ident.Endpoint owns the leases.
	Ident   Identity
	Type    int64 // msgrcv selector
	AutoAck bool
	// Consumer: stay registered after each delivery; Credit is how many
	// more messages may be delivered before AddCredit.
	Consumer bool
	Credit   uint32

	links[*Receiver] // its place on a list (waiting or parked), if any
}

// Waiting reports whether the receiver is registered (waiting for a
// message, or a consumer parked without credit).
func (r *Receiver) Waiting() bool { return r.list != nil }

// Waiting reports whether the send is still waiting.
func (s *Sender) Waiting() bool { return s.list != nil }

func (s *Sender) node() *links[*Sender]     { return &s.links }
func (r *Receiver) node() *links[*Receiver] { return &r.links }

type (
	senderList   = list[*Sender]
	receiverList = list[*Receiver]
)

// links place an element on a list: intrusive, so moving a waiter between
// lists (the hot path of round-robin consumers) allocates nothing.
type links[E comparable] struct {
	list       owner[E] // the list the element is on (a *list[E]), nil if none
	prev, next E
}

// owner is the list an element is on.
type owner[E any] interface{ remove(E) }

// element is what a list holds: a pointer to a struct embedding links.
type element[E comparable] interface {
	comparable
	node() *links[E]
}

// list is a doubly linked FIFO of waiters.
type list[E element[E]] struct {
	head, tail E
	n          int
}

func (l *list[E]) push(e E) {
	var none E
	k := e.node()
	k.list, k.prev, k.next = l, l.tail, none
	if l.tail != none {
		l.tail.node().next = e
	} else {
		l.head = e
	}
	l.tail = e
	l.n++
}

func (l *list[E]) remove(e E) {
	var none E
	k := e.node()
	if k.prev != none {
		k.prev.node().next = k.next
	} else {
		l.head = k.next
	}
	if k.next != none {
		k.next.node().prev = k.prev
	} else {
		l.tail = k.prev
	}
	k.list, k.prev, k.next = nil, none, none
	l.n--
}
