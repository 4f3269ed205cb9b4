package main

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/drover/drover/bench"
	"github.com/drover/drover/internal/api"
	"github.com/drover/drover/internal/fleet"
	"github.com/drover/drover/internal/machine"
	"github.com/drover/drover/internal/rollout"
	"github.com/drover/drover/internal/secret"
	"github.com/drover/drover/internal/store"
	"github.com/drover/drover/internal/ui"
	"github.com/drover/drover/internal/zone"
)

// ControlReport is the control plane at 10,000 slots.
type ControlReport struct {
	Slots            int     `json:"slots"`
	ValidateSec      float64 `json:"drover_validate_seconds"`
	PlanSec          float64 `json:"drover_plan_seconds"`
	ApplySec         float64 `json:"drover_apply_seconds"`
	ParsePlanMs      float64 `json:"in_process_validate_plan_ms"`
	ParsePlanAllocMB float64 `json:"in_process_validate_plan_alloc_mb"`
	ServeStartSec    float64 `json:"serve_start_seconds"`
	ListMachinesSec  float64 `json:"api_list_all_machines_seconds"`
	ListedMachines   int     `json:"api_listed_machines"`
	RolloutPlanMs    float64 `json:"rollout_plan_ms"`
	PodPageMs        float64 `json:"ui_pod_page_ms"`
	PodPageSlots     int     `json:"ui_pod_page_slots"`
	RolloutMachines  int     `json:"rollout_plan_machines"`
	RolloutBatches   int     `json:"rollout_plan_batches"`
}

func benchControl(ctx context.Context, e *env) (*ControlReport, error) {
	dir := filepath.Join(e.work, "control")
	os.MkdirAll(dir, 0o755)
	src := bench.GenerateDesign(10_000)
	os.WriteFile(filepath.Join(dir, "zone.yaml"), src, 0o644)
	r := &ControlReport{}
	timed := func(args ...string) (float64, error) {
		t0 := time.Now()
		out, err := exec.CommandContext(ctx, e.drover, args...).CombinedOutput()
		if err != nil && !strings.Contains(string(out), "Plan:") {
			return 0, fmt.Errorf("drover %v: %v: %s", args, err, tail(string(out), 5))
		}
		return time.Since(t0).Seconds(), nil
	}
	db := filepath.Join(dir, "c.db")
	var err error
	if r.ValidateSec, err = timed("validate", dir); err != nil {
		return nil, err
	}
	if r.PlanSec, err = timed("--db", db, "plan", dir); err != nil {
		return nil, err
	}
	if r.ApplySec, err = timed("--db", db, "apply", "--yes", dir); err != nil {
		return nil, err
	}
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	t0 := time.Now()
	d, err := zone.Parse(map[string][]byte{"zone.yaml": src})
	if err != nil {
		return nil, err
	}
	zone.Diff(d.Slots, d.Slots)
	r.ParsePlanMs = float64(time.Since(t0).Microseconds()) / 1000
	runtime.ReadMemStats(&ms1)
	r.ParsePlanAllocMB = float64(ms1.TotalAlloc-ms0.TotalAlloc) / 1e6
	r.Slots = len(d.Slots)
	r.RolloutPlanMs, r.RolloutMachines, r.RolloutBatches = planRollout(d)
	if r.PodPageMs, r.PodPageSlots, err = podPage(ctx, dir); err != nil {
		return nil, err
	}
	p, err := newPair(fmt.Sprintf("dvc%d-", os.Getpid()%10000))
	if err != nil {
		return nil, err
	}
	defer p.close()
	t0 = time.Now()
	proc, _, err := startDrover(e, p, dir)
	if err != nil {
		return nil, err
	}
	r.ServeStartSec = time.Since(t0).Seconds() - r.ApplySec // startDrover applies (a no-op now) first
	proc.Stop(5 * time.Second)
	return r, nil
}

