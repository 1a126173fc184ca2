package postbox

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
)

// URLEnv names the environment variable with the broker's address as a
// URL (unix:///path, tls://host:port, tcp://host:port). Dial reads it
// when given neither WithURL nor WithSocket and $POSTBOX_SOCKET is unset.
const URLEnv = "POSTBOX_URL"

// Environment variables with the client's TLS files (PEM), read by
// ClientTLSConfigFromEnv and by the postbox command for its --tls-* flags.
const (
	TLSCertEnv = "POSTBOX_TLS_CERT"
	TLSKeyEnv  = "POSTBOX_TLS_KEY"
	TLSCAEnv   = "POSTBOX_TLS_CA"
)

// ErrTLS is matched by a TLS dial or handshake that failed: the broker
// refused the client's certificate (none, untrusted or expired: the
// error says which), or the client did not trust the broker's.
var ErrTLS = errors.New("postbox: TLS")

// WithURL dials the broker at a URL instead of a Unix socket path:
//
//	unix:///run/postbox/postbox.sock  a Unix socket, as WithSocket
//	tls://host:port                   TCP with mutual TLS (WithTLS)
//	tcp://host:port                   plain TCP (a broker listening on
//	                                  loopback with --insecure)
//
// Over TCP and TLS there is no descriptor passing, so no shared-memory
// channels; everything else is the same.
func WithURL(u string) DialOption { return func(o *dialOptions) { o.url = u } }

// WithTLS sets the TLS configuration for a tls:// URL: the client
// certificate the broker requires (Certificates) and the CAs that
// verify the broker's (RootCAs). ServerName defaults to the URL's host.
// ClientTLSConfig builds one from PEM files.
func WithTLS(cfg *tls.Config) DialOption { return func(o *dialOptions) { o.tls = cfg } }

// ClientTLSConfig reads a client certificate and key and the CA that
// signed the broker's certificate (PEM files) into a configuration for
// WithTLS. caFile "" trusts the system's roots.
func ClientTLSConfig(certFile, keyFile, caFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if certFile != "" || keyFile != "" {
		if certFile == "" || keyFile == "" {
			return nil, fmt.Errorf("%w: a client certificate needs both its file and its key's", ErrInvalid)
		}
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("postbox: TLS client certificate %s, key %s: %w", certFile, keyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("postbox: TLS CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("postbox: TLS CA %s: no PEM certificate in it", caFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// ClientTLSConfigFromEnv is ClientTLSConfig of $POSTBOX_TLS_CERT,
// $POSTBOX_TLS_KEY and $POSTBOX_TLS_CA; nil if none is set.
func ClientTLSConfigFromEnv() (*tls.Config, error) {
	cert, key, ca := os.Getenv(TLSCertEnv), os.Getenv(TLSKeyEnv), os.Getenv(TLSCAEnv)
	if cert == "" && key == "" && ca == "" {
		return nil, nil
	}
	return ClientTLSConfig(cert, key, ca)
}

// brokerURL is where Dial goes: the URL given, else $POSTBOX_URL unless
// a socket was named (WithSocket, $POSTBOX_SOCKET); "" for the socket.
func (o *dialOptions) brokerURL() string {
	if o.url != "" {
		return o.url
	}
	if o.socketSet || os.Getenv(SocketEnv) != "" {
		return ""
	}
	return os.Getenv(URLEnv)
}

// dialURL connects to the broker at raw (see WithURL).
func dialURL(ctx context.Context, d *net.Dialer, raw string, o *dialOptions) (net.Conn, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: broker URL %q: %v", ErrInvalid, raw, err)
	}
	switch u.Scheme {
	case "unix":
		if u.Path == "" || u.Host != "" {
			return nil, fmt.Errorf("%w: broker URL %q: want unix:///absolute/path", ErrInvalid, raw)
		}
		nc, err := d.DialContext(ctx, "unix", u.Path)
		if err != nil {
			return nil, fmt.Errorf("postbox: dial %s: %w (is `postbox serve` running?)", raw, err)
		}
		return nc, nil
	case "tcp", "tls":
		if u.Port() == "" || u.Path != "" {
			return nil, fmt.Errorf("%w: broker URL %q: want %s://host:port", ErrInvalid, raw, u.Scheme)
		}
	default:
		return nil, fmt.Errorf("%w: broker URL %q: scheme must be unix, tls or tcp", ErrInvalid, raw)
	}
	nc, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, fmt.Errorf("postbox: dial %s: %w (is `postbox serve --listen %s` running?)", raw, err, raw)
	}
	if u.Scheme == "tcp" {
		return nc, nil
	}
	cfg := o.tls
	if cfg == nil {
		if cfg, err = ClientTLSConfigFromEnv(); err != nil {
			nc.Close()
			return nil, err
		}
	}
	if cfg == nil {
		cfg = &tls.Config{MinVersion: tls.VersionTLS12}
	} else {
		cfg = cfg.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = u.Hostname()
	}
	if len(cfg.Certificates) > 0 && cfg.GetClientCertificate == nil {
		// Present the certificate even if the broker names CAs that did
		// not sign it (Go would otherwise send none): its refusal then
		// says what is wrong with it, not that there was none.
		cert := &cfg.Certificates[0]
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	tc := tls.Client(nc, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		nc.Close()
		return nil, tlsError(raw, err, len(cfg.Certificates) > 0)
	}
	return tc, nil
}

// tlsError says in words why a TLS connection failed. With TLS 1.3 the
// broker's verdict on the client's certificate arrives after the
// client's side of the handshake, as an alert on the first read: the
// handshake (HELLO) then fails with it.
func tlsError(raw string, err error, haveCert bool) error {
	var alert tls.AlertError
	var unknownCA x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var hostErr x509.HostnameError
	why := ""
	switch {
	case errors.As(err, &alert) || strings.Contains(err.Error(), "remote error: tls:"):
		msg := err.Error()
		switch {
		case strings.Contains(msg, "certificate required") || !haveCert && strings.Contains(msg, "bad certificate"):
			why = "the broker requires a client certificate and this client sent none (--tls-cert, --tls-key or WithTLS)"
		case strings.Contains(msg, "unknown certificate authority"):
			why = "the broker does not trust this client's certificate: no CA it trusts signed it"
		case strings.Contains(msg, "expired certificate"):
			why = "the broker refused this client's certificate: it has expired (or is not yet valid)"
		case strings.Contains(msg, "bad certificate"), strings.Contains(msg, "unsupported certificate"):
			why = "the broker refused this client's certificate"
		default:
			why = "the broker ended the TLS handshake"
		}
	case errors.As(err, &unknownCA):
		why = "this client does not trust the broker's certificate: no CA it trusts signed it (--tls-ca)"
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		why = "the broker's certificate has expired (or is not yet valid)"
	case errors.As(err, &hostErr):
		why = "the broker's certificate is not for this host name"
	default:
		return fmt.Errorf("%w: handshake with %s: %w", ErrTLS, raw, err)
	}
	return fmt.Errorf("%w: %s: %s: %w", ErrTLS, raw, why, err)
}

func isTLS(nc net.Conn) bool {
	_, ok := nc.(*tls.Conn)
	return ok
}
