package rollout

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/drover/drover/internal/fleet"
	"github.com/drover/drover/internal/machine"
	"github.com/drover/drover/internal/store"
	"github.com/drover/drover/internal/zone"
)

func TestPlanKeepsEveryBound(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	envs := []string{"dev", "test", "prod"}
	for trial := 0; trial < 500; trial++ {
		var items []Item
		pols := map[string]zone.Policy{}
		sizes := Sizes{}
		for z := 0; z < 1+rng.IntN(4); z++ {
			zn := fmt.Sprintf("z%d", z)
			pol := zone.Policy{Zone: zn, Environment: envs[rng.IntN(3)], Canary: rng.IntN(3), PodMax: zone.Limit{N: 1 + rng.IntN(3)}}
			if rng.IntN(2) == 0 {
				pol.PodMax = zone.Limit{N: 10 + rng.IntN(60), Percent: true}
			}
			pol.RoleMax = map[string]zone.Limit{"controller": {N: 1}}
			pols[zn] = pol
			for i := 0; i < rng.IntN(40); i++ {
				it := Item{Slot: fmt.Sprintf("%s/%d", zn, i), Zone: zn, Env: pol.Environment, Pod: fmt.Sprintf("p%d", rng.IntN(3)),
					Role: []string{"compute", "storage", "controller"}[rng.IntN(3)]}
				if rng.IntN(10) == 0 {
					it.Skip = "in maintenance"
				}
				sizes[PodKey(zn, it.Pod)]++
				sizes[RoleKey(zn, it.Role)]++
				items = append(items, it)
			}
		}
		s := Plan(items, pols, zone.DefaultOrder, sizes)
		seen := map[string]int{}
		lastWave := -1
		for _, w := range s.Waves {
			wi := WaveOf(zone.DefaultOrder, w.Env)
			if wi <= lastWave {
				t.Fatalf("trial %d: wave %s after wave %d", trial, w.Env, lastWave)
			}
			lastWave = wi
			for _, zr := range w.Zones {
				pol := pols[zr.Zone]
				for bi, b := range zr.Batches {
					if bi == 0 && pol.Canary > 0 && len(b) > pol.Canary {
						t.Fatalf("trial %d: canary of %d machines, policy %d", trial, len(b), pol.Canary)
					}
					pods, roles := map[string]int{}, map[string]int{}
					for _, it := range b {
						seen[it.Slot]++
						if it.Skip != "" || it.Env != w.Env || it.Zone != zr.Zone {
							t.Fatalf("trial %d: %+v in wave %s zone %s", trial, it, w.Env, zr.Zone)
						}
						pods[it.Pod]++
						roles[it.Role]++
						if pods[it.Pod] > pol.PodMax.Of(sizes[PodKey(it.Zone, it.Pod)]) {
							t.Fatalf("trial %d: batch takes %d of pod %s down, max %s", trial, pods[it.Pod], it.Pod, pol.PodMax)
						}
						if roles["controller"] > 1 {
							t.Fatalf("trial %d: batch takes two controllers down", trial)
						}
					}
				}
			}
		}
		for _, it := range items {
			want := 1
			if it.Skip != "" {
				want = 0
			}
			if seen[it.Slot] != want {
				t.Fatalf("trial %d: %s planned %d times, want %d", trial, it.Slot, seen[it.Slot], want)
			}
		}
		if s.Total+len(s.Skipped) != len(items) {
			t.Fatalf("trial %d: %d planned + %d skipped of %d", trial, s.Total, len(s.Skipped), len(items))
		}
	}
}

