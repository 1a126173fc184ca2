package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/broker"
)

// fileConfig is the --config file: JSON with any of these fields. Limits
// and the log level are reloaded on SIGHUP; max_frame is read at start
// only (clients are told it in the handshake), and the socket is not
// read from the file at all.
type fileConfig struct {
	broker.Limits
	MaxFrame *int   `json:"max_frame"` // nil: not in the file
	LogLevel string `json:"log_level"`
	// Quotas (per uid) are read at start only: a reload keeps them.
	Quotas *broker.Quotas `json:"quotas"`
	// DeadPeer is read at start only, like the other connection bounds.
	DeadPeer *duration `json:"dead_peer"`
	// Network listeners, read at start only (flags win).
	Listen      []string `json:"listen"`
	TLSCert     string   `json:"tls_cert"`
	TLSKey      string   `json:"tls_key"`
	TLSClientCA string   `json:"tls_client_ca"`
	Insecure    bool     `json:"insecure"`
	// BroadcastOwner is read at start only.
	BroadcastOwner *uint32 `json:"broadcast_owner"`
}

// duration is a time.Duration in a JSON file: a string time.ParseDuration
// reads ("30s", "1m30s") or a number of nanoseconds.
type duration time.Duration

func (d *duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("want a duration such as \"30s\", not %s", b)
		}
		*d = duration(n)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = duration(v)
	return nil
}

// netListen is what serve's network flags (and config keys) say.
type netListen struct {
	urls                []string
	cert, key, clientCA string
	insecure            bool
}

// open listens on every --listen URL: tls://HOST:PORT (client
// certificates required and verified), or tcp://HOST:PORT on loopback
// with --insecure only.
func (n *netListen) open() ([]net.Listener, error) {
	var ls []net.Listener
	fail := func(err error) ([]net.Listener, error) {
		for _, l := range ls {
			l.Close()
		}
		return nil, err
	}
	var tcfg *tls.Config
	for _, raw := range n.urls {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" || u.Port() == "" || u.Path != "" {
			return fail(usageError{fmt.Errorf("--listen %q: want tls://HOST:PORT or tcp://HOST:PORT", raw)})
		}
		var l net.Listener
		switch u.Scheme {
		case "tls":
			if tcfg == nil {
				if tcfg, err = broker.ServerTLSConfig(n.cert, n.key, n.clientCA); err != nil {
					return fail(usageError{fmt.Errorf("--listen %s: %w", raw, err)})
				}
			}
			l, err = broker.ListenTLS(u.Host, tcfg)
		case "tcp":
			if !n.insecure {
				return fail(usageError{fmt.Errorf("--listen %s: plain TCP has no authentication (every peer is anonymous); use tls://, or add --insecure for a loopback address", raw)})
			}
			l, err = broker.ListenTCP(u.Host)
			if errors.Is(err, broker.ErrInsecureListen) {
				err = usageError{err}
			}
		default:
			return fail(usageError{fmt.Errorf("--listen %q: scheme must be tls or tcp (the Unix socket is --socket)", raw)})
		}
		if err != nil {
			return fail(err)
		}
		ls = append(ls, l)
	}
	return ls, nil
}

