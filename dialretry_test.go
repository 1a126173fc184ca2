package postbox_test

import (
	"context"
	"sync"
	"testing"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/broker"
	"github.com/postbox-ipc/postbox/internal/testbroker"
)

// TestDialRetriesPastTheHandshakeBound: a broker that lets one connection
// of a uid handshake at a time closes the others at accept; 64 clients of
// that uid dialling at once all connect, as Dial tries again.
func TestDialRetriesPastTheHandshakeBound(t *testing.T) {
	cfg := broker.DefaultConfig()
	cfg.MaxHandshakingPerUID = 1
	b := testbroker.Start(t, &cfg)
	ctx, cancel := context.WithTimeout(context.Background(), testbroker.HangGuard)
	defer cancel()
	const n = 64
	var wg sync.WaitGroup
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			c, err := postbox.Dial(ctx, postbox.WithSocket(b.Socket))
			if err == nil {
				err = c.Ping(ctx)
				c.Close()
			}
			errs[i] = err
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("client %d: %v", i, err)
		}
	}
}
