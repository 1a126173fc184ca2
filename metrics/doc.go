// Package metrics exports a broker's statistics to Prometheus.
//
// NewCollector is a prometheus.Collector over broker.Snapshot: every
// scrape takes one snapshot and turns it into constant metrics, so the
// broker's data path keeps no Prometheus state and pays nothing per
// message for being scraped (the counters it reads are the broker's own:
// see broker/stats.go). Handler serves a registry holding that collector,
// the Go runtime's and the process's collectors and Go's build info, in
// the Prometheus text exposition format; `postbox serve --metrics ADDR`
// mounts it at /metrics.
//
// Every metric is named postbox_..., with its unit in its name (_bytes,
// _seconds, _messages) and _total on counters; docs/OPERATIONS.md lists
// them with their types, labels and meaning. Per-mailbox metrics have the
// label mailbox (named mailboxes only: endpoints' private inboxes would
// make a series per connection), per-account ones the label account
// ("uid:1000", "principal:NAME" or "anonymous"), per-subject ones the
// label pattern (each subscribed pattern).
//
// This is the only package of the module that imports
// github.com/prometheus/client_golang.
package metrics
