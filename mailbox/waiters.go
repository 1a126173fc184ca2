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

	list       *senderList // the list this sender is on, nil if none
	prev, next *Sender
	offered    bool // Msg is in the queue as an offer
}

type senderList struct {
	head, tail *Sender
	n          int
}

func (l *senderList) push(s *Sender) {
	s.list, s.prev, s.next = l, l.tail, nil
	if l.tail != nil {
		l.tail.next = s
	} else {
		l.head = s
	}
	l.tail = s
	l.n++
}

func (l *senderList) remove(s *Sender) {
	if s.prev != nil {
		s.prev.next = s.next
	} else {
		l.head = s.next
	}
	if s.next != nil {
		s.next.prev = s.prev
	} else {
		l.tail = s.prev
	}
	s.list, s.prev, s.next = nil, nil, nil
	l.n--
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

	list       *receiverList
	prev, next *Receiver
}

type receiverList struct {
	head, tail *Receiver
	n          int
}

func (l *receiverList) push(r *Receiver) {
	r.list, r.prev, r.next = l, l.tail, nil
	if l.tail != nil {
		l.tail.next = r
	} else {
		l.head = r
	}
	l.tail = r
	l.n++
}

func (l *receiverList) remove(r *Receiver) {
	if r.prev != nil {
		r.prev.next = r.next
	} else {
		l.head = r.next
	}
	if r.next != nil {
		r.next.prev = r.prev
	} else {
		l.tail = r.prev
	}
	r.list, r.prev, r.next = nil, nil, nil
	l.n--
}

// Waiting reports whether the receiver is registered (waiting for a
// message, or a consumer parked without credit).
func (r *Receiver) Waiting() bool { return r.list != nil }

// Waiting reports whether the send is still waiting.
func (s *Sender) Waiting() bool { return s.list != nil }
