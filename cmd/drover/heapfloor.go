package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
)

// defaultHeapFloor is --heap-floor's default.
const defaultHeapFloor = "64MiB"

// heapFloorSetting reads --heap-floor: a size, or off. It is off, whatever
// the flag says, when GOGC is set: an operator's own GOGC is kept.
func heapFloorSetting(setting, gogc string) (int64, error) {
	if gogc != "" {
		return 0, nil
	}
	if sizeOff(setting) {
		return 0, nil
	}
	n, err := parseSize(setting)
	if err != nil {
		return 0, fmt.Errorf("--heap-floor %q: %w, or off", setting, err)
	}
	return n, nil
}

// gcPercentFor is the GOGC that lets the heap grow by floor bytes past
// what is live before the next collection, and never by less than Go's
// default (the heap doubling).
func gcPercentFor(live, floor int64) int {
	const maxPercent = 1 << 20 // past any heap a server has
	if live <= 0 || floor/live >= maxPercent/100 {
		return maxPercent
	}
	return max(100, int(floor*100/live))
}

// keepHeapFloor sets GOGC after every collection so that the next comes
// once floor more bytes are allocated, or once the heap doubles if that is
// later: a server whose live heap is a few megabytes (a zone of a few
// thousand machines) collected many times a second under DHCP load, for
// little memory. A large heap (a 100,000-machine zone) is collected as Go's
// default does, and the memory limit (--memory-limit) still bounds it.
// It stops when ctx ends.
func keepHeapFloor(ctx context.Context, floor int64) {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	var arm func()
	arm = func() {
		// The sentinel is unreachable at once: its finalizer runs after the
		// next collection, when the live heap is known. 32 bytes: the tiny
		// allocator, which may never finalize, takes only smaller ones.
		sentinel := new([32]byte)
		runtime.SetFinalizer(sentinel, func(*[32]byte) {
			if ctx.Err() != nil {
				debug.SetGCPercent(100)
				return
			}
			metrics.Read(sample)
			if sample[0].Value.Kind() == metrics.KindUint64 {
				debug.SetGCPercent(gcPercentFor(int64(sample[0].Value.Uint64()), floor))
			}
			arm()
		})
	}
	arm()
}
