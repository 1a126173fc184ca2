package broker_test

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestMain fails the run if any goroutine of the broker outlives the
// tests: every test stops its broker, and the broker must stop every
// goroutine it started.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := brokerGoroutines(); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines of the broker left running:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

func brokerGoroutines() string {
	deadline := time.Now().Add(5 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaked []string
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "postbox/broker.") || strings.Contains(g, "internal/framewriter.") || strings.Contains(g, "postbox/store.") {
				if !strings.Contains(g, "brokerGoroutines") {
					leaked = append(leaked, g)
				}
			}
		}
		if len(leaked) == 0 || time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
