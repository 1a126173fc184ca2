// Package python_test runs the Python client's tests from go test.
package python_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
)

// TestPython runs the Python client's unittest suite (clients/python/tests)
// against a real broker: `postbox serve` built from this tree and run as a
// separate process on a temporary socket and data directory. The Go side
// of the interoperability tests is this process (services on the Go
// client, below) and the postbox CLI binary (POSTBOX_BIN). It skips only
// when python3 is missing.
func TestPython(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not found in PATH: the Python client's tests need it")
	}
	if out, err := exec.Command(py, "-c", "import sys; sys.exit(sys.version_info < (3, 11))").CombinedOutput(); err != nil {
		t.Fatalf("%s is older than 3.11, which the Python client needs: %v %s", py, err, out)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "postbox")
	build := exec.Command(goTool(), "build", "-o", bin, "./cmd/postbox")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/postbox: %v\n%s", err, out)
	}

	sock := filepath.Join(dir, "run", "postbox.sock")
	args := []string{"serve", "--socket", sock, "--data", filepath.Join(dir, "data")}
	env := []string{"POSTBOX_SOCKET=" + sock, "POSTBOX_BIN=" + bin,
		"PYTHONPATH=" + filepath.Join(root, "clients", "python"), "PYTHONDONTWRITEBYTECODE=1"}

	// Certificates for the Python TLS tests: for the broker's own TLS
	// listener when this `serve` has one (otherwise those tests skip,
	// saying why), and always for a test-side TLS endpoint in front of
	// the Unix socket.
	certs, err := makeCerts(filepath.Join(dir, "tls"))
	if err != nil {
		t.Fatalf("certificates: %v", err)
	}
	env = append(env, "POSTBOX_TEST_TLS_CERT="+certs["client.crt"], "POSTBOX_TEST_TLS_KEY="+certs["client.key"],
		"POSTBOX_TEST_TLS_CA="+certs["ca.crt"], "POSTBOX_TEST_TLS_SERVER_CERT="+certs["server.crt"],
		"POSTBOX_TEST_TLS_SERVER_KEY="+certs["server.key"],
		"POSTBOX_TEST_TLS_GO_CERT="+certs["goclient.crt"], "POSTBOX_TEST_TLS_GO_KEY="+certs["goclient.key"])
	tlsAddr := ""
	if tlsArgs, tlsEnv, why := tlsSetup(bin, certs); why == "" {
		args = append(args, tlsArgs...)
		env = append(env, tlsEnv...)
		tlsAddr = tlsArgs[1][len("tls://"):]
	} else {
		env = append(env, "POSTBOX_TEST_TLS_SKIP="+why)
	}

	var serveLog lockedBuffer // written by exec's copying goroutine
	serve := exec.Command(bin, args...)
	serve.Stdout, serve.Stderr = &serveLog, &serveLog
	if err := serve.Start(); err != nil {
		t.Fatalf("postbox serve: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- serve.Wait() }()
	t.Cleanup(func() {
		_ = serve.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = serve.Process.Kill()
			<-exited
		}
	})
	waitFor(t, "unix", sock, exited, &serveLog)
	if tlsAddr != "" {
		waitFor(t, "tcp", tlsAddr, exited, &serveLog)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	goServices(ctx, t, sock)

	cmd := exec.CommandContext(ctx, py, "-m", "unittest", "discover", "-s", filepath.Join("clients", "python", "tests"), "-v")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("python3 -m unittest (%.1fs):\n%s", time.Since(start).Seconds(), out)
	if err != nil {
		t.Fatalf("Python client tests failed: %v\n%s\nbroker log:\n%s", err, out, serveLog.String())
	}
}

// goTool is the go command that runs this test.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(os.Getenv("GOROOT"), "bin", "go")
}

// lockedBuffer is a bytes.Buffer safe to read while the broker writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitFor waits until the broker accepts connections at addr.
func waitFor(t *testing.T, network, addr string, exited <-chan error, log *lockedBuffer) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			t.Fatalf("postbox serve exited: %v\n%s", err, log.String())
		default:
		}
		if c, err := net.Dial(network, addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("postbox serve: nothing listening at %s %s after 15s\n%s", network, addr, log.String())
}

