package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
)

// labels name the systems in the table.
var labels = map[string]string{
	"postbox":   "postbox serve",
	"nats":      "NATS core",
	"jetstream": "JetStream, sync_interval: always",
	"grpc":      "gRPC-go unary",
	"raw":       "raw Unix socket round trip",
	"fsync":     "raw write + fdatasync loop, 1 writer",
}

func label(key string) string { return labels[key] }

// figure is one row of the report: one metric of one workload, postbox
// beside one peer.
type figure struct {
	name     string // what is measured
	workload string
	metric   string // rate, p50 or p99
	peer     string // system key of the peer
	// acks say what each side confirms, for the table.
	postboxAcks, peerAcks string
	lowerIsBetter         bool
}

func figures(cfg Config) []figure {
	fs := []figure{
		{name: "64 B, one sender → one receiver, msgs/s", workload: "tput64", metric: "rate", peer: "nats", postboxAcks: "acks on", peerAcks: "no acks"},
		{name: "4 KiB, one sender → one receiver, msgs/s", workload: "tput4096", metric: "rate", peer: "nats", postboxAcks: "acks on", peerAcks: "no acks"},
		{name: "64 B send → receive latency, p50", workload: "latency", metric: "p50", peer: "nats", lowerIsBetter: true},
		{name: "64 B send → receive latency, p99", workload: "latency", metric: "p99", peer: "nats", lowerIsBetter: true},
		{name: "64 B send → receive p50 vs raw socket round trip", workload: "latency", metric: "p50", peer: "raw", lowerIsBetter: true},
		{name: fmt.Sprintf("durable 256 B, %d senders, msgs/s", cfg.Senders), workload: "durable", metric: "rate", peer: "jetstream", postboxAcks: "fsync before answer", peerAcks: "fsync before PubAck"},
		{name: fmt.Sprintf("durable 256 B, %d senders, msgs/s, vs one fsync per message", cfg.Senders), workload: "durable", metric: "rate", peer: "fsync", postboxAcks: "fsync before answer"},
	}
	for _, n := range cfg.Callers {
		w := fmt.Sprintf("rpc%d", n)
		fs = append(fs,
			figure{name: fmt.Sprintf("RPC 64 B round trip, %d %s, calls/s", n, callersWord(n)), workload: w, metric: "rate", peer: "grpc", postboxAcks: "CALL + Reply"},
			figure{name: fmt.Sprintf("RPC 64 B round trip, %d %s, p50", n, callersWord(n)), workload: w, metric: "p50", peer: "grpc", postboxAcks: "CALL + Reply", lowerIsBetter: true})
	}
	for _, size := range cfg.PubsubSizes {
		pbAcks, natsAcks := pubsubAcks(cfg.PubsubWindow, subscriberBuffer(cfg, size))
		for _, n := range cfg.Fanouts {
			fs = append(fs, figure{name: pubsubTitle(size, n) + ", msgs/s at the subscribers", workload: pubsubKey(size, n), metric: "rate", peer: "nats",
				postboxAcks: pbAcks, peerAcks: natsAcks})
		}
	}
	if cfg.Wildcard {
		pbAcks, natsAcks := pubsubAcks(cfg.PubsubWindow, wildcardBuffer)
		fs = append(fs, figure{name: wildcardTitle + ", msgs/s at the subscribers", workload: "wildcard", metric: "rate", peer: "nats",
			postboxAcks: pbAcks, peerAcks: natsAcks})
	}
	return fs
}

// pubsubAcks says what each side of a pub/sub row confirms: postbox
// with window publications in flight, subscribers of buffer events.
func pubsubAcks(window, buffer int) (postbox, nats string) {
	return fmt.Sprintf("no acks; the broker answers each batched PUBLISH frame (%d publications in flight), a subscriber's full buffer (%d events) blocks the publisher, credit back every %d events",
			window, buffer, max(1, buffer/4)),
		fmt.Sprintf("no acks, no flow control; the bench holds the publisher within %d MiB of the slowest subscriber", natsWindowBytes>>20)
}

// Row is one figure of the report, as -o json prints it.
type Row struct {
	Figure        string    `json:"figure"`
	Metric        string    `json:"metric"` // msgs_per_sec, calls_per_sec, p50_ns, p99_ns
	Postbox       float64   `json:"postbox"`
	PostboxRounds []float64 `json:"postbox_rounds"`
	PostboxAcks   string    `json:"postbox_acks,omitempty"`
	Peer          string    `json:"peer"`
	PeerValue     float64   `json:"peer_value"`
	PeerRounds    []float64 `json:"peer_rounds"`
	PeerAcks      string    `json:"peer_acks,omitempty"`
	// Ratio is Postbox ÷ PeerValue: above 1 postbox is ahead for rates,
	// behind for latencies (LowerIsBetter).
	Ratio float64 `json:"ratio"`
	// RatioMin and RatioMax are the lowest and highest ratio of one
	// round's two measurements, taken close together in time.
	RatioMin      float64 `json:"ratio_min"`
	RatioMax      float64 `json:"ratio_max"`
	LowerIsBetter bool    `json:"lower_is_better,omitempty"`
	Rounds        int     `json:"rounds"`
}

