// Package rollout reinstalls sets of machines in waves: a pure scheduler
// (environments in order, a canary per zone, batches bounded per pod and per
// role) and a durable runner that drains, power-cycles, waits for the
// install, checks health and undrains each machine, resuming after a restart.
package rollout

import (
	"slices"
	"strings"

	"github.com/drover/drover/internal/zone"
)

// Item is a slot whose machine a rollout may reinstall.
type Item struct {
	Slot string `json:"slot"`
	Name string `json:"name"`
	Zone string `json:"zone"`
	Env  string `json:"environment"`
	Pod  string `json:"pod"`
	Role string `json:"role"`
	// Skip says why the machine is left alone (maintenance); "" to reinstall it.
	Skip string `json:"skip,omitempty"`
}

// Sizes are how many slots each pod and each role of a zone has, keyed by
// PodKey and RoleKey; percentages in limits are shares of these.
type Sizes map[string]int

// PodKey and RoleKey key Sizes.
func PodKey(zone, pod string) string   { return zone + "/pod/" + pod }
func RoleKey(zone, role string) string { return zone + "/role/" + role }

// SizesOf counts a design's slots per pod and per role.
func SizesOf(slots []*zone.Slot) Sizes {
	s := Sizes{}
	for _, sl := range slots {
		s[PodKey(sl.Zone, sl.Pod)]++
		s[RoleKey(sl.Zone, sl.Role)]++
	}
	return s
}

// Batch is machines reinstalled together.
type Batch []Item

// ZoneRun is one zone's batches; the first is its canary when the policy has one.
type ZoneRun struct {
	Zone    string  `json:"zone"`
	Canary  bool    `json:"canary"` // Batches[0] is the canary
	Batches []Batch `json:"batches"`
}

// Wave is one environment: every zone in it runs side by side, and the next
// wave starts only when all of them are done.
type Wave struct {
	Env   string    `json:"environment"`
	Zones []ZoneRun `json:"zones"`
}

// Schedule is a rollout's plan.
type Schedule struct {
	Waves   []Wave `json:"waves"`
	Skipped []Item `json:"skipped"`
	Total   int    `json:"total"` // machines to reinstall
}

// WaveOf is an environment's place in the order; environments the order
// does not name come after it.
func WaveOf(order []string, env string) int {
	if i := slices.Index(order, env); i >= 0 {
		return i
	}
	return len(order)
}

// Plan orders items into waves and batches, as if every machine succeeded.
// Items keep their given order inside a zone (the canary is the first ones).
func Plan(items []Item, pols map[string]zone.Policy, order []string, sizes Sizes) Schedule {
	var s Schedule
	byZone := map[string][]Item{}
	var zones []string
	for _, it := range items {
		if it.Skip != "" {
			s.Skipped = append(s.Skipped, it)
			continue
		}
		if _, ok := byZone[it.Zone]; !ok {
			zones = append(zones, it.Zone)
		}
		byZone[it.Zone] = append(byZone[it.Zone], it)
		s.Total++
	}
	slices.SortStableFunc(zones, func(a, b string) int {
		wa, wb := WaveOf(order, byZone[a][0].Env), WaveOf(order, byZone[b][0].Env)
		if wa != wb {
			return wa - wb
		}
		if ea, eb := byZone[a][0].Env, byZone[b][0].Env; ea != eb {
			return strings.Compare(ea, eb)
		}
		if zone.NaturalLess(a, b) {
			return -1
		}
		return 1
	})
	for _, z := range zones {
		pending := byZone[z]
		env := pending[0].Env
		if len(s.Waves) == 0 || s.Waves[len(s.Waves)-1].Env != env {
			s.Waves = append(s.Waves, Wave{Env: env})
		}
		pol := pols[z]
		zr := ZoneRun{Zone: z, Canary: pol.Canary > 0}
		for len(pending) > 0 {
			b := NextBatch(pending, nil, pol, sizes, len(zr.Batches) == 0)
			if len(b) == 0 {
				break // cannot happen: every limit is at least 1
			}
			zr.Batches = append(zr.Batches, b)
			pending = without(pending, b)
		}
		w := &s.Waves[len(s.Waves)-1]
		w.Zones = append(w.Zones, zr)
	}
	return s
}

// NextBatch picks the next machines of one zone to reinstall together: in
// order, as many as max_unavailable allows per pod and per role, counting the
// machines already down (failed in this rollout) against the same bounds.
// The canary batch holds at most the policy's canary count. An empty batch
// with pending items means the down machines use up a bound.
func NextBatch(pending, down []Item, pol zone.Policy, sizes Sizes, canary bool) Batch {
	limit := len(pending)
	if canary && pol.Canary > 0 {
		limit = pol.Canary
	}
	pods, roles := map[string]int{}, map[string]int{}
	for _, d := range down {
		pods[d.Pod]++
		roles[d.Role]++
	}
	var b Batch
	for _, it := range pending {
		if len(b) >= limit {
			break
		}
		if pods[it.Pod] >= podMax(pol, sizes, it) {
			continue
		}
		if rm, ok := roleMax(pol, sizes, it); ok && roles[it.Role] >= rm {
			continue
		}
		pods[it.Pod]++
		roles[it.Role]++
		b = append(b, it)
	}
	return b
}

func podMax(pol zone.Policy, sizes Sizes, it Item) int {
	l := pol.PodMax
	if l.N == 0 {
		l = zone.Limit{N: 1}
	}
	return l.Of(sizes[PodKey(it.Zone, it.Pod)])
}

func roleMax(pol zone.Policy, sizes Sizes, it Item) (int, bool) {
	l, ok := pol.RoleMax[it.Role]
	if !ok {
		return 0, false
	}
	return l.Of(sizes[RoleKey(it.Zone, it.Role)]), true
}

func without(items []Item, b Batch) []Item {
	taken := make(map[string]bool, len(b))
	for _, it := range b {
		taken[it.Slot] = true
	}
	out := items[:0:0]
	for _, it := range items {
		if !taken[it.Slot] {
			out = append(out, it)
		}
	}
	return out
}
