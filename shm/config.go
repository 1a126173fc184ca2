package shm

import (
	"fmt"
	"os"
	"time"
)

// Side names one end of a channel. Side A sends on ring 0 and receives on
// ring 1; side B the reverse. Which process is which does not matter, only
// that the two differ.
type Side int

const (
	SideA Side = 0
	SideB Side = 1
)

func (s Side) String() string {
	switch s {
	case SideA:
		return "A"
	case SideB:
		return "B"
	}
	return fmt.Sprintf("Side(%d)", int(s))
}

// WaitPolicy says what a blocked call does while it waits for the peer.
type WaitPolicy int

const (
	// Hybrid spins for Config.SpinTime, then parks on a futex in the
	// segment. It is the default: low latency under traffic, and an idle
	// channel costs (almost) no CPU.
	Hybrid WaitPolicy = iota
	// BusyPoll never sleeps: lowest latency, one core per waiting side.
	BusyPoll
	// Park sleeps on the futex at once: least CPU, a kernel wake-up per
	// message when the peer is waiting.
	Park
)

func (p WaitPolicy) String() string {
	switch p {
	case Hybrid:
		return "hybrid"
	case BusyPoll:
		return "busy-poll"
	case Park:
		return "park"
	}
	return fmt.Sprintf("WaitPolicy(%d)", int(p))
}

// Defaults used for zero Config fields.
const (
	// DefaultRingSize is 1 MiB. A bigger ring is faster for streams: a
	// producer rewriting space the consumer read moments ago must take
	// each line back from the consumer's cache, which held 64 B batched
	// sends near 25-30 M/s with a 256 KiB ring; 1 MiB reached 49-84 M/s
	// and 4 MiB 72-133 M/s. But a ring larger than the caches costs every
	// ping-pong a cache miss: 64 B busy-poll latency was 190 ns at 1 MiB
	// and 590 ns at 4 MiB. 1 MiB meets the latency aims; set RingSize to
	// 4 MiB for bulk streams.
	DefaultRingSize   = 1 << 20
	DefaultBlockSize  = 64 << 10
	DefaultBlocks     = 64
	DefaultMaxMessage = 256 << 20
	DefaultSpinTime   = 50 * time.Microsecond
	// MaxBlocks is the largest pool, per direction.
	MaxBlocks = 256
	// MaxLoans is how many receive loans may be outstanding on one side.
	MaxLoans = 256
)

// Config describes a channel. The zero value works: every zero field takes
// its default. RingSize, BlockSize, Blocks and MaxMessage are fixed by
// whoever creates the segment and recorded in its header; the side that
// attaches reads them from there. Wait, SpinTime and AllowedUIDs are local
// to each side.
type Config struct {
	// RingSize is the bytes of each direction's ring, a power of two of
	// at least 4 KiB. Messages up to RingSize/2-8 bytes travel inline,
	// except that with a pool those of half a block or more go to the
	// pool.
	RingSize int
	// BlockSize (a multiple of 4 KiB) and Blocks (at most MaxBlocks) size
	// each direction's block pool. Messages too large for the ring and no
	// larger than BlockSize*Blocks take a run of contiguous blocks; only a
	// descriptor crosses the ring. Blocks < 0 disables the pool.
	BlockSize int
	Blocks    int
	// MaxMessage bounds every message. Messages larger than the pool
	// travel in a dedicated sealed memfd passed over the control socket.
	MaxMessage int
	// Wait is this side's wait policy; SpinTime bounds Hybrid's spin.
	Wait     WaitPolicy
	SpinTime time.Duration
	// AllowedUIDs restricts which peer uids Listen accepts and Dial
	// trusts (checked with SO_PEERCRED). Nil allows only this process's
	// effective uid; AllowAnyUID lifts the check.
	AllowedUIDs []int
	AllowAnyUID bool
}

// withDefaults returns c with zero fields replaced by defaults, or an error
// naming the first bad field.
func (c Config) withDefaults() (Config, error) {
	if c.RingSize == 0 {
		c.RingSize = DefaultRingSize
	}
	if c.BlockSize == 0 {
		c.BlockSize = DefaultBlockSize
	}
	switch {
	case c.Blocks == 0:
		c.Blocks = DefaultBlocks
	case c.Blocks < 0:
		c.Blocks = 0
	}
	if c.MaxMessage == 0 {
		c.MaxMessage = DefaultMaxMessage
	}
	if c.SpinTime == 0 {
		c.SpinTime = DefaultSpinTime
	}
	return c, c.validate()
}

func (c Config) validate() error {
	switch {
	case c.RingSize < 4096 || c.RingSize > 1<<30 || c.RingSize&(c.RingSize-1) != 0:
		return fmt.Errorf("shm: Config.RingSize %d is not a power of two in [4 KiB, 1 GiB]", c.RingSize)
	case c.BlockSize < 4096 || c.BlockSize > 1<<30 || c.BlockSize%4096 != 0:
		return fmt.Errorf("shm: Config.BlockSize %d is not a multiple of 4 KiB in [4 KiB, 1 GiB]", c.BlockSize)
	case c.Blocks > MaxBlocks:
		return fmt.Errorf("shm: Config.Blocks %d exceeds %d", c.Blocks, MaxBlocks)
	case c.MaxMessage < 0 || int64(c.MaxMessage) > 1<<40:
		return fmt.Errorf("shm: Config.MaxMessage %d out of range", c.MaxMessage)
	case c.Wait < Hybrid || c.Wait > Park:
		return fmt.Errorf("shm: Config.Wait %d is not a WaitPolicy", int(c.Wait))
	case c.SpinTime < 0:
		return fmt.Errorf("shm: Config.SpinTime %v is negative", c.SpinTime)
	}
	return nil
}

// Validate reports the first invalid field of c, after defaults are applied.
func (c Config) Validate() error {
	_, err := c.withDefaults()
	return err
}

// uidAllowed reports whether a peer with uid may connect.
func (c Config) uidAllowed(uid int) bool {
	if c.AllowAnyUID {
		return true
	}
	if c.AllowedUIDs == nil {
		return uid == os.Geteuid()
	}
	for _, u := range c.AllowedUIDs {
		if u == uid {
			return true
		}
	}
	return false
}
