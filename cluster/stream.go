package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/postbox-ipc/postbox/broker"
)

// Streams: one per mailbox (see the package comment for the names).

const (
	subjectPrefix = "postbox.mb."
	streamPrefix  = "PB_"
	// dupWindow is how long a Nats-Msg-Id is remembered.
	dupWindow = 2 * time.Minute
)

// Metadata keys of a mailbox's stream.
const (
	metaName     = "postbox.name"
	metaOwner    = "postbox.owner" // kind:uid:gid
	metaOwnerTLS = "postbox.owner_name"
	metaMode     = "postbox.mode"
	metaCapacity = "postbox.capacity"
	metaCreated  = "postbox.created" // unix nanoseconds
)

// token is the hash part of a mailbox's stream name and subjects.
func token(name string) string {
	h := sha256.Sum256([]byte(name))
	return hex.EncodeToString(h[:16])
}

func streamName(name string) string { return streamPrefix + token(name) }

// subject is where a message of type typ to name is published.
func subject(name string, typ int64) string {
	return subjectPrefix + token(name) + "." + strconv.FormatInt(typ, 10)
}

// filter selects a receiver's messages: every type, or exactly typ.
func filter(name string, typ int64) string {
	if typ == 0 {
		return subjectPrefix + token(name) + ".*"
	}
	return subject(name, typ)
}

// replicas is the count a mailbox asking for n gets: n, or by default 3
// on a cluster of three servers or more, else 1.
func (b *Backend) replicas(n int) int {
	if n > 0 {
		return n
	}
	if len(b.nc.Servers()) >= 3 {
		return 3
	}
	return 1
}

// Create makes the mailbox's stream.
func (b *Backend) Create(ctx context.Context, spec broker.RemoteSpec) error {
	if err := b.up(); err != nil {
		return err
	}
	sn := streamName(spec.Name)
	if _, err := transient(ctx, func() (jetstream.Stream, error) { return b.js.Stream(ctx, sn) }); err == nil {
		return broker.ErrRemoteExists
	} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return mapErr(err)
	}
	cfg := jetstream.StreamConfig{
		Name:        sn,
		Description: "postbox mailbox " + spec.Name,
		Subjects:    []string{subjectPrefix + token(spec.Name) + ".*"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    b.replicas(spec.Replicas),
		Discard:     jetstream.DiscardNew,
		MaxMsgs:     -1,
		MaxBytes:    -1,
		MaxAge:      spec.TTL,
		Duplicates:  dupWindow,
		Metadata: map[string]string{
			metaName:     spec.Name,
			metaOwner:    fmt.Sprintf("%d:%d:%d", spec.OwnerKind, spec.OwnerUID, spec.OwnerGID),
			metaOwnerTLS: spec.OwnerName,
			metaMode:     strconv.FormatUint(uint64(spec.Mode), 8),
			metaCapacity: strconv.FormatInt(spec.Capacity, 10),
			metaCreated:  strconv.FormatInt(spec.Created.UnixNano(), 10),
		},
	}
	if spec.Capacity > 0 {
		cfg.MaxMsgs = spec.Capacity
	}
	if spec.MaxBytes > 0 {
		cfg.MaxBytes = spec.MaxBytes
	}
	if dupWindow > spec.TTL && spec.TTL > 0 {
		cfg.Duplicates = spec.TTL
	}
	_, err := transient(ctx, func() (jetstream.Stream, error) { return b.js.CreateStream(ctx, cfg) })
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return broker.ErrRemoteExists
	}
	return mapErr(err)
}

// specOf reads a mailbox's definition from its stream's config.
func specOf(cfg *jetstream.StreamConfig) (broker.RemoteSpec, bool) {
	md := cfg.Metadata
	name, ok := md[metaName]
	if !ok || streamName(name) != cfg.Name {
		return broker.RemoteSpec{}, false
	}
	spec := broker.RemoteSpec{Name: name, Capacity: -1, MaxBytes: cfg.MaxBytes, TTL: cfg.MaxAge, Replicas: cfg.Replicas,
		OwnerName: md[metaOwnerTLS]}
	if spec.MaxBytes < 0 {
		spec.MaxBytes = 0
	}
	var kind, uid, gid uint64
	if parts := strings.Split(md[metaOwner], ":"); len(parts) == 3 {
		kind, _ = strconv.ParseUint(parts[0], 10, 8)
		uid, _ = strconv.ParseUint(parts[1], 10, 32)
		gid, _ = strconv.ParseUint(parts[2], 10, 32)
	}
	spec.OwnerKind, spec.OwnerUID, spec.OwnerGID = broker.PrincipalKind(kind), uint32(uid), uint32(gid)
	mode, _ := strconv.ParseUint(md[metaMode], 8, 32)
	spec.Mode = uint32(mode)
	if c, err := strconv.ParseInt(md[metaCapacity], 10, 64); err == nil {
		spec.Capacity = c
	}
	if ns, err := strconv.ParseInt(md[metaCreated], 10, 64); err == nil {
		spec.Created = time.Unix(0, ns)
	}
	return spec, true
}

