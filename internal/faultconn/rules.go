package faultconn

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/postbox-ipc/postbox/wire"
)

// Action is what a rule does to a frame it fires on.
type Action uint8

const (
	// Drop: the frame is not forwarded.
	Drop Action = iota + 1
	// Duplicate (requests only): the frame is forwarded, then a copy
	// with a fresh request id; the broker's answers to the copy are
	// swallowed, so the client sees one reply.
	Duplicate
	// Delay: the frame is forwarded after the rule's delay. Frames behind
	// it are not held up (a delayed frame may be overtaken).
	Delay
	// Replay (requests only): the frame is forwarded, and once the reply
	// to it has reached the client, sent again with a fresh request id
	// (its answers swallowed): a retransmission that arrives after the
	// call completed.
	Replay
)

func (a Action) String() string {
	switch a {
	case Drop:
		return "drop"
	case Duplicate:
		return "duplicate"
	case Delay:
		return "delay"
	case Replay:
		return "replay"
	}
	return fmt.Sprintf("Action(%d)", uint8(a))
}

// Direction says which way a rule's frames travel.
type Direction uint8

const (
	// ToBroker: request frames the client writes.
	ToBroker Direction = iota + 1
	// ToClient: frames the broker writes (replies and pushes).
	ToClient
)

// When selects which of the frames a rule matches it fires on. Each rule
// counts its own matching frames, in its direction, so a When is
// deterministic: Random draws from its own seeded source, one draw per
// matching frame. A reply rule counts the replies that arrive: after a
// dropped CALL request, DropReply(wire.OpCall, Nth(2)) is the reply to
// the third call.
type When struct {
	nth, every int
	p          float64
	seed       uint64
}

// Nth fires on the n-th matching frame only (1-based).
func Nth(n int) When { return When{nth: max(n, 1)} }

// Every fires on every k-th matching frame: the k-th, 2k-th, ...
func Every(k int) When { return When{every: max(k, 1)} }

// Always fires on every matching frame.
func Always() When { return When{every: 1} }

// Random fires on each matching frame with probability p, drawn from a
// source seeded with seed: the same seed and the same frames give the
// same choices.
func Random(p float64, seed uint64) When { return When{p: p, seed: seed} }

func (w When) String() string {
	switch {
	case w.nth > 0:
		return fmt.Sprintf("frame %d", w.nth)
	case w.every == 1:
		return "every frame"
	case w.every > 0:
		return fmt.Sprintf("every %d frames", w.every)
	}
	return fmt.Sprintf("p=%g seed=%d", w.p, w.seed)
}

// Rule is one fault: an action on the frames of one op in one direction,
// on the frames its When selects. Build rules with DropRequest,
// DropReply, DuplicateRequest, DelayRequest and DelayReply.
type Rule struct {
	Action Action
	Dir    Direction
	// Op is the request op whose frames (ToBroker) or whose replies
	// (ToClient) the rule matches; a pushed op (DELIVER 0x60, INTERRUPT
	// 0x61) matches those pushes ToClient.
	Op    wire.Op
	When  When
	Delay time.Duration // for Delay
}

func (r Rule) String() string {
	what := "request"
	if r.Dir == ToClient {
		what = "reply"
		if r.Op.Pushed() {
			what = "push"
		}
	}
	s := fmt.Sprintf("%v %v %s, %v", r.Action, r.Op, what, r.When)
	if r.Action == Delay {
		s += fmt.Sprintf(" by %v", r.Delay)
	}
	return s
}

// DropRequest drops the selected request frames of op (e.g. wire.OpCall):
// the broker never sees them.
func DropRequest(op wire.Op, w When) Rule { return Rule{Action: Drop, Dir: ToBroker, Op: op, When: w} }

// DropReply drops the selected replies to requests of op (or, for a
// pushed op, the selected pushes): the broker acted, the client never
// hears of it.
func DropReply(op wire.Op, w When) Rule { return Rule{Action: Drop, Dir: ToClient, Op: op, When: w} }

