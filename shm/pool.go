package shm

import (
	"encoding/binary"
	"sync/atomic"
	"unsafe"
)

// A pool is one direction's block pool: blocks of equal size, handed out in
// contiguous runs so a large message is one slice. Each block has a 32-bit
// state word in the header page. Only the first block of a run carries a
// word, tag<<16 | count, where tag is a 16-bit generation the producer
// bumps on every allocation; every other word is 0.
//
// Ownership. Only the producer turns a zero word non-zero (alloc), before
// it publishes the descriptor with the ring's tail store; only the consumer
// turns it back to zero (free), with an atomic store the producer's next
// scan loads. So no compare-and-swap is needed, and a run that is never
// freed (a loan never released) just stays in use: the producer waits or
// gets ErrPoolExhausted, and Stats reports the blocks.
type pool struct {
	data  []byte          // blocks*blockSize bytes
	words []atomic.Uint32 // one state word per block, in the header page
	bs    uint64          // block size
	n     int             // number of blocks
	tag   uint32          // producer only: generation of the last run
	next  int             // producer only: the block after the last run, where alloc looks first
}

func poolAt(mem []byte, g geometry, p int) pool {
	if g.blocks == 0 {
		return pool{bs: g.blockSize}
	}
	start := g.poolData(p)
	size := g.blocks * g.blockSize
	words := unsafe.Slice((*atomic.Uint32)(unsafe.Pointer(&mem[offPools+p*poolCtlSize])), g.blocks)
	return pool{data: mem[start : start+size : start+size], words: words, bs: g.blockSize, n: int(g.blocks)}
}

// max is the largest message the pool can carry.
func (p *pool) max() uint64 { return uint64(p.n) * p.bs }

func (p *pool) blocksFor(length uint64) int { return int((length + p.bs - 1) / p.bs) }

// alloc finds count free contiguous blocks and marks the run. It is next
// fit: the search starts where the last run ended and only falls back to
// a scan from block 0 when nothing fits from there, so runs are handed out
// round the pool in order and a block is reused as late as possible. (First
// fit reused the block the consumer had just read: its lines were still in
// the consumer's cache, and each write had to take them back, which halved
// copy throughput.) It returns the run's first block and state word. On
// ErrPoolExhausted it returns instead how many blocks the full scan saw in
// use: a waiter waits for inUse to drop below that, so a free that raced
// with the scan is not missed.
func (p *pool) alloc(count int) (first int, word uint32, used int, err error) {
	err = ErrPoolExhausted
	if p.next > 0 && p.next < p.n {
		first, _, err = p.scan(p.next, count)
	}
	if err == ErrPoolExhausted {
		first, used, err = p.scan(0, count)
	}
	if err != nil {
		return 0, 0, used, err
	}
	p.tag = p.tag%0xffff + 1
	word = p.tag<<16 | uint32(count)
	p.words[first].Store(word)
	p.next = first + count
	return first, word, 0, nil
}

// scan looks for count free contiguous blocks from block from, which must
// start a run or be free (0 and the end of the last run always are), to
// the end of the pool. It skips whole runs, so the zero words inside a
// run are never taken for free ones.
func (p *pool) scan(from, count int) (first, used int, err error) {
	run := 0
	for i := from; i < p.n; {
		w := p.words[i].Load()
		if w == 0 {
			run++
			i++
			if run == count {
				return i - count, used, nil
			}
			continue
		}
		c := int(w & 0xffff)
		if c == 0 || c > p.n-i {
			return 0, 0, ErrCorrupt
		}
		run = 0
		used += c
		i += c
	}
	return 0, used, ErrPoolExhausted
}

// check validates a descriptor read from the ring (consumer side): the run
// must lie inside the pool, hold length bytes, and be marked with word.
func (p *pool) check(length uint64, first, word uint32) error {
	if length == 0 || length > p.max() {
		return ErrCorrupt
	}
	count := p.blocksFor(length)
	if uint64(first) >= uint64(p.n) || count > p.n-int(first) || word != word&0xffff0000|uint32(count) {
		return ErrCorrupt
	}
	if p.words[first].Load() != word {
		return ErrCorrupt
	}
	return nil
}

// bytes returns the message held by a checked run.
func (p *pool) bytes(first uint32, length uint64) []byte {
	off := uint64(first) * p.bs
	return p.data[off : off+length : off+length]
}

// free returns a run to the producer (consumer side).
func (p *pool) free(first uint32) { p.words[first].Store(0) }

// inUse counts the blocks in live runs, for Stats. A word that does not
// parse counts as one block.
func (p *pool) inUse() int {
	used := 0
	for i := 0; i < p.n; {
		w := p.words[i].Load()
		if w == 0 {
			i++
			continue
		}
		c := int(w & 0xffff)
		if c == 0 || c > p.n-i {
			c = 1
		}
		used += c
		i += c
	}
	return used
}

func putPoolDesc(b []byte, length uint64, first, word uint32) {
	binary.LittleEndian.PutUint64(b, length)
	binary.LittleEndian.PutUint32(b[8:], first)
	binary.LittleEndian.PutUint32(b[12:], word)
}

func getPoolDesc(b []byte) (length uint64, first, word uint32) {
	return binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint32(b[8:]), binary.LittleEndian.Uint32(b[12:])
}