func (c *ControlReport) markdown(md *strings.Builder) {
	fmt.Fprintf(md, "## Control plane at %d slots\n\n| operation | time | target |\n|---|---|---|\n", c.Slots)
	fmt.Fprintf(md, "| `drover validate` (process, wall) | %.2f s | |\n", c.ValidateSec)
	fmt.Fprintf(md, "| `drover plan` against an empty database (wall) | %.2f s | 1 s |\n", c.PlanSec)
	fmt.Fprintf(md, "| `drover apply --yes` (wall) | %.2f s | |\n", c.ApplySec)
	fmt.Fprintf(md, "| validate + plan in process | %.0f ms, %.0f MB allocated | 1 s, 100 MB |\n", c.ParsePlanMs, c.ParsePlanAllocMB)
	fmt.Fprintf(md, "| `drover serve` start until it answers | %.2f s | well under 1 s |\n", c.ServeStartSec)
	fmt.Fprintf(md, "| rollout plan of %d machines (waves, canary, batches of max_unavailable 1 per pod: %d batches), in process | %.0f ms | 1 s |\n", c.RolloutMachines, c.RolloutBatches, c.RolloutPlanMs)
	if c.PodPageMs > 0 {
		fmt.Fprintf(md, "| web UI: a %d-slot pod's rack elevation, logged-in GET rendered server-side (median of 20) | %.1f ms | 100 ms |\n", c.PodPageSlots, c.PodPageMs)
	}
	if c.ListedMachines > 0 {
		fmt.Fprintf(md, "| list all %d machines through the API (pages of 1,000) | %.2f s | |\n", c.ListedMachines, c.ListMachinesSec)
	}
	md.WriteString("\n")
}

// planRollout times the scheduler over every slot of the design, as a
// rollout of the whole zone would plan it (default policy: a canary, then at
// most one machine per pod down).
func planRollout(d *zone.Design) (ms float64, machines, batches int) {
	items := make([]rollout.Item, len(d.Slots))
	for i, s := range d.Slots {
		items[i] = rollout.Item{Slot: s.Key, Name: s.Name, Zone: s.Zone, Env: s.Environment, Pod: s.Pod, Role: s.Role}
	}
	pols := map[string]zone.Policy{}
	for _, z := range d.Zones {
		pols[z.Name] = z.Policy()
	}
	t0 := time.Now()
	sched := rollout.Plan(items, pols, d.Order(), rollout.SizesOf(d.Slots))
	ms = float64(time.Since(t0).Microseconds()) / 1000
	for _, w := range sched.Waves {
		for _, z := range w.Zones {
			batches += len(z.Batches)
		}
	}
	return ms, sched.Total, batches
}

// deployedFleet has a deployed machine in every slot of a design.
type deployedFleet struct{ ix *zone.Index }

func (f deployedFleet) Index() *zone.Index { return f.ix }
func (f deployedFleet) InSlot(key string) (machine.Machine, bool) {
	return machine.Machine{ID: 1, SlotKey: key, Name: f.ix.Slot(key).Name, State: machine.Deployed, StateSince: time.Now()}, true
}
func (deployedFleet) Operate(context.Context, fleet.Op) (machine.Machine, error) {
	return machine.Machine{}, nil
}
func (deployedFleet) PowerAction(context.Context, fleet.PowerOp) (fleet.PowerResult, error) {
	return fleet.PowerResult{}, nil
}

// podPage times the web UI's rack elevation of one 500-slot pod of a
// 10,000-slot design, through login, session check and rendering.
func podPage(ctx context.Context, dir string) (float64, int, error) {
	d, err := zone.Parse(map[string][]byte{"wide.yaml": bench.GeneratePods(20, 500)})
	if err != nil {
		return 0, 0, err
	}
	st, err := store.OpenSQLite(ctx, filepath.Join(dir, "ui.db"))
	if err != nil {
		return 0, 0, err
	}
	defer st.Close()
	tok := "drv_" + secret.Hex(32)
	if err := st.CreateToken(ctx, &store.Token{Name: "bench", Role: "viewer", Hash: secret.Hash(tok), Created: time.Now()}, nil); err != nil {
		return 0, 0, err
	}
	web, err := ui.New(ui.Config{Store: st, Fleet: deployedFleet{zone.NewIndex(d)}, RoleRank: api.RoleRank})
	if err != nil {
		return 0, 0, err
	}
	login := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/login", strings.NewReader("token="+tok)).WithContext(ctx)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	web.ServeHTTP(login, req)
	cookie := login.Header().Get("Set-Cookie")
	var times []float64
	for i := 0; i < 20; i++ {
		req := httptest.NewRequest("GET", "/zones/wide/pods/p7", nil)
		req.Header.Set("Cookie", cookie)
		w := httptest.NewRecorder()
		t0 := time.Now()
		web.ServeHTTP(w, req)
		times = append(times, float64(time.Since(t0).Microseconds())/1000)
		if w.Code != 200 {
			return 0, 0, fmt.Errorf("pod page answered %d", w.Code)
		}
	}
	sort.Float64s(times)
	return times[len(times)/2], 500, nil
}
