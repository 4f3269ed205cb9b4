package power

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/drover/drover/internal/zone"
)

// Config configures a Controller.
type Config struct {
	Drivers map[zone.PowerDriver]Driver // default: ipmi
	Secrets *Secrets
	Port    uint16        // BMC port (default 623, IPMI's)
	Timeout time.Duration // bounds one attempt: log in, the actions, log out (default 20s)
	// Attempts per action (default 3), with Backoff (default 1s) doubling
	// between them. Bad credentials are never retried, nor is anything after
	// a power cycle was sent.
	Attempts int
	Backoff  time.Duration
	Log      *slog.Logger
}

// Target is the BMC of one slot.
type Target struct {
	Slot    *zone.Slot
	Network zone.BMCNetwork // bounds sessions at once by Network.Key
}

// Controller runs power actions against BMCs, at most Network.Sessions
// sessions at once per BMC network. It is safe for concurrent use.
type Controller struct {
	cfg      Config
	mu       sync.Mutex
	sems     map[string]chan struct{} // per BMC network (and bound)
	inFlight *prometheus.GaugeVec
	actions  *prometheus.CounterVec
	waiting  *prometheus.GaugeVec
}

// NewController makes a Controller.
func NewController(cfg Config) *Controller {
	if cfg.Drivers == nil {
		cfg.Drivers = map[zone.PowerDriver]Driver{zone.PowerIPMI: IPMI{}}
	}
	if cfg.Port == 0 {
		cfg.Port = 623
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 20 * time.Second
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 3
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Controller{cfg: cfg, sems: map[string]chan struct{}{},
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "drover_power_sessions_in_flight",
			Help: "BMC sessions open now, per BMC network."}, []string{"network"}),
		waiting: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "drover_power_actions_waiting",
			Help: "Power actions waiting for a session slot on their BMC network."}, []string{"network"}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "drover_power_actions_total",
			Help: "Power actions by action and outcome (ok, auth, unreachable, error)."}, []string{"action", "outcome"}),
	}
}

// Collectors are the controller's metrics.
func (c *Controller) Collectors() []prometheus.Collector {
	return []prometheus.Collector{c.inFlight, c.waiting, c.actions}
}

func (c *Controller) sem(n zone.BMCNetwork) chan struct{} {
	key := fmt.Sprintf("%s#%d", n.Key, n.Sessions)
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sems[key]
	if s == nil {
		s = make(chan struct{}, max(n.Sessions, 1))
		c.sems[key] = s
	}
	return s
}

// Result is what a power action did.
type Result struct {
	State    State         // the power state after the action, when known
	Attempts int           // attempts made
	Took     time.Duration // from the first attempt, waiting for a session excluded
	BMC      netip.AddrPort
}

// Do runs actions, in order, in one session with the target's BMC. It waits
// for a free session on the target's BMC network first.
func (c *Controller) Do(ctx context.Context, t Target, actions ...Action) (Result, error) {
	res := Result{State: StateUnknown}
	err := c.do(ctx, t, actions, &res)
	outcome := "ok"
	switch {
	case err == nil:
	case errors.Is(err, ErrAuth):
		outcome = "auth"
	case errors.Is(err, ErrUnreachable):
		outcome = "unreachable"
	default:
		outcome = "error"
	}
	for _, a := range actions {
		c.actions.WithLabelValues(string(a), outcome).Inc()
	}
	return res, err
}

func (c *Controller) do(ctx context.Context, t Target, actions []Action, res *Result) error {
	s := t.Slot
	if s == nil || s.Power == "" || s.Power == zone.PowerNone {
		return fmt.Errorf("the design gives %s no power driver: set `power: ipmi` on its zone or role", slotName(s))
	}
	drv := c.cfg.Drivers[s.Power]
	if drv == nil {
		return fmt.Errorf("no %s power driver in this server", s.Power)
	}
	if !s.BMCAddress.IsValid() {
		return fmt.Errorf("%s has no BMC address: its pod has no bmc network", s.Name)
	}
	creds, ok := c.cfg.Secrets.Lookup(s.Zone, s.Role)
	if !ok {
		where := "no power secrets file (drover serve --power-secrets)"
		if c.cfg.Secrets != nil {
			where = c.cfg.Secrets.Path
		}
		return fmt.Errorf("no BMC credentials for zone %s role %s in %s", s.Zone, s.Role, where)
	}
	res.BMC = netip.AddrPortFrom(s.BMCAddress, c.cfg.Port)
	ep := Endpoint{Addr: res.BMC, Credentials: creds}

	sem := c.sem(t.Network)
	c.waiting.WithLabelValues(t.Network.Key).Inc()
	select {
	case sem <- struct{}{}:
		c.waiting.WithLabelValues(t.Network.Key).Dec()
	case <-ctx.Done():
		c.waiting.WithLabelValues(t.Network.Key).Dec()
		return fmt.Errorf("waiting for a BMC session on %s: %w", t.Network.Key, ctx.Err())
	}
	defer func() { <-sem }()
	c.inFlight.WithLabelValues(t.Network.Key).Inc()
	defer c.inFlight.WithLabelValues(t.Network.Key).Dec()

	start := time.Now()
	defer func() { res.Took = time.Since(start) }()
	backoff := c.cfg.Backoff
	var err error
	for attempt := 1; attempt <= c.cfg.Attempts; attempt++ {
		res.Attempts = attempt
		var sentCycle bool
		sentCycle, err = c.attempt(ctx, drv, ep, actions, res)
		if err == nil || errors.Is(err, ErrAuth) || sentCycle || ctx.Err() != nil || attempt == c.cfg.Attempts {
			break
		}
		c.cfg.Log.Warn("power action failed: retrying", "bmc", ep.Addr, "attempt", attempt, "err", err, "backoff", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return fmt.Errorf("%w (after %d attempts)", err, attempt)
		}
		backoff *= 2
	}
	if err != nil && res.Attempts > 1 {
		return fmt.Errorf("%w (after %d attempts)", err, res.Attempts)
	}
	return err
}

// attempt is one session: log in, run the actions, log out. sentCycle says a
// power cycle was sent, after which a retry could cycle the machine twice.
func (c *Controller) attempt(ctx context.Context, drv Driver, ep Endpoint, actions []Action, res *Result) (sentCycle bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	b, err := drv.Open(ctx, ep)
	if err != nil {
		return false, err
	}
	defer b.Close(context.WithoutCancel(ctx))
	for _, a := range actions {
		switch a {
		case On:
			err = b.On(ctx)
			res.State = StateOn
		case Off:
			err = b.Off(ctx)
			res.State = StateOff
		case Cycle:
			sentCycle = true
			err = b.Cycle(ctx)
			res.State = StateOn
		case PXEOnce:
			err = b.SetBootDevice(ctx, DevicePXE, false)
		case Status:
			res.State, err = b.Status(ctx)
		default:
			err = fmt.Errorf("unknown power action %q", a)
		}
		if err != nil {
			res.State = StateUnknown
			if ctx.Err() != nil && !errors.Is(err, ErrUnreachable) {
				err = fmt.Errorf("%w: %v", ErrUnreachable, err)
			}
			return sentCycle, err
		}
	}
	return sentCycle, nil
}

func slotName(s *zone.Slot) string {
	if s == nil {
		return "the machine (it has no slot)"
	}
	return s.Name
}
