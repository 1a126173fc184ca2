package retry_test

import (
	"fmt"
	"time"

	"github.com/postbox-ipc/postbox/rpc/retry"
)

// The attempts of a call with a one-second deadline whose attempts all
// time out: each is longer than the one before, and the last runs to the
// deadline.
func Example() {
	p := retry.Policy{FirstTimeout: 100 * time.Millisecond, Backoff: 10 * time.Millisecond}
	ms := int64(time.Millisecond)
	s := retry.New(p, 0, 1000*ms, nil) // no jitter source: exact pauses
	for a, ok := s.First(), true; ok; a, ok = s.Next(a.End) {
		fmt.Printf("attempt %d: %4d ms .. %4d ms\n", a.N, a.Start/ms, a.End/ms)
	}
	// Output:
	// attempt 1:    0 ms ..  100 ms
	// attempt 2:  110 ms ..  310 ms
	// attempt 3:  330 ms .. 1000 ms
}
