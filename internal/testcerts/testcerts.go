// Package testcerts makes real X.509 certificates for tests of the TLS
// transport: a CA, a server certificate for 127.0.0.1 and localhost, and
// client certificates signed by that CA (or by another, or expired),
// written as PEM files like an operator's.
package testcerts

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA is a certificate authority that signs certificates.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	// CertFile is the CA certificate as a PEM file.
	CertFile string
	dir      string
}

// Pair is a signed certificate and its key, in memory and as PEM files.
type Pair struct {
	TLS      tls.Certificate
	Leaf     *x509.Certificate
	CertFile string
	KeyFile  string
}

// NewCA makes a CA named name whose files live in dir.
func NewCA(t testing.TB, dir, name string) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"postbox tests"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &CA{Cert: cert, Key: key, dir: dir, CertFile: filepath.Join(dir, name+"-ca.pem")}
	writePEM(t, ca.CertFile, "CERTIFICATE", der)
	return ca
}

// Pool is a pool holding only the CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Server signs a server certificate for 127.0.0.1, ::1 and localhost.
func (ca *CA) Server(t testing.TB, name string) *Pair {
	t.Helper()
	return ca.sign(t, name, &x509.Certificate{
		Subject:     pkix.Name{CommonName: name},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
}

// Client signs a client certificate with subject CN=cn (and O=org when
// not empty) and, when uri is not empty, that URI SAN.
func (ca *CA) Client(t testing.TB, cn, org, uri string) *Pair {
	t.Helper()
	return ca.client(t, cn, org, uri, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
}

// ExpiredClient is Client with a certificate that expired an hour ago.
func (ca *CA) ExpiredClient(t testing.TB, cn string) *Pair {
	t.Helper()
	return ca.client(t, cn, "", "", time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour))
}

func (ca *CA) client(t testing.TB, cn, org, uri string, from, until time.Time) *Pair {
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if org != "" {
		tmpl.Subject.Organization = []string{org}
	}
	if uri != "" {
		u, err := url.Parse(uri)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = []*url.URL{u}
	}
	return ca.sign(t, cn, tmpl, from, until)
}

func (ca *CA) sign(t testing.TB, name string, tmpl *x509.Certificate, from, until time.Time) *Pair {
	t.Helper()
	key := newKey(t)
	tmpl.SerialNumber = serial(t)
	tmpl.NotBefore, tmpl.NotAfter = from, until
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(ca.dir, name+"-"+leaf.SerialNumber.Text(16))
	p := &Pair{Leaf: leaf, CertFile: base + ".pem", KeyFile: base + "-key.pem",
		TLS: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}}
	writePEM(t, p.CertFile, "CERTIFICATE", der)
	writePEM(t, p.KeyFile, "EC PRIVATE KEY", kder)
	return p
}

// ClientConfig is a client's TLS configuration: its certificate (none if
// p is nil) and trust in ca for the server's.
func ClientConfig(p *Pair, ca *CA) *tls.Config {
	cfg := &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}
	if p != nil {
		cfg.Certificates = []tls.Certificate{p.TLS}
	}
	return cfg
}

// ServerConfig is a broker's TLS configuration: its certificate, client
// certificates required and verified by ca.
func ServerConfig(p *Pair, ca *CA) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{p.TLS}, ClientCAs: ca.Pool(),
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func serial(t testing.TB) *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	return n.Add(n, big.NewInt(1))
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
