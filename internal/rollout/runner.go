package rollout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/drover/drover/internal/fleet"
	"github.com/drover/drover/internal/machine"
	"github.com/drover/drover/internal/power"
	"github.com/drover/drover/internal/store"
	"github.com/drover/drover/internal/zone"
)

// Fleet is what the runner needs from the running inventory: it never writes
// a machine itself.
type Fleet interface {
	Index() *zone.Index
	InSlot(key string) (machine.Machine, bool)
	Operate(ctx context.Context, op fleet.Op) (machine.Machine, error)
	PowerAction(ctx context.Context, op fleet.PowerOp) (fleet.PowerResult, error)
	Record(ctx context.Context, e machine.Entry) error
}

// Store is where rollouts live.
type Store interface {
	CreateRollout(ctx context.Context, r *store.Rollout, ms []store.RolloutMachine, audit *store.AuditEntry) error
	UpdateRollout(ctx context.Context, r *store.Rollout, ms []store.RolloutMachine, audits ...*store.AuditEntry) error
	Rollouts(ctx context.Context) ([]store.Rollout, error)
	Rollout(ctx context.Context, id int64) (*store.Rollout, []store.RolloutMachine, error)
}

// Config configures a Runner.
type Config struct {
	Store  Store
	Fleet  Fleet
	Checks Checks // hooks and health checks; default: commands, HTTP and TCP for real
	Log    *slog.Logger
	Now    func() time.Time
	Tick   time.Duration // how often the runner looks at its rollouts (default 1 s)
	Poll   time.Duration // how often an install and a health gate are polled (default 1 s)
}

// Runner executes rollouts. It is the one writer of rollout records: API
// calls that change a rollout go through its methods.
type Runner struct {
	cfg     Config
	mu      sync.Mutex // orders every write of rollout records
	workers map[string]bool
	wg      sync.WaitGroup
	wake    chan struct{}
	phases  *prometheus.GaugeVec
	steps   *prometheus.CounterVec
}

// New makes a runner.
func New(cfg Config) *Runner {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Tick <= 0 {
		cfg.Tick = time.Second
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.Checks == nil {
		cfg.Checks = RealChecks{}
	}
	return &Runner{cfg: cfg, workers: map[string]bool{}, wake: make(chan struct{}, 1),
		phases: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "drover_rollout_machines", Help: "Machines of unfinished rollouts by rollout phase."}, []string{"phase"}),
		steps:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "drover_rollout_steps_total", Help: "Rollout steps finished, by phase and outcome."}, []string{"phase", "outcome"}),
	}
}

// Collectors are the runner's metrics.
func (r *Runner) Collectors() []prometheus.Collector {
	return []prometheus.Collector{r.phases, r.steps}
}

