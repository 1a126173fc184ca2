package mux

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/postbox-ipc/postbox/wire"
)

// ErrHandshakeReply: the broker's answer to HELLO was not a HELLO reply
// (or did not decode).
var ErrHandshakeReply = errors.New("mux: unexpected handshake reply")

// maxHelloReply bounds the HELLO reply read before the broker's limits
// are known.
const maxHelloReply = 64 << 10

// Handshake sends h over nc and reads the broker's answer, within ctx:
// when ctx ends, nc's deadline is moved to the past, which ends a blocked
// read or write at once (the error is then ctx's, wrapped). A refusal
// (VERSION, HANDSHAKE, ...) is reported as status and msg with a nil
// error. The reply is read frame-exactly, so nothing after it is consumed
// and New can take over the connection.
func Handshake(ctx context.Context, nc net.Conn, h *wire.Hello) (rep wire.HelloReply, status wire.Code, msg string, err error) {
	var mu sync.Mutex // guards finished, so a late AfterFunc does not touch the deadline after Handshake returns
	finished := false
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		if !finished {
			nc.SetDeadline(time.Unix(1, 0))
		}
		mu.Unlock()
	})
	defer func() {
		stop()
		mu.Lock()
		finished = true
		nc.SetDeadline(time.Time{})
		mu.Unlock()
		if err != nil && ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
	}()
	b, off := wire.StartFrame(nil, wire.Header{Op: wire.OpHello, Request: 1})
	if _, err := nc.Write(wire.FinishFrame(h.Append(b), off)); err != nil {
		return rep, 0, "", err
	}
	var hdr [wire.HeaderSize]byte
	if _, err := io.ReadFull(nc, hdr[:]); err != nil {
		return rep, 0, "", err
	}
	size := binary.LittleEndian.Uint32(hdr[0:4])
	if size < wire.HeaderSize-4 || size > maxHelloReply {
		return rep, 0, "", fmt.Errorf("%w: frame size %d", ErrHandshakeReply, size)
	}
	p := make([]byte, size-(wire.HeaderSize-4))
	if _, err := io.ReadFull(nc, p); err != nil {
		return rep, 0, "", err
	}
	op := wire.Op(hdr[4])
	status = wire.Code(binary.LittleEndian.Uint16(hdr[6:8]))
	if status != wire.OK {
		msg, _ = wire.DecodeError(p)
		return rep, status, msg, nil
	}
	if op != wire.OpHello.Reply() {
		return rep, 0, "", fmt.Errorf("%w: op %s", ErrHandshakeReply, op)
	}
	if err := rep.Decode(p); err != nil {
		return rep, 0, "", fmt.Errorf("%w: %w", ErrHandshakeReply, err)
	}
	return rep, wire.OK, "", nil
}
