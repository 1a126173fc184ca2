package topic

import (
	"fmt"
	"testing"
)

// matchWorkload is n subscriptions of which each publication matches
// three: for k < n/4, "dev.k.temp", "dev.k.*" and "*.k.temp" match the
// subject "dev.k.temp", and "site.k.>" matches nothing published. The
// subjects cycle through 512 devices (all cached once warm).
type matchWorkload struct {
	patterns []string
	subjects []string
}

func newMatchWorkload(n int) matchWorkload {
	var w matchWorkload
	for i := range n {
		k := i / 4
		w.patterns = append(w.patterns, [...]string{
			fmt.Sprintf("dev.%d.temp", k), fmt.Sprintf("dev.%d.*", k),
			fmt.Sprintf("*.%d.temp", k), fmt.Sprintf("site.%d.>", k)}[i%4])
	}
	devices := max(n/4, 1)
	for i := range 512 {
		w.subjects = append(w.subjects, fmt.Sprintf("dev.%d.temp", i*7919%devices))
	}
	return w
}

// BenchmarkMatch compares Sublist.Match (warm cache, and with the cache
// off so every match walks the trie) with the naive scan of every
// pattern (the unvalidated matcher, to be fair to it) at 10, 1000 and
// 10000 subscriptions. The sublist rows report x-scan: how many times
// faster than the scan of the same size measured in the same run
// (present when the scan row ran too, as with -bench .).
func BenchmarkMatch(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		w := newMatchWorkload(n)
		var scanNs float64
		b.Run(fmt.Sprintf("subs=%d/scan", n), func(b *testing.B) {
			b.ReportAllocs()
			i, hits := 0, 0
			for b.Loop() {
				subj := w.subjects[i%len(w.subjects)]
				for _, p := range w.patterns {
					if match(p, subj) {
						hits++
					}
				}
				i++
			}
			scanNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			if hits == 0 {
				b.Fatal("no matches")
			}
		})
		for _, cache := range []int{0, -1} {
			name := "sublist"
			if cache < 0 {
				name = "sublist-nocache"
			}
			b.Run(fmt.Sprintf("subs=%d/%s", n, name), func(b *testing.B) {
				s := &Sublist[int]{CacheSize: cache}
				for i, p := range w.patterns {
					if err := s.Insert(p, i); err != nil {
						b.Fatal(err)
					}
				}
				for _, subj := range w.subjects {
					s.Match(subj)
				}
				b.ReportAllocs()
				i, hits := 0, 0
				for b.Loop() {
					hits += len(s.Match(w.subjects[i%len(w.subjects)]))
					i++
				}
				if hits == 0 {
					b.Fatal("no matches")
				}
				if scanNs > 0 {
					b.ReportMetric(scanNs/(float64(b.Elapsed().Nanoseconds())/float64(b.N)), "x-scan")
				}
			})
		}
	}
}

// BenchmarkPublish is the engine's hot path: a publication to fanout
// subscriptions with room, each credited back at once. -benchmem shows
// the engine's own allocation per publication (its copy of the Pub).
func BenchmarkPublish(b *testing.B) {
	for _, fanout := range []int{1, 16} {
		b.Run(fmt.Sprintf("fanout=%d", fanout), func(b *testing.B) {
			e := NewEngine()
			for id := range fanout {
				if err := e.Subscribe(Sub{ID: SubID(id), Pattern: "bench.>", Buffer: 64}); err != nil {
					b.Fatal(err)
				}
			}
			p := Pub{Subject: "bench.x", Size: 64}
			b.ReportAllocs()
			for b.Loop() {
				if n, done := e.Publish(p, 0); n != fanout || !done {
					b.Fatal(n, done)
				}
				for _, x := range e.Effects() {
					e.AddCredit(x.Sub, 1)
				}
				e.Effects()
			}
		})
	}
}

// BenchmarkPublishRef is BenchmarkPublish through PublishRef, as the
// broker calls it: the engine keeps the caller's Pub, no copy.
func BenchmarkPublishRef(b *testing.B) {
	for _, fanout := range []int{1, 16} {
		b.Run(fmt.Sprintf("fanout=%d", fanout), func(b *testing.B) {
			e := NewEngine()
			for id := range fanout {
				if err := e.Subscribe(Sub{ID: SubID(id), Pattern: "bench.>", Buffer: 64}); err != nil {
					b.Fatal(err)
				}
			}
			p := &Pub{Subject: "bench.x", Size: 64}
			b.ReportAllocs()
			for b.Loop() {
				if n, done := e.PublishRef(p, 0); n != fanout || !done {
					b.Fatal(n, done)
				}
				for _, x := range e.Effects() {
					e.AddCredit(x.Sub, 1)
				}
				e.Effects()
			}
		})
	}
}

// BenchmarkSublistChurn is an insert plus a remove against 10000
// subscriptions and a full cache (DefaultCacheSize subjects) that the
// changed pattern does not match, so the cache stays full: what the exact
// cache invalidation costs a change. A literal pattern drops at most one
// entry; a wildcard pattern scans the cache.
func BenchmarkSublistChurn(b *testing.B) {
	for _, kind := range []string{"literal", "wildcard"} {
		b.Run(kind, func(b *testing.B) {
			w := newMatchWorkload(10000)
			s := &Sublist[int]{}
			for i, p := range w.patterns {
				s.Insert(p, i)
			}
			for i := range DefaultCacheSize {
				s.Match(fmt.Sprintf("dev.%d.temp", i))
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				p := fmt.Sprintf("site.%d.x", i%2500)
				if kind == "wildcard" {
					p = w.patterns[4*(i%2500)+3] // "site.k.>"
				}
				s.Insert(p, -1)
				s.Remove(p, -1)
				i++
			}
			if len(s.cache) != DefaultCacheSize {
				b.Fatalf("cache has %d entries, want it full", len(s.cache))
			}
		})
	}
}
