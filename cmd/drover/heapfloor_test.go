package main

import (
	"context"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

func TestGCPercentFor(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name        string
		live, floor int64
		want        int
	}{
		{"small heap: grows by the floor", 4 * mib, 64 * mib, 1600},
		{"heap at the floor: doubles", 64 * mib, 64 * mib, 100},
		{"large heap: doubles, never less", 400 * mib, 64 * mib, 100},
		{"rounded down", 3 * mib, 64 * mib, 2133},
		{"nothing live yet", 0, 64 * mib, 1 << 20},
		{"a byte live", 1, 1 << 40, 1 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := gcPercentFor(tt.live, tt.floor); got != tt.want {
				t.Errorf("gcPercentFor(%d, %d) = %d, want %d", tt.live, tt.floor, got, tt.want)
			}
		})
	}
}

func TestHeapFloorSetting(t *testing.T) {
	tests := []struct {
		setting, gogc string
		want          int64
		err           string
	}{
		{"64MiB", "", 64 << 20, ""},
		{"off", "", 0, ""},
		{"0", "", 0, ""},
		{"64MiB", "200", 0, ""}, // the operator's GOGC wins
		{"lots", "", 0, `--heap-floor "lots"`},
	}
	for _, tt := range tests {
		t.Run(tt.setting+" GOGC="+tt.gogc, func(t *testing.T) {
			got, err := heapFloorSetting(tt.setting, tt.gogc)
			if got != tt.want || (err == nil) != (tt.err == "") || (err != nil && !strings.Contains(err.Error(), tt.err)) {
				t.Errorf("heapFloorSetting = %d, %v; want %d, %q", got, err, tt.want, tt.err)
			}
		})
	}
}

// After a collection the floor sets GOGC from what is live; once its
// context ends, the next collection puts Go's default back.
func TestKeepHeapFloor(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	ctx, cancel := context.WithCancel(context.Background())
	keepHeapFloor(ctx, 1<<40) // far past this test's heap
	collected := func(want func(int) bool) bool {
		for range 50 {
			runtime.GC()
			time.Sleep(10 * time.Millisecond) // the finalizer runs in its own goroutine
			p := debug.SetGCPercent(-1)
			debug.SetGCPercent(p)
			if want(p) {
				return true
			}
		}
		return false
	}
	if !collected(func(p int) bool { return p > 100 }) {
		t.Fatal("GOGC stayed at 100 with a floor far above the live heap")
	}
	cancel()
	if !collected(func(p int) bool { return p == 100 }) {
		t.Fatal("GOGC not put back to 100 once the context ended")
	}
}

func TestServeRefusesBadHeapFloor(t *testing.T) {
	r := drover(t, "", "--db", t.TempDir()+"/d.db", "serve", "--heap-floor", "lots")
	if want := `--heap-floor "lots": unknown unit "lots"`; r.code != 64 || !strings.Contains(r.stderr, want) {
		t.Fatalf("exit %d, stderr %q: want 64 and %q", r.code, r.stderr, want)
	}
}
