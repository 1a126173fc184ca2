package testbroker

import (
	"context"
	"net"
	"testing"

	"github.com/postbox-ipc/postbox"
)

// ServeTCP serves b on a fresh TCP listener on 127.0.0.1 too and returns
// its address. Serve returns when b shuts down.
func (b *Broker) ServeTCP(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go b.Serve(l) // ends at Shutdown, which closes every listener
	return l.Addr().String()
}

// DialTCP connects a client over TCP to addr (NewClient over a TCP
// connection), closed when t ends.
func DialTCP(t testing.TB, addr string, opts ...postbox.DialOption) *postbox.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), HangGuard)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := postbox.NewClient(ctx, nc, append([]postbox.DialOption{postbox.WithName(t.Name())}, opts...)...)
	if err != nil {
		nc.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
