package cluster

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/postbox-ipc/postbox/broker"
	"github.com/postbox-ipc/postbox/mailbox"
)

// The headers the sending broker writes (receivers trust them because
// only brokers may publish on the mailbox subjects: docs/CLUSTER.md).
const (
	hdrSender     = "Postbox-Sender"      // "kind uid gid pid endpoint"
	hdrSenderName = "Postbox-Sender-Name" // a TLS principal's name
	hdrHost       = "Postbox-Host"        // the sending broker's host id
	hdrSent       = "Postbox-Sent"        // unix nanoseconds
	hdrHeaders    = "Postbox-Headers"     // the postbox headers block, base64
)

// Send publishes msgs asynchronously, in order, and calls done once
// every publish acknowledgement came (the messages are then on a
// majority of the replicas), or at the first failure.
func (b *Backend) Send(name string, msgs []broker.RemoteMessage, done func(ids []uint64, err error)) {
	if err := b.up(); err != nil {
		done(nil, err)
		return
	}
	sn := streamName(name)
	futs := make([]jetstream.PubAckFuture, 0, len(msgs))
	var perr error
	for i := range msgs {
		f, err := b.js.PublishMsgAsync(natsMsg(name, &msgs[i]), jetstream.WithExpectStream(sn))
		if err != nil {
			perr = b.sendErr(sn, err)
			break
		}
		futs = append(futs, f)
	}
	if len(futs) == 0 {
		done(nil, perr)
		return
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		ids := make([]uint64, 0, len(futs))
		for _, f := range futs {
			select {
			case ack := <-f.Ok():
				ids = append(ids, ack.Sequence)
			case err := <-f.Err():
				done(ids, b.sendErr(sn, err))
				return
			}
		}
		done(ids, perr)
	}()
}

// sendErr maps a publish's error. No responder, or no acknowledgement
// in time, means no stream (or one being deleted), or a stream without a
// leader just now: asking tells NOT_FOUND from UNAVAILABLE.
func (b *Backend) sendErr(stream string, err error) error {
	if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, jetstream.ErrAsyncPublishTimeout) || errors.Is(err, nats.ErrTimeout) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if _, serr := b.js.Stream(ctx, stream); errors.Is(serr, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("%w: %v", broker.ErrRemoteNotFound, serr)
		}
		return fmt.Errorf("%w: %v", broker.ErrRemoteUnavailable, err)
	}
	return mapErr(err)
}

// natsMsg is m as published to name's stream.
func natsMsg(name string, m *broker.RemoteMessage) *nats.Msg {
	nm := nats.NewMsg(subject(name, m.Type))
	nm.Data = m.Body
	h := nm.Header
	h.Set(jetstream.MsgIDHeader, m.ID)
	s := &m.Sender
	h.Set(hdrSender, fmt.Sprintf("%d %d %d %d %d", s.Kind, s.UID, s.GID, s.PID, s.Endpoint))
	if s.Name != "" {
		h.Set(hdrSenderName, s.Name)
	}
	h.Set(hdrHost, m.Host)
	h.Set(hdrSent, strconv.FormatInt(m.SentUnixNano, 10))
	if len(m.Headers) > 0 {
		h.Set(hdrHeaders, base64.StdEncoding.EncodeToString(m.Headers))
	}
	return nm
}

// remoteMessage reads what natsMsg wrote.
func remoteMessage(nm jetstream.Msg) broker.RemoteMessage {
	h := nm.Headers()
	m := broker.RemoteMessage{ID: h.Get(jetstream.MsgIDHeader), Host: h.Get(hdrHost), Body: nm.Data()}
	subj := nm.Subject()
	if i := strings.LastIndexByte(subj, '.'); i >= 0 {
		m.Type, _ = strconv.ParseInt(subj[i+1:], 10, 64)
	}
	var s mailbox.Identity
	fmt.Sscanf(h.Get(hdrSender), "%d %d %d %d %d", &s.Kind, &s.UID, &s.GID, &s.PID, &s.Endpoint)
	s.Name = h.Get(hdrSenderName)
	m.Sender = s
	m.SentUnixNano, _ = strconv.ParseInt(h.Get(hdrSent), 10, 64)
	if v := h.Get(hdrHeaders); v != "" {
		m.Headers, _ = base64.StdEncoding.DecodeString(v)
	}
	return m
}
