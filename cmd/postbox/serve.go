package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/broker"
)

// fileConfig is the --config file: JSON with any of these fields. Limits
// and the log level are reloaded on SIGHUP; the socket is not.
type fileConfig struct {
	broker.Limits
	LogLevel string `json:"log_level"`
}

func newServe() *cobra.Command {
	cfg := broker.DefaultConfig()
	var socketMode, configFile, logLevel, dataDir string
	var memoryOnly bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the broker",
		Long: `Run the postbox broker in the foreground, on its embedded defaults unless
flags or a --config file say otherwise.

Durable mailboxes live in the data directory: --data DIR, else
$POSTBOX_DATA, else $XDG_STATE_HOME/postbox, else ~/.local/state/postbox.
A second broker on the same directory is refused. --memory runs without
one.

The socket is connectable by every user (--socket-mode 0666): who may do
what is decided per mailbox from each peer's kernel credentials.

Signals: SIGTERM or SIGINT stop accepting, fail waiting requests with
"broker closed", flush replies and exit 0. SIGHUP re-reads --config and
applies its limits and log level (the socket cannot change without a
restart); the log says what changed.

--config is JSON with any of: max_connections, max_mailboxes,
max_message_bytes, max_queued_bytes, inbox_capacity, log_level.
Flags given on the command line win over the file. On a reload, a key
missing from the file keeps the value in force.

--max-frame bounds every frame's size both ways (default 16 MiB) and is
told to clients in the handshake; it is fixed until a restart. It must
exceed --max-message by at least 1 KiB (a message's headers, up to 16 KiB,
and its SEND fields travel in the same frame). Unless given, it grows to
--max-message + 64 KiB when a larger --max-message needs that.

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
			if !cmd.Flags().Changed("max-frame") {
				// Room for the largest message, its headers and fields.
				cfg.MaxFrame = max(cfg.MaxFrame, cfg.MaxMessage+64<<10)
			}
			if err := cfg.Validate(); err != nil {
				return usageError{err}
			}
			if !memoryOnly {
				if dataDir == "" {
					dataDir = defaultDataDir()
				}
				cfg.DataDir = dataDir
			}
			// Open the data directory first: a second broker on it is
			// refused before it touches the socket.
			gcPercent, memLimit := tuneGC(cfg)
			b, err := broker.Open(cfg)
			if err != nil {
				return err
			}
			path, dirMode := postbox.ServeSocketPath() // root: the system-wide socket
			if socketFlag != "" {
				path, dirMode = socketFlag, 0o700
			}
			l, err := broker.ListenDir(path, os.FileMode(mode), dirMode)
			if err != nil {
				b.Close()
				return err
			}
			log.Info("postbox broker listening", "socket", path, "pid", os.Getpid(), "data", cfg.DataDir,
				"gogc", gcPercent, "memory_limit", memLimit,
				"max_connections", cfg.MaxConnections, "max_mailboxes", cfg.MaxMailboxes,
				"max_message_bytes", cfg.MaxMessage, "max_frame", cfg.MaxFrame, "max_queued_bytes", cfg.MaxQueuedBytes)

			sigs := make(chan os.Signal, 4)
			signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
			defer signal.Stop(sigs)
			served := make(chan error, 1)
			go func() { served <- b.Serve(l) }()
			for {
				select {
				case err := <-served:
					if errors.Is(err, broker.ErrServerClosed) {
						return nil
					}
					return err
				case s := <-sigs:
					if s == syscall.SIGHUP {
						reload(log, b, load, &cfg, configFile)
						continue
					}
					log.Info("shutting down", "signal", s.String())
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
	f.StringVar(&configFile, "config", "", "JSON file with limits and log_level, re-read on SIGHUP")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&dataDir, "data", "", "data directory for durable mailboxes (default $POSTBOX_DATA, else $XDG_STATE_HOME/postbox, else ~/.local/state/postbox)")
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
	f.IntVar(&cfg.MaxOffersPerConn, "max-offers-per-conn", cfg.MaxOffersPerConn, "most channel offers not yet attached per connection")
	f.IntVar(&cfg.MaxOffersPerUID, "max-offers-per-uid", cfg.MaxOffersPerUID, "most channel offers not yet attached per uid")
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
		"not reloadable", "socket path and mode, max frame size")
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
