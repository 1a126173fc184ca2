package store

// SetReserveHook makes f run on whichever goroutine is about to write the
// reserve file, before it writes (nil: nothing).
func SetReserveHook(s *Store, f func()) {
	if f == nil {
		s.reserveHook.Store(nil)
		return
	}
	s.reserveHook.Store(&f)
}
