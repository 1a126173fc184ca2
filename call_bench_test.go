package postbox_test

import (
	"context"
	"sync"
	"testing"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/internal/testbroker"
)

// Request and reply, 64-byte bodies, against an in-process broker over
// its Unix socket: a server client consumes the service mailbox and
// answers each request from one of 16 workers.
//
// BenchmarkCall64 is Mailbox.Call (one CALL frame, one reply) answered
// with Message.Reply and AckRequest (one SEND frame, no ACK). Its
// baseline, BenchmarkSendRecv64, is request/reply the way it was done
// before CALL: the caller sends the request with ReplyTo and
// CorrelationID and then receives the reply from its inbox (two round
// trips), and the server answers with a plain Send and acks with
// AckNoWait. The Parallel16 variants run 16 callers: on one client for
// Call, on a client each for the baseline (a shared inbox would hand
// replies to the wrong caller).
//
//	go test -run '^$' -bench 'Call64|SendRecv64' -benchmem .

func BenchmarkCall64(b *testing.B) { benchRPC(b, 1, false) }

func BenchmarkCall64Parallel16(b *testing.B) { benchRPC(b, 16, false) }

func BenchmarkSendRecv64(b *testing.B) { benchRPC(b, 1, true) }

func BenchmarkSendRecv64Parallel16(b *testing.B) { benchRPC(b, 16, true) }

func benchRPC(b *testing.B, callers int, baseline bool) {
	br := testbroker.Start(b, nil)
	cc, sc := br.Dial(b), br.Dial(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	svc, err := sc.Create(ctx, "svc", postbox.Service(), postbox.Mode(0o622))
	if err != nil {
		b.Fatal(err)
	}
	stop := serveBench(b, ctx, sc, svc)
	defer stop()
	clients := make([]*postbox.Client, callers)
	for i := range clients {
		clients[i] = cc
		if baseline && i > 0 {
			clients[i] = br.Dial(b)
		}
	}
	body := make([]byte, 64)
	b.ReportAllocs()
	b.SetBytes(64)
	b.ResetTimer()
	var wg sync.WaitGroup
	for i, c := range clients {
		n := b.N / callers
		if i == 0 {
			n += b.N % callers
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			mb, inbox := c.Mailbox("svc"), c.Inbox()
			corr := make([]byte, 8)
			for j := range n {
				var err error
				if baseline {
					corr[0], corr[1], corr[2], corr[3] = byte(j), byte(j>>8), byte(j>>16), byte(j>>24)
					if _, err = mb.Send(ctx, body, postbox.ReplyTo(inbox.Name()), postbox.CorrelationID(corr)); err == nil {
						_, err = inbox.Receive(ctx, postbox.AutoAck())
					}
				} else {
					_, err = mb.Call(ctx, body)
				}
				if err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
}

// serveBench answers the requests on svc with 16 workers on client sc
// until ctx ends: a Call's with Reply and AckRequest, the baseline's
// with a Send to its ReplyTo and AckNoWait.
func serveBench(b *testing.B, ctx context.Context, sc *postbox.Client, svc *postbox.Mailbox) func() {
	cons, err := svc.Consume(ctx, postbox.Prefetch(256))
	if err != nil {
		b.Fatal(err)
	}
	reqs := make(chan *postbox.Message, 64)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(reqs)
		for {
			m, err := cons.Next(ctx)
			if err != nil {
				return
			}
			reqs <- m
		}
	}()
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range reqs {
				if len(m.CorrelationID()) == 16 { // a Call's
					m.Reply(ctx, m.Body, postbox.AckRequest())
					continue
				}
				sc.Mailbox(m.ReplyTo()).Send(ctx, m.Body, postbox.CorrelationID(m.CorrelationID()))
				m.AckNoWait()
			}
		}()
	}
	return func() {
		cons.Close(context.Background())
		wg.Wait()
	}
}
