package rollout

import "github.com/drover/drover/internal/store"

// View is a rollout with its machines and a summary per wave, zone and batch.
type View struct {
	store.Rollout
	Progress Progress               `json:"progress"`
	Machines []store.RolloutMachine `json:"machines"`
}

// Progress counts a rollout's machines, overall and per wave and zone.
type Progress struct {
	Total  int            `json:"total"`
	Phases map[string]int `json:"phases"`
	Waves  []WaveProgress `json:"waves"`
}

// WaveProgress is one environment's part of a rollout.
type WaveProgress struct {
	Env   string         `json:"environment"`
	Zones []ZoneProgress `json:"zones"`
}

// ZoneProgress is one zone's part: machines per phase and its batches so far.
type ZoneProgress struct {
	Zone    string         `json:"zone"`
	Total   int            `json:"total"`
	Done    int            `json:"done"` // final: done, failed, skipped or cancelled
	Phases  map[string]int `json:"phases"`
	Batches int            `json:"batches"` // started so far
}

// ViewOf summarises a rollout's machines.
func ViewOf(ro store.Rollout, ms []store.RolloutMachine) View {
	v := View{Rollout: ro, Machines: ms, Progress: Progress{Total: len(ms), Phases: map[string]int{}, Waves: []WaveProgress{}}}
	for _, m := range ms {
		v.Progress.Phases[m.Phase]++
		var w *WaveProgress
		for i := range v.Progress.Waves {
			if v.Progress.Waves[i].Env == m.Env {
				w = &v.Progress.Waves[i]
			}
		}
		if w == nil {
			v.Progress.Waves = append(v.Progress.Waves, WaveProgress{Env: m.Env})
			w = &v.Progress.Waves[len(v.Progress.Waves)-1]
		}
		var z *ZoneProgress
		for i := range w.Zones {
			if w.Zones[i].Zone == m.Zone {
				z = &w.Zones[i]
			}
		}
		if z == nil {
			w.Zones = append(w.Zones, ZoneProgress{Zone: m.Zone, Phases: map[string]int{}})
			z = &w.Zones[len(w.Zones)-1]
		}
		z.Total++
		z.Phases[m.Phase]++
		if m.Final() {
			z.Done++
		}
		z.Batches = max(z.Batches, m.Batch+1)
	}
	return v
}
