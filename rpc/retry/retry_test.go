package retry

import (
	"math/rand/v2"
	"testing"
	"time"
)

const ms = int64(time.Millisecond)

// fixed is a Source that always says the same.
type fixed float64

func (f fixed) Float64() float64 { return float64(f) }

var plain = Policy{FirstTimeout: 100 * time.Millisecond, MaxTimeout: 400 * time.Millisecond,
	Backoff: 10 * time.Millisecond, MaxBackoff: 30 * time.Millisecond, Multiplier: 2}

// run plays a schedule whose attempts all time out and returns them.
func run(p Policy, now, deadline int64, src Source) []Attempt {
	s := New(p, now, deadline, src)
	as := []Attempt{s.First()}
	for len(as) < 1000 {
		end := as[len(as)-1].End
		if end == 0 {
			break
		}
		a, ok := s.Next(end)
		if !ok {
			break
		}
		as = append(as, a)
	}
	return as
}

func TestFirstAttemptStartsAtOnceWithFirstTimeout(t *testing.T) {
	a := New(plain, 1000, 0, nil).First()
	if a != (Attempt{N: 1, Start: 1000, End: 1000 + 100*ms}) {
		t.Fatalf("%+v", a)
	}
}

func TestTimeoutsAndPausesGrowByMultiplierUpToTheirCaps(t *testing.T) {
	as := run(plain, 0, 0, nil)[:5]
	wantTimeouts := []int64{100, 200, 400, 400, 400}
	wantPauses := []int64{10, 20, 30, 30}
	for i, a := range as {
		if got := (a.End - a.Start) / ms; got != wantTimeouts[i] {
			t.Errorf("attempt %d timeout %d ms, want %d", a.N, got, wantTimeouts[i])
		}
		if i > 0 {
			if got := (a.Start - as[i-1].End) / ms; got != wantPauses[i-1] {
				t.Errorf("pause before attempt %d %d ms, want %d", a.N, got, wantPauses[i-1])
			}
		}
	}
}

func TestJitterShortensPausesByUpToItsFraction(t *testing.T) {
	p := plain
	p.Jitter = 0.5
	s := New(p, 0, 0, fixed(0.5))
	a, _ := s.Next(100 * ms)
	if got := a.Start - 100*ms; got != int64(7.5*float64(ms)) {
		t.Fatalf("pause %v, want 7.5ms (10ms less a quarter)", time.Duration(got))
	}
	// Timeouts are not jittered.
	if a.End-a.Start != 200*ms {
		t.Fatalf("timeout %v", time.Duration(a.End-a.Start))
	}
}

func TestAFastFailureIsRetriedAfterThePauseNotTheTimeout(t *testing.T) {
	s := New(plain, 0, 0, nil)
	a, _ := s.Next(1 * ms) // e.g. the service had no mailbox yet
	if a.Start != 11*ms {
		t.Fatalf("start %v", time.Duration(a.Start))
	}
}

func TestNoAttemptStartsAtOrAfterTheDeadline(t *testing.T) {
	s := New(plain, 0, 105*ms, nil)
	if _, ok := s.Next(100 * ms); ok {
		t.Fatal("an attempt would start at the deadline (100ms + 10ms pause > 105ms)")
	}
	if _, ok := s.Next(0); ok {
		t.Fatal("an ended schedule started again")
	}
}

func TestNoAttemptEndsAfterTheDeadline(t *testing.T) {
	a := New(plain, 0, 50*ms, nil).First()
	if a.End != 50*ms {
		t.Fatalf("first attempt ends at %v, want the deadline", time.Duration(a.End))
	}
}

func TestAttemptThatWouldLeaveLessThanItsTimeoutRunsToTheDeadline(t *testing.T) {
	// 100 ms, then 10 ms pause, then 200 ms ends at 310 ms, leaving 90 ms
	// before a deadline at 400 ms: less than 200, so it runs to 400.
	as := run(plain, 0, 400*ms, nil)
	if len(as) != 2 || as[1].End != 400*ms {
		t.Fatalf("%+v", as)
	}
}

