package broker

// Status is a one-line summary of a running broker, for a service
// manager's status line (postbox serve's sd_notify STATUS=).
type Status struct {
	Connections int  // connections open now (handshaking ones too)
	Mailboxes   int  // named mailboxes (not endpoints' inboxes)
	DataDirOpen bool // the store is open (see DataDirOpen)
}

// Status returns the broker's counts. It takes the broker's main lock
// briefly: a broker stuck holding it does not answer, which is what a
// watchdog that calls Status before each ping wants.
func (b *Broker) Status() Status {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return Status{Connections: len(b.conns), Mailboxes: b.named, DataDirOpen: b.st != nil}
}
