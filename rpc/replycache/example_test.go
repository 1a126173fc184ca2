package replycache_test

import (
	"fmt"

	"github.com/postbox-ipc/postbox/rpc/envelope"
	"github.com/postbox-ipc/postbox/rpc/replycache"
)

// A server's use of the cache: Begin each exactly-once request, Finish
// each run; the cache says when not to run the handler. Replies here are
// strings, waiters (duplicates to answer later) are names.
func Example() {
	cache, _ := replycache.New[string, string](replycache.Config{})
	id := envelope.NewID([16]byte{1}, 1)
	sum := replycache.Sum("Transfer", []byte(`{"amount":10}`))

	v, _ := cache.Begin(id, sum, 0, "first attempt", 100)
	fmt.Println(v) // run the handler
	v, _ = cache.Begin(id, sum, 0, "retry", 150)
	fmt.Println(v) // a retry while it runs: held
	for _, w := range cache.Finish(id, "ok", 2, 200) {
		fmt.Println("answer", w)
	}
	v, reply := cache.Begin(id, sum, 0, "late retry", 300)
	fmt.Println(v, reply)
	v, _ = cache.Begin(id, replycache.Sum("Transfer", []byte(`{"amount":99}`)), 0, "", 300)
	fmt.Println(v)
	// Output:
	// run
	// join
	// answer retry
	// replay ok
	// mismatch
}
