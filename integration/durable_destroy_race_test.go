package integration_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/postbox-ipc/postbox"
)

// TestChmodRacingDestroyDoesNotBringADurableMailboxBack: a CHMOD that
// looked a durable mailbox up just before a DESTROY removed it must not
// record the definition after the deletion, or the destroyed mailbox
// comes back at the next start. Several clients chmod each mailbox as
// fast as they can while another destroys it; after a restart none of
// the destroyed mailboxes exists.
func TestChmodRacingDestroyDoesNotBringADurableMailboxBack(t *testing.T) {
	cfg := durableConfig(filepath.Join(t.TempDir(), "data"))
	cfg.NoSync = true // the race is in the broker; the disk only slows it
	b := start(t, cfg)
	owner := b.Dial(t)
	const chmodders, rounds = 8, 300
	clients := make([]*postbox.Client, chmodders)
	for i := range clients {
		clients[i] = b.Dial(t)
	}
	for round := range rounds {
		name := fmt.Sprintf("race-%02d", round)
		mb := create(t, owner, name, postbox.Durable())
		var wg sync.WaitGroup
		started := make(chan struct{}, chmodders)
		errs := make(chan error, chmodders)
		for _, c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				m := c.Mailbox(name)
				for n := 0; ; n++ {
					err := m.Chmod(ctxT(t), os.FileMode(0o600|0o040*(n%2)))
					if n == 0 {
						started <- struct{}{}
					}
					switch {
					case errors.Is(err, postbox.ErrNotFound):
						return
					case err != nil:
						errs <- fmt.Errorf("chmod %s: %w", name, err)
						return
					}
				}
			}()
		}
		for range chmodders {
			<-started
		}
		if err := mb.Destroy(ctxT(t)); err != nil {
			t.Fatalf("destroy %s: %v", name, err)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	b = restart(t, b, cfg)
	list, err := b.Dial(t).List(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, info := range list {
		if !info.Inbox {
			t.Errorf("mailbox %s is back after its destroy and a restart", info.Name)
		}
	}
}
