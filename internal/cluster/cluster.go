package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/drover/drover/internal/fleet"
	"github.com/drover/drover/internal/machine"
	"github.com/drover/drover/internal/store"
	"github.com/drover/drover/internal/zone"
)

// Store is what a cluster member needs of the database.
type Store interface {
	Heartbeat(ctx context.Context, c store.Controller, ttl time.Duration) ([]store.Controller, error)
	PodOwners(ctx context.Context) ([]store.PodOwner, error)
	ClaimPod(ctx context.Context, pod, owner string, ttl time.Duration) (int64, bool, error)
	RenewPods(ctx context.Context, owner string, ttl time.Duration) (map[string]int64, error)
	ReleasePod(ctx context.Context, pod, owner string) error
	AssignPod(ctx context.Context, pod, owner string) (int64, error)
	AddMachineOp(ctx context.Context, op *store.MachineOp) error
	MachineOp(ctx context.Context, id int64) (*store.MachineOp, error)
	OpenMachineOps(ctx context.Context, pods []string) ([]store.MachineOp, error)
	FinishMachineOp(ctx context.Context, op *store.MachineOp) error
	DeleteMachineOps(ctx context.Context, before time.Time) error
	Machine(ctx context.Context, ref string) (*machine.Machine, error)
	MachineInSlot(ctx context.Context, slotKey string) (*machine.Machine, error)
	AddAudit(ctx context.Context, e *store.AuditEntry) error
}

// Fleet is the server's own inventory, sharing the database (fleet.Config.Owner).
type Fleet interface {
	Index() *zone.Index
	Owned() map[string]int64
	Owns(pod string) bool
	Acquire(ctx context.Context, pods map[string]int64) error
	Drop(ctx context.Context, pod string, drain bool) error
	Operate(ctx context.Context, op fleet.Op) (machine.Machine, error)
	PowerAction(ctx context.Context, op fleet.PowerOp) (fleet.PowerResult, error)
	PowerOf(ctx context.Context, m *machine.Machine, op fleet.PowerOp) (fleet.PowerResult, *machine.Entry, *store.AuditEntry, error)
	Record(ctx context.Context, e machine.Entry) error
	InSlot(key string) (machine.Machine, bool)
}

// Config configures a cluster member.
type Config struct {
	Store Store
	Fleet Fleet
	Name  string // unique among the servers: the fleet's Owner
	API   string // this server's operator API URL, shown to operators and the other servers
	// TTL is how long a pod stays a server's after its last renewal
	// (default 6 s); servers renew every TTL/3.
	TTL time.Duration
	// OpWait bounds how long an action on another server's pod waits for
	// that server (default 2 min: power actions take seconds each).
	OpWait time.Duration
	Log    *slog.Logger
}

// Cluster is one server's membership: Run keeps its share of the pods.
type Cluster struct {
	cfg Config

	// rounds serialises rounds with pods being handed to their agents.
	rounds sync.Mutex

	mu      sync.Mutex
	leader  bool
	changed chan struct{} // closed when leader changes
	live    []store.Controller
	leadBy  string         // the leader's name, as last read
	running map[int64]bool // ops being carried out here
}

