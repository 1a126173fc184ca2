package rpcfault_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/internal/faultconn"
	"github.com/postbox-ipc/postbox/wire"
)

// faultRate is the probability with which each fault hits a CALL frame.
const faultRate = 0.02

// faultDelay is how long a delayed frame is held.
const faultDelay = 3 * time.Millisecond

// faultyClient is a postbox client whose connection loses, doubles,
// delays and replays CALL frames.
type faultyClient struct {
	client *postbox.Client
	rules  []faultconn.Rule
	st     *faultconn.Stats
}

// faultRules are the faults of the fault tests, each firing on a
// faultRate share of the CALL frames it matches, from seed.
func faultRules(seed uint64) []faultconn.Rule {
	return []faultconn.Rule{
		faultconn.DropRequest(wire.OpCall, faultconn.Random(faultRate, seed)),
		faultconn.DropReply(wire.OpCall, faultconn.Random(faultRate, seed+1)),
		faultconn.DuplicateRequest(wire.OpCall, faultconn.Random(faultRate, seed+2)),
		faultconn.DelayRequest(wire.OpCall, faultDelay, faultconn.Random(faultRate, seed+3)),
		faultconn.DelayReply(wire.OpCall, faultDelay, faultconn.Random(faultRate, seed+4)),
		faultconn.ReplayRequest(wire.OpCall, faultconn.Random(faultRate, seed+5)),
	}
}

// dialFaulty connects a client to the broker at socket through the
// fault-injection layer; it is closed when t ends.
func dialFaulty(t *testing.T, socket string, seed uint64) *faultyClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	rules := faultRules(seed)
	nc, st, err := faultconn.Dial(ctx, socket, rules...)
	if err != nil {
		t.Fatal(err)
	}
	// A lost reply costs a call its attempt's timeout plus this grace.
	c, err := postbox.NewClient(ctx, nc, postbox.WithName(t.Name()), postbox.WithReplyGrace(20*time.Millisecond))
	if err != nil {
		nc.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &faultyClient{client: c, rules: rules, st: st}
}

// faultCounts is what the layer did.
type faultCounts struct {
	fired []int64 // per rule
	rules []faultconn.Rule
}

func (fc *faultyClient) stats() faultCounts {
	f := faultCounts{rules: fc.rules}
	for i := range fc.rules {
		f.fired = append(f.fired, fc.st.Fired(i))
	}
	return f
}

func (f faultCounts) total() int64 {
	var n int64
	for _, k := range f.fired {
		n += k
	}
	return n
}

// String lists each rule's count: "drop CALL request 41, ...".
func (f faultCounts) String() string {
	var parts []string
	for i, r := range f.rules {
		what := "request"
		if r.Dir == faultconn.ToClient {
			what = "reply"
		}
		parts = append(parts, fmt.Sprintf("%v %s %d", r.Action, what, f.fired[i]))
	}
	return strings.Join(parts, ", ")
}
