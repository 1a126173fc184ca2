package broker_test

import (
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/postbox-ipc/postbox/broker"
	"github.com/postbox-ipc/postbox/wire"
)

// The broker's hot path measured with raw clients that allocate nothing
// themselves, so -benchmem reports the broker's allocations: a producer
// pipelines SENDs of one message to a mailbox, a consumer streams them
// (CONSUME) and settles each with fire-and-forget ACKs (NOREPLY), batched
// as a client's AckNoWait is.

func BenchmarkSendReceiveAck64(b *testing.B) { benchSendReceiveAck(b, 64, 1) }
func BenchmarkSendReceiveAck4K(b *testing.B) { benchSendReceiveAck(b, 4096, 1) }

// BenchmarkSendBatch64ReceiveAck64 is BenchmarkSendReceiveAck64 with the
// producer sending 64 messages per SEND frame.
func BenchmarkSendBatch64ReceiveAck64(b *testing.B) { benchSendReceiveAck(b, 64, 64) }

func benchSocket(b *testing.B) string {
	cfg := broker.DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	br, err := broker.Open(cfg)
	if err != nil {
		b.Fatal(err)
	}
	dir, _ := os.MkdirTemp("", "pbbench-")
	socket := filepath.Join(dir, "s")
	l, err := broker.Listen(socket, 0o666)
	if err != nil {
		b.Fatal(err)
	}
	go br.Serve(l)
	b.Cleanup(func() { br.Close(); os.RemoveAll(dir) })
	return socket
}

type benchConn struct {
	nc  net.Conn
	r   *wire.Reader
	out []byte
}

func benchDial(b *testing.B, socket string) *benchConn {
	nc, err := net.Dial("unix", socket)
	if err != nil {
		b.Fatal(err)
	}
	c := &benchConn{nc: nc, r: wire.NewReader(nc, 32<<20, 256<<10)}
	c.request(b, wire.OpHello, 1, 0, helloPayload())
	return c
}

// request sends one frame and waits for its reply.
func (c *benchConn) request(b *testing.B, op wire.Op, req uint64, flags uint8, payload []byte) []byte {
	c.nc.Write(append(wire.AppendHeader(nil, wire.Header{Op: op, Flags: flags, Request: req}, len(payload)), payload...))
	for {
		hd, p, err := c.r.Next()
		if err != nil {
			b.Fatal(err)
		}
		if hd.Request == req && hd.Op == op|wire.OpReply {
			if hd.Status != wire.OK {
				b.Fatalf("%s: %s", op, hd.Status)
			}
			return p
		}
	}
}

func benchSendReceiveAck(b *testing.B, size, batch int) {
	socket := benchSocket(b)
	prod, cons := benchDial(b, socket), benchDial(b, socket)
	prod.request(b, wire.OpCreate, 2, 0, createPayload("bench", 4096))
	const credit = 1024
	p := consumePayload("bench", credit)
	cons.nc.Write(append(wire.AppendHeader(nil, wire.Header{Op: wire.OpConsume, Request: 7}, len(p)), p...))

	body := make([]byte, size)
	const window = 128
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	done := make(chan error, 1)
	frames := (b.N + batch - 1) / batch
	go func() { // the producer's replies
		for range frames {
			hd, _, err := prod.r.Next()
			if err == nil && hd.Status != wire.OK {
				err = io.ErrUnexpectedEOF
			}
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	sent := make(chan struct{}, window)
	go func() { // the producer
		var out []byte
		for i := range frames {
			k := min(batch, b.N-i*batch)
			for range k {
				sent <- struct{}{}
			}
			out = appendSend(out[:0], uint64(i+100), "bench", body, k)
			prod.nc.Write(out)
		}
	}()
	var leases []uint64
	var out []byte
	got := 0
	for got < b.N {
		hd, p, err := cons.r.Next()
		if err != nil {
			b.Fatal(err)
		}
		if hd.Request != 7 {
			continue
		}
		got++
		<-sent
		leases = append(leases, deliveryLease(p))
		if len(leases) == 64 || got == b.N {
			out = appendAck(out[:0], leases)
			if got%512 < 64 {
				out = appendCredit(out, 7, 512)
			}
			cons.nc.Write(out)
			leases = leases[:0]
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

func helloPayload() []byte {
	return (&wire.Hello{MinVersion: 2, MaxVersion: 2, Client: []byte("bench")}).Append(nil)
}

func createPayload(name string, capacity int64) []byte {
	return (&wire.Create{Name: []byte(name), Capacity: capacity, Mode: 0o666}).Append(nil)
}

func consumePayload(name string, credit uint32) []byte {
	return (&wire.Consume{Name: []byte(name), Credit: credit}).Append(nil)
}

func appendSend(b []byte, req uint64, target string, body []byte, n int) []byte {
	b, off := wire.StartFrame(b, wire.Header{Op: wire.OpSend, Request: req})
	b = wire.AppendString(b, target)
	b = wire.AppendI64(b, -1)
	b = wire.AppendU16(b, uint16(n))
	for range n {
		b = wire.AppendI64(b, 1)
		b = append(b, 0)
		b = wire.AppendU32(b, 0) // no headers
		b = wire.AppendBytes(b, body)
	}
	return wire.FinishFrame(b, off)
}

func deliveryLease(p []byte) uint64 {
	d := wire.NewDecoder(p)
	return d.U64()
}

var ackRanges []wire.LeaseRange

func appendAck(b []byte, leases []uint64) []byte {
	ackRanges = wire.RangesOf(leases, ackRanges[:0])
	b, off := wire.StartFrame(b, wire.Header{Op: wire.OpAck, Flags: wire.FlagNoReply})
	m := wire.Leases{Ranges: ackRanges}
	return wire.FinishFrame(m.Append(b), off)
}

func appendCredit(b []byte, req uint64, n uint32) []byte {
	b, off := wire.StartFrame(b, wire.Header{Op: wire.OpCredit, Request: req})
	return wire.FinishFrame(wire.AppendU32(b, n), off)
}
