package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"

	"github.com/postbox-ipc/postbox/store"
	"go.uber.org/goleak"
)

// The test binary doubles as the child process of the cross-process tests:
// with STORE_TEST_CHILD set it runs that role instead of the tests.
func TestMain(m *testing.M) {
	switch os.Getenv("STORE_TEST_CHILD") {
	case "":
		// No goroutine of ours (a Store's writer, say) may outlive the
		// tests, parallel ones included; goleak itself ignores the testing
		// package's and os/signal's.
		goleak.VerifyTestMain(m)
	case "open":
		childOpen(os.Getenv("STORE_TEST_DIR"))
	case "crash":
		childCrash(os.Getenv("STORE_TEST_DIR"))
	default:
		fmt.Fprintln(os.Stderr, "unknown STORE_TEST_CHILD")
		os.Exit(2)
	}
}

// childOpen tries to open dir and prints the error (or "ok").
func childOpen(dir string) {
	s, err := store.Open(store.DefaultOptions(dir))
	if err != nil {
		fmt.Printf("locked=%v err=%v\n", errors.Is(err, store.ErrLocked), err)
		os.Exit(0)
	}
	s.Close()
	fmt.Println("ok")
}

// childCrash writes until killed. Eight goroutines each append to their own
// mailbox and acknowledge every third message; each line on stdout reports
// a record whose Ticket.Wait returned nil: "A mailbox seq" for an Append,
// "K mailbox seq" for an Ack; "S mailbox seq" is printed just before an Ack
// is submitted. One write(2) per line, so a SIGKILL never
// leaves half a line.
func childCrash(dir string) {
	o := store.DefaultOptions(dir)
	o.SegmentSize = 64 << 10 // rotate, reclaim and compact while being killed
	s, err := store.Open(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	start := map[string]uint64{}
	for _, name := range []string{"c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7"} {
		if err := s.PutMailbox(store.MailboxDef{Name: name, Capacity: -1}).Wait(context.Background()); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		start[name] = s.Recovered().NextSeq[name]
		if start[name] == 0 {
			start[name] = 1
		}
	}
	var out sync.Mutex // serialises stdout lines
	report := func(kind, name string, seq uint64) {
		line := []byte(kind + " " + name + " " + strconv.FormatUint(seq, 10) + "\n")
		out.Lock()
		os.Stdout.Write(line)
		out.Unlock()
	}
	var wg sync.WaitGroup
	for name, first := range start {
		wg.Go(func() {
			body := make([]byte, 200)
			for seq := first; ; seq++ {
				m := &store.Message{Mailbox: name, Seq: seq, Body: body, SentUnixNano: int64(seq)}
				if err := s.Append(m).Wait(context.Background()); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				report("A", name, seq)
				if seq%3 == 0 {
					report("S", name, seq) // before submitting: from here on the message may vanish
					if err := s.Ack(name, seq).Wait(context.Background()); err != nil {
						fmt.Fprintln(os.Stderr, err)
						os.Exit(1)
					}
					report("K", name, seq)
				}
			}
		})
	}
	wg.Wait()
}
