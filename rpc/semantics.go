package rpc

import (
	"fmt"
	"strings"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/rpc/envelope"
)

// Semantics is a call's invocation semantics (see the package comment for
// what each promises). The zero value is Maybe.
type Semantics uint8

const (
	// Maybe: one attempt, never retried; the handler runs at most once,
	// perhaps not at all.
	Maybe Semantics = iota
	// AtLeastOnce: attempts with the same request id until a reply or
	// the deadline; the handler may run more than once.
	AtLeastOnce
	// ExactlyOnce: AtLeastOnce plus the server's reply cache: while the
	// server process lives, the handler runs once per call.
	ExactlyOnce
)

func (s Semantics) String() string {
	switch s {
	case Maybe:
		return envelope.SemMaybe
	case AtLeastOnce:
		return envelope.SemAtLeastOnce
	case ExactlyOnce:
		return envelope.SemExactlyOnce
	}
	return fmt.Sprintf("Semantics(%d)", uint8(s))
}

// ParseSemantics reads an rpc-semantics value ("" is Maybe).
func ParseSemantics(s string) (Semantics, error) {
	switch s {
	case "", envelope.SemMaybe:
		return Maybe, nil
	case envelope.SemAtLeastOnce:
		return AtLeastOnce, nil
	case envelope.SemExactlyOnce:
		return ExactlyOnce, nil
	}
	return Maybe, Errorf(envelope.InvalidArgument, "rpc: unknown semantics %q", s)
}

// retries reports whether calls with these semantics make more than one
// attempt.
func (s Semantics) retries() bool { return s == AtLeastOnce || s == ExactlyOnce }

// Metadata is request metadata, response headers or trailers: lower-case
// keys ([a-z0-9-_.], as gRPC's) to values. It travels as message headers
// with a prefix (envelope.RequestMeta, HeaderMeta, TrailerMeta).
type Metadata map[string][]string

// Get returns the first value of key, "" if none.
func (md Metadata) Get(key string) string {
	if v := md[strings.ToLower(key)]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Set replaces key's values.
func (md Metadata) Set(key string, values ...string) { md[strings.ToLower(key)] = values }

// Add appends values to key's.
func (md Metadata) Add(key string, values ...string) {
	k := strings.ToLower(key)
	md[k] = append(md[k], values...)
}

// size is the bytes md takes as headers, for the reply cache's bound.
func (md Metadata) size() int {
	n := 0
	for k, vs := range md {
		for _, v := range vs {
			n += 8 + len(k) + len(v)
		}
	}
	return n
}

// appendTo appends the options that send md under prefix.
func (md Metadata) appendTo(opts []postbox.CallOption, prefix string) []postbox.CallOption {
	for k, vs := range md {
		for _, v := range vs {
			opts = append(opts, postbox.WithHeader(prefix+k, v))
		}
	}
	return opts
}

// metadataFrom collects the headers under prefix (nil if none).
func metadataFrom(h postbox.Header, prefix string) Metadata {
	var md Metadata
	for k, vs := range h {
		if strings.HasPrefix(k, prefix) {
			if md == nil {
				md = Metadata{}
			}
			md[k[len(prefix):]] = vs
		}
	}
	return md
}
