package grpcpostbox

import (
	"context"
	"errors"
	"strings"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/rpc/envelope"
)

// Metadata travels as USER headers: request metadata as md-KEY, response
// headers as hd-KEY, trailers as tr-KEY (envelope.RequestMeta, HeaderMeta,
// TrailerMeta), one header per value, values byte for byte (a -bin key's
// value is its raw bytes, not base64). gRPC keys are lower case
// [0-9a-z-_.], a subset of postbox header keys, so a key crosses
// unchanged; one that does not fit (or a pseudo-header) is dropped.

// mdOpts appends one WithHeader per value of md, keys prefixed (and
// lower-cased, as gRPC's are).
func mdOpts(opts []postbox.SendOption, prefix string, md metadata.MD) []postbox.SendOption {
	for k, vs := range md {
		if k == "" || k[0] == ':' || len(prefix)+len(k) > 128 {
			continue
		}
		k = strings.ToLower(k)
		for _, v := range vs {
			opts = append(opts, postbox.WithHeader(prefix+k, v))
		}
	}
	return opts
}

// mdOf collects the headers of h with prefix into metadata (nil if none).
func mdOf(h postbox.Header, prefix string) metadata.MD {
	var md metadata.MD
	for k, vs := range h {
		if !strings.HasPrefix(k, prefix) || len(k) == len(prefix) {
			continue
		}
		if md == nil {
			md = metadata.MD{}
		}
		md[k[len(prefix):]] = append(md[k[len(prefix):]], vs...)
	}
	return md
}

// detailsKey is the trailer that carries a status with details: the
// google.rpc.Status in protobuf encoding, as gRPC over HTTP/2 carries it.
const detailsKey = "grpc-status-details-bin"

// statusOpts appends the headers of st (rpc-status, rpc-error, and its
// details as a trailer) to opts.
func statusOpts(opts []postbox.SendOption, st *status.Status) []postbox.SendOption {
	if st.Code() == codes.OK {
		return opts
	}
	opts = append(opts, postbox.WithHeader(envelope.Status, fmtUint(uint64(st.Code()))))
	if msg := st.Message(); msg != "" {
		opts = append(opts, postbox.WithHeader(envelope.Error, truncate(msg, 4096)))
	}
	if d := details(st); d != "" {
		opts = append(opts, postbox.WithHeader(envelope.TrailerMeta+detailsKey, d))
	}
	return opts
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// details is the value of detailsKey for st: "" when st has no details
// or they do not fit a header value (then they are dropped).
func details(st *status.Status) string {
	p := st.Proto()
	if len(p.Details) == 0 {
		return ""
	}
	b, err := proto.Marshal(p)
	if err != nil || len(b) > 4096 {
		return ""
	}
	return string(b)
}

// withDetails returns the status of code and msg, with the details the
// trailer carries (taken out of it) if they are of the same code.
func withDetails(code codes.Code, msg string, trailer metadata.MD) *status.Status {
	if v := trailer[detailsKey]; len(v) > 0 {
		delete(trailer, detailsKey)
		var p spb.Status
		if proto.Unmarshal([]byte(v[0]), &p) == nil && codes.Code(p.Code) == code {
			return status.FromProto(&p)
		}
	}
	return status.New(code, msg)
}

// statusOf reads the status of a reply or end frame (nil for OK).
func statusOf(m *postbox.Message) *status.Status {
	h := m.Header()
	code := codes.Code(envelope.ParseCode(h.Get(envelope.Status)))
	if code == codes.OK {
		return nil
	}
	return withDetails(code, h.Get(envelope.Error), mdOf(h, envelope.TrailerMeta))
}

// errorStatus is the status of an error a handler returned.
func errorStatus(err error) *status.Status {
	if err == nil {
		return status.New(codes.OK, "")
	}
	if st, ok := status.FromError(err); ok {
		return st
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return status.FromContextError(err)
	}
	return status.New(codes.Unknown, err.Error())
}

// transportStatus is the status of a postbox error met while sending or
// waiting (the caller's own context ended: ctxErr).
func transportStatus(ctx context.Context, err error) *status.Status {
	switch {
	case ctx.Err() != nil:
		return status.FromContextError(ctx.Err())
	case errors.Is(err, postbox.ErrTimeout):
		return status.New(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, postbox.ErrNotFound), errors.Is(err, postbox.ErrClosed), errors.Is(err, postbox.ErrDestroyed):
		return status.New(codes.Unavailable, err.Error())
	case errors.Is(err, postbox.ErrPermission):
		return status.New(codes.PermissionDenied, err.Error())
	case errors.Is(err, postbox.ErrTooLarge), errors.Is(err, postbox.ErrFull), errors.Is(err, postbox.ErrLimit):
		return status.New(codes.ResourceExhausted, err.Error())
	case errors.Is(err, postbox.ErrInvalid):
		return status.New(codes.Internal, err.Error())
	case errors.Is(err, postbox.ErrCanceled):
		return status.New(codes.Canceled, err.Error())
	}
	if st, ok := status.FromError(err); ok {
		return st
	}
	return status.New(codes.Unknown, err.Error())
}
