package shm_test

import (
	"context"
	"fmt"
	"log"

	"github.com/postbox-ipc/postbox/shm"
)

// A parent makes a pair before starting a child: it keeps one end and the
// child inherits the files (exec.Cmd.ExtraFiles) and attaches with
// FromInherited. Here both ends live in one process to keep it runnable;
// a real child would call shm.FromInherited(3, 4, shm.Config{}).
func ExampleNewPair() {
	parent, files, err := shm.NewPair(shm.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer parent.Close()
	// A real parent: cmd.ExtraFiles = files; cmd.Start(); then closes
	// files, and the child calls shm.FromInherited(3, 4, shm.Config{}),
	// which is Attach as side B. In one process:
	child, err := shm.Attach(files[0], files[1], shm.SideB, shm.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer child.Close()
	for _, f := range files {
		f.Close()
	}

	ctx := context.Background()
	if err := parent.Send(ctx, []byte("hello, child")); err != nil {
		log.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := child.Receive(ctx, buf)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(buf[:n]))
	// Output: hello, child
}

// Loans move a message without copying it: the sender reserves room in
// shared memory, writes the message there and commits; the receiver reads
// it in place and releases it.
func ExampleChan_Reserve() {
	seg, err := shm.Create(shm.Config{})
	if err != nil {
		log.Fatal(err)
	}
	mem, ctl := seg.Files(shm.SideA)
	a, err := shm.Attach(mem, ctl, shm.SideA, shm.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()
	mem, ctl = seg.Files(shm.SideB)
	b, err := shm.Attach(mem, ctl, shm.SideB, shm.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	seg.Close() // each side holds what it needs

	ctx := context.Background()
	r, err := a.Reserve(ctx, 5)
	if err != nil {
		log.Fatal(err)
	}
	copy(r.Bytes(), "loan!")
	if err := r.Commit(); err != nil {
		log.Fatal(err)
	}

	l, err := b.ReceiveLoan(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(l.Bytes()))
	if err := l.Release(); err != nil {
		log.Fatal(err)
	}
	// Output: loan!
}

// Staging several messages and flushing publishes them with one index
// store; ReceiveBatch releases what it read with one store too.
func ExampleChan_SendBatch() {
	a, files, err := shm.NewPair(shm.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()
	b, err := shm.Attach(files[0], files[1], shm.SideB, shm.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	for _, f := range files {
		f.Close()
	}

	ctx := context.Background()
	n, err := a.SendBatch(ctx, [][]byte{[]byte("one"), []byte("two"), []byte("three")})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("sent", n)
	b.ReceiveBatch(ctx, 10, func(msg []byte) { fmt.Println(string(msg)) })
	// Output:
	// sent 3
	// one
	// two
	// three
}