// Run drives rollouts until ctx ends; machines in the middle of a step stay
// in that step in the store and are picked up again by the next Run.
func (r *Runner) Run(ctx context.Context) error {
	t := time.NewTicker(r.cfg.Tick)
	defer t.Stop()
	defer r.wg.Wait()
	for {
		if err := r.advance(ctx); err != nil && ctx.Err() == nil {
			r.cfg.Log.Error("rollout runner", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-r.wake:
		}
	}
}

func (r *Runner) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Request chooses the machines of a new rollout. Filters narrow each other;
// at least one of them, or FromPlan, must be given.
type Request struct {
	// FromPlan: the machines the applied design marks as needing a reinstall.
	FromPlan bool     `json:"from_plan,omitempty"`
	Zones    []string `json:"zones,omitempty"`
	Pod      string   `json:"pod,omitempty"`
	Role     string   `json:"role,omitempty"`
	Variant  string   `json:"variant,omitempty"`
	State    string   `json:"state,omitempty"`   // machine state (default: any state a reinstall starts from)
	Profile  string   `json:"profile,omitempty"` // slots installed with this profile
	// FailureBudget is how many failures are tolerated before the rollout
	// pauses; default the smallest of its zones' failure_budget (0 unless set).
	FailureBudget *int   `json:"failure_budget,omitempty"`
	Reason        string `json:"reason,omitempty"`
	Source        string `json:"-"` // says what chose the machines, when not the filters (a commit)
}

func (q Request) describe() string {
	var parts []string
	if q.FromPlan {
		parts = append(parts, "needs-reinstall")
	}
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	add("zone", strings.Join(q.Zones, ","))
	add("pod", q.Pod)
	add("role", q.Role)
	add("variant", q.Variant)
	add("state", q.State)
	add("profile", q.Profile)
	return strings.Join(parts, " ")
}

// ErrNothing is returned when a request selects no machine to reinstall.
var ErrNothing = errors.New("no machine to reinstall matches")

// ErrEmptyRequest is returned for a request without any filter.
var ErrEmptyRequest = errors.New("say which machines: from the plan (needs reinstall) or by zone, pod, role, variant, state or profile")

// reinstallable are the states a reinstall starts from.
var reinstallable = []machine.State{machine.Deployed, machine.DeployFailed, machine.Ready}

// items lists the machines a request selects, in design order.
func (r *Runner) items(q Request) ([]Item, []int64, error) {
	if !q.FromPlan && len(q.Zones) == 0 && q.Pod == "" && q.Role == "" && q.Variant == "" && q.State == "" && q.Profile == "" {
		return nil, nil, ErrEmptyRequest
	}
	var state machine.State
	if q.State != "" {
		st, err := machine.ParseState(q.State)
		if err != nil {
			return nil, nil, err
		}
		state = st
	}
	var out []Item
	var ids []int64
	for _, s := range r.cfg.Fleet.Index().Design().Slots {
		if len(q.Zones) > 0 && !slices.Contains(q.Zones, s.Zone) || q.Pod != "" && s.Pod != q.Pod || q.Role != "" && s.Role != q.Role ||
			q.Variant != "" && s.Variant != q.Variant || q.Profile != "" && s.Profile != q.Profile {
			continue
		}
		m, ok := r.cfg.Fleet.InSlot(s.Key)
		if !ok || q.FromPlan && !m.NeedsReinstall || state != "" && m.State != state {
			continue
		}
		it := Item{Slot: s.Key, Name: s.Name, Zone: s.Zone, Env: s.Environment, Pod: s.Pod, Role: s.Role}
		switch {
		case m.State == machine.Maintenance:
			it.Skip = "in maintenance"
			if m.Maintenance != nil && m.Maintenance.Reason != "" {
				it.Skip += ": " + m.Maintenance.Reason
			}
		case !slices.Contains(reinstallable, m.State):
			it.Skip = "is " + string(m.State)
		}
		out = append(out, it)
		ids = append(ids, m.ID)
	}
	return out, ids, nil
}

func (r *Runner) policies(items []Item) (map[string]zone.Policy, []string, Sizes) {
	d := r.cfg.Fleet.Index().Design()
	pols := map[string]zone.Policy{}
	for _, it := range items {
		if _, ok := pols[it.Zone]; !ok {
			if z := d.Zone(it.Zone); z != nil {
				pols[it.Zone] = z.Policy()
			}
		}
	}
	return pols, d.Order(), SizesOf(d.Slots)
}

// Plan shows what a rollout of the request would do, changing nothing.
func (r *Runner) Plan(q Request) (Schedule, error) {
	items, _, err := r.items(q)
	if err != nil {
		return Schedule{}, err
	}
	pols, order, sizes := r.policies(items)
	return Plan(items, pols, order, sizes), nil
}

// Start records a new rollout of the request; it runs after the rollouts
// before it end. The audit entry is written with it.
func (r *Runner) Start(ctx context.Context, q Request, actor string, audit store.AuditEntry) (*store.Rollout, Schedule, error) {
	items, ids, err := r.items(q)
	if err != nil {
		return nil, Schedule{}, err
	}
	pols, order, sizes := r.policies(items)
	sched := Plan(items, pols, order, sizes)
	if sched.Total == 0 {
		return nil, sched, fmt.Errorf("%w %s (%d matching machines are skipped)", ErrNothing, q.describe(), len(sched.Skipped))
	}
	now := r.cfg.Now().UTC()
	source := q.Source
	if source == "" {
		source = q.describe()
	}
	ro := &store.Rollout{Created: now, Updated: now, Actor: actor, Reason: q.Reason, Source: source, State: store.RolloutQueued,
		Order: order, Policies: pols, Gates: map[string]*store.Gate{}}
	ro.Budget = -1
	if q.FailureBudget != nil {
		ro.Budget = *q.FailureBudget
	}
	for _, p := range pols {
		if ro.Budget < 0 || q.FailureBudget == nil && p.FailureBudget < ro.Budget {
			ro.Budget = p.FailureBudget
		}
	}
	ms := make([]store.RolloutMachine, len(items))
	for i, it := range items {
		ms[i] = store.RolloutMachine{Seq: i, Slot: it.Slot, Name: it.Name, MachineID: ids[i], Zone: it.Zone, Env: it.Env, Pod: it.Pod, Role: it.Role,
			Wave: WaveOf(order, it.Env), Batch: -1, Phase: store.PhasePending, PhaseSince: now}
		if it.Skip != "" {
			ms[i].Phase, ms[i].Detail, ms[i].Finished = store.PhaseSkipped, "skipped, never touched: "+it.Skip, now
		}
	}
	audit.At, audit.Actor, audit.Action, audit.Outcome = now, actor, "rollout-start", "ok"
	audit.Detail = strings.TrimSpace(fmt.Sprintf("%s: %d machines, %d skipped %s", source, sched.Total, len(sched.Skipped), audit.Detail))
	r.mu.Lock()
	err = r.cfg.Store.CreateRollout(ctx, ro, ms, &audit)
	r.mu.Unlock()
	if err != nil {
		return nil, sched, err
	}
	r.poke()
	return ro, sched, nil
}

// Errors of operator actions on rollouts.
var (
	ErrState = errors.New("not possible in the rollout's state")
)

// Pause stops a running rollout from starting more machines; machines in the
// middle of their reinstall finish it.
func (r *Runner) Pause(ctx context.Context, id int64, actor, reason string, audit store.AuditEntry) (*store.Rollout, error) {
	return r.change(ctx, id, actor, "rollout-pause", audit, func(ro *store.Rollout, ms []store.RolloutMachine) ([]store.RolloutMachine, error) {
		if ro.State != store.RolloutRunning && ro.State != store.RolloutQueued {
			return nil, fmt.Errorf("%w: rollout %d is %s", ErrState, id, ro.State)
		}
		ro.State, ro.Detail = store.RolloutPaused, "paused by "+actor
		if reason != "" {
			ro.Detail += ": " + reason
		}
		return nil, nil
	})
}

// Resume continues a paused rollout: the failures so far are acknowledged
// (they no longer count against the budget nor as machines down) and
// finished canaries pass their gate.
func (r *Runner) Resume(ctx context.Context, id int64, actor string, audit store.AuditEntry) (*store.Rollout, error) {
	return r.change(ctx, id, actor, "rollout-resume", audit, func(ro *store.Rollout, ms []store.RolloutMachine) ([]store.RolloutMachine, error) {
		if ro.State != store.RolloutPaused {
			return nil, fmt.Errorf("%w: rollout %d is %s, not paused", ErrState, id, ro.State)
		}
		ro.State, ro.Detail = store.RolloutRunning, "resumed by "+actor
		var acked []store.RolloutMachine
		for _, m := range ms {
			if m.Phase == store.PhaseFailed && !m.Acknowledged {
				m.Acknowledged = true
				acked = append(acked, m)
			}
		}
		for _, g := range ro.Gates {
			if !g.CanaryDone.IsZero() {
				g.Passed = true
			}
		}
		return acked, nil
	})
}

// Abort ends a rollout: machines not started are cancelled and never
// touched; machines in the middle of their reinstall finish it first.
func (r *Runner) Abort(ctx context.Context, id int64, actor, reason string, audit store.AuditEntry) (*store.Rollout, error) {
	return r.change(ctx, id, actor, "rollout-abort", audit, func(ro *store.Rollout, ms []store.RolloutMachine) ([]store.RolloutMachine, error) {
		if final(ro.State) || ro.State == store.RolloutAborting {
			return nil, fmt.Errorf("%w: rollout %d is already %s", ErrState, id, ro.State)
		}
		now := r.cfg.Now().UTC()
		var changed []store.RolloutMachine
		for _, m := range ms {
			if m.Phase == store.PhasePending {
				m.Phase, m.PhaseSince, m.Finished, m.Detail = store.PhaseCancelled, now, now, "cancelled by the abort: never touched"
				changed = append(changed, m)
			}
		}
		ro.State, ro.Detail = store.RolloutAborting, "aborted by "+actor
		if reason != "" {
			ro.Detail += ": " + reason
		}
		return changed, nil
	})
}

func (r *Runner) change(ctx context.Context, id int64, actor, action string, audit store.AuditEntry,
	fn func(*store.Rollout, []store.RolloutMachine) ([]store.RolloutMachine, error)) (*store.Rollout, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ro, ms, err := r.cfg.Store.Rollout(ctx, id)
	if err != nil {
		return nil, err
	}
	changed, err := fn(ro, ms)
	if err != nil {
		return nil, err
	}
	ro.Updated = r.cfg.Now().UTC()
	audit.At, audit.Actor, audit.Action, audit.Outcome, audit.Target = ro.Updated, actor, action, "ok", fmt.Sprintf("rollout %d", id)
	if audit.Detail == "" {
		audit.Detail = ro.Detail
	}
	if err := r.cfg.Store.UpdateRollout(ctx, ro, changed, &audit); err != nil {
		return nil, err
	}
	r.poke()
	return ro, nil
}

func final(state string) bool { return state == store.RolloutDone || state == store.RolloutAborted }

func countPhase(ms []store.RolloutMachine, phase string) int {
	n := 0
	for _, m := range ms {
		if m.Phase == phase {
			n++
		}
	}
	return n
}

// down: failed, and not accepted by an operator's resume.
func down(m store.RolloutMachine) bool { return m.Phase == store.PhaseFailed && !m.Acknowledged }

func inFlight(m store.RolloutMachine) bool { return !m.Final() && m.Phase != store.PhasePending }

// advance looks at every unfinished rollout: it resumes machines in the
// middle of a step that no worker drives (after a restart), and moves the
// oldest one on. Only one rollout starts machines at a time.
func (r *Runner) advance(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	all, err := r.cfg.Store.Rollouts(ctx)
	if err != nil {
		return err
	}
	counts := map[string]int{}
	defer func() {
		r.phases.Reset()
		for p, n := range counts {
			r.phases.WithLabelValues(p).Set(float64(n))
		}
	}()
	driving := false
	for i := len(all) - 1; i >= 0; i-- { // oldest first
		if final(all[i].State) {
			continue
		}
		ro, ms, err := r.cfg.Store.Rollout(ctx, all[i].ID)
		if err != nil {
			return err
		}
		for _, m := range ms {
			counts[m.Phase]++
			if inFlight(m) {
				r.drive(ctx, ro, m, true)
			}
		}
		if ro.State == store.RolloutPaused || ro.State == store.RolloutQueued && driving {
			driving = true
			continue
		}
		driving = true
		if err := r.step(ctx, ro, ms); err != nil {
			return fmt.Errorf("rollout %d: %w", ro.ID, err)
		}
	}
	return nil
}

// step moves one rollout on: done, paused by its failure budget or a canary
// gate, or the next batch of each zone in the current wave started.
func (r *Runner) step(ctx context.Context, ro *store.Rollout, ms []store.RolloutMachine) error {
	now := r.cfg.Now().UTC()
	save := func(changed []store.RolloutMachine, action string) error {
		ro.Updated = now
		a := &store.AuditEntry{At: now, Actor: rolloutActor(ro.ID), Action: action, Target: fmt.Sprintf("rollout %d", ro.ID), Outcome: "ok", Detail: ro.Detail}
		return r.cfg.Store.UpdateRollout(ctx, ro, changed, a)
	}
	flying := 0
	for _, m := range ms {
		if inFlight(m) {
			flying++
		}
	}
	if ro.State == store.RolloutAborting {
		if flying == 0 {
			ro.State = store.RolloutAborted
			return save(nil, "rollout-aborted")
		}
		return nil
	}
	if ro.State == store.RolloutQueued {
		ro.State, ro.Detail = store.RolloutRunning, "started"
		if err := save(nil, "rollout-running"); err != nil {
			return err
		}
	}
	var failed []string
	for _, m := range ms {
		if down(m) {
			failed = append(failed, m.Name+" ("+m.Detail+")")
		}
	}
	if len(failed) > ro.Budget {
		ro.State = store.RolloutPaused
		ro.Detail = fmt.Sprintf("paused: %d failed, failure budget %d: %s; machines not started are untouched (resume accepts the failures and continues, abort ends it)",
			len(failed), ro.Budget, strings.Join(failed, "; "))
		return save(nil, "rollout-paused")
	}
	wave := -1
	for _, m := range ms {
		if !m.Final() && (wave < 0 || m.Wave < wave) {
			wave = m.Wave
		}
	}
	if wave < 0 {
		ro.State = store.RolloutDone
		ro.Detail = fmt.Sprintf("done: %d reinstalled, %d failed, %d skipped", countPhase(ms, store.PhaseDone), countPhase(ms, store.PhaseFailed), countPhase(ms, store.PhaseSkipped))
		return save(nil, "rollout-done")
	}
	sizes := SizesOf(r.cfg.Fleet.Index().Design().Slots)
	var zones []string
	for _, m := range ms {
		if m.Wave == wave && !slices.Contains(zones, m.Zone) {
			zones = append(zones, m.Zone)
		}
	}
	for _, z := range zones {
		var pending, failed []Item
		busy, last := false, -1
		var canaryEnd time.Time
		for _, m := range ms {
			if m.Zone != z {
				continue
			}
			it := Item{Slot: m.Slot, Name: m.Name, Zone: m.Zone, Env: m.Env, Pod: m.Pod, Role: m.Role}
			switch {
			case inFlight(m):
				busy = true
			case m.Phase == store.PhasePending:
				pending = append(pending, it)
			case down(m):
				failed = append(failed, it)
			}
			last = max(last, m.Batch)
			if m.Batch == 0 && m.Finished.After(canaryEnd) {
				canaryEnd = m.Finished
			}
		}
		if busy || len(pending) == 0 {
			continue
		}
		pol := ro.Policies[z]
		if pol.Canary > 0 && last == 0 {
			g := ro.Gates[z]
			if g == nil {
				if ro.Gates == nil {
					ro.Gates = map[string]*store.Gate{}
				}
				g = &store.Gate{CanaryDone: canaryEnd}
				ro.Gates[z] = g
				if err := save(nil, "rollout-canary-done"); err != nil {
					return err
				}
			}
			if pol.CanaryApproval && !g.Passed {
				ro.State = store.RolloutPaused
				ro.Detail = fmt.Sprintf("canary of zone %s done: `drover rollout resume %d` to roll out the rest", z, ro.ID)
				return save(nil, "rollout-paused")
			}
			if now.Before(g.CanaryDone.Add(pol.Soak)) {
				continue // soaking
			}
		}
		b := NextBatch(pending, failed, pol, sizes, last < 0 && pol.Canary > 0)
		if len(b) == 0 {
			ro.State = store.RolloutPaused
			ro.Detail = fmt.Sprintf("paused: the failed machines of zone %s use up max_unavailable (pod %s); resume accepts them as they are", z, pol.PodMax)
			return save(nil, "rollout-paused")
		}
		var started []store.RolloutMachine
		for _, it := range b {
			i := slices.IndexFunc(ms, func(m store.RolloutMachine) bool { return m.Slot == it.Slot })
			m := ms[i]
			m.Batch, m.PhaseSince = last+1, now
			mach, ok := r.cfg.Fleet.InSlot(m.Slot)
			switch {
			case !ok || mach.ID != m.MachineID:
				m.Phase, m.Finished, m.Detail = store.PhaseSkipped, now, "skipped, never touched: the machine left its slot"
			case mach.State == machine.Maintenance:
				m.Phase, m.Finished, m.Detail = store.PhaseSkipped, now, "skipped, never touched: in maintenance"
			case !slices.Contains(reinstallable, mach.State):
				m.Phase, m.Finished, m.Detail = store.PhaseSkipped, now, "skipped, never touched: it is "+string(mach.State)
			default:
				m.Phase, m.Started = store.PhaseDraining, now
			}
			ms[i] = m
			started = append(started, m)
		}
		if err := r.cfg.Store.UpdateRollout(ctx, nil, started); err != nil {
			return err
		}
		for _, m := range started {
			if m.Phase == store.PhaseDraining {
				r.drive(ctx, ro, m, false)
			}
		}
	}
	return nil
}

func rolloutActor(id int64) string { return fmt.Sprintf("rollout %d", id) }

// drive starts a worker that takes one machine through its remaining steps,
// unless one already does. resumed says the machine's current step was
// interrupted by a restart.
func (r *Runner) drive(ctx context.Context, ro *store.Rollout, m store.RolloutMachine, resumed bool) {
	key := fmt.Sprintf("%d/%s", ro.ID, m.Slot)
	if r.workers[key] {
		return
	}
	r.workers[key] = true
	pol := ro.Policies[m.Zone]
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer func() {
			r.mu.Lock()
			delete(r.workers, key)
			r.mu.Unlock()
			r.poke()
		}()
		r.work(ctx, ro.ID, pol, m, resumed)
	}()
}

