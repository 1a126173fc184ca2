package grpcpostbox_test

import (
	"context"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/fullstorydev/grpchan/grpchantesting"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/internal/testbroker"
)

// TestManyStreamsAtOnce runs 20 bidi streams and 20 unary calls at once
// over one ClientConn: every frame reaches its own stream.
func TestManyStreamsAtOnce(t *testing.T) {
	testbroker.CheckGoroutines(t)
	cc, _ := setup(t, &grpchantesting.TestServer{})
	cli := grpchantesting.NewTestServiceClient(cc)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 20 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			bidi, err := cli.BidiStream(ctx)
			if err != nil {
				errs <- err
				return
			}
			for j := range 50 {
				want := fmt.Sprintf("%d/%d", i, j)
				if err := bidi.Send(&grpchantesting.Message{Payload: []byte(want)}); err != nil {
					errs <- err
					return
				}
				m, err := bidi.Recv()
				if err != nil || string(m.Payload) != want {
					errs <- fmt.Errorf("stream %d message %d: %q, %v", i, j, m.GetPayload(), err)
					return
				}
			}
			bidi.CloseSend()
			if _, err := bidi.Recv(); err != io.EOF {
				errs <- fmt.Errorf("stream %d end: %v", i, err)
			}
		}()
		go func() {
			defer wg.Done()
			want := fmt.Sprintf("unary %d", i)
			rep, err := cli.Unary(ctx, &grpchantesting.Message{Payload: []byte(want)})
			if err != nil || string(rep.Payload) != want {
				errs <- fmt.Errorf("unary %d: %q, %v", i, rep.GetPayload(), err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestInboxSharedWithOtherMessageTypes: the adapter consumes only frames
// of its MessageType from the client's inbox; a message of another type
// stays there for the application.
func TestInboxSharedWithOtherMessageTypes(t *testing.T) {
	testbroker.CheckGoroutines(t)
	b := testbroker.Start(t, nil)
	serveOn(t, b.Dial(t), &grpchantesting.TestServer{})
	c := b.Dial(t)
	cc := dialConn(t, c)
	ctx := context.Background()
	if _, err := c.Inbox().Send(ctx, []byte("mine"), postbox.Type(7)); err != nil {
		t.Fatal(err)
	}
	ss, err := grpchantesting.NewTestServiceClient(cc).ServerStream(ctx, &grpchantesting.Message{Count: 3})
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := ss.Recv(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	m, err := c.Inbox().Receive(ctx, postbox.Type(7), postbox.NoWait())
	if err != nil {
		t.Fatalf("the application's message is gone: %v", err)
	}
	if string(m.Body) != "mine" {
		t.Errorf("got %q", m.Body)
	}
	m.Ack(ctx)
}
