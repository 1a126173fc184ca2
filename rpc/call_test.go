package rpc_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/rpc"
	"github.com/postbox-ipc/postbox/rpc/envelope"
)

func TestTypedCallJSON(t *testing.T) {
	e := newEnv(t)
	var runs atomic.Int64
	e.server(echoServer(&runs))
	resp, err := echo.Call(ctx(t), e.client, &echoReq{Text: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Text != "hello" || resp.Runs != 1 {
		t.Fatalf("%+v", resp)
	}
}

var upper = rpc.Method[wrapperspb.StringValue, wrapperspb.StringValue]{Service: "test.Strings", Name: "Upper"}

func protoServer(seen *atomic.Value) func(*rpc.Server) {
	return func(s *rpc.Server) {
		rpc.Register(s, upper, func(ctx context.Context, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
			seen.Store(rpc.RequestFrom(ctx).ContentType)
			return wrapperspb.String(req.GetValue() + "!"), nil
		})
	}
}

func TestTypedCallProtobuf(t *testing.T) {
	e := newEnv(t)
	var seen atomic.Value
	e.server(protoServer(&seen))
	resp, err := upper.Call(ctx(t), e.client, wrapperspb.String("hi"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetValue() != "hi!" || seen.Load() != envelope.ContentProto {
		t.Fatalf("%v, request content type %v", resp, seen.Load())
	}
}

func TestProtobufServiceAnswersJSONInJSON(t *testing.T) {
	e := newEnv(t)
	var seen atomic.Value
	e.server(protoServer(&seen))
	rep, err := e.client.Invoke(ctx(t), upper.Service, upper.Name, []byte(`"json"`), rpc.WithContentType(envelope.ContentJSON))
	if err != nil {
		t.Fatal(err)
	}
	if string(rep.Body) != `"json!"` || rep.ContentType != envelope.ContentJSON {
		t.Fatalf("%q %q", rep.Body, rep.ContentType)
	}
	// And protobuf bytes by hand decode as the proto reply.
	body, _ := proto.Marshal(wrapperspb.String("raw"))
	rep, err = e.client.Invoke(ctx(t), upper.Service, upper.Name, body, rpc.WithContentType(envelope.ContentProto))
	if err != nil {
		t.Fatal(err)
	}
	var v wrapperspb.StringValue
	if err := proto.Unmarshal(rep.Body, &v); err != nil || v.GetValue() != "raw!" {
		t.Fatalf("%v %v", &v, err)
	}
}

func TestHandlerErrorCarriesCodeMessageAndTrailer(t *testing.T) {
	e := newEnv(t)
	e.server(func(s *rpc.Server) {
		s.HandleRaw("test.Raw", "Fail", func(ctx context.Context, r *rpc.Request) (*rpc.Reply, error) {
			return &rpc.Reply{Trailer: rpc.Metadata{"why": {"because"}}}, rpc.Errorf(envelope.NotFound, "no user %q", string(r.Body))
		})
	})
	rep, err := e.client.Invoke(ctx(t), "test.Raw", "Fail", []byte("bob"))
	if rpc.CodeOf(err) != envelope.NotFound {
		t.Fatalf("%v", err)
	}
	if e, ok := errors.AsType[*rpc.Error](err); !ok || e.Message != `no user "bob"` {
		t.Fatalf("%#v", err)
	}
	if rep == nil || rep.Trailer.Get("why") != "because" {
		t.Fatalf("reply %+v", rep)
	}
}

func TestHandlerPanicIsInternal(t *testing.T) {
	e := newEnv(t)
	e.server(func(s *rpc.Server) {
		s.HandleRaw("test.Raw", "Panic", func(ctx context.Context, r *rpc.Request) (*rpc.Reply, error) { panic("oops") })
	})
	_, err := e.client.Invoke(ctx(t), "test.Raw", "Panic", nil)
	if rpc.CodeOf(err) != envelope.Internal {
		t.Fatal(err)
	}
}

func TestUnknownMethodIsUnimplemented(t *testing.T) {
	e := newEnv(t)
	var runs atomic.Int64
	e.server(echoServer(&runs))
	_, err := e.client.Invoke(ctx(t), echo.Service, "Nope", nil)
	if rpc.CodeOf(err) != envelope.Unimplemented {
		t.Fatal(err)
	}
}

func TestServiceWithoutMailboxIsUnavailable(t *testing.T) {
	e := newEnv(t)
	_, err := echo.Call(ctx(t), e.client, &echoReq{})
	if rpc.CodeOf(err) != envelope.Unavailable || !errors.Is(err, postbox.ErrNotFound) {
		t.Fatal(err)
	}
}

func TestRequestIDMetadataAndSenderInHandler(t *testing.T) {
	e := newEnv(t)
	got := make(chan *rpc.Request, 1)
	e.server(func(s *rpc.Server) {
		s.HandleRaw("test.Raw", "Look", func(ctx context.Context, r *rpc.Request) (*rpc.Reply, error) {
			if id, ok := rpc.RequestID(ctx); !ok || id != r.ID {
				t.Error("RequestID(ctx) is not the request's")
			}
			got <- r
			return &rpc.Reply{Header: rpc.Metadata{"served-by": {"me"}}}, nil
		})
	})
	rep, err := e.client.Invoke(ctx(t), "test.Raw", "Look", []byte("x"),
		rpc.WithMetadata(rpc.Metadata{"trace-id": {"abc"}}), rpc.WithSemantics(rpc.AtLeastOnce))
	if err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.Metadata.Get("trace-id") != "abc" || r.Semantics != rpc.AtLeastOnce || r.Attempt != 1 ||
		r.Message.Sender.Endpoint != e.callPC.Identity().Endpoint || r.Method != "Look" {
		t.Fatalf("%+v", r)
	}
	if rep.Header.Get("served-by") != "me" || rep.Attempts != 1 {
		t.Fatalf("%+v", rep)
	}
}

func TestDeadlinePropagatesToHandler(t *testing.T) {
	e := newEnv(t)
	got := make(chan time.Time, 1)
	e.server(func(s *rpc.Server) {
		s.HandleRaw("test.Raw", "Deadline", func(ctx context.Context, r *rpc.Request) (*rpc.Reply, error) {
			dl, _ := ctx.Deadline()
			got <- dl
			return &rpc.Reply{}, nil
		})
	})
	for _, sem := range []rpc.Semantics{rpc.Maybe, rpc.AtLeastOnce, rpc.ExactlyOnce} {
		want := time.Now().Add(3 * time.Second)
		c, cancel := context.WithDeadline(context.Background(), want)
		_, err := e.client.Invoke(c, "test.Raw", "Deadline", nil, rpc.WithSemantics(sem))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if dl := <-got; !dl.Equal(want) {
			t.Fatalf("%v: handler deadline %v, caller's %v", sem, dl, want)
		}
	}
}

func TestDeadlinePassedInHandlerIsDeadlineExceeded(t *testing.T) {
	e := newEnv(t)
	e.server(func(s *rpc.Server) {
		s.HandleRaw("test.Raw", "Slow", func(ctx context.Context, r *rpc.Request) (*rpc.Reply, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		})
	})
	c, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := e.client.Invoke(c, "test.Raw", "Slow", nil)
	if rpc.CodeOf(err) != envelope.DeadlineExceeded {
		t.Fatal(err)
	}
}

func TestEarlyReplyReachesCallerWhileHandlerRuns(t *testing.T) {
	e := newEnv(t)
	release, returned := make(chan struct{}), make(chan struct{})
	e.server(func(s *rpc.Server) {
		s.HandleRaw("test.Raw", "Stream", func(ctx context.Context, r *rpc.Request) (*rpc.Reply, error) {
			defer close(returned)
			if claimed, err := r.Reply(ctx, &rpc.Reply{Body: []byte("early")}, nil); !claimed || err != nil {
				t.Errorf("early reply: %v %v", claimed, err)
			}
			<-release
			return &rpc.Reply{Body: []byte("late")}, nil
		})
	})
	rep, err := e.client.Invoke(ctx(t), "test.Raw", "Stream", nil)
	if err != nil || string(rep.Body) != "early" {
		t.Fatalf("%v %v", rep, err)
	}
	select {
	case <-returned:
		t.Fatal("the handler had returned")
	default:
	}
	info, _ := e.callPC.Mailbox("test.Raw").Stat(ctx(t))
	if info.InFlight != 1 {
		t.Fatalf("in flight %d while the handler runs, want 1 (acked when it returns)", info.InFlight)
	}
	close(release)
	<-returned
	waitFor(t, "the ack", func() bool {
		info, _ := e.callPC.Mailbox("test.Raw").Stat(ctx(t))
		return info.InFlight == 0
	})
}

func TestReplyThatCannotBeSentBecomesAnErrorReply(t *testing.T) {
	e := newEnv(t)
	e.server(func(s *rpc.Server) {
		s.HandleRaw("test.Raw", "Huge", func(ctx context.Context, r *rpc.Request) (*rpc.Reply, error) {
			return &rpc.Reply{Body: make([]byte, e.srvPC.MaxMessage()+1)}, nil
		})
	})
	_, err := e.client.Invoke(ctx(t), "test.Raw", "Huge", nil)
	if rpc.CodeOf(err) != envelope.ResourceExhausted {
		t.Fatal(err)
	}
}

func TestFallbackHandlerServesPlainCalls(t *testing.T) {
	e := newEnv(t)
	e.server(func(s *rpc.Server) {
		s.HandleRaw("test.Any", "", func(ctx context.Context, r *rpc.Request) (*rpc.Reply, error) {
			_, hasID := rpc.RequestID(ctx)
			return &rpc.Reply{Body: []byte(r.Method + "|" + string(r.Body) + "|" + map[bool]string{true: "id", false: "no id"}[hasID])}, nil
		})
	})
	// A plain postbox call: no envelope headers at all.
	m, err := e.callPC.Mailbox("test.Any").Call(ctx(t), []byte("plain"))
	if err != nil || string(m.Body) != "|plain|no id" {
		t.Fatalf("%v %v", m, err)
	}
	rep, err := e.client.Invoke(ctx(t), "test.Any", "Whatever", []byte("typed"))
	if err != nil || string(rep.Body) != "Whatever|typed|id" {
		t.Fatalf("%v %v", rep, err)
	}
	// Retrying semantics need a request id to recognise duplicates.
	m, err = e.callPC.Mailbox("test.Any").Call(ctx(t), nil, postbox.WithHeader(envelope.Semantics, envelope.SemExactlyOnce))
	if err != nil || envelope.ParseCode(m.Header().Get(envelope.Status)) != envelope.InvalidArgument {
		t.Fatalf("%v %v", m, err)
	}
}

func TestCallWithExpiredContextSendsNothing(t *testing.T) {
	e := newEnv(t)
	var runs atomic.Int64
	e.server(echoServer(&runs))
	c, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	for _, sem := range []rpc.Semantics{rpc.Maybe, rpc.ExactlyOnce} {
		_, err := echo.Call(c, e.client, &echoReq{}, rpc.WithSemantics(sem))
		if rpc.CodeOf(err) != envelope.DeadlineExceeded || !strings.Contains(err.Error(), "no request was sent") {
			t.Fatalf("%v: %v", sem, err)
		}
	}
	if runs.Load() != 0 {
		t.Fatal("a handler ran")
	}
}
