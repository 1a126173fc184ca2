package main

// sd_notify for postbox serve: see the top of serve_systemd.go.

import (
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/postbox-ipc/postbox/broker"
)

// statusEvery is how often the STATUS= line is brought up to date.
const statusEvery = 10 * time.Second

// notifier tells systemd how serve is doing (see the top of this file).
// Its methods are safe for concurrent use.
type notifier struct {
	log  *slog.Logger
	b    *broker.Broker
	on   bool          // NOTIFY_SOCKET was set
	quit chan struct{} // closed by stopping
	done chan struct{} // closed when loop returns
	once sync.Once
}

// startNotify sends READY=1 and starts the watchdog and status loop. With
// NOTIFY_SOCKET unset it does nothing.
func startNotify(log *slog.Logger, b *broker.Broker) *notifier {
	n := &notifier{log: log, b: b, on: os.Getenv("NOTIFY_SOCKET") != "",
		quit: make(chan struct{}), done: make(chan struct{})}
	wd, err := daemon.SdWatchdogEnabled(true)
	if err != nil {
		log.Warn("systemd watchdog: ignoring WATCHDOG_USEC", "err", err)
	}
	if !n.on {
		close(n.done)
		return n
	}
	status := n.status()
	n.send(daemon.SdNotifyReady + "\n" + status)
	go n.loop(wd, status)
	if wd > 0 {
		log.Info("systemd watchdog", "interval", wd, "ping_every", wd/2)
	}
	return n
}

func (n *notifier) loop(wd time.Duration, last string) {
	defer close(n.done)
	var ping <-chan time.Time
	if wd > 0 {
		t := time.NewTicker(wd / 2)
		defer t.Stop()
		ping = t.C
	}
	every := time.NewTicker(statusEvery)
	defer every.Stop()
	for {
		select {
		case <-n.quit:
			return
		case <-ping:
			s := n.status() // the broker answered: it is alive
			msg := daemon.SdNotifyWatchdog
			if s != last {
				msg, last = msg+"\n"+s, s
			}
			n.send(msg)
		case <-every.C:
			if s := n.status(); s != last {
				n.send(s)
				last = s
			}
		}
	}
}

// status is the STATUS= line.
func (n *notifier) status() string {
	st := n.b.Status()
	s := "STATUS=serving " + plural(st.Connections, "connection") + ", " + plural(st.Mailboxes, "mailbox")
	if !st.DataDirOpen {
		s += " (no data directory open)"
	}
	return s
}

func plural(n int, what string) string {
	s := strconv.Itoa(n) + " " + what
	switch {
	case n == 1:
		return s
	case what == "mailbox":
		return s + "es"
	}
	return s + "s"
}

func (n *notifier) send(state string) {
	if !n.on {
		return
	}
	if _, err := daemon.SdNotify(false, state); err != nil {
		n.log.Warn("sd_notify failed", "err", err)
	}
}

// reload wraps a SIGHUP reload in RELOADING=1 and READY=1.
func (n *notifier) reload(fn func()) {
	n.send(daemon.SdNotifyReloading + "\n" + daemon.SdNotifyMonotonicUsec())
	fn()
	n.send(daemon.SdNotifyReady + "\n" + n.status())
}

// stopping sends STOPPING=1 (once) after ending the watchdog loop, and
// unsets NOTIFY_SOCKET.
func (n *notifier) stopping() {
	n.once.Do(func() {
		close(n.quit)
		<-n.done
		if n.on {
			if _, err := daemon.SdNotify(true, daemon.SdNotifyStopping+"\nSTATUS=stopping"); err != nil {
				n.log.Warn("sd_notify failed", "err", err)
			}
		}
	})
}
