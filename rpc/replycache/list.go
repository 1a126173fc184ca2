package replycache

// links are a node's place in one intrusive list: entries are in two
// (done, bodies), sessions in one (idle), without an allocation per node.
type links[T any] struct{ prev, next *T }

// list is a doubly linked list of nodes of type T; at says where a node
// keeps its links for this list.
type list[T any] struct{ head, tail *T }

func (l *list[T]) pushBack(x *T, at func(*T) *links[T]) {
	lx := at(x)
	lx.prev, lx.next = l.tail, nil
	if l.tail != nil {
		at(l.tail).next = x
	} else {
		l.head = x
	}
	l.tail = x
}

func (l *list[T]) remove(x *T, at func(*T) *links[T]) {
	lx := at(x)
	if lx.prev != nil {
		at(lx.prev).next = lx.next
	} else {
		l.head = lx.next
	}
	if lx.next != nil {
		at(lx.next).prev = lx.prev
	} else {
		l.tail = lx.prev
	}
	lx.prev, lx.next = nil, nil
}

func doneLinks[R, W any](e *entry[R, W]) *links[entry[R, W]]     { return &e.done }
func bodyLinks[R, W any](e *entry[R, W]) *links[entry[R, W]]     { return &e.body }
func idleLinks[R, W any](s *session[R, W]) *links[session[R, W]] { return &s.idleLinks }

// ring is a FIFO queue in a ring buffer that grows (doubling) up to the
// bound its pushes are given.
type ring[T any] struct {
	buf     []T
	head, n int
}

func (r *ring[T]) len() int { return r.n }

// front returns the oldest element; the ring must not be empty.
func (r *ring[T]) front() *T { return &r.buf[r.head] }

// back returns the newest element; the ring must not be empty.
func (r *ring[T]) back() *T { return &r.buf[(r.head+r.n-1)%len(r.buf)] }

// push appends x; the ring holds fewer than bound elements.
func (r *ring[T]) push(x T, bound int) {
	if r.n == len(r.buf) {
		buf := make([]T, min(max(2*len(r.buf), 64), bound))
		for i := range r.n {
			buf[i] = r.buf[(r.head+i)%len(r.buf)]
		}
		r.buf, r.head = buf, 0
	}
	r.buf[(r.head+r.n)%len(r.buf)] = x
	r.n++
}

// pop removes and returns the oldest element; the ring must not be empty.
func (r *ring[T]) pop() T {
	var zero T
	x := r.buf[r.head]
	r.buf[r.head] = zero
	r.head = (r.head + 1) % len(r.buf)
	r.n--
	return x
}
