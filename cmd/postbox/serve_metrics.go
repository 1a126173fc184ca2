package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/postbox-ipc/postbox/broker"
	"github.com/postbox-ipc/postbox/metrics"
)

// serve --metrics ADDR: a Prometheus endpoint at http://ADDR/metrics
// (package metrics), on a loopback address unless --metrics-public.

// errMetricsPublic refuses a --metrics address that is not loopback
// without --metrics-public.
var errMetricsPublic = errors.New("not a loopback address: the metrics endpoint has no authentication and names every mailbox and uid; add --metrics-public to serve it there anyway")

// metricsFlags are serve's --metrics flags.
type metricsFlags struct {
	addr   string
	public bool
}

func (m *metricsFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&m.addr, "metrics", "", "serve Prometheus metrics at http://ADDR/metrics (HOST:PORT; loopback only unless --metrics-public)")
	f.BoolVar(&m.public, "metrics-public", false, "allow --metrics on a non-loopback address: anyone who reaches it sees every mailbox name and uid (no authentication)")
}

// check validates --metrics before anything is opened.
func (m *metricsFlags) check() error {
	if m.addr == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(m.addr)
	if err != nil {
		return fmt.Errorf("--metrics %q: want HOST:PORT, e.g. 127.0.0.1:9464", m.addr)
	}
	if !m.public && !loopbackHost(host) {
		return fmt.Errorf("--metrics %q: %w", m.addr, errMetricsPublic)
	}
	return nil
}

// loopbackHost reports whether host names only loopback: "localhost" or
// a loopback IP. An empty host (every interface) is not.
func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// start listens on --metrics and serves b's metrics until the returned
// stop is called (it waits for the server to end). Without --metrics it
// does nothing.
func (m *metricsFlags) start(b *broker.Broker, log *slog.Logger) (stop func(), err error) {
	if m.addr == "" {
		return func() {}, nil
	}
	if err := m.check(); err != nil {
		return nil, usageError{err}
	}
	l, err := net.Listen("tcp", m.addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", metrics.Handler(b))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics endpoint stopped", "err", err)
		}
	}()
	log.Info("metrics listening", "metrics", "http://"+l.Addr().String()+"/metrics")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if srv.Shutdown(ctx) != nil {
			srv.Close()
		}
		<-done
	}, nil
}