func TestNextBatchCountsFailedMachines(t *testing.T) {
	pol := zone.Policy{PodMax: zone.Limit{N: 1}}
	pending := []Item{{Slot: "a", Pod: "p1"}, {Slot: "b", Pod: "p2"}}
	for _, tc := range []struct {
		name string
		down []Item
		want []string
	}{
		{"nothing down", nil, []string{"a", "b"}},
		{"p1 has a failed machine", []Item{{Slot: "x", Pod: "p1"}}, []string{"b"}},
		{"both pods down", []Item{{Slot: "x", Pod: "p1"}, {Slot: "y", Pod: "p2"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, it := range NextBatch(pending, tc.down, pol, Sizes{}, false) {
				got = append(got, it.Slot)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// fakeFleet is machines in the design's slots whose installs finish as soon
// as they are power-cycled, unless held.
type fakeFleet struct {
	ix     *zone.Index
	mu     sync.Mutex
	ms     map[string]*machine.Machine
	cycles map[string]int
	held   map[string]bool // power-cycled, install not finished yet
	hold   string          // the machine whose install waits
	log    []string        // "name: event" in order
	power  func(ctx context.Context, name string) error
}

func newFakeFleet(t *testing.T) *fakeFleet {
	d, err := zone.Load("testdata")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeFleet{ix: zone.NewIndex(d), ms: map[string]*machine.Machine{}, cycles: map[string]int{}, held: map[string]bool{}}
	for i, s := range d.Slots {
		f.ms[s.Key] = &machine.Machine{ID: int64(i + 1), MAC: fmt.Sprintf("52:54:00:00:00:%02x", i), SlotKey: s.Key, Name: s.Name,
			State: machine.Deployed, StateSince: time.Now().Add(-time.Hour)}
	}
	return f
}

func (f *fakeFleet) Index() *zone.Index { return f.ix }

func (f *fakeFleet) InSlot(key string) (machine.Machine, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.ms[key]
	if !ok {
		return machine.Machine{}, false
	}
	if f.held[m.Name] && f.hold != m.Name {
		delete(f.held, m.Name)
		m.State, m.StateSince = machine.Deployed, time.Now()
	}
	return *m, true
}

func (f *fakeFleet) byMAC(mac string) *machine.Machine {
	for _, m := range f.ms {
		if m.MAC == mac {
			return m
		}
	}
	return nil
}

func (f *fakeFleet) Operate(_ context.Context, op fleet.Op) (machine.Machine, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := f.byMAC(op.Ref)
	if m.State != machine.Deployed && m.State != machine.DeployFailed {
		return machine.Machine{}, fmt.Errorf("%w: %s", machine.ErrIllegal, m.State)
	}
	m.State, m.StateSince = machine.Deploying, time.Now()
	f.log = append(f.log, m.Name+": reinstall")
	return *m, nil
}

func (f *fakeFleet) PowerAction(ctx context.Context, op fleet.PowerOp) (fleet.PowerResult, error) {
	f.mu.Lock()
	m := f.byMAC(op.Ref)
	f.cycles[m.Name]++
	f.log = append(f.log, m.Name+": cycle")
	f.held[m.Name] = true
	name, hook := m.Name, f.power
	f.mu.Unlock()
	if hook != nil {
		if err := hook(ctx, name); err != nil {
			return fleet.PowerResult{}, err
		}
	}
	return fleet.PowerResult{BMC: "192.0.2.1:623"}, nil
}

func (f *fakeFleet) Record(context.Context, machine.Entry) error { return nil }

func (f *fakeFleet) cycled(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cycles[name]
}

// fakeChecks passes every hook and check, except the health of the
// machines in fail, and blocks the steps named in block until ctx ends.
type fakeChecks struct {
	mu    sync.Mutex
	fail  map[string]bool
	block string // "name/step"
}

func (c *fakeChecks) check(ctx context.Context, f Facts) error {
	c.mu.Lock()
	block, fail := c.block, c.fail[f["name"]] && f["step"] == "health"
	c.mu.Unlock()
	if block == f["name"]+"/"+f["step"] {
		<-ctx.Done()
		return ctx.Err()
	}
	if fail {
		return errors.New("service not answering")
	}
	return nil
}

func (c *fakeChecks) Hook(ctx context.Context, _ zone.HookSpec, f Facts) error {
	return c.check(ctx, f)
}
func (c *fakeChecks) Health(ctx context.Context, _ zone.HealthSpec, f Facts) error {
	return c.check(ctx, f)
}

type harness struct {
	t      *testing.T
	st     *store.DB
	fleet  *fakeFleet
	checks *fakeChecks
	r      *Runner
	stop   func()
}

func newHarness(t *testing.T) *harness {
	st, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "drover.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h := &harness{t: t, st: st, fleet: newFakeFleet(t), checks: &fakeChecks{fail: map[string]bool{}}}
	h.start()
	t.Cleanup(func() { h.stop() })
	return h
}

// start runs a new runner on the same store, as a restarted drover would.
func (h *harness) start() {
	h.r = New(Config{Store: h.st, Fleet: h.fleet, Checks: h.checks, Tick: 20 * time.Millisecond, Poll: 5 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.r.Run(ctx); close(done) }()
	h.stop = func() { cancel(); <-done }
}

func (h *harness) wait(what string, cond func(*store.Rollout, []store.RolloutMachine) bool, id int64) (*store.Rollout, []store.RolloutMachine) {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ro, ms, err := h.st.Rollout(context.Background(), id)
		if err != nil {
			h.t.Fatal(err)
		}
		if cond(ro, ms) {
			return ro, ms
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%s: rollout %s (%s)\n%+v", what, ro.State, ro.Detail, ms)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func state(s string) func(*store.Rollout, []store.RolloutMachine) bool {
	return func(ro *store.Rollout, _ []store.RolloutMachine) bool { return ro.State == s }
}

func TestRunnerRollsTestZonesFirstWithinBounds(t *testing.T) {
	h := newHarness(t)
	ro, sched, err := h.r.Start(context.Background(), Request{Role: "compute"}, "alice", store.AuditEntry{})
	if err != nil {
		t.Fatal(err)
	}
	if len(sched.Waves) != 2 || sched.Waves[0].Env != "test" || sched.Total != 8 {
		t.Fatalf("schedule %+v", sched)
	}
	_, ms := h.wait("done", state(store.RolloutDone), ro.ID)
	lastTest, firstProd := time.Time{}, time.Now()
	for _, m := range ms {
		if m.Phase != store.PhaseDone || h.fleet.cycled(m.Name) != 1 {
			t.Errorf("%s: %s, cycled %d times", m.Name, m.Phase, h.fleet.cycled(m.Name))
		}
		if m.Env == "test" && m.Finished.After(lastTest) {
			lastTest = m.Finished
		}
		if m.Env == "prod" && m.Started.Before(firstProd) {
			firstProd = m.Started
		}
	}
	if firstProd.Before(lastTest) {
		t.Errorf("a prod machine started at %s before the test zone finished at %s", firstProd, lastTest)
	}
	// At most one machine of each prod pod was down at any time.
	for _, a := range ms {
		for _, b := range ms {
			if a.Slot < b.Slot && a.Zone == "live" && a.Pod == b.Pod && a.Started.Before(b.Finished) && b.Started.Before(a.Finished) {
				t.Errorf("%s and %s of pod %s were down together", a.Name, b.Name, a.Pod)
			}
		}
	}
}

func TestRunnerSkipsMaintenanceAndControllersOneAtATime(t *testing.T) {
	h := newHarness(t)
	h.fleet.mu.Lock()
	for _, m := range h.fleet.ms {
		if m.Name == "live-controller-02" {
			m.State, m.Maintenance = machine.Maintenance, &machine.MaintenanceInfo{Reason: "disk swap"}
		}
	}
	h.fleet.mu.Unlock()
	ro, _, err := h.r.Start(context.Background(), Request{Zones: []string{"live"}, Role: "controller"}, "alice", store.AuditEntry{})
	if err != nil {
		t.Fatal(err)
	}
	_, ms := h.wait("done", state(store.RolloutDone), ro.ID)
	for _, m := range ms {
		if m.Name == "live-controller-02" {
			if m.Phase != store.PhaseSkipped || h.fleet.cycled(m.Name) != 0 {
				t.Errorf("the machine in maintenance: %s, cycled %d", m.Phase, h.fleet.cycled(m.Name))
			}
			continue
		}
		for _, o := range ms {
			if o.Slot != m.Slot && o.Phase == store.PhaseDone && m.Started.Before(o.Finished) && o.Started.Before(m.Finished) {
				t.Errorf("controllers %s and %s down together", m.Name, o.Name)
			}
		}
	}
}

func TestRunnerPausesOnAFailedHealthGate(t *testing.T) {
	h := newHarness(t)
	h.checks.fail["live-compute-01"] = true
	ro, _, err := h.r.Start(context.Background(), Request{Zones: []string{"live"}, Role: "compute"}, "alice", store.AuditEntry{})
	if err != nil {
		t.Fatal(err)
	}
	paused, ms := h.wait("paused", state(store.RolloutPaused), ro.ID)
	for _, m := range ms {
		want := store.PhasePending
		if m.Name == "live-compute-01" {
			want = store.PhaseFailed
		}
		if m.Phase != want || m.Name != "live-compute-01" && h.fleet.cycled(m.Name) != 0 {
			t.Errorf("%s: %s (%s), cycled %d", m.Name, m.Phase, m.Detail, h.fleet.cycled(m.Name))
		}
	}
	t.Logf("paused: %s", paused.Detail)
	time.Sleep(100 * time.Millisecond) // a paused rollout stays paused
	if ro2, _, _ := h.st.Rollout(context.Background(), ro.ID); ro2.State != store.RolloutPaused {
		t.Fatalf("state %s", ro2.State)
	}
	if _, err := h.r.Resume(context.Background(), ro.ID, "bob", store.AuditEntry{}); err != nil {
		t.Fatal(err)
	}
	done, _ := h.wait("done", state(store.RolloutDone), ro.ID)
	if done.Detail != "done: 3 reinstalled, 1 failed, 0 skipped" {
		t.Errorf("detail %q", done.Detail)
	}
}

func TestRunnerAbortLeavesUntouchedMachinesUntouched(t *testing.T) {
	h := newHarness(t)
	h.checks.block = "live-compute-01/health"
	ro, _, err := h.r.Start(context.Background(), Request{Zones: []string{"live"}, Role: "compute"}, "alice", store.AuditEntry{})
	if err != nil {
		t.Fatal(err)
	}
	h.wait("canary checking", func(_ *store.Rollout, ms []store.RolloutMachine) bool { return ms[0].Phase == store.PhaseChecking }, ro.ID)
	if _, err := h.r.Abort(context.Background(), ro.ID, "alice", "wrong image", store.AuditEntry{}); err != nil {
		t.Fatal(err)
	}
	h.checks.mu.Lock()
	h.checks.block = ""
	h.checks.mu.Unlock()
	h.stop() // the blocked check ends with the runner; a restart resumes it
	h.start()
	_, ms := h.wait("aborted", state(store.RolloutAborted), ro.ID)
	for _, m := range ms[1:] {
		if m.Phase != store.PhaseCancelled || h.fleet.cycled(m.Name) != 0 {
			t.Errorf("%s: %s, cycled %d", m.Name, m.Phase, h.fleet.cycled(m.Name))
		}
	}
	if ms[0].Phase != store.PhaseDone {
		t.Errorf("the machine being reinstalled: %s", ms[0].Phase)
	}
}

// TestRunnerResumesAfterACrashAtEveryStep stops the runner while a machine
// is in each step and starts a new one on the same store: the rollout
// finishes, every machine power-cycled exactly once.
func TestRunnerResumesAfterACrashAtEveryStep(t *testing.T) {
	for _, step := range []string{store.PhaseDraining, store.PhaseCycling, store.PhaseInstalling, store.PhaseChecking, store.PhaseUndraining} {
		t.Run(step, func(t *testing.T) {
			h := newHarness(t)
			const victim = "live-compute-03"
			release := make(chan struct{})
			switch step {
			case store.PhaseDraining:
				h.checks.block = victim + "/drain"
			case store.PhaseCycling:
				h.fleet.power = func(ctx context.Context, name string) error {
					if name == victim {
						select {
						case <-ctx.Done(): // the cycle was sent; drover dies before recording it
							return ctx.Err()
						case <-release:
						}
					}
					return nil
				}
			case store.PhaseInstalling:
				h.fleet.hold = victim
			case store.PhaseChecking:
				h.checks.block = victim + "/health"
			case store.PhaseUndraining:
				h.checks.block = victim + "/undrain"
			}
			ro, _, err := h.r.Start(context.Background(), Request{Zones: []string{"live"}, Role: "compute"}, "alice", store.AuditEntry{})
			if err != nil {
				t.Fatal(err)
			}
			h.wait("the victim in "+step, func(_ *store.Rollout, ms []store.RolloutMachine) bool {
				for _, m := range ms {
					if m.Name == victim && m.Phase == step {
						return true
					}
				}
				return false
			}, ro.ID)
			time.Sleep(30 * time.Millisecond)
			h.stop()
			h.checks.mu.Lock()
			h.checks.block = ""
			h.checks.mu.Unlock()
			h.fleet.mu.Lock()
			h.fleet.hold, h.fleet.power = "", nil
			h.fleet.mu.Unlock()
			close(release)
			h.start()
			_, ms := h.wait("done after the restart", state(store.RolloutDone), ro.ID)
			for _, m := range ms {
				if m.Phase != store.PhaseDone || h.fleet.cycled(m.Name) != 1 {
					t.Errorf("%s: %s (%s), power-cycled %d times", m.Name, m.Phase, m.Detail, h.fleet.cycled(m.Name))
				}
			}
		})
	}
}

func TestRequestNeedsAFilter(t *testing.T) {
	h := newHarness(t)
	if _, _, err := h.r.Start(context.Background(), Request{}, "alice", store.AuditEntry{}); !errors.Is(err, ErrEmptyRequest) {
		t.Errorf("empty request: %v", err)
	}
	if _, _, err := h.r.Start(context.Background(), Request{FromPlan: true}, "alice", store.AuditEntry{}); !errors.Is(err, ErrNothing) {
		t.Errorf("nothing needs a reinstall: %v", err)
	}
}

func BenchmarkPlan10000(b *testing.B) {
	items := make([]Item, 10_000)
	for i := range items {
		items[i] = Item{Slot: fmt.Sprintf("s%d", i), Zone: "big", Env: "prod", Pod: fmt.Sprintf("p%d", i/96), Role: "compute"}
	}
	pols := map[string]zone.Policy{"big": {Canary: 1, PodMax: zone.Limit{N: 1}}}
	for b.Loop() {
		Plan(items, pols, zone.DefaultOrder, Sizes{})
	}
}
