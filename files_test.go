package postbox_test

import (
	"context"
	"io"
	"os"
	"testing"
	"time"

	"github.com/postbox-ipc/postbox"
	"github.com/postbox-ipc/postbox/internal/testbroker"
)

func TestFilesRoundTripInProcess(t *testing.T) {
	b := testbroker.Start(t, nil)
	c := b.Dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	mb, err := c.Create(ctx, "files")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.CreateTemp(t.TempDir(), "f")
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("contents")
	f.Seek(0, 0)
	if _, err := mb.Send(ctx, []byte("m"), postbox.WithFiles(f)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	m, err := mb.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Files()) != 1 {
		t.Fatalf("files %v withheld %v", m.Files(), m.FilesWithheld())
	}
	got, _ := io.ReadAll(m.Files()[0])
	if string(got) != "contents" {
		t.Fatalf("read %q", got)
	}
	m.CloseFiles()
	m.Ack(ctx)
}