// next is the step after each step.
var next = map[string]string{
	store.PhaseDraining:   store.PhaseCycling,
	store.PhaseCycling:    store.PhaseInstalling,
	store.PhaseInstalling: store.PhaseChecking,
	store.PhaseChecking:   store.PhaseUndraining,
	store.PhaseUndraining: store.PhaseDone,
}

func (r *Runner) work(ctx context.Context, id int64, pol zone.Policy, m store.RolloutMachine, resumed bool) {
	actor := rolloutActor(id)
	if resumed {
		r.note(ctx, id, &m, fmt.Sprintf("%s resumed after a restart", m.Phase))
	} else {
		r.note(ctx, id, &m, fmt.Sprintf("started (wave %s, zone %s, batch %d)", m.Env, m.Zone, m.Batch))
	}
	for !m.Final() {
		slot := r.cfg.Fleet.Index().Slot(m.Slot)
		var err error
		note := ""
		switch m.Phase {
		case store.PhaseDraining:
			err = r.hook(ctx, "drain", pol.Drain, slot, m, id)
		case store.PhaseCycling:
			if resumed {
				// The cycle may have been sent before the restart: a machine
				// is never rebooted twice by a rollout; the install watchdog decides.
				note = "drover restarted during the power cycle: not repeated"
			} else {
				note, err = r.cycle(ctx, actor, m)
			}
		case store.PhaseInstalling:
			err = r.installed(ctx, m)
		case store.PhaseChecking:
			err = r.health(ctx, pol.Health, slot, m, id)
		case store.PhaseUndraining:
			err = r.hook(ctx, "undrain", pol.Undrain, slot, m, id)
		}
		resumed = false
		if ctx.Err() != nil {
			return // stopping: the step stays recorded and resumes at the next start
		}
		from := m.Phase
		now := r.cfg.Now().UTC()
		if err != nil {
			m.Phase, m.Detail, m.Finished = store.PhaseFailed, from+": "+err.Error(), now
			r.steps.WithLabelValues(from, "failed").Inc()
		} else {
			m.Phase, m.Detail = next[from], note
			if m.Phase == store.PhaseDone {
				m.Finished = now
			}
			r.steps.WithLabelValues(from, "ok").Inc()
		}
		m.PhaseSince = now
		text := from + " ok, now " + m.Phase
		if err != nil {
			text = "failed: " + m.Detail
		} else if note != "" {
			text += " (" + note + ")"
		}
		r.mu.Lock()
		// The step happened: record it even if drover is stopping.
		serr := r.cfg.Store.UpdateRollout(context.WithoutCancel(ctx), nil, []store.RolloutMachine{m}, &store.AuditEntry{At: now, Actor: actor, Action: "rollout-step",
			Target: m.Name, Outcome: map[bool]string{true: "failed", false: "ok"}[err != nil], Detail: text})
		r.mu.Unlock()
		if serr != nil {
			r.cfg.Log.Error("rollout step not recorded; it is retried after a restart", "rollout", id, "machine", m.Name, "err", serr)
			return
		}
		r.note(ctx, id, &m, text)
		r.poke()
	}
}

