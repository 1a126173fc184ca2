package broker

// Ready, then act.
//
// Code that holds a mailbox's lock (box.mu) only decides: it changes the
// mailbox core, submits the core's records to the store, records leases
// and pending requests (conn.pmu), appends frames to a connection's output
// buffer (conn.wmu), and queues dead letters (Broker.dmu). Each of those
// locks is a leaf: nothing done under it takes another lock, waits, or
// calls back. Everything else the step decided (a send completion that
// may have to take the message back out of its mailbox, a channel offer to
// drop, a log line, a reply that waits on nothing) is collected in a
// completions list and run by the caller after box.mu is released:
//
//	var r completions
//	bx.mu.Lock()
//	... bx.core.Send(...) ...
//	st := b.apply(bx, bx.core.Effects(), &r)
//	bx.mu.Unlock()
//	r.run()
//
// Broker.after follows the same rule: a completion with nothing to wait
// for (no records, or a record the store refused outright) goes on the
// caller's list; one waiting for the disk goes to the syncer goroutine,
// which runs it holding no lock. A completion is therefore free to take
// any mailbox's lock, including the one its step held. (Calling it inline
// is what once wedged the broker: a send refused on a full disk took back
// its message from the mailbox whose lock its own step still held.)
//
// Appending a frame under box.mu, rather than after, is deliberate: it
// keeps a mailbox's deliveries to a connection in the order the core
// decided them, which two goroutines completing after their unlocks could
// swap.
//
// The store's write methods called under box.mu never touch the disk:
// they encode a record into the writer goroutine's queue (package store).

// completions is the work a step under a mailbox lock decided on but
// must not do there. The zero value is an empty list. A list belongs to
// one goroutine.
type completions struct {
	list []completion
}

// completion is fn(), or done(err) for a request's reply (kept apart so
// that Broker.after allocates no closure of its own).
type completion struct {
	fn   func()
	done func(error)
	err  error
}

// add collects fn to run once the lock is released.
func (r *completions) add(fn func()) { r.list = append(r.list, completion{fn: fn}) }

// addDone collects done(err) to run once the lock is released.
func (r *completions) addDone(done func(error), err error) {
	r.list = append(r.list, completion{done: done, err: err})
}

// run does the collected work in the order it was collected and empties
// the list. The caller must hold no mailbox lock.
func (r *completions) run() {
	for i := range r.list {
		c := r.list[i]
		r.list[i] = completion{}
		if c.fn != nil {
			c.fn()
		} else {
			c.done(c.err)
		}
	}
	r.list = r.list[:0]
}
