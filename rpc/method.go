package rpc

import (
	"context"

	"google.golang.org/protobuf/proto"

	"github.com/postbox-ipc/postbox/rpc/envelope"
)

// Method describes a typed method, for both sides: the caller calls it
// (m.Call), the server registers its handler (Register).
type Method[Req, Resp any] struct {
	Service, Name string
	// Semantics is the default of calls of the method (WithSemantics
	// overrides it per call).
	Semantics Semantics
	// Codec encodes requests and replies; nil: Proto if *Req is a
	// proto.Message, else JSON.
	Codec Codec
}

func (m Method[Req, Resp]) codec() Codec {
	if m.Codec != nil {
		return m.Codec
	}
	return defaultCodec[Req]()
}

// Call calls the method with req through c.
func (m Method[Req, Resp]) Call(ctx context.Context, c *Client, req *Req, opts ...CallOption) (*Resp, error) {
	codec := m.codec()
	body, err := codec.Marshal(req)
	if err != nil {
		return nil, Errorf(envelope.Internal, "rpc: %s/%s: encode request: %w", m.Service, m.Name, err)
	}
	all := append([]CallOption{WithSemantics(m.Semantics), WithContentType(codec.ContentType())}, opts...)
	rep, err := c.Invoke(ctx, m.Service, m.Name, body, all...)
	if err != nil {
		return nil, err
	}
	dec := codecFor(rep.ContentType, codec, isProto[Resp]())
	if dec == nil {
		return nil, Errorf(envelope.Internal, "rpc: %s/%s: reply in unknown content type %q", m.Service, m.Name, rep.ContentType)
	}
	resp := new(Resp)
	if err := dec.Unmarshal(rep.Body, resp); err != nil {
		return nil, Errorf(envelope.Internal, "rpc: %s/%s: decode reply: %w", m.Service, m.Name, err)
	}
	return resp, nil
}

// Register registers h as the handler of m on s. Requests are decoded in
// the codec they came in (m's, or JSON, or for proto.Message types
// protobuf) and answered in the same.
func Register[Req, Resp any](s *Server, m Method[Req, Resp], h func(ctx context.Context, req *Req) (*Resp, error)) {
	own := m.codec()
	reqProto := isProto[Req]()
	s.HandleRaw(m.Service, m.Name, func(ctx context.Context, r *Request) (*Reply, error) {
		codec := codecFor(r.ContentType, own, reqProto)
		if codec == nil {
			return nil, Errorf(envelope.InvalidArgument, "rpc: %s/%s: content type %q not understood", m.Service, m.Name, r.ContentType)
		}
		req := new(Req)
		if err := codec.Unmarshal(r.Body, req); err != nil {
			return nil, Errorf(envelope.InvalidArgument, "rpc: %s/%s: decode request: %v", m.Service, m.Name, err)
		}
		resp, err := h(ctx, req)
		if err != nil {
			return nil, err
		}
		body, err := codec.Marshal(resp)
		if err != nil {
			return nil, Errorf(envelope.Internal, "rpc: %s/%s: encode reply: %v", m.Service, m.Name, err)
		}
		return &Reply{Body: body, ContentType: codec.ContentType()}, nil
	})
}

func isProto[T any]() bool {
	_, ok := any(new(T)).(proto.Message)
	return ok
}