// Report is the medians of every figure.
type Report struct {
	Rows  []Row
	Notes []string // what the postbox and peer measurements said of themselves
}

func newReport(cfg Config, got map[string]map[string][]result) *Report {
	rep := &Report{}
	for _, f := range figures(cfg) {
		pb := values(got[f.workload]["postbox"], f.metric)
		peer := values(got[f.workload][f.peer], f.metric)
		row := Row{Figure: f.name, Metric: metricName(f), Postbox: median(pb), PostboxRounds: pb, PostboxAcks: f.postboxAcks,
			Peer: label(f.peer), PeerValue: median(peer), PeerRounds: peer, PeerAcks: f.peerAcks,
			LowerIsBetter: f.lowerIsBetter, Rounds: cfg.Rounds}
		if row.PeerValue > 0 {
			row.Ratio = row.Postbox / row.PeerValue
		}
		for i := range min(len(pb), len(peer)) {
			if peer[i] <= 0 {
				continue
			}
			q := pb[i] / peer[i]
			if row.RatioMin == 0 || q < row.RatioMin {
				row.RatioMin = q
			}
			row.RatioMax = max(row.RatioMax, q)
		}
		rep.Rows = append(rep.Rows, row)
	}
	keys := []string{"tput64", "tput4096"}
	for _, size := range cfg.PubsubSizes {
		for _, n := range cfg.Fanouts {
			keys = append(keys, pubsubKey(size, n))
		}
	}
	keys = append(keys, "wildcard")
	for _, key := range keys {
		for _, sys := range []string{"postbox", "nats"} {
			if rs := got[key][sys]; len(rs) > 0 && rs[0].note != "" {
				rep.Notes = append(rep.Notes, fmt.Sprintf("%s, %s: %s", key, label(sys), rs[0].note))
			}
		}
	}
	return rep
}

func callersWord(n int) string {
	if n == 1 {
		return "caller"
	}
	return "callers"
}

func metricName(f figure) string {
	switch {
	case f.metric != "rate":
		return f.metric + "_ns"
	case strings.HasPrefix(f.workload, "rpc"):
		return "calls_per_sec"
	}
	return "msgs_per_sec"
}

func values(rs []result, metric string) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		switch metric {
		case "rate":
			out[i] = r.rate
		case "p50":
			out[i] = r.p50
		case "p99":
			out[i] = r.p99
		}
	}
	return out
}

// median of the rounds; an even count takes the mean of the middle two.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// WriteTable prints the report as a Markdown table.
func (r *Report) WriteTable(w io.Writer) error {
	var b strings.Builder
	rounds := 0
	if len(r.Rows) > 0 {
		rounds = r.Rows[0].Rounds
	}
	fmt.Fprintf(&b, "| figure (median of %d rounds) | postbox | peer | peer's figure | postbox ÷ peer | each round |\n", rounds)
	b.WriteString("|---|---|---|---|---|---|\n")
	for _, row := range r.Rows {
		ratio := fmt.Sprintf("%.2f×", row.Ratio)
		if row.LowerIsBetter {
			ratio += " (lower is better)"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %.2f–%.2f× |\n", row.Figure,
			withAcks(valueText(row.Metric, row.Postbox), row.PostboxAcks), row.Peer,
			withAcks(valueText(row.Metric, row.PeerValue), row.PeerAcks), ratio, row.RatioMin, row.RatioMax)
	}
	if len(r.Notes) > 0 {
		b.WriteString("\n" + strings.Join(r.Notes, "\n") + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON prints one JSON object per figure, one per line.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	for _, row := range r.Rows {
		if err := enc.Encode(row); err != nil {
			return err
		}
	}
	return nil
}

func withAcks(v, acks string) string {
	if acks == "" {
		return v
	}
	return v + " (" + acks + ")"
}

func valueText(metric string, v float64) string {
	if strings.HasSuffix(metric, "_ns") {
		return durText(v)
	}
	return rateText(v)
}

// rateText is a rate to three figures: 1.28 M, 194 k, 4.90 k.
func rateText(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.3g M", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.3g k", v/1e3)
	}
	return fmt.Sprintf("%.3g", v)
}

// durText is nanoseconds to three figures: 812 ns, 14.7 µs, 1.21 ms.
func durText(ns float64) string {
	switch {
	case ns >= 1e6:
		return fmt.Sprintf("%.3g ms", ns/1e6)
	case ns >= 1e3:
		return fmt.Sprintf("%.3g µs", ns/1e3)
	}
	return fmt.Sprintf("%.0f ns", ns)
}
