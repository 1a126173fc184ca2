package cluster

import "time"

// SetConsumerIdle sets how long an unused consumer lives, for a test of
// what happens once JetStream has removed one; it returns the old value.
func SetConsumerIdle(d time.Duration) time.Duration {
	return time.Duration(consumerIdle.Swap(int64(d)))
}