func (r *Runner) note(ctx context.Context, id int64, m *store.RolloutMachine, text string) {
	e := machine.Entry{MachineID: m.MachineID, Actor: rolloutActor(id), Kind: machine.KindRollout, Reason: rolloutActor(id) + ": " + text}
	if err := r.cfg.Fleet.Record(ctx, e); err != nil && ctx.Err() == nil {
		r.cfg.Log.Warn("rollout timeline entry not written", "machine", m.Name, "err", err)
	}
}

// cycle marks the machine for reinstalling and power-cycles it into PXE.
func (r *Runner) cycle(ctx context.Context, actor string, m store.RolloutMachine) (string, error) {
	mach, ok := r.cfg.Fleet.InSlot(m.Slot)
	if !ok || mach.ID != m.MachineID {
		return "", errors.New("the machine left its slot")
	}
	if mach.State != machine.Deploying {
		if _, err := r.cfg.Fleet.Operate(ctx, fleet.Op{Ref: mach.MAC, Action: fleet.ActReinstall, Actor: actor, Reason: actor,
			Audit: store.AuditEntry{Actor: actor, Detail: "rollout reinstall"}}); err != nil {
			return "", err
		}
	}
	res, err := r.cfg.Fleet.PowerAction(ctx, fleet.PowerOp{Ref: mach.MAC, Actions: []power.Action{power.PXEOnce, power.Cycle}, Actor: actor, Reason: actor,
		Audit: store.AuditEntry{Actor: actor}})
	if err != nil {
		return "", fmt.Errorf("power cycle: %w", err)
	}
	return fmt.Sprintf("power-cycled via BMC %s in %s", res.BMC, res.Took), nil
}

