// Package retry is the retry schedule of an RPC call with retrying
// semantics (at-least-once, exactly-once): when each attempt starts and
// how long it may take, capped by the call's deadline.
//
// A Schedule is a deterministic core: times are nanoseconds passed in,
// never read, and jitter comes from an injected Source, so the schedule
// is tested exactly. The rpc client sleeps and calls; this package only
// decides.
//
// # Rules
//
// Attempt k (1-based) may take timeout(k) = min(MaxTimeout,
// FirstTimeout × Multiplier^(k-1)): attempts get longer, so a slow
// handler is eventually given enough time. The first attempt starts at
// once; attempt k > 1 starts pause(k) after attempt k-1 failed, where
// pause(k) = min(MaxBackoff, Backoff × Multiplier^(k-2)) × (1 − Jitter×u)
// and u in [0, 1) comes from the Source (callers that fail together do
// not retry together). With a deadline:
//
//   - no attempt starts at or after the deadline;
//   - no attempt ends after it;
//   - an attempt that would leave less than its own timeout before the
//     deadline runs to the deadline instead (the last attempt is never
//     cut shorter than the one before it).
//
// MaxAttempts, if set, ends the schedule after that many attempts; the
// last one runs to the deadline (or has no end, without one). Without a
// deadline or MaxAttempts the schedule never ends: the caller's context
// is what stops it.
package retry

import (
	"fmt"
	"time"
)

// Policy is how a call retries. Zero fields take DefaultPolicy's values.
type Policy struct {
	FirstTimeout time.Duration // timeout of the first attempt
	MaxTimeout   time.Duration // cap on an attempt's timeout
	Backoff      time.Duration // pause before the first retry
	MaxBackoff   time.Duration // cap on a pause
	Multiplier   float64       // growth of timeouts and pauses, >= 1
	Jitter       float64       // 0..1: a pause is shortened by up to this fraction
	MaxAttempts  int           // 0: until the deadline
}

// DefaultPolicy returns the defaults: attempts of 200 ms, 400 ms, ... up
// to 5 s, pauses of 10 ms, 20 ms, ... up to 1 s, shortened by up to 20%.
func DefaultPolicy() Policy {
	return Policy{FirstTimeout: 200 * time.Millisecond, MaxTimeout: 5 * time.Second,
		Backoff: 10 * time.Millisecond, MaxBackoff: time.Second, Multiplier: 2, Jitter: 0.2}
}

// Validate names the first bad field.
func (p Policy) Validate() error {
	switch {
	case p.FirstTimeout < 0:
		return fmt.Errorf("retry: FirstTimeout %v is negative", p.FirstTimeout)
	case p.MaxTimeout < 0:
		return fmt.Errorf("retry: MaxTimeout %v is negative", p.MaxTimeout)
	case p.Backoff < 0:
		return fmt.Errorf("retry: Backoff %v is negative", p.Backoff)
	case p.MaxBackoff < 0:
		return fmt.Errorf("retry: MaxBackoff %v is negative", p.MaxBackoff)
	case p.Multiplier != 0 && p.Multiplier < 1:
		return fmt.Errorf("retry: Multiplier %v is below 1", p.Multiplier)
	case p.Jitter < 0 || p.Jitter > 1:
		return fmt.Errorf("retry: Jitter %v is outside 0..1", p.Jitter)
	case p.MaxAttempts < 0:
		return fmt.Errorf("retry: MaxAttempts %d is negative", p.MaxAttempts)
	}
	return nil
}

// withDefaults fills zero fields.
func (p Policy) withDefaults() Policy {
	d := DefaultPolicy()
	if p.FirstTimeout == 0 {
		p.FirstTimeout = d.FirstTimeout
	}
	if p.MaxTimeout == 0 {
		p.MaxTimeout = max(d.MaxTimeout, p.FirstTimeout)
	}
	if p.Backoff == 0 {
		p.Backoff = d.Backoff
	}
	if p.MaxBackoff == 0 {
		p.MaxBackoff = max(d.MaxBackoff, p.Backoff)
	}
	if p.Multiplier == 0 {
		p.Multiplier = d.Multiplier
	}
	return p
}

// Source gives jitter: numbers in [0, 1). *math/rand/v2.Rand is one.
type Source interface{ Float64() float64 }

// Attempt is one attempt of a call.
type Attempt struct {
	N     int   // 1 for the first attempt
	Start int64 // when to send it
	End   int64 // when to give up on it; 0: never (no deadline, last attempt)
}

// Schedule is the retry schedule of one call. It is not safe for
// concurrent use (a call's attempts are sequential).
type Schedule struct {
	p        Policy
	deadline int64 // 0: none
	src      Source
	last     Attempt
	timeout  float64 // timeout of the next attempt, before the cap
	pause    float64 // pause before the next attempt, before the cap and jitter
	ended    bool
}

// New starts the schedule of a call made at now with the deadline (0:
// none); src may be nil (no jitter). The policy is taken as valid
// (Validate), zero fields as defaults.
func New(p Policy, now, deadline int64, src Source) *Schedule {
	p = p.withDefaults()
	s := &Schedule{p: p, deadline: deadline, src: src, timeout: float64(p.FirstTimeout), pause: float64(p.Backoff)}
	s.last = s.plan(1, now)
	return s
}

// First returns the first attempt (it starts at the call's now).
func (s *Schedule) First() Attempt { return s.last }

// Next returns the attempt to make after the previous one failed at now,
// or false when the schedule has ended (the deadline or MaxAttempts).
func (s *Schedule) Next(now int64) (Attempt, bool) {
	if s.ended || s.p.MaxAttempts > 0 && s.last.N >= s.p.MaxAttempts {
		s.ended = true
		return Attempt{}, false
	}
	now = max(now, s.last.Start)
	pause := min(s.pause, float64(s.p.MaxBackoff))
	s.pause *= s.p.Multiplier
	if s.src != nil && s.p.Jitter > 0 {
		pause *= 1 - s.p.Jitter*s.src.Float64()
	}
	start := now + int64(pause)
	if s.deadline != 0 && start >= s.deadline {
		s.ended = true
		return Attempt{}, false
	}
	s.last = s.plan(s.last.N+1, start)
	return s.last, true
}

// plan makes attempt n starting at start, and grows the next timeout.
func (s *Schedule) plan(n int, start int64) Attempt {
	timeout := int64(min(s.timeout, float64(s.p.MaxTimeout)))
	s.timeout *= s.p.Multiplier
	a := Attempt{N: n, Start: start, End: start + timeout}
	lastOne := s.p.MaxAttempts > 0 && n >= s.p.MaxAttempts
	switch {
	case s.deadline == 0 && lastOne:
		a.End = 0
	case s.deadline == 0:
	case lastOne || s.deadline-a.End < timeout:
		a.End = s.deadline
	}
	return a
}
