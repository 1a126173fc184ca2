package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewRegistry returns a registry holding a Collector over src, the Go
// runtime's collector (go_*), the process collector (process_*: CPU,
// memory, descriptors) and Go's build info (go_build_info).
func NewRegistry(src Source) *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(NewCollector(src),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewBuildInfoCollector())
	return r
}

// Handler serves NewRegistry(src) in the Prometheus exposition formats.
// A scrape that fails to gather is answered 500 with the error.
func Handler(src Source) http.Handler {
	return promhttp.HandlerFor(NewRegistry(src), promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError})
}
