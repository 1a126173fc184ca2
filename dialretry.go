package postbox

import (
	"context"
	"errors"
	"io"
	"syscall"
	"time"
)

// A broker bounds the connections that have not finished their HELLO, in
// total and per uid (broker.ConnBounds.MaxHandshaking), and closes one
// past the bound at accept, before it can say why: the client sees the
// connection reset or closed in the middle of its handshake. Sixty-four
// workers of one user started at once are not an attack, so Dial tries
// again, after a short pause that doubles, while ctx allows and for at
// most handshakeRetryBudget in all; so does a client dialling a broker
// that is restarting. Any other failure (a refusal the broker answered,
// no broker at the path, ctx's end) is returned at once.
const (
	handshakeRetryFirst  = 2 * time.Millisecond
	handshakeRetryMax    = 100 * time.Millisecond
	handshakeRetryBudget = 5 * time.Second
)

// dialHandshake dials and says HELLO, trying again as above.
func dialHandshake(ctx context.Context, o dialOptions) (*Client, error) {
	deadline := time.Now().Add(handshakeRetryBudget)
	pause := handshakeRetryFirst
	for {
		nc, err := o.dialConn(ctx)
		if err != nil {
			return nil, err
		}
		c, err := handshake(ctx, nc, o)
		if err == nil {
			return c, nil
		}
		nc.Close()
		if !closedInHandshake(err) || ctx.Err() != nil || time.Now().Add(pause).After(deadline) {
			return nil, err
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
		pause = min(2*pause, handshakeRetryMax)
	}
}

// closedInHandshake reports whether err is the broker closing the
// connection before it answered HELLO.
func closedInHandshake(err error) bool {
	return errors.Is(err, ErrHandshake) &&
		(errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF))
}
