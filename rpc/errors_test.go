package rpc

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/rpc/envelope"
)

func TestCodeOfMapsPostboxAndContextErrors(t *testing.T) {
	for err, want := range map[error]envelope.Code{
		nil:                         envelope.OK,
		context.Canceled:            envelope.Canceled,
		context.DeadlineExceeded:    envelope.DeadlineExceeded,
		postbox.ErrCanceled:         envelope.Canceled,
		postbox.ErrTimeout:          envelope.DeadlineExceeded,
		postbox.ErrNotFound:         envelope.NotFound,
		postbox.ErrExists:           envelope.AlreadyExists,
		postbox.ErrPermission:       envelope.PermissionDenied,
		postbox.ErrInvalid:          envelope.InvalidArgument,
		postbox.ErrFull:             envelope.ResourceExhausted,
		postbox.ErrTooLarge:         envelope.ResourceExhausted,
		postbox.ErrClosed:           envelope.Unavailable,
		postbox.ErrDestroyed:        envelope.Unavailable,
		postbox.ErrInternal:         envelope.Internal,
		postbox.ErrStorage:          envelope.DataLoss,
		errors.New("anything else"): envelope.Unknown,
		fmt.Errorf("wrapped: %w", postbox.ErrPermission): envelope.PermissionDenied,
		&postbox.CallError{Err: postbox.ErrTimeout}:      envelope.DeadlineExceeded,
	} {
		if got := CodeOf(err); got != want {
			t.Errorf("CodeOf(%v) = %v, want %v", err, got, want)
		}
	}
}

func TestCodeOfPrefersTheRPCErrorInTheChain(t *testing.T) {
	err := fmt.Errorf("handler: %w", Errorf(envelope.NotFound, "user %d: %w", 7, postbox.ErrTimeout))
	if CodeOf(err) != envelope.NotFound {
		t.Fatal(CodeOf(err))
	}
	if !errors.Is(err, postbox.ErrTimeout) {
		t.Fatal("Errorf's %w operand is not its cause")
	}
	if got := err.Error(); got != "handler: rpc error: code = NotFound desc = user 7: postbox: timed out" {
		t.Fatal(got)
	}
}

func TestStatusMatchesContextErrors(t *testing.T) {
	if !errors.Is(Errorf(envelope.DeadlineExceeded, "late"), context.DeadlineExceeded) ||
		!errors.Is(Errorf(envelope.Canceled, "gone"), context.Canceled) ||
		errors.Is(Errorf(envelope.Internal, "x"), context.Canceled) {
		t.Fatal()
	}
}

func TestOutcomeOfReadsTheCallError(t *testing.T) {
	err := &Error{Code: envelope.Canceled, err: &postbox.CallError{Outcome: postbox.OutcomeWithdrawn, Err: context.Canceled}}
	if OutcomeOf(err) != postbox.OutcomeWithdrawn || OutcomeOf(errors.New("x")) != postbox.OutcomeUnknown {
		t.Fatal()
	}
}

func TestParseSemanticsReadsEnvelopeValues(t *testing.T) {
	for _, s := range []Semantics{Maybe, AtLeastOnce, ExactlyOnce} {
		if got, err := ParseSemantics(s.String()); got != s || err != nil {
			t.Errorf("%v: %v %v", s, got, err)
		}
	}
	if s, err := ParseSemantics(""); s != Maybe || err != nil {
		t.Error("absent is not maybe")
	}
	if _, err := ParseSemantics("twice"); CodeOf(err) != envelope.InvalidArgument {
		t.Error(err)
	}
}

func TestDefaultCodecIsProtobufForProtoMessagesElseJSON(t *testing.T) {
	if defaultCodec[wrapperspb.StringValue]() != Proto || defaultCodec[struct{ A int }]() != JSON {
		t.Fatal()
	}
	// A proto message also speaks JSON (protojson), a plain type only JSON.
	if codecFor(envelope.ContentJSON, Proto, true) != JSON || codecFor(envelope.ContentProto, JSON, false) != nil ||
		codecFor("", Proto, true) != Proto || codecFor("text/csv", JSON, false) != nil {
		t.Fatal()
	}
	b, err := JSON.Marshal(wrapperspb.String("x"))
	if err != nil || string(b) != `"x"` {
		t.Fatalf("%s %v", b, err)
	}
	if _, err := Proto.Marshal(struct{}{}); err == nil {
		t.Fatal("the protobuf codec took a non-proto value")
	}
}

func TestMetadataKeysAreLowerCase(t *testing.T) {
	md := Metadata{}
	md.Add("Trace-ID", "a")
	md.Add("trace-id", "b")
	if md.Get("TRACE-ID") != "a" || len(md["trace-id"]) != 2 {
		t.Fatal(md)
	}
}
