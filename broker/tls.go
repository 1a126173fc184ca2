package broker

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/postbox-ipc/postbox/wire"
)

// Remote clients: TCP with mutual TLS.
//
// A TLS listener (ListenTLS) requires every client to present a
// certificate that its client CAs verify; the handshake is bounded by
// Config.HandshakeTimeout like HELLO. The peer's principal is then
// KindTLS, named by the leaf certificate (tlsCredentials): its URI SAN if
// it has one (a spiffe:// one first), else its subject DN. The name is
// stamped on everything the connection sends and owns what it creates, as
// uid/gid/pid are for a Unix peer; a client cannot supply it. A TLS (or
// any non-Unix) connection is never granted DESCRIPTORS, so CHANNEL and
// ATTACH are refused on it.
//
// Plain TCP (ListenTCP) has no identity at all (KindNone): it is for
// loopback only, and `postbox serve` offers it only with --insecure.

// ErrInsecureListen is returned (wrapped) by ListenTCP for an address
// that is not loopback.
var ErrInsecureListen = errors.New("broker: plain TCP only on a loopback address")

// ServerTLSConfig is the TLS configuration of a broker's TLS listener:
// its certificate and key (PEM files), and the CA certificates (a PEM
// file) that must have signed every client's certificate. Client
// certificates are required and verified; TLS 1.2 is the oldest version
// accepted.
func ServerTLSConfig(certFile, keyFile, clientCAFile string) (*tls.Config, error) {
	if certFile == "" || keyFile == "" || clientCAFile == "" {
		return nil, fmt.Errorf("%w: a TLS listener needs a certificate, its key and the client CA (--tls-cert, --tls-key, --tls-client-ca)", ErrConfig)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("broker: TLS certificate %s, key %s: %w", certFile, keyFile, err)
	}
	pool, err := loadPool(clientCAFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// loadPool reads a PEM file of CA certificates.
func loadPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("broker: client CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("broker: client CA %s: no PEM certificate in it", file)
	}
	return pool, nil
}

// ListenTLS listens on the TCP address addr ("host:port") for TLS
// connections. cfg must require and verify client certificates
// (ClientAuth tls.RequireAndVerifyClientCert, with ClientCAs): the broker
// has no other way to know who a remote peer is.
func ListenTLS(addr string, cfg *tls.Config) (net.Listener, error) {
	if cfg == nil || cfg.ClientAuth != tls.RequireAndVerifyClientCert || cfg.ClientCAs == nil {
		return nil, fmt.Errorf("%w: listen tls://%s: the TLS configuration must require and verify client certificates", ErrConfig, addr)
	}
	if len(cfg.Certificates) == 0 && cfg.GetCertificate == nil {
		return nil, fmt.Errorf("%w: listen tls://%s: no server certificate", ErrConfig, addr)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("broker: listen tls://%s: %w", addr, err)
	}
	return tlsListener{tls.NewListener(l, cfg)}, nil
}

// tlsListener is a TLS listener whose address's network is "tls", so
// that INFO tells it from a plain TCP one.
type tlsListener struct{ net.Listener }

func (l tlsListener) Addr() net.Addr { return tlsAddr{l.Listener.Addr()} }

// tlsAddr is a TLS listener's TCP address, of network "tls".
type tlsAddr struct{ net.Addr }

func (tlsAddr) Network() string { return "tls" }

// ListenTCP listens on the TCP address addr without TLS. Its peers are
// KindNone (no identity: the mode's other triple, no ownership), so addr
// must be a loopback address (127.0.0.0/8, ::1 or localhost); anything
// else is refused with ErrInsecureListen.
func ListenTCP(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("broker: listen tcp://%s: %w", addr, err)
	}
	if !isLoopback(host) {
		return nil, fmt.Errorf("%w: listen tcp://%s: %q is not a loopback address (use tls:// for remote clients)", ErrInsecureListen, addr, host)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("broker: listen tcp://%s: %w", addr, err)
	}
	return l, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// tlsCredentials is the principal of a TLS connection: the verified
// leaf certificate's name. The handshake has completed (the HELLO was
// read through it).
func tlsCredentials(tc *tls.Conn) (Principal, error) {
	st := tc.ConnectionState()
	if !st.HandshakeComplete || len(st.VerifiedChains) == 0 || len(st.PeerCertificates) == 0 {
		return Principal{}, errors.New("no verified client certificate")
	}
	leaf := st.PeerCertificates[0]
	p := Principal{Kind: KindTLS, Subject: leaf.Subject.String()}
	for _, u := range leaf.URIs {
		if u.Scheme == "spiffe" {
			p.URI = u.String()
			break
		}
		if p.URI == "" {
			p.URI = u.String()
		}
	}
	switch n := p.Name(); {
	case n == "":
		return Principal{}, errors.New("the client certificate has neither a URI SAN nor a subject")
	case len(n) > wire.MaxPrincipalName:
		return Principal{}, fmt.Errorf("the client certificate's name is %d bytes, over %d", len(n), wire.MaxPrincipalName)
	}
	return p, nil
}