// installed waits until the machine phoned home from its new install; the
// zone's deploying watchdog bounds the wait (a machine that never comes back
// turns deploy-failed).
func (r *Runner) installed(ctx context.Context, m store.RolloutMachine) error {
	t := time.NewTicker(r.cfg.Poll)
	defer t.Stop()
	for {
		mach, ok := r.cfg.Fleet.InSlot(m.Slot)
		switch {
		case !ok || mach.ID != m.MachineID:
			return errors.New("the machine left its slot during its install")
		case mach.State == machine.Deployed && !mach.StateSince.Before(m.Started):
			return nil
		case mach.State == machine.DeployFailed:
			return errors.New("the install failed (deploy-failed): see the machine's timeline")
		case mach.State != machine.Deploying && mach.StateSince.After(m.Started):
			return fmt.Errorf("the machine went %s instead of installing", mach.State)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// health polls the gate until it passes or its timeout ends.
func (r *Runner) health(ctx context.Context, h *zone.HealthSpec, slot *zone.Slot, m store.RolloutMachine, id int64) error {
	if h == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, h.Timeout)
	defer cancel()
	t := time.NewTicker(r.cfg.Poll)
	defer t.Stop()
	var last error // the check's own answer, not the deadline that cut its last attempt
	for {
		err := r.cfg.Checks.Health(ctx, *h, facts(slot, m, id, "health"))
		if err == nil {
			return nil
		}
		if ctx.Err() == nil || last == nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
				return fmt.Errorf("health gate did not pass within %s: %w", h.Timeout, last)
			}
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (r *Runner) hook(ctx context.Context, name string, h *zone.HookSpec, slot *zone.Slot, m store.RolloutMachine, id int64) error {
	if h == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, h.Timeout)
	defer cancel()
	if err := r.cfg.Checks.Hook(ctx, *h, facts(slot, m, id, name)); err != nil {
		return fmt.Errorf("%s hook: %w", name, err)
	}
	return nil
}