// New creates a member; Run makes it take part.
func New(cfg Config) *Cluster {
	if cfg.TTL <= 0 {
		cfg.TTL = 6 * time.Second
	}
	if cfg.OpWait <= 0 {
		cfg.OpWait = 2 * time.Minute
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Cluster{cfg: cfg, changed: make(chan struct{}), running: map[int64]bool{}}
}

// Run takes part in the cluster until ctx ends, then hands the pods over:
// each is written out and released so the others claim it at once.
func (c *Cluster) Run(ctx context.Context) error {
	every := c.cfg.TTL / 3
	t := time.NewTicker(every)
	defer t.Stop()
	ops := time.NewTicker(200 * time.Millisecond)
	defer ops.Stop()
	var lastRenew time.Time
	var lastErr string
	for {
		if err := c.round(ctx, &lastRenew); err != nil && ctx.Err() == nil {
			if err.Error() != lastErr {
				c.cfg.Log.Error("cluster round", "err", err)
			}
			lastErr = err.Error()
		} else {
			lastErr = ""
		}
		for {
			select {
			case <-ctx.Done():
				c.handOver()
				return nil
			case <-ops.C:
				c.carryOutOps(ctx)
				continue
			case <-t.C:
			}
			break
		}
	}
}

// round renews this server's pods, drops the ones it lost, and claims or
// releases pods toward its fair share.
func (c *Cluster) round(ctx context.Context, lastRenew *time.Time) error {
	c.rounds.Lock()
	defer c.rounds.Unlock()
	ttl, me, st, fl := c.cfg.TTL, c.cfg.Name, c.cfg.Store, c.cfg.Fleet
	sent := time.Now()
	// A renewal that takes longer than a round is as good as failed: a
	// database that hangs must not keep this server answering past its leases.
	rctx, cancel := context.WithTimeout(ctx, ttl/3)
	live, err := st.Heartbeat(rctx, store.Controller{Name: me, API: c.cfg.API}, ttl)
	var renewed map[string]int64
	if err == nil {
		renewed, err = st.RenewPods(rctx, me, ttl)
	}
	cancel()
	if err != nil {
		// Unrenewed pods pass to others after ttl by the database's clock;
		// stop answering for them well before that.
		if !lastRenew.IsZero() && time.Since(*lastRenew) > ttl/2 {
			for pod := range fl.Owned() {
				fl.Drop(ctx, pod, false)
			}
			c.setLeader()
		}
		return err
	}
	*lastRenew = sent
	c.mu.Lock()
	c.live = live
	c.mu.Unlock()
	// The rest of the round (claims, loading pods) is bounded too, so that the
	// next renewal comes, or its failure is seen, in time.
	ctx, cancel = context.WithTimeout(ctx, ttl)
	defer cancel()
	for pod, epoch := range fl.Owned() {
		if renewed[pod] != epoch {
			c.cfg.Log.Warn("lost a pod to another server (renewal came too late)", "pod", pod)
			fl.Drop(ctx, pod, false)
		}
	}
	owners, err := st.PodOwners(ctx)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.leadBy = ""
	agents := map[string]bool{}
	for _, o := range owners {
		if o.Pod == fleet.LeaderPod && o.Live {
			c.leadBy = o.Owner
		}
		if store.IsAgent(o.Owner) {
			agents[o.Pod] = true
		}
	}
	c.mu.Unlock()
	// Pods with an agent are the agents': the servers divide the others.
	var pods []string
	inDesign := map[string]bool{}
	for _, p := range designPods(fl.Index()) {
		if !agents[p] {
			pods = append(pods, p)
			inDesign[p] = true
		}
	}
	names := make([]string, len(live))
	for i, l := range live {
		names[i] = l.Name
	}
	moves := Share(me, pods, owners, names)
	for pod := range fl.Owned() {
		if !inDesign[pod] {
			moves.Release = append(moves.Release, pod)
		}
	}
	var errs []error
	for _, pod := range moves.Release {
		if err := fl.Drop(ctx, pod, true); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := st.ReleasePod(ctx, pod, me); err != nil {
			errs = append(errs, err)
		}
	}
	claimed := map[string]int64{}
	for _, pod := range moves.Claim {
		epoch, ok, err := st.ClaimPod(ctx, pod, me, ttl)
		if err != nil {
			errs = append(errs, err)
		} else if ok {
			claimed[pod] = epoch
		}
	}
	if err := fl.Acquire(ctx, claimed); err != nil {
		for pod := range claimed {
			fl.Drop(ctx, pod, false)
			st.ReleasePod(ctx, pod, me)
		}
		errs = append(errs, err)
	}
	c.setLeader()
	if lead, _ := c.Leader(); lead {
		if err := st.DeleteMachineOps(ctx, time.Now().Add(-time.Hour)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Attach hands pod to its agent: this server writes out and forgets the
// pod's machines if it owns them, and the agent becomes the pod's owner with
// a new epoch (fencing any server or earlier agent that still writes for
// it). The servers leave the pod alone until Detach.
func (c *Cluster) Attach(ctx context.Context, pod string) (int64, error) {
	if pod == fleet.LeaderPod || !slices.Contains(designPods(c.Index()), pod) {
		return 0, fmt.Errorf("%w: pod %q is not in the applied design", fleet.ErrNotFound, pod)
	}
	c.rounds.Lock()
	defer c.rounds.Unlock()
	if c.cfg.Fleet.Owns(pod) {
		if err := c.cfg.Fleet.Drop(ctx, pod, true); err != nil {
			return 0, fmt.Errorf("hand pod %s to its agent: %w", pod, err)
		}
	}
	epoch, err := c.cfg.Store.AssignPod(ctx, pod, store.AgentOwner(pod))
	if err != nil {
		return 0, err
	}
	c.cfg.Log.Info("pod handed to its agent", "pod", pod, "epoch", epoch)
	return epoch, nil
}

// Detach takes pod back from its agent: the servers claim it in their next round.
func (c *Cluster) Detach(ctx context.Context, pod string) error {
	return c.cfg.Store.ReleasePod(ctx, pod, store.AgentOwner(pod))
}

// handOver releases every pod at shutdown, once its changes are written.
func (c *Cluster) handOver() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for pod := range c.cfg.Fleet.Owned() {
		if err := c.cfg.Fleet.Drop(ctx, pod, true); err == nil {
			c.cfg.Store.ReleasePod(ctx, pod, c.cfg.Name)
		}
	}
	c.setLeader()
}

// designPods are the pods servers divide: every pod of the design, and the
// zone-wide pseudo-pod.
func designPods(ix *zone.Index) []string {
	seen := map[string]bool{fleet.LeaderPod: true}
	for _, s := range ix.Design().Slots {
		seen[s.PodKey()] = true
	}
	for _, z := range ix.Design().Zones {
		for _, p := range z.Pods {
			seen[z.Name+"/"+p.Name] = true
		}
	}
	out := make([]string, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

func (c *Cluster) setLeader() {
	lead := c.cfg.Fleet.Owns(fleet.LeaderPod)
	c.mu.Lock()
	defer c.mu.Unlock()
	if lead != c.leader {
		c.leader = lead
		close(c.changed)
		c.changed = make(chan struct{})
		if lead {
			c.cfg.Log.Info("leading: running the zone-wide work here")
		} else {
			c.cfg.Log.Info("no longer leading")
		}
	}
}

// Leader reports whether this server leads, and a channel closed when that changes.
func (c *Cluster) Leader() (bool, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leader, c.changed
}

// LeaderAPI names the leading server and its API, as last seen.
func (c *Cluster) LeaderAPI() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leadBy == "" {
		return "the leading server (none holds the zone-wide work right now; one takes it within seconds)"
	}
	for _, l := range c.live {
		if l.Name == c.leadBy && l.API != "" {
			return fmt.Sprintf("%s at %s", l.Name, l.API)
		}
	}
	return c.leadBy
}

// WhileLeader runs work whenever this server leads, stopping it when
// leadership moves elsewhere, until ctx ends.
func (c *Cluster) WhileLeader(name string, work func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) error {
		for {
			lead, changed := c.Leader()
			if !lead {
				select {
				case <-ctx.Done():
					return nil
				case <-changed:
					continue
				}
			}
			wctx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- work(wctx) }()
			select {
			case <-changed:
				stop()
				<-done
				c.cfg.Log.Info("stopped zone-wide work: no longer the leader", "work", name)
			case err := <-done:
				stop()
				if err != nil {
					return err
				}
				if ctx.Err() != nil {
					return nil
				}
			case <-ctx.Done():
				err := <-done
				stop()
				return err
			}
		}
	}
}