func TestMaxAttemptsEndsTheScheduleAndTheLastRunsToTheDeadline(t *testing.T) {
	p := plain
	p.MaxAttempts = 2
	as := run(p, 0, 10_000*ms, nil)
	if len(as) != 2 || as[1].End != 10_000*ms {
		t.Fatalf("%+v", as)
	}
	if as := run(p, 0, 0, nil); len(as) != 2 || as[1].End != 0 {
		t.Fatalf("without a deadline the last attempt has no end: %+v", as)
	}
	p.MaxAttempts = 1
	if a := New(p, 0, 0, nil).First(); a.End != 0 {
		t.Fatalf("a single attempt without a deadline has no end: %+v", a)
	}
}

func TestWithoutDeadlineTheScheduleGoesOn(t *testing.T) {
	if as := run(plain, 0, 0, nil); len(as) != 1000 {
		t.Fatalf("%d attempts", len(as))
	}
}

func TestZeroPolicyIsTheDefault(t *testing.T) {
	d := DefaultPolicy()
	a := New(Policy{}, 0, 0, nil).First()
	if a.End != int64(d.FirstTimeout) {
		t.Fatalf("%+v", a)
	}
}

func TestValidateNamesBadField(t *testing.T) {
	for _, p := range []Policy{{FirstTimeout: -1}, {MaxTimeout: -1}, {Backoff: -1}, {MaxBackoff: -1},
		{Multiplier: 0.5}, {Jitter: 2}, {MaxAttempts: -1}} {
		if p.Validate() == nil {
			t.Errorf("%+v passed", p)
		}
	}
	if err := DefaultPolicy().Validate(); err != nil {
		t.Fatal(err)
	}
}

// Every rule at once, over random policies, deadlines and failure times.
func TestScheduleRulesHoldForRandomPolicies(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		p := Policy{
			FirstTimeout: time.Duration(1 + rng.IntN(100)),
			MaxTimeout:   time.Duration(1 + rng.IntN(1000)),
			Backoff:      time.Duration(rng.IntN(50)),
			MaxBackoff:   time.Duration(rng.IntN(100)),
			Multiplier:   1 + rng.Float64()*3,
			Jitter:       rng.Float64(),
			MaxAttempts:  rng.IntN(8),
		}
		if p.MaxTimeout < p.FirstTimeout {
			p.MaxTimeout = p.FirstTimeout
		}
		now := int64(rng.IntN(1000))
		var deadline int64
		if rng.IntN(4) > 0 {
			deadline = now + 1 + int64(rng.IntN(5000))
		}
		s := New(p, now, deadline, rng)
		a := s.First()
		if a.N != 1 || a.Start != now {
			t.Fatalf("%+v: first %+v", p, a)
		}
		for {
			if deadline != 0 && (a.Start >= deadline || a.End > deadline || a.End <= a.Start) {
				t.Fatalf("%+v deadline %d: attempt %+v", p, deadline, a)
			}
			if p.MaxAttempts > 0 && a.N > p.MaxAttempts {
				t.Fatalf("%+v: attempt %d", p, a.N)
			}
			// Fail somewhere in the attempt (or at its end).
			fail := a.Start
			if a.End != 0 {
				fail += rng.Int64N(a.End - a.Start + 1)
			} else {
				fail += int64(rng.IntN(100))
			}
			next, ok := s.Next(fail)
			if !ok {
				if deadline == 0 && (p.MaxAttempts == 0 || a.N < p.MaxAttempts) {
					t.Fatalf("%+v: ended without deadline after %d", p, a.N)
				}
				break
			}
			if next.N != a.N+1 || next.Start < fail {
				t.Fatalf("%+v: %+v after failing at %d", p, next, fail)
			}
			if pause := next.Start - fail; pause > int64(p.withDefaults().MaxBackoff)+1 {
				t.Fatalf("%+v: pause %d over the cap", p, pause)
			}
			a = next
			if a.N > 200 {
				break
			}
		}
	}
}
