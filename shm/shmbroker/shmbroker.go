// Package shmbroker sets up shared-memory channels (package shm) through
// a postbox broker, between processes that know each other only by a
// mailbox name or an endpoint address.
//
// The broker does the part that needs trust: it checks that the offering
// process may send to the target, creates the channel memory (a memfd;
// nothing is left in /dev/shm) and passes each side its descriptors over
// the Unix socket. After that the broker is out of the data path: the two
// processes talk through the shared rings, and each sees the other's death
// through the channel's control socket, not through the broker.
//
//	// Process A: offer a channel to whoever receives from "render".
//	ch, err := shmbroker.Open(ctx, client, "render", shm.Config{})
//
//	// Process B: a receiver of "render".
//	msg, err := client.Mailbox("render").Receive(ctx)
//	if msg.IsChannelOffer() {
//		ch, err := shmbroker.Accept(ctx, client, msg, shm.Config{})
//		msg.Ack(ctx)
//	}
package shmbroker

import (
	"context"
	"fmt"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/shm"
)

// Open offers a channel to whoever receives the offer from target (a
// mailbox name, or "@id" for one endpoint) and returns this side of it.
// The offer is a message: opts (postbox.Type, postbox.Priority,
// postbox.NoWait) apply to it and ctx bounds its send. The channel's
// geometry comes from cfg.RingSize (0: shm's default); the other settings
// of cfg are this side's.
//
// Sending may begin at once; the messages wait in the ring until the peer
// attaches. If nobody attaches within a minute, the broker drops the
// offer and this side's calls fail with shm.ErrPeerGone.
func Open(ctx context.Context, c *postbox.Client, target string, cfg shm.Config, opts ...postbox.SendOption) (*shm.Chan, error) {
	files, _, err := c.OfferChannel(ctx, target, uint32(cfg.RingSize), opts...)
	if err != nil {
		return nil, fmt.Errorf("shmbroker: offer to %q: %w", target, err)
	}
	defer files.Close()
	ch, err := shm.Attach(files.Mem, files.Ctl, shm.SideA, cfg)
	if err != nil {
		return nil, fmt.Errorf("shmbroker: attach to offered channel: %w", err)
	}
	return ch, nil
}

// Accept takes the other side of the channel that offer (a received
// message with IsChannelOffer) stands for. The offer works once.
func Accept(ctx context.Context, c *postbox.Client, offer *postbox.Message, cfg shm.Config) (*shm.Chan, error) {
	files, err := c.AttachChannel(ctx, offer)
	if err != nil {
		return nil, fmt.Errorf("shmbroker: accept offer %d: %w", offer.ID, err)
	}
	defer files.Close()
	ch, err := shm.Attach(files.Mem, files.Ctl, shm.SideB, cfg)
	if err != nil {
		return nil, fmt.Errorf("shmbroker: attach to offered channel: %w", err)
	}
	return ch, nil
}
