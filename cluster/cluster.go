package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/postbox-ipc/postbox/broker"
)

// Config says how to reach the cluster.
type Config struct {
	// URLs are the NATS servers (nats://host:port or tls://host:port);
	// at least one.
	URLs []string
	// Creds is a NATS credentials file (JWT and seed); or User and
	// Password. Empty: no authentication.
	Creds          string
	User, Password string
	// TLS, if not nil, is the client TLS configuration (CA, client
	// certificate) of the NATS connection.
	TLS *tls.Config
	// Name is the NATS connection's name (postbox-<host> if empty).
	Name string
	// AckWait is how long JetStream waits for a delivered message's ack
	// (or in-progress) before it redelivers it; 0: 30 s, at least 1 s.
	// The broker keeps held leases alive every broker.Config.
	// RemoteKeepAlive (10 s by default): keep AckWait well above that
	// (three times or more). All brokers on a cluster should use the same
	// value: the consumers they share take the last one set.
	AckWait time.Duration
	// Logger receives connection events; nil means slog.Default().
	Logger *slog.Logger
}

// Validate names the first bad field.
func (c *Config) Validate() error {
	switch {
	case len(c.URLs) == 0:
		return fmt.Errorf("%w: no server URLs", ErrConfig)
	case c.Creds != "" && c.User != "":
		return fmt.Errorf("%w: credentials file and user/password are exclusive", ErrConfig)
	case c.Password != "" && c.User == "":
		return fmt.Errorf("%w: a password without a user", ErrConfig)
	case c.AckWait != 0 && c.AckWait < time.Second:
		return fmt.Errorf("%w: ack wait %v is under 1s", ErrConfig, c.AckWait)
	}
	return nil
}

// ErrConfig: a Config field is bad.
var ErrConfig = errors.New("cluster: bad config")

// Backend is a broker.RemoteBackend on a JetStream cluster. It is safe
// for concurrent use.
type Backend struct {
	cfg Config
	log *slog.Logger
	nc  *nats.Conn
	js  jetstream.JetStream

	mu        sync.Mutex // guards consumers
	consumers map[consumerKey]jetstream.Consumer

	wg sync.WaitGroup // the goroutines waiting for publish acks
}

var _ broker.RemoteBackend = (*Backend)(nil)

type consumerKey struct {
	stream string
	typ    int64
}

// Open connects to the cluster. It does not wait for the connection:
// until it is up (and whenever it is down) cluster operations fail with
// broker.ErrRemoteUnavailable, and it reconnects by itself.
func Open(cfg Config) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.AckWait == 0 {
		cfg.AckWait = 30 * time.Second
	}
	b := &Backend{cfg: cfg, log: cfg.Logger, consumers: make(map[consumerKey]jetstream.Consumer)}
	if b.log == nil {
		b.log = slog.Default()
	}
	opts := []nats.Option{
		nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond),
		// No buffering while disconnected: a send fails at once
		// (UNAVAILABLE) instead of being held where a crash loses it.
		nats.ReconnectBufSize(-1),
		nats.PingInterval(2 * time.Second), nats.MaxPingsOutstanding(2),
		nats.Timeout(2 * time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			b.log.Warn("cluster: disconnected; cluster mailboxes are unavailable until it reconnects", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			b.log.Info("cluster: reconnected", "server", nc.ConnectedUrlRedacted())
		}),
	}
	if cfg.Name != "" {
		opts = append(opts, nats.Name(cfg.Name))
	}
	switch {
	case cfg.Creds != "":
		opts = append(opts, nats.UserCredentials(cfg.Creds))
	case cfg.User != "":
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	}
	if cfg.TLS != nil {
		opts = append(opts, nats.Secure(cfg.TLS))
	}
	url := cfg.URLs[0]
	for _, u := range cfg.URLs[1:] {
		url += "," + u
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("cluster: connect: %w", err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(5*time.Second), jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("cluster: %w", err)
	}
	b.nc, b.js = nc, js
	return b, nil
}

// Connected reports whether the connection to the cluster is up.
func (b *Backend) Connected() bool { return b.nc.IsConnected() }

// Close closes the connection, after the acks of sends in flight (which
// fail with broker.ErrRemoteUnavailable if they do not come).
func (b *Backend) Close() error {
	b.nc.Close()
	b.wg.Wait()
	return nil
}

// up fails with broker.ErrRemoteUnavailable while disconnected.
func (b *Backend) up() error {
	if !b.nc.IsConnected() {
		return fmt.Errorf("%w (%s)", broker.ErrRemoteUnavailable, b.nc.Status())
	}
	return nil
}

// mapErr turns a NATS error into the broker's vocabulary.
func mapErr(err error) error {
	var apiErr *jetstream.APIError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return fmt.Errorf("%w: %v", broker.ErrRemoteNotFound, err)
	case errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamNotFound):
		return fmt.Errorf("%w: %v", broker.ErrRemoteNotFound, err)
	case errors.As(err, &apiErr) && isFull(apiErr.Description):
		return fmt.Errorf("%w: %v", broker.ErrRemoteFull, err)
	case errors.Is(err, nats.ErrTimeout), errors.Is(err, jetstream.ErrAsyncPublishTimeout), errors.Is(err, nats.ErrConnectionClosed),
		errors.Is(err, nats.ErrDisconnected), errors.Is(err, nats.ErrConnectionReconnecting), errors.Is(err, nats.ErrNoResponders),
		errors.Is(err, jetstream.ErrJetStreamNotEnabled), errors.Is(err, nats.ErrConnectionDraining):
		return fmt.Errorf("%w: %v", broker.ErrRemoteUnavailable, err)
	case errors.As(err, &apiErr) && apiErr.Code == 503:
		return fmt.Errorf("%w: %v", broker.ErrRemoteUnavailable, err)
	}
	return err
}

// transient retries f while it fails the way a cluster does for a
// moment (no responder for the JetStream API, no leader yet), for up to
// two seconds within ctx.
func transient[T any](ctx context.Context, f func() (T, error)) (T, error) {
	deadline := time.Now().Add(2 * time.Second)
	for {
		v, err := f()
		var apiErr *jetstream.APIError
		again := errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
			errors.As(err, &apiErr) && apiErr.Code == 503
		if !again || time.Now().After(deadline) {
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func isFull(desc string) bool {
	return desc == "maximum messages exceeded" || desc == "maximum bytes exceeded" ||
		desc == "maximum messages per subject exceeded"
}
