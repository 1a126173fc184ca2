package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/postbox-ipc/postbox/broker"
	"github.com/postbox-ipc/postbox/cluster"
)

// serve --cluster: attach the broker to a NATS JetStream cluster for
// cluster mailboxes (docs/CLUSTER.md).

type clusterFlags struct {
	urls, creds, user, password string
	passwordFile                string
	ca, cert, key               string
	host                        string
}

func (cl *clusterFlags) register(f *pflag.FlagSet) {
	f.StringVar(&cl.urls, "cluster", "", "NATS JetStream servers for cluster mailboxes, comma-separated (nats://h1:4222,nats://h2:4222)")
	f.StringVar(&cl.creds, "cluster-creds", "", "NATS credentials file for the cluster connection")
	f.StringVar(&cl.user, "cluster-user", "", "NATS user for the cluster connection")
	f.StringVar(&cl.password, "cluster-password", "", "NATS password for --cluster-user (prefer --cluster-password-file)")
	f.StringVar(&cl.passwordFile, "cluster-password-file", "", "file holding the NATS password for --cluster-user")
	f.StringVar(&cl.ca, "cluster-ca", "", "CA certificates (PEM) that verify the NATS servers")
	f.StringVar(&cl.cert, "cluster-cert", "", "client certificate (PEM) for the NATS connection")
	f.StringVar(&cl.key, "cluster-key", "", "client key (PEM) for --cluster-cert")
	f.StringVar(&cl.host, "cluster-host-id", "", "this broker's host id, stamped on the messages it sends (default: the host name)")
}

// attach opens the cluster connection into cfg.Remote; the returned func
// closes it (after the broker has stopped). Without --cluster it does
// nothing, and refuses the other --cluster-* flags.
func (cl *clusterFlags) attach(cfg *broker.Config, log *slog.Logger) (func(), error) {
	if cl.urls == "" {
		if cl.creds != "" || cl.user != "" || cl.ca != "" || cl.cert != "" || cl.host != "" {
			return nil, usageError{fmt.Errorf("--cluster-* flags need --cluster URLS")}
		}
		return func() {}, nil
	}
	cc := cluster.Config{Creds: cl.creds, User: cl.user, Password: cl.password, Logger: log, Name: "postbox"}
	for _, u := range strings.Split(cl.urls, ",") {
		if u = strings.TrimSpace(u); u != "" {
			cc.URLs = append(cc.URLs, u)
		}
	}
	if cl.passwordFile != "" {
		pw, err := os.ReadFile(cl.passwordFile)
		if err != nil {
			return nil, fmt.Errorf("--cluster-password-file: %w", err)
		}
		cc.Password = strings.TrimSpace(string(pw))
	}
	if cl.ca != "" || cl.cert != "" {
		tc, err := cl.tlsConfig()
		if err != nil {
			return nil, err
		}
		cc.TLS = tc
	}
	if err := cc.Validate(); err != nil {
		return nil, usageError{err}
	}
	be, err := cluster.Open(cc)
	if err != nil {
		return nil, err
	}
	cfg.Remote, cfg.HostID = be, cl.host
	log.Info("cluster mailboxes on", "servers", cl.urls, "connected", be.Connected())
	return func() { be.Close() }, nil
}

func (cl *clusterFlags) tlsConfig() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cl.ca != "" {
		pem, err := os.ReadFile(cl.ca)
		if err != nil {
			return nil, fmt.Errorf("--cluster-ca: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, usageError{fmt.Errorf("--cluster-ca %s: no PEM certificates", cl.ca)}
		}
	}
	if cl.cert != "" || cl.key != "" {
		if cl.cert == "" || cl.key == "" {
			return nil, usageError{fmt.Errorf("--cluster-cert and --cluster-key go together")}
		}
		c, err := tls.LoadX509KeyPair(cl.cert, cl.key)
		if err != nil {
			return nil, fmt.Errorf("--cluster-cert: %w", err)
		}
		tc.Certificates = []tls.Certificate{c}
	}
	return tc, nil
}