func newServe() *cobra.Command {
	cfg := broker.DefaultConfig()
	var socketMode, configFile, logLevel, dataDir string
	var memoryOnly bool
	var nl netListen
	// --- ops ---
	var mf metricsFlags // --metrics (serve_metrics.go)
	// --- end ops ---
	// --- cluster ---
	var cl clusterFlags // serve_cluster.go
	// --- end cluster ---
	cmd := &cobra.Command{
		Use:     "serve",
		Example: "  postbox serve\n  postbox serve --memory --socket /tmp/pb/postbox.sock\n  postbox serve --listen tls://0.0.0.0:7443 --tls-cert broker.pem --tls-key broker-key.pem --tls-client-ca clients-ca.pem",
		Short:   "Run the broker",
		Long: `Run the postbox broker in the foreground, on its embedded defaults unless
flags or a --config file say otherwise.

Durable mailboxes live in the data directory: --data DIR, else
$POSTBOX_DATA, else $XDG_STATE_HOME/postbox, else ~/.local/state/postbox.
Nothing is created there until a durable mailbox (or a topic claim)
needs it: then the directory (0700), its lock, log and RESERVE file. A
directory that already holds a store is opened and recovered at start,
an existing empty one only locked; either way a second broker on it is
refused. Two brokers started on a directory that does not exist yet both
start; the second to create a durable mailbox is refused then. --memory
runs without one.

Under systemd (contrib/systemd, docs/OPERATIONS.md): sockets passed by
socket activation (LISTEN_FDS) replace --socket: every Unix stream
socket is a broker socket, a TCP one named tls (FileDescriptorName=tls)
serves TLS as --listen tls:// does, one named tcp plain TCP (with
--insecure, loopback only); anything else is refused. With NOTIFY_SOCKET
serve sends READY=1 once it serves, STATUS= lines, STOPPING=1 on
shutdown and, with WATCHDOG_USEC, WATCHDOG=1 every half of it.

The socket is --socket PATH, else $POSTBOX_SOCKET; else, run as root, the
system-wide /run/postbox/postbox.sock ($POSTBOX_SYSTEM_SOCKET moves it),
whose directory is created 0755; else the per-user
$XDG_RUNTIME_DIR/postbox/postbox.sock, else
${TMPDIR:-/tmp}/postbox-<uid>/postbox.sock. Any other missing socket
directory is created 0700 (missing parents 0755), whatever the umask. An
existing directory is used as it is, but refused if it is a symlink, is
not owned by this user, or is writable by group or others (sticky or
not). A file at the path is replaced only if it is a stale socket of this
user's. The socket file gets exactly --socket-mode (default 0666). So the
system-wide broker is connectable by every user (what each may do is
decided per mailbox from its kernel credentials); a per-user broker's
0700 directory lets in its user alone.

Signals: SIGTERM or SIGINT stop accepting, fail waiting requests with
"broker closed", flush replies and exit 0. SIGHUP re-reads --config and
applies its limits and log level; the log says what changed. The socket
path and mode and max_frame cannot change without a restart: a reload
keeps them, and logs a warning if the file's max_frame differs.

--config is JSON with any of: max_connections, max_mailboxes,
max_message_bytes, max_queued_bytes, inbox_capacity, max_frame and
dead_peer (read at start only), log_level, and quotas (per uid, read at start only):
{"connections": 256, "mailboxes": 1024, "queued_bytes": N, "leases":
65536, "uid": {"1000": {...}}}, 0 meaning the default and -1 unlimited;
root is unlimited unless "uid" names "0". Flags given on the command line
win over the file. On a reload, a key missing from the file keeps the
value in force.

--dead-peer (config key dead_peer, e.g. "30s", read at start only) is
how long a connection that is not a Unix socket (TCP, TLS) may be silent
before the broker closes it as a dead peer: its leases return to their
mailboxes and are redelivered, its waiting requests end, its inbox goes.
The handshake tells clients to send something (PING) every third of it,
which the Go client does on its own; TCP connections also get TCP
keepalive probes. Unix connections are exempt: the kernel reports a dead
process (EOF, pidfd). 0 disables it. Default 30s.

--max-frame (config key max_frame) bounds every frame's size both ways
(default 16 MiB) and is told to clients in the handshake; it is fixed
until a restart. It must exceed --max-message by at least 1 KiB (a
message's headers, up to 16 KiB, and its SEND fields travel in the same
frame). Unless given by the flag or the file, it grows to --max-message
+ 64 KiB when a larger --max-message needs that.

--broadcast-owner UID (config key broadcast_owner, read at start only)
is the one uid besides root that may send to every connected endpoint at
once (postbox send @* BODY); anyone else is refused "permission denied".
Default 0: root only.

Remote clients: --listen tls://HOST:PORT (repeatable; beside the Unix
socket) with --tls-cert and --tls-key (the broker's certificate and key,
PEM) and --tls-client-ca (the CA certificates that must have signed every
client's certificate: client certificates are required and verified). A
TLS client is known by its certificate's URI SAN (a spiffe:// one first),
else its subject DN: that name is stamped on its messages, owns the
mailboxes it creates, and is matched by access entries ("postbox acl
--help"); mode bits are for local users only. Shared-memory channels and
descriptor passing need the Unix socket. --listen tcp://127.0.0.1:PORT
(plain TCP, no identity at all) is refused unless --insecure is given,
and only on a loopback address. Config keys: listen (a list), tls_cert,
tls_key, tls_client_ca, insecure (read at start only; flags win).

--metrics HOST:PORT serves Prometheus metrics at http://HOST:PORT/metrics
(docs/OPERATIONS.md lists them). It must be a loopback address (127.0.0.1,
[::1], localhost) unless --metrics-public is given: the endpoint has no
authentication, and it names every mailbox and uid.

The broker runs the Go collector at GOGC=400 with a soft memory limit of
twice max_queued_bytes plus 512 MiB; $GOGC and $GOMEMLIMIT override.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			mode, err := strconv.ParseUint(socketMode, 8, 32)
			if err != nil || mode > 0o777 {
				return usageError{fmt.Errorf("--socket-mode %q: want octal bits such as 0666", socketMode)}
			}
			level := new(slog.LevelVar)
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return usageError{fmt.Errorf("--log-level %q: want debug, info, warn or error", logLevel)}
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			cfg.Logger = log
			frameGiven, started := cmd.Flags().Changed("max-frame"), false
			load := func() error {
				if configFile == "" {
					return nil
				}
				fc, err := readConfig(configFile, cfg.Limits, level.Level().String())
				if err != nil {
					return err
				}
				// Command-line flags win over the file.
				flags := cmd.Flags()
				l := fc.Limits
				if flags.Changed("max-connections") {
					l.MaxConnections = cfg.MaxConnections
				}
				if flags.Changed("max-mailboxes") {
					l.MaxMailboxes = cfg.MaxMailboxes
				}
				if flags.Changed("max-message") {
					l.MaxMessage = cfg.MaxMessage
				}
				if flags.Changed("max-queued-bytes") {
					l.MaxQueuedBytes = cfg.MaxQueuedBytes
				}
				cfg.Limits = l
				if fc.MaxFrame != nil && !flags.Changed("max-frame") {
					switch {
					case !started:
						cfg.MaxFrame, frameGiven = *fc.MaxFrame, true
					case *fc.MaxFrame != cfg.MaxFrame:
						log.Warn("SIGHUP: max_frame cannot change without a restart; keeping the value in force",
							"max_frame", cfg.MaxFrame, "file_max_frame", *fc.MaxFrame)
					}
				}
				if fc.Quotas != nil {
					cfg.Quotas = *fc.Quotas // used by Open only
				}
				if fc.DeadPeer != nil && !flags.Changed("dead-peer") && !started {
					cfg.DeadPeer = time.Duration(*fc.DeadPeer) // used by Open only
				}
				if !started {
					if !flags.Changed("listen") {
						nl.urls = fc.Listen
					}
					set := func(dst *string, flag, v string) {
						if !flags.Changed(flag) && v != "" {
							*dst = v
						}
					}
					set(&nl.cert, "tls-cert", fc.TLSCert)
					set(&nl.key, "tls-key", fc.TLSKey)
					set(&nl.clientCA, "tls-client-ca", fc.TLSClientCA)
					if !flags.Changed("insecure") && fc.Insecure {
						nl.insecure = true
					}
				}
				if fc.BroadcastOwner != nil && !flags.Changed("broadcast-owner") && !started {
					cfg.BroadcastOwner = *fc.BroadcastOwner // used by Open only
				}
				if !flags.Changed("log-level") && fc.LogLevel != "" {
					if err := level.UnmarshalText([]byte(fc.LogLevel)); err != nil {
						return fmt.Errorf("%s: log_level %q: %w", configFile, fc.LogLevel, err)
					}
				}
				return nil
			}
			if err := load(); err != nil {
				return err
			}
			started = true
			if !frameGiven {
				// Room for the largest message, its headers and fields.
				cfg.MaxFrame = max(cfg.MaxFrame, cfg.MaxMessage+64<<10)
			}
			if err := cfg.Validate(); err != nil {
				return usageError{err}
			}
			// --- ops ---
			if err := mf.check(); err != nil {
				return usageError{err}
			}
			// --- end ops ---
			if !memoryOnly {
				if dataDir == "" {
					dataDir = defaultDataDir()
				}
				cfg.DataDir = dataDir
			}
			// Open the data directory first: a second broker on it is
			// refused before it touches the socket.
			// --- cluster ---
			closeCluster, err := cl.attach(&cfg, log)
			if err != nil {
				return err
			}
			defer closeCluster()
			// --- end cluster ---
			gcPercent, memLimit := tuneGC(cfg)
			b, err := broker.Open(cfg)
			if err != nil {
				return err
			}
			path, dirMode := postbox.ServeSocketPath() // root: the system-wide socket
			if socketFlag != "" {
				path, dirMode = socketFlag, 0o700
			}
			// --- systemd ---
			act, err := takeActivated(&nl) // sockets systemd passed (serve_systemd.go)
			if err != nil {
				b.Close()
				return err
			}
			// --- end systemd ---
			remote, err := nl.open()
			if err != nil {
				act.close()
				b.Close()
				return err
			}
			var l net.Listener
			if len(act.unix) > 0 { // --- systemd ---: the passed socket instead of ours
				l, path = act.unix[0], act.unix[0].Addr().String()
			} else if l, err = broker.ListenDir(path, os.FileMode(mode), dirMode); err != nil {
				for _, rl := range remote {
					rl.Close()
				}
				act.close()
				b.Close()
				return err
			}
			// --- ops ---
			stopMetrics, err := mf.start(b, log)
			if err != nil {
				l.Close()
				for _, rl := range remote {
					rl.Close()
				}
				b.Close()
				return err
			}
			defer stopMetrics()
			// --- end ops ---
			for i, rl := range remote {
				scheme, _, _ := strings.Cut(nl.urls[i], "://")
				log.Info("postbox broker listening", "listen", scheme+"://"+rl.Addr().String())
			}
			remote = append(remote, act.more(log)...) // --- systemd ---
			log.Info("postbox broker listening", "socket", path, "pid", os.Getpid(), "data", cfg.DataDir,
				"gogc", gcPercent, "memory_limit", memLimit,
				"max_connections", cfg.MaxConnections, "max_mailboxes", cfg.MaxMailboxes,
				"max_message_bytes", cfg.MaxMessage, "max_frame", cfg.MaxFrame, "max_queued_bytes", cfg.MaxQueuedBytes)

			sigs := make(chan os.Signal, 4)
			signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
			defer signal.Stop(sigs)
			served := make(chan error, 1+len(remote))
			go func() { served <- b.Serve(l) }()
			for _, rl := range remote {
				go func() {
					if err := b.Serve(rl); !errors.Is(err, broker.ErrServerClosed) {
						served <- fmt.Errorf("serving %s: %w", rl.Addr(), err)
					}
				}()
			}
			// --- systemd ---
			sd := startNotify(log, b) // READY=1, watchdog (serve_systemd.go)
			defer sd.stopping()
			// --- end systemd ---
			for {
				select {
				case err := <-served:
					if errors.Is(err, broker.ErrServerClosed) {
						return nil
					}
					return err
				case s := <-sigs:
					if s == syscall.SIGHUP {
						sd.reload(func() { reload(log, b, load, &cfg, configFile) })
						continue
					}
					log.Info("shutting down", "signal", s.String())
					sd.stopping()
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					err := b.Shutdown(ctx)
					cancel()
					<-served
					if err != nil {
						log.Warn("shutdown did not finish flushing in time", "err", err)
					}
					log.Info("broker stopped")
					return nil
				}
			}
		},
	}
	f := cmd.Flags()
	f.StringVar(&socketMode, "socket-mode", "0666", "permission bits of the socket file (octal)")
	f.StringVar(&configFile, "config", "", "JSON file with limits, max_frame and log_level, re-read on SIGHUP (max_frame only at start)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&dataDir, "data", "", "data directory for durable mailboxes (default $POSTBOX_DATA, else $XDG_STATE_HOME/postbox, else ~/.local/state/postbox)")
	f.StringArrayVar(&nl.urls, "listen", nil, "also listen at tls://HOST:PORT (or tcp://127.0.0.1:PORT with --insecure); repeatable")
	f.StringVar(&nl.cert, "tls-cert", "", "the broker's TLS certificate (PEM) for tls:// listeners")
	f.StringVar(&nl.key, "tls-key", "", "the key of --tls-cert (PEM)")
	f.StringVar(&nl.clientCA, "tls-client-ca", "", "CA certificates (PEM) that must have signed every TLS client's certificate")
	f.BoolVar(&nl.insecure, "insecure", false, "allow tcp:// listeners (loopback only; their peers are anonymous)")
	f.BoolVar(&memoryOnly, "memory", false, "no data directory: keep everything in memory and refuse durable mailboxes")
	f.IntVar(&cfg.MaxConnections, "max-connections", cfg.MaxConnections, "most clients connected at once")
	f.IntVar(&cfg.MaxMailboxes, "max-mailboxes", cfg.MaxMailboxes, "most mailboxes")
	f.IntVar(&cfg.MaxMessage, "max-message", cfg.MaxMessage, "largest message in bytes (body plus headers)")
	f.IntVar(&cfg.MaxFrame, "max-frame", cfg.MaxFrame, "largest frame in bytes, both ways (fixed until a restart)")
	f.Int64Var(&cfg.MaxQueuedBytes, "max-queued-bytes", cfg.MaxQueuedBytes, "most message bytes held in all mailboxes together")
	// Connection bounds (fixed until a restart; see README "Limits and worst cases").
	f.IntVar(&cfg.MaxConnBacklog, "max-conn-backlog", cfg.MaxConnBacklog, "most unread output bytes per connection before the broker stops reading it and stalls its consumers")
	f.DurationVar(&cfg.SlowConsumerTimeout, "slow-consumer-timeout", cfg.SlowConsumerTimeout, "disconnect a connection whose consumers stay stalled by unread output this long (0: never)")
	f.IntVar(&cfg.MaxHandshaking, "max-handshaking", cfg.MaxHandshaking, "most connections accepted but not yet past HELLO")
	f.IntVar(&cfg.MaxHandshakingPerUID, "max-handshaking-per-uid", cfg.MaxHandshakingPerUID, "most connections before HELLO from one uid")
	f.DurationVar(&cfg.HandshakeTimeout, "handshake-timeout", cfg.HandshakeTimeout, "how long a connection may take to say HELLO")
	f.DurationVar(&cfg.DeadPeer, "dead-peer", cfg.DeadPeer, "close a connection that is not a Unix socket after this long without a frame from it, returning its leases (0: never)")
	f.IntVar(&cfg.MaxOffersPerConn, "max-offers-per-conn", cfg.MaxOffersPerConn, "most channel offers not yet attached per connection")
	f.IntVar(&cfg.MaxOffersPerUID, "max-offers-per-uid", cfg.MaxOffersPerUID, "most channel offers not yet attached per uid")
	f.Uint32Var(&cfg.BroadcastOwner, "broadcast-owner", cfg.BroadcastOwner, "uid that may, besides root, send to every endpoint (send @*; config key broadcast_owner, read at start only)")
	f.IntVar(&cfg.MaxFilesPerConn, "max-files-per-conn", cfg.MaxFilesPerConn, "most descriptors held for messages sent by one connection")
	f.IntVar(&cfg.MaxFilesPerUID, "max-files-per-uid", cfg.MaxFilesPerUID, "most descriptors held for messages sent by one uid")
	// --- ops ---
	mf.register(cmd)
	// --- end ops ---
	// --- cluster ---
	cl.register(f)
	// --- end cluster ---
	return cmd
}

func readConfig(path string, def broker.Limits, level string) (fileConfig, error) {
	fc := fileConfig{Limits: def, LogLevel: level}
	data, err := os.ReadFile(path)
	if err != nil {
		return fc, err
	}
	if err := json.Unmarshal(data, &fc); err != nil {
		return fc, fmt.Errorf("%s: %w", path, err)
	}
	return fc, nil
}

func reload(log *slog.Logger, b *broker.Broker, load func() error, cfg *broker.Config, file string) {
	if file == "" {
		log.Info("SIGHUP: no --config file, nothing to reload")
		return
	}
	old := b.Limits()
	if err := load(); err != nil {
		log.Error("SIGHUP: configuration not reloaded", "err", err)
		return
	}
	if err := b.SetLimits(cfg.Limits); err != nil {
		log.Error("SIGHUP: configuration not reloaded", "err", err)
		cfg.Limits = old
		return
	}
	log.Info("SIGHUP: configuration reloaded", "file", file,
		"max_connections", fmt.Sprintf("%d -> %d", old.MaxConnections, cfg.MaxConnections),
		"max_mailboxes", fmt.Sprintf("%d -> %d", old.MaxMailboxes, cfg.MaxMailboxes),
		"max_message_bytes", fmt.Sprintf("%d -> %d", old.MaxMessage, cfg.MaxMessage),
		"max_queued_bytes", fmt.Sprintf("%d -> %d", old.MaxQueuedBytes, cfg.MaxQueuedBytes),
		"inbox_capacity", fmt.Sprintf("%d -> %d", old.InboxCapacity, cfg.InboxCapacity),
		"not reloadable", "socket path and mode, max frame size, --listen and TLS files")
}

// defaultDataDir is where durable mailboxes live unless --data says
// otherwise.
func defaultDataDir() string {
	if d := os.Getenv("POSTBOX_DATA"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "postbox")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "postbox")
	}
	return filepath.Join(os.TempDir(), "postbox-"+strconv.Itoa(os.Getuid()), "data")
}
