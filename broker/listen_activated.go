package broker

import (
	"crypto/tls"
	"fmt"
	"net"
)

// Listeners made by someone else (systemd's socket activation hands a
// process sockets already bound and listening) are served with Serve like
// the broker's own: a Unix stream listener as it is (its peers' kernel
// credentials identify them), a TCP one through TLSListener or
// TCPListener, which apply the rules ListenTLS and ListenTCP apply to the
// sockets they make.

// TLSListener serves TLS on l, a TCP listener made elsewhere. cfg must
// require and verify client certificates, as for ListenTLS.
func TLSListener(l net.Listener, cfg *tls.Config) (net.Listener, error) {
	addr := l.Addr().String()
	if cfg == nil || cfg.ClientAuth != tls.RequireAndVerifyClientCert || cfg.ClientCAs == nil {
		return nil, fmt.Errorf("%w: listen tls://%s: the TLS configuration must require and verify client certificates", ErrConfig, addr)
	}
	if len(cfg.Certificates) == 0 && cfg.GetCertificate == nil {
		return nil, fmt.Errorf("%w: listen tls://%s: no server certificate", ErrConfig, addr)
	}
	if _, ok := l.Addr().(*net.TCPAddr); !ok {
		return nil, fmt.Errorf("%w: listen tls://%s: not a TCP socket (%s)", ErrConfig, addr, l.Addr().Network())
	}
	return tlsListener{tls.NewListener(l, cfg)}, nil
}

// TCPListener checks that l, a TCP listener made elsewhere, is bound to a
// loopback address, as ListenTCP requires (ErrInsecureListen otherwise),
// and returns it.
func TCPListener(l net.Listener) (net.Listener, error) {
	a, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		return nil, fmt.Errorf("%w: listen tcp://%s: not a TCP socket (%s)", ErrConfig, l.Addr(), l.Addr().Network())
	}
	if !a.IP.IsLoopback() {
		return nil, fmt.Errorf("%w: listen tcp://%s: %s is not a loopback address (use tls:// for remote clients)", ErrInsecureListen, a, a.IP)
	}
	return l, nil
}
