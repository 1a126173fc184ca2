package shm

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// Benchmarks run both ends in this process (two goroutines); shm/shmbench
// measures across processes. Run with -benchmem: the shared-memory paths
// show 0 allocs/op.

var benchSizes = []int{64, 4 << 10, 64 << 10, 1 << 20}

func sizeName(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// drain receives n messages on c in a goroutine.
func drain(b *testing.B, c *Chan, n int, size int) chan error {
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, size)
		ctx := context.Background()
		for i := 0; i < n; i++ {
			if _, err := c.Receive(ctx, buf); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	return done
}

func BenchmarkSendReceive(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(sizeName(size), func(b *testing.B) {
			a, c := pair(b, Config{Wait: BusyPoll}, Config{Wait: BusyPoll})
			msg := make([]byte, size)
			ctx := context.Background()
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			done := drain(b, c, b.N, size)
			for i := 0; i < b.N; i++ {
				if err := a.Send(ctx, msg); err != nil {
					b.Fatal(err)
				}
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		})
	}
}

func BenchmarkSendBatch64(b *testing.B) {
	a, c := pair(b, Config{Wait: BusyPoll}, Config{Wait: BusyPoll})
	msgs := make([][]byte, 64)
	for i := range msgs {
		msgs[i] = make([]byte, 64)
	}
	ctx := context.Background()
	b.SetBytes(64)
	b.ReportAllocs()
	b.ResetTimer()
	done := make(chan error, 1)
	go func() {
		got := 0
		for got < b.N {
			n, err := c.ReceiveBatch(ctx, 256, func([]byte) {})
			if err != nil {
				done <- err
				return
			}
			got += n
		}
		done <- nil
	}()
	for sent := 0; sent < b.N; {
		k := min(len(msgs), b.N-sent)
		n, err := a.SendBatch(ctx, msgs[:k])
		if err != nil {
			b.Fatal(err)
		}
		sent += n
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkLoan is a zero-copy hand-over: reserve, commit, lend, release.
// The payload is not touched, so the cost should not grow with size.
func BenchmarkLoan(b *testing.B) {
	for _, size := range []int{64, 1 << 20} {
		b.Run(sizeName(size), func(b *testing.B) {
			a, c := pair(b, Config{Wait: BusyPoll}, Config{Wait: BusyPoll})
			ctx := context.Background()
			b.ReportAllocs()
			done := make(chan error, 1)
			go func() {
				for i := 0; i < b.N; i++ {
					l, err := c.ReceiveLoan(ctx)
					if err != nil {
						done <- err
						return
					}
					l.Release()
				}
				done <- nil
			}()
			for i := 0; i < b.N; i++ {
				r, err := a.Reserve(ctx, size)
				if err != nil {
					b.Fatal(err)
				}
				r.Bytes()[0] = byte(i)
				if err := r.Commit(); err != nil {
					b.Fatal(err)
				}
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkPingPong64 is a 64-byte round trip; ns/op is two one-way hops.
func BenchmarkPingPong64(b *testing.B) {
	for _, w := range []WaitPolicy{BusyPoll, Hybrid} {
		b.Run(w.String(), func(b *testing.B) {
			a, c := pair(b, Config{Wait: w}, Config{Wait: w})
			ctx := context.Background()
			go func() {
				buf := make([]byte, 64)
				for {
					n, err := c.Receive(ctx, buf)
					if err != nil || c.Send(ctx, buf[:n]) != nil {
						return
					}
				}
			}()
			buf := make([]byte, 64)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				a.Send(ctx, buf)
				if _, err := a.Receive(ctx, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMemcpy is the floor for the copy API: one copy of the size.
func BenchmarkMemcpy(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(sizeName(size), func(b *testing.B) {
			src, dst := make([]byte, size), make([]byte, size)
			b.SetBytes(int64(size))
			for i := 0; i < b.N; i++ {
				copy(dst, src)
			}
		})
	}
}

func benchStream(b *testing.B, w io.Writer, r io.Reader, size int) {
	msg := make([]byte, size)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, size)
		for i := 0; i < b.N; i++ {
			if _, err := io.ReadFull(r, buf); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for i := 0; i < b.N; i++ {
		if _, err := w.Write(msg); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkPipe and BenchmarkUnixSocket are the kernel baselines.
func BenchmarkPipe(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(sizeName(size), func(b *testing.B) {
			r, w, err := os.Pipe()
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			defer w.Close()
			benchStream(b, w, r, size)
		})
	}
}

func BenchmarkUnixSocket(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(sizeName(size), func(b *testing.B) {
			x, y := unixStreamPair(b)
			benchStream(b, x, y, size)
		})
	}
}

func unixStreamPair(b *testing.B) (net.Conn, net.Conn) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	var conns [2]net.Conn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "sock")
		conns[i], err = net.FileConn(f)
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { conns[i].Close() })
	}
	return conns[0], conns[1]
}