// goServices runs the Go client's half of the interoperability tests:
//
//   - "go.echo", an RPC service: each request is answered with REPLY
//     "go:" + body, acking the request in the same frame;
//   - "go.relay": each request's body names a service; the relay CALLs it
//     with body "from go" and answers with the reply it got, so that a
//     Python test can have a Go caller call a Python server.
func goServices(ctx context.Context, t *testing.T, sock string) {
	t.Helper()
	c, err := postbox.Dial(ctx, postbox.WithSocket(sock), postbox.WithName("python_test"))
	if err != nil {
		t.Fatalf("Go client: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	serve := func(name string, handle func(m *postbox.Message) []byte) {
		mb, err := c.Create(ctx, name, postbox.Service(), postbox.Mode(0o666))
		if err != nil {
			t.Fatalf("Go client: create %s: %v", name, err)
		}
		go func() {
			for {
				m, err := mb.Receive(ctx)
				if err != nil {
					return // the test is over
				}
				go func() {
					if _, err := m.Reply(ctx, handle(m), postbox.AckRequest()); err != nil && ctx.Err() == nil {
						t.Errorf("Go client: reply on %s: %v", name, err)
					}
				}()
			}
		}()
	}
	serve("go.echo", func(m *postbox.Message) []byte { return append([]byte("go:"), m.Body...) })
	serve("go.relay", func(m *postbox.Message) []byte {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		r, err := c.Mailbox(string(m.Body)).Call(cctx, []byte("from go"))
		if err != nil {
			return []byte("relay error: " + err.Error())
		}
		return r.Body
	})
}

// tlsSetup returns serve's TLS flags and the Python side's environment,
// or why TLS cannot be tested against this broker.
func tlsSetup(bin string, certs map[string]string) (args, env []string, why string) {
	help, _ := exec.Command(bin, "serve", "--help").CombinedOutput()
	for _, flag := range []string{"--listen", "--tls-cert", "--tls-key", "--tls-client-ca"} {
		if !bytes.Contains(help, []byte(flag)) {
			return nil, nil, "this broker has no TLS listener (postbox serve has no " + flag + " flag)"
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, "no loopback TCP port: " + err.Error()
	}
	addr := l.Addr().String()
	l.Close()
	u := (&url.URL{Scheme: "tls", Host: addr}).String()
	args = []string{"--listen", u, "--tls-cert", certs["server.crt"], "--tls-key", certs["server.key"],
		"--tls-client-ca", certs["ca.crt"]}
	env = []string{"POSTBOX_TEST_TLS_URL=" + u}
	// A short dead-peer time (4.3), so that the keepalive test shows an
	// idle TLS client outliving it because it pings, and one that stops
	// pinging closed by the broker.
	if bytes.Contains(help, []byte("--dead-peer")) {
		args = append(args, "--dead-peer", "1s")
		env = append(env, "POSTBOX_TEST_DEAD_PEER=1s")
	}
	return args, env, ""
}

// makeCerts writes a CA, a server certificate for 127.0.0.1/localhost and
// two client certificates with spiffe:// URI SANs (the Python client's and
// the Go CLI's), all signed by the CA.
func makeCerts(dir string) (map[string]string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	files := map[string]string{}
	write := func(name, typ string, der []byte) error {
		p := filepath.Join(dir, name)
		files[name] = p
		return os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
	}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "postbox test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	if err := write("ca.crt", "CERTIFICATE", caDER); err != nil {
		return nil, err
	}
	leaf := func(name string, serial int64, tmpl *x509.Certificate) error {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		tmpl.SerialNumber = big.NewInt(serial)
		tmpl.NotBefore, tmpl.NotAfter = now.Add(-time.Hour), now.Add(24*time.Hour)
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return err
		}
		kder, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return err
		}
		if err := write(name+".crt", "CERTIFICATE", der); err != nil {
			return err
		}
		return write(name+".key", "PRIVATE KEY", kder)
	}
	if err := leaf("server", 2, &x509.Certificate{
		Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		return nil, err
	}
	spiffe, _ := url.Parse("spiffe://postbox.test/python")
	if err := leaf("client", 3, &x509.Certificate{
		Subject: pkix.Name{CommonName: "python client", Organization: []string{"postbox"}}, URIs: []*url.URL{spiffe},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		return nil, err
	}
	// The Go side of the TLS interoperability test (the postbox CLI over
	// TLS) has a certificate of its own, so that the Python side can tell
	// its principal from the Python TLS client's.
	spiffeGo, _ := url.Parse("spiffe://postbox.test/go")
	if err := leaf("goclient", 4, &x509.Certificate{
		Subject: pkix.Name{CommonName: "go client", Organization: []string{"postbox"}}, URIs: []*url.URL{spiffeGo},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		return nil, err
	}
	for _, n := range []string{"ca.crt", "server.crt", "server.key", "client.crt", "client.key", "goclient.crt", "goclient.key"} {
		if _, ok := files[n]; !ok {
			return nil, errors.New("missing " + n)
		}
	}
	return files, nil
}
