package lab

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"
)

// Two builds of one image (two labs, or tests, on a cold cache) take turns:
// the second waits for the first, and gives up when its context ends.
func TestLockBuildTakesTurns(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	unlock, err := lockBuild(context.Background(), dir, "image-x", log)
	if err != nil {
		t.Fatal(err)
	}
	// Another image builds meanwhile.
	other, err := lockBuild(context.Background(), dir, "debian-12-y", log)
	if err != nil {
		t.Fatalf("another image's lock: %v", err)
	}
	other()

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := lockBuild(ctx, dir, "image-x", log); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("while held: %v, want to wait until the context ends", err)
	}

	got := make(chan error, 1)
	go func() {
		second, err := lockBuild(context.Background(), dir, "image-x", log)
		if err == nil {
			second()
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("second build went ahead while the first held the lock: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	unlock()
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("second build after the first: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("second build still waiting after the first released the lock")
	}
}
