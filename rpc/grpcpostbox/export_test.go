package grpcpostbox

import "time"

// SetKeepalive shortens the peer check for a test and returns a func
// restoring it. Endpoints started afterwards use it.
func SetKeepalive(d time.Duration) (restore func()) {
	old := keepaliveInterval.Swap(int64(d))
	return func() { keepaliveInterval.Store(old) }
}
