// Package counter counts events by name, cheaply and concurrently.
package counter

import (
	"sort"
	"sync"
	"sync/atomic"
)

// Set counts events by name ("rx_DISCOVER", "tx_OFFER", "drop_malformed",
// ...). A nil *Set counts nothing.
type Set struct {
	m sync.Map // string -> *atomic.Int64
}

// Add increments a counter.
func (c *Set) Add(name string) { c.AddN(name, 1) }

// AddN adds n to a counter.
func (c *Set) AddN(name string, n int64) {
	if c == nil {
		return
	}
	c.Counter(name).Add(n)
}

// Counter is one counter itself, made on first use, for a caller that
// counts it often: adding to it looks nothing up, where Add hashes the name
// and, unless it is a constant, boxes it in an allocation. A nil *Set gives
// a counter of its own that nobody reads.
func (c *Set) Counter(name string) *atomic.Int64 {
	if c == nil {
		return new(atomic.Int64)
	}
	v, ok := c.m.Load(name)
	if !ok {
		v, _ = c.m.LoadOrStore(name, new(atomic.Int64))
	}
	return v.(*atomic.Int64)
}

// Get returns one counter.
func (c *Set) Get(name string) int64 {
	if c == nil {
		return 0
	}
	if v, ok := c.m.Load(name); ok {
		return v.(*atomic.Int64).Load()
	}
	return 0
}

// Snapshot returns every counter, sorted by name when ranged with Names.
func (c *Set) Snapshot() map[string]int64 {
	out := map[string]int64{}
	if c == nil {
		return out
	}
	c.m.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return out
}

// Names returns the counter names in order.
func Names(snap map[string]int64) []string {
	names := make([]string, 0, len(snap))
	for k := range snap {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}
