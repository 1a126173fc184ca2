package broker

import (
	"errors"
	"hash/fnv"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Accepting: every accepted connection is counted at once.
//
// A connection holds a descriptor from accept on, so the bounds apply
// from accept: one that has not said HELLO yet is handshaking, and at
// most Config.MaxHandshaking of them (Config.MaxHandshakingPerUID per
// peer uid, read with SO_PEERCRED at accept; a TCP or TLS peer is
// counted per remote IP address instead, so that one remote host that
// opens connections and never finishes its TLS handshake cannot hold
// every other remote client's slots) exist at once. One past either bound is
// closed at accept, before any goroutine starts. A handshaking connection
// takes a MaxConnections slot at accept if one is free; one that found
// none is still served until HELLO, only to answer it LIMIT. So the
// broker's connection descriptors are at most MaxConnections +
// MaxHandshaking.

// noUID is the handshake count of peers without Unix credentials or an
// IP address. A TCP peer's count is keyed below it by its IP (ipKey).
const noUID = -1

// ipKey is the handshake count key of a peer at ip: negative, below
// noUID, so it never meets a uid's.
func ipKey(ip net.IP) int64 {
	h := fnv.New32a()
	h.Write(ip.To16())
	return noUID - 1 - int64(h.Sum32())
}

// handshakes counts connections between accept and the end of HELLO.
type handshakes struct {
	mu    sync.Mutex // guards total and byUID
	total int
	byUID map[int64]int
}

// admit takes a handshake slot for uid, or reports that none is left.
func (h *handshakes) admit(uid int64, total, perUID int) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.total >= total || h.byUID[uid] >= perUID {
		return false
	}
	if h.byUID == nil {
		h.byUID = make(map[int64]int)
	}
	h.total++
	h.byUID[uid]++
	return true
}

// release gives back a slot admit took.
func (h *handshakes) release(uid int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.total--
	if h.byUID[uid]--; h.byUID[uid] <= 0 {
		delete(h.byUID, uid)
	}
}

// acceptUID is the peer's key for the handshake bound: its uid
// (SO_PEERCRED only; no pidfd, which HELLO takes), or ipKey of a TCP or
// TLS peer's address, else noUID.
func acceptUID(nc net.Conn) int64 {
	uc, ok := nc.(*net.UnixConn)
	if !ok {
		if a, ok := nc.RemoteAddr().(*net.TCPAddr); ok && a.IP != nil {
			return ipKey(a.IP)
		}
		return noUID
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return noUID
	}
	uid := int64(noUID)
	raw.Control(func(fd uintptr) {
		if cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
			uid = int64(cred.Uid)
		}
	})
	return uid
}

// isFDLimit reports whether err is the process's or system's descriptor
// limit (EMFILE, ENFILE).
func isFDLimit(err error) bool {
	return errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE)
}

// warnEvery is the interval of rate-limited warnings.
const warnEvery = 10 * time.Second

// rateLog says whether a warning of its kind may be logged now: once per
// warnEvery.
type rateLog struct{ last atomic.Int64 }

func (r *rateLog) ok() bool {
	now := time.Now().UnixNano()
	last := r.last.Load()
	return now-last >= int64(warnEvery) && r.last.CompareAndSwap(last, now)
}
