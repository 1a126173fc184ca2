package rpc

import (
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/postbox-ipc/postbox/rpc/envelope"
)

// Codec encodes requests and replies of typed methods. The content type
// travels in the CONTENT_TYPE header, so a server answers each request in
// the codec it came in.
type Codec interface {
	ContentType() string
	Marshal(v any) ([]byte, error)
	Unmarshal(data []byte, v any) error
}

// JSON is the default codec: encoding/json, or protojson for
// proto.Message values (so `postbox call` can speak JSON to a protobuf
// service).
var JSON Codec = jsonCodec{}

// Proto is the protobuf binary codec, for proto.Message values. Methods
// whose request type is a proto.Message use it by default.
var Proto Codec = protoCodec{}

type jsonCodec struct{}

func (jsonCodec) ContentType() string { return envelope.ContentJSON }

func (jsonCodec) Marshal(v any) ([]byte, error) {
	if m, ok := v.(proto.Message); ok {
		return protojson.Marshal(m)
	}
	return json.Marshal(v)
}

func (jsonCodec) Unmarshal(data []byte, v any) error {
	if m, ok := v.(proto.Message); ok {
		return protojson.Unmarshal(data, m)
	}
	return json.Unmarshal(data, v)
}

type protoCodec struct{}

func (protoCodec) ContentType() string { return envelope.ContentProto }

func (protoCodec) Marshal(v any) ([]byte, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("rpc: protobuf codec: %T is not a proto.Message", v)
	}
	return proto.Marshal(m)
}

func (protoCodec) Unmarshal(data []byte, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("rpc: protobuf codec: %T is not a proto.Message", v)
	}
	return proto.Unmarshal(data, m)
}

// defaultCodec is the codec of a method with request type *Req and no
// Codec of its own.
func defaultCodec[Req any]() Codec {
	if _, ok := any(new(Req)).(proto.Message); ok {
		return Proto
	}
	return JSON
}

// codecFor picks the codec to decode a body of content type ct with:
// the method's own codec if it matches, else JSON or Proto by name (a
// proto.Message can be either), else nil.
func codecFor(ct string, own Codec, isProto bool) Codec {
	switch {
	case ct == "" || ct == own.ContentType():
		return own
	case ct == envelope.ContentJSON:
		return JSON
	case ct == envelope.ContentProto && isProto:
		return Proto
	}
	return nil
}
