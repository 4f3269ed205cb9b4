package dhcp

import (
	"sort"
	"sync"
	"sync/atomic"
)

// Counters counts packets by what happened to them ("rx_DISCOVER",
// "tx_OFFER", "drop_malformed", ...). A nil *Counters counts nothing.
type Counters struct {
	m sync.Map // string -> *atomic.Int64
}

// Add increments a counter.
func (c *Counters) Add(name string) {
	if c == nil {
		return
	}
	v, ok := c.m.Load(name)
	if !ok {
		v, _ = c.m.LoadOrStore(name, new(atomic.Int64))
	}
	v.(*atomic.Int64).Add(1)
}

// Get returns one counter.
func (c *Counters) Get(name string) int64 {
	if c == nil {
		return 0
	}
	if v, ok := c.m.Load(name); ok {
		return v.(*atomic.Int64).Load()
	}
	return 0
}

// Snapshot returns every counter, sorted by name when ranged with Names.
func (c *Counters) Snapshot() map[string]int64 {
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
