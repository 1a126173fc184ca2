package topic

import (
	"errors"
	"fmt"
)

// MaxHeaderConds is the most header conditions a Filter may have.
const MaxHeaderConds = 16

// ErrInvalidFilter: a Filter's type range is reversed, or a header
// condition has no key, or there are more than MaxHeaderConds.
var ErrInvalidFilter = errors.New("topic: invalid filter")

// Filter selects publications by message type and headers, so that a
// subscription is not sent what it does not want. The zero Filter selects
// everything.
//
// The type range TypeMin..TypeMax is inclusive and applies when HasType
// is set or either bound is not zero (so the zero Filter passes every
// type, and HasType with 0..0 passes only type 0). Every header condition
// must hold (they are ANDed).
type Filter struct {
	TypeMin, TypeMax int64
	Headers          []HeaderCond
	HasType          bool
}

// HeaderCond is one condition on a publication's headers. With Present
// set it holds when the header Key exists (Value is ignored); otherwise
// when Key exists with exactly the value Value.
type HeaderCond struct {
	Key, Value string
	Present    bool
}

// Validate returns nil or an error wrapping ErrInvalidFilter that names
// what is wrong.
func (f Filter) Validate() error {
	switch {
	case f.typed() && f.TypeMax < f.TypeMin:
		return fmt.Errorf("%w: type range %d..%d is reversed", ErrInvalidFilter, f.TypeMin, f.TypeMax)
	case len(f.Headers) > MaxHeaderConds:
		return fmt.Errorf("%w: %d header conditions, more than %d", ErrInvalidFilter, len(f.Headers), MaxHeaderConds)
	}
	for i, h := range f.Headers {
		if h.Key == "" {
			return fmt.Errorf("%w: header condition %d has no key", ErrInvalidFilter, i)
		}
	}
	return nil
}

// All reports whether f selects everything (it is the zero Filter in
// effect).
func (f Filter) All() bool { return !f.typed() && len(f.Headers) == 0 }

func (f Filter) typed() bool { return f.HasType || f.TypeMin != 0 || f.TypeMax != 0 }

// Matches reports whether a publication of type typ with the given
// headers passes f. headers looks a header up by key; nil means the
// publication has no headers.
func (f Filter) Matches(typ int64, headers func(key string) (string, bool)) bool {
	if f.typed() && (typ < f.TypeMin || typ > f.TypeMax) {
		return false
	}
	for _, h := range f.Headers {
		if headers == nil {
			return false
		}
		v, ok := headers(h.Key)
		if !ok || !h.Present && v != h.Value {
			return false
		}
	}
	return true
}