// DuplicateRequest forwards the selected request frames of op twice: the
// copy has a fresh request id and its reply is swallowed, so the client
// sees exactly one reply (to the original) while the broker handles two
// requests.
//
// The copy of a CALL is sent as a SEND of the same message (the payloads
// are alike): the broker refuses a second CALL with a CORRELATION_ID
// already waiting on the endpoint, but queues the copy, so a server sees
// the request twice while the call waits. Whichever reply comes first is
// the call's; the other is dropped by the broker (REPLY sends nobody
// claims are).
func DuplicateRequest(op wire.Op, w When) Rule {
	return Rule{Action: Duplicate, Dir: ToBroker, Op: op, When: w}
}

// ReplayRequest sends the selected request frames of op again once their
// reply has reached the client, with a fresh request id whose answers are
// swallowed: the broker (and for a CALL, a server) sees a request whose
// call has already completed, as a late retransmission would deliver it.
// A CALL's replay is a CALL again (its CORRELATION_ID is free by then),
// so a server's answer to it is claimed by the replay and swallowed.
func ReplayRequest(op wire.Op, w When) Rule {
	return Rule{Action: Replay, Dir: ToBroker, Op: op, When: w}
}

// DelayRequest holds the selected request frames of op for d.
func DelayRequest(op wire.Op, d time.Duration, w When) Rule {
	return Rule{Action: Delay, Dir: ToBroker, Op: op, When: w, Delay: d}
}

// DelayReply holds the selected replies to op (or pushes of a pushed op)
// for d.
func DelayReply(op wire.Op, d time.Duration, w When) Rule {
	return Rule{Action: Delay, Dir: ToClient, Op: op, When: w, Delay: d}
}

// validate reports a rule that cannot act.
func (r Rule) validate() error {
	switch {
	case r.Action < Drop || r.Action > Replay:
		return fmt.Errorf("faultconn: rule %v: unknown action", r)
	case r.Dir != ToBroker && r.Dir != ToClient:
		return fmt.Errorf("faultconn: rule %v: no direction", r)
	case (r.Action == Duplicate || r.Action == Replay) && r.Dir != ToBroker:
		return fmt.Errorf("faultconn: rule %v: only requests can be duplicated or replayed", r)
	case r.Action == Delay && r.Delay <= 0:
		return fmt.Errorf("faultconn: rule %v: delay must be positive", r)
	case r.When.nth == 0 && r.When.every == 0 && (r.When.p < 0 || r.When.p > 1):
		return fmt.Errorf("faultconn: rule %v: probability out of [0, 1]", r)
	}
	return nil
}

// matcher is one rule's state: its count of matching frames and its
// random source. Only the goroutine forwarding its direction touches it.
type matcher struct {
	Rule
	index int // in Dial's rules
	seen  int
	rnd   *rand.Rand
}

func newMatcher(r Rule) *matcher {
	m := &matcher{Rule: r}
	if r.When.nth == 0 && r.When.every == 0 {
		m.rnd = rand.New(rand.NewPCG(r.When.seed, 0x6661756c74)) // "fault"
	}
	return m
}

// matches reports whether the frame with header h is one of the rule's.
func (m *matcher) matches(h wire.Header) bool {
	if m.Dir == ToBroker {
		return h.Op == m.Op
	}
	if m.Op.Pushed() {
		return h.Push() && h.Op == m.Op
	}
	return !h.Push() && h.Op == m.Op.Reply()
}

// fire counts a matching frame and reports whether the rule acts on it.
func (m *matcher) fire() bool {
	m.seen++
	switch {
	case m.When.nth > 0:
		return m.seen == m.When.nth
	case m.When.every > 0:
		return m.seen%m.When.every == 0
	}
	return m.rnd.Float64() < m.When.p
}
