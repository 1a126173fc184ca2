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