// Lookup reports a mailbox's definition.
func (b *Backend) Lookup(ctx context.Context, name string) (broker.RemoteSpec, error) {
	if err := b.up(); err != nil {
		return broker.RemoteSpec{}, err
	}
	s, err := transient(ctx, func() (jetstream.Stream, error) { return b.js.Stream(ctx, streamName(name)) })
	if err != nil {
		return broker.RemoteSpec{}, mapErr(err)
	}
	cfg := s.CachedInfo().Config
	spec, ok := specOf(&cfg)
	if !ok {
		return broker.RemoteSpec{}, broker.ErrRemoteNotFound
	}
	return spec, nil
}

// Info reports a mailbox's state.
func (b *Backend) Info(ctx context.Context, name string) (broker.RemoteInfo, error) {
	if err := b.up(); err != nil {
		return broker.RemoteInfo{}, err
	}
	s, err := b.js.Stream(ctx, streamName(name))
	if err != nil {
		return broker.RemoteInfo{}, mapErr(err)
	}
	ri, ok := infoOf(s.CachedInfo())
	if !ok {
		return broker.RemoteInfo{}, broker.ErrRemoteNotFound
	}
	for ci := range s.ListConsumers(ctx).Info() {
		ri.InFlight += uint64(ci.NumAckPending)
		ri.Redelivered += uint64(ci.NumRedelivered)
	}
	return ri, nil
}

// infoOf is a stream's info as the broker reports a mailbox.
func infoOf(si *jetstream.StreamInfo) (broker.RemoteInfo, bool) {
	spec, ok := specOf(&si.Config)
	if !ok {
		return broker.RemoteInfo{}, false
	}
	ri := broker.RemoteInfo{RemoteSpec: spec, Depth: si.State.Msgs, Bytes: si.State.Bytes,
		Consumers: uint32(si.State.Consumers), Replicas: si.Config.Replicas, Stream: si.Config.Name}
	if !si.State.FirstTime.IsZero() && si.State.Msgs > 0 {
		ri.OldestUnix = si.State.FirstTime.UnixNano()
	}
	if c := si.Cluster; c != nil {
		ri.Cluster = c.Name
		ri.StreamState = streamState(c)
	}
	return ri, true
}

// streamState says who leads the stream and how its replicas are.
func streamState(c *jetstream.ClusterInfo) string {
	if c.Leader == "" {
		return "no leader"
	}
	if len(c.Replicas) == 0 {
		return "leader " + c.Leader
	}
	current := 0
	for _, p := range c.Replicas {
		if p.Current && !p.Offline {
			current++
		}
	}
	return fmt.Sprintf("leader %s, %d/%d followers current", c.Leader, current, len(c.Replicas))
}

// List reports every mailbox on the cluster.
func (b *Backend) List(ctx context.Context) ([]broker.RemoteInfo, error) {
	if err := b.up(); err != nil {
		return nil, err
	}
	l := b.js.ListStreams(ctx, jetstream.WithStreamListSubject(subjectPrefix+">"))
	var out []broker.RemoteInfo
	for si := range l.Info() {
		if ri, ok := infoOf(si); ok {
			out = append(out, ri)
		}
	}
	if err := l.Err(); err != nil {
		return nil, mapErr(err)
	}
	return out, nil
}

// Destroy deletes the mailbox's stream and its messages.
func (b *Backend) Destroy(ctx context.Context, name string) error {
	if err := b.up(); err != nil {
		return err
	}
	sn := streamName(name)
	b.mu.Lock()
	for k := range b.consumers {
		if k.stream == sn {
			delete(b.consumers, k)
		}
	}
	b.mu.Unlock()
	return mapErr(b.js.DeleteStream(ctx, sn))
}
