package shm

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Segment layout. Every offset is from the start of the memfd; nothing in
// the segment is a pointer. The header page holds fixed fields, then one
// 128-byte line per control word so that words written by different sides
// never share a cache line (128 bytes covers adjacent-line prefetching).
const (
	offMagic      = 0  // uint64 segMagic
	offVersion    = 8  // uint32 layoutVersion
	offHeaderSize = 12 // uint32 headerSize
	offRingSize   = 16 // uint64 bytes per ring
	offBlockSize  = 24 // uint64 bytes per pool block
	offBlocks     = 32 // uint64 blocks per pool
	offMaxMessage = 40 // uint64 largest message
	offTotalSize  = 48 // uint64 bytes in the segment
	offHash       = 56 // uint64 FNV-1a of the layout (see layoutHash)

	line = 128

	offAttach = 1 * line // uint32 per side, one line each: pid that attached

	// Ring r's control block starts at offRings + r*ringCtlSize and has
	// four lines: tail (producer), head (consumer), data-waiter flag
	// (consumer sleeps on it), space-waiter flag (producer sleeps on it).
	offRings    = 3 * line
	ringCtlSize = 4 * line
	ctlTail     = 0 * line
	ctlHead     = 1 * line
	ctlDataWait = 2 * line
	ctlRoomWait = 3 * line

	// Pool p's block state words (uint32 each, MaxBlocks of them).
	offPools    = 2048
	poolCtlSize = 1024

	headerSize = 4096

	segMagic      = 0x3130534d48534250 // "PBSHMS01" little-endian
	layoutVersion = 1
)

// geometry is the segment's layout, derived from the sizes alone.
type geometry struct {
	ringSize, blockSize, blocks, maxMessage uint64
}

func (g geometry) ringData(r int) uint64 { return headerSize + uint64(r)*g.ringSize }
func (g geometry) poolData(p int) uint64 {
	return headerSize + 2*g.ringSize + uint64(p)*g.blocks*g.blockSize
}
func (g geometry) total() uint64 { return g.poolData(2) }

// layoutHash binds the derived offsets to the sizes, so two builds that
// disagree about the layout refuse each other instead of corrupting.
func (g geometry) layoutHash() uint64 {
	h := fnv.New64a()
	var b [8]byte
	for _, v := range []uint64{segMagic, layoutVersion, headerSize, line,
		offRings, ringCtlSize, offPools, poolCtlSize,
		g.ringSize, g.blockSize, g.blocks, g.maxMessage,
		g.ringData(0), g.ringData(1), g.poolData(0), g.poolData(1), g.total()} {
		binary.LittleEndian.PutUint64(b[:], v)
		h.Write(b[:])
	}
	return h.Sum64()
}

func geometryOf(c Config) geometry {
	return geometry{uint64(c.RingSize), uint64(c.BlockSize), uint64(c.Blocks), uint64(c.MaxMessage)}
}

// newSegmentFile creates and formats a memfd for c (already defaulted).
func newSegmentFile(c Config) (*os.File, error) {
	g := geometryOf(c)
	fd, err := unix.MemfdCreate("postbox-shm", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("shm: memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "postbox-shm")
	if err := unix.Ftruncate(fd, int64(g.total())); err != nil {
		f.Close()
		return nil, fmt.Errorf("shm: ftruncate: %w", err)
	}
	// The size is part of the layout: forbid either side changing it.
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_SEAL); err != nil {
		f.Close()
		return nil, fmt.Errorf("shm: seal segment: %w", err)
	}
	var hdr [64]byte
	le := binary.LittleEndian
	le.PutUint64(hdr[offMagic:], segMagic)
	le.PutUint32(hdr[offVersion:], layoutVersion)
	le.PutUint32(hdr[offHeaderSize:], headerSize)
	le.PutUint64(hdr[offRingSize:], g.ringSize)
	le.PutUint64(hdr[offBlockSize:], g.blockSize)
	le.PutUint64(hdr[offBlocks:], g.blocks)
	le.PutUint64(hdr[offMaxMessage:], g.maxMessage)
	le.PutUint64(hdr[offTotalSize:], g.total())
	le.PutUint64(hdr[offHash:], g.layoutHash())
	if _, err := unix.Pwrite(fd, hdr[:], 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("shm: write header: %w", err)
	}
	return f, nil
}

// mapSegment validates the header of the segment in f and maps it.
func mapSegment(f *os.File) ([]byte, geometry, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, geometry{}, fmt.Errorf("shm: fstat segment: %w", err)
	}
	if st.Size < headerSize {
		return nil, geometry{}, fmt.Errorf("%w: %d bytes", ErrBadSegment, st.Size)
	}
	var hdr [64]byte
	if _, err := unix.Pread(int(f.Fd()), hdr[:], 0); err != nil {
		return nil, geometry{}, fmt.Errorf("shm: read header: %w", err)
	}
	le := binary.LittleEndian
	g := geometry{le.Uint64(hdr[offRingSize:]), le.Uint64(hdr[offBlockSize:]), le.Uint64(hdr[offBlocks:]), le.Uint64(hdr[offMaxMessage:])}
	bad := func(what string) ([]byte, geometry, error) {
		return nil, geometry{}, fmt.Errorf("%w: %s", ErrBadSegment, what)
	}
	switch {
	case le.Uint64(hdr[offMagic:]) != segMagic:
		return bad("bad magic")
	case le.Uint32(hdr[offVersion:]) != layoutVersion:
		return bad(fmt.Sprintf("layout version %d, want %d", le.Uint32(hdr[offVersion:]), layoutVersion))
	case le.Uint32(hdr[offHeaderSize:]) != headerSize:
		return bad("header size")
	case g.ringSize < 4096 || g.ringSize > 1<<30 || g.ringSize&(g.ringSize-1) != 0:
		return bad("ring size")
	case g.blockSize < 4096 || g.blockSize > 1<<30 || g.blockSize%4096 != 0:
		return bad("block size")
	case g.blocks > MaxBlocks:
		return bad("block count")
	case g.maxMessage > 1<<40:
		return bad("max message")
	case le.Uint64(hdr[offTotalSize:]) != g.total() || uint64(st.Size) != g.total():
		return bad("total size")
	case le.Uint64(hdr[offHash:]) != g.layoutHash():
		return bad("layout hash")
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, int(g.total()), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, geometry{}, fmt.Errorf("shm: mmap segment: %w", err)
	}
	return mem, g, nil
}

// u32At and u64At give atomic views of control words in the mapping. off
// is a constant from the layout, so always in range and aligned.
func u32At(mem []byte, off uint64) *atomic.Uint32 {
	return (*atomic.Uint32)(unsafe.Pointer(&mem[off]))
}

func u64At(mem []byte, off uint64) *atomic.Uint64 {
	return (*atomic.Uint64)(unsafe.Pointer(&mem[off]))
}
