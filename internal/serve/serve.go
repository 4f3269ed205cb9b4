// Package serve runs drover's machine-facing services together: DHCP, TFTP
// and boot HTTP over one inventory, following the applied design.
package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/drover/drover/internal/api"
	"github.com/drover/drover/internal/boot"
	"github.com/drover/drover/internal/cabling"
	"github.com/drover/drover/internal/cluster"
	"github.com/drover/drover/internal/counter"
	"github.com/drover/drover/internal/dhcp"
	"github.com/drover/drover/internal/events"
	"github.com/drover/drover/internal/fleet"
	"github.com/drover/drover/internal/gitops"
	"github.com/drover/drover/internal/machine"
	"github.com/drover/drover/internal/nameserver"
	"github.com/drover/drover/internal/power"
	"github.com/drover/drover/internal/rollout"
	"github.com/drover/drover/internal/secret"
	"github.com/drover/drover/internal/service"
	"github.com/drover/drover/internal/store"
	"github.com/drover/drover/internal/tftp"
	"github.com/drover/drover/internal/ui"
	"github.com/drover/drover/internal/zone"
)

// Config is everything `drover serve` runs with.
type Config struct {
	Store     store.Store
	DHCP      dhcp.Config // Handler is filled in by Run
	BootFiles dhcp.BootFiles
	TFTP      tftp.Config // Done is filled in by Run
	Boot      boot.Config // Fleet is filled in by Run
	API       api.Config  // Store, Fleet and counters are filled in by Run
	// DNS, when its Addr is set, serves the design's zones (Designs and
	// AppliedAt are filled in by Run).
	DNS nameserver.Config
	// EventSinks get every machine state transition (webhooks, Alertmanager).
	EventSinks     []events.Sink
	AdminTokenFile string // where the first admin token is written on first start
	// Follow, when its Repo is set, follows a git repository holding the
	// design (Commits, Applied, Apply, Check and Rollouts are filled in by Run).
	Follow gitops.Config
	// PowerSecrets are the BMC credentials; nil: power actions are refused.
	PowerSecrets   *power.Secrets
	ReloadInterval time.Duration
	// LockHeld says the caller holds the store's writer lock (it applied a
	// design at start under it); otherwise Run takes the lock itself.
	LockHeld bool
	// Cluster, when its Name is set, makes this server one of several on one
	// PostgreSQL database that divide its pods (Store, Fleet and Log are
	// filled in by Run); the caller holds the store's shared lock.
	Cluster cluster.Config
	// Agents accepts pod agents (drover agent): a pod is handed to its agent
	// when the agent attaches. Needs Cluster: the server owns its pods the
	// way servers sharing a database do.
	Agents bool
	Log    *slog.Logger
	// Started, if set, is called once every listener is ready.
	Started func(Listeners)
}

// checkPower refuses to serve a design whose power drivers have no
// credentials in the secrets file; with no secrets file it warns that power
// actions will be refused.
func checkPower(d *zone.Design, secrets *power.Secrets, log *slog.Logger) error {
	if secrets != nil {
		if err := secrets.Check(d); err != nil {
			return fmt.Errorf("the applied design needs BMC credentials that %s does not have:\n%w", secrets.Path, err)
		}
		return nil
	}
	for _, s := range d.Slots {
		if s.Power != "" {
			log.Warn("the design names power drivers but the server has no --power-secrets: power actions will be refused", "example", s.Name, "driver", s.Power)
			return nil
		}
	}
	return nil
}

// Listeners are the addresses the services listen on.
type Listeners struct {
	DHCP, TFTP, HTTP, API string
}

// Run serves until ctx ends, then stops the listeners and writes out what the
// inventory still has queued.
func Run(ctx context.Context, cfg Config) error {
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	if cfg.ReloadInterval <= 0 {
		cfg.ReloadInterval = 2 * time.Second
	}
	shared := cfg.Cluster.Name != ""
	if !cfg.LockHeld && !shared {
		release, err := LockWriter(ctx, cfg.Store, log, false)
		if err != nil {
			return err
		}
		defer release()
	}
	var ctl *power.Controller
	if cfg.PowerSecrets != nil {
		ctl = power.NewController(power.Config{Secrets: cfg.PowerSecrets, Log: log.With("service", "power")})
	}
	if cfg.Follow.Repo != "" {
		if err := bootstrap(ctx, cfg, log); err != nil {
			return err
		}
	}
	fcfg := fleet.Config{Store: cfg.Store, Log: log, Owner: cfg.Cluster.Name}
	if ctl != nil {
		fcfg.Power = ctl
	}
	fl, err := fleet.New(ctx, fcfg)
	if err != nil {
		return err
	}
	if err := checkPower(fl.Index().Design(), cfg.PowerSecrets, log); err != nil {
		return err
	}
	rev := fl.Revision()
	log.Info("serving design", "revision", rev, "summary", fl.Index().Design().String())
	if err := firstAdminToken(ctx, cfg.Store, cfg.AdminTokenFile, log); err != nil {
		return err
	}
	stats, bootStats, tftpMetrics := &counter.Set{}, &counter.Set{}, &tftp.Metrics{}
	dcfg := cfg.DHCP
	dcfg.Log = log.With("service", "dhcp")
	if dcfg.Handler == nil {
		dcfg.Handler = &dhcp.Handler{}
	}
	dcfg.Handler.Leases, dcfg.Handler.Stats, dcfg.Handler.Files = fl, stats, cfg.BootFiles
	if dcfg.Handler.HTTPPort == 0 {
		dcfg.Handler.HTTPPort = 8080
	}
	dsrv, err := dhcp.NewServer(dcfg)
	if err != nil {
		return err
	}
	tcfg := cfg.TFTP
	tcfg.Log = log.With("service", "tftp")
	tcfg.Metrics = tftpMetrics
	tcfg.Done = fl.NoteTransfer
	tsrv, err := tftp.NewServer(tcfg)
	if err != nil {
		return err
	}
	bcfg := cfg.Boot
	bcfg.Fleet, bcfg.Log, bcfg.Stats = fl, log.With("service", "boot"), bootStats
	bsrv, err := boot.NewServer(bcfg)
	if err != nil {
		return err
	}

	// Operators, the UI and rollouts act on machines through the fleet, or,
	// when servers divide the pods, through the cluster, which reaches the
	// owner of each machine's pod.
	var anyPod interface {
		rollout.Fleet
		ui.Fleet
	} = fl
	// once wraps the work that runs on one server of several: the leader's.
	once := func(_ string, run func(context.Context) error) func(context.Context) error { return run }
	var member *cluster.Cluster
	if shared {
		cst, ok := cfg.Store.(cluster.Store)
		if !ok {
			return errors.New("this store cannot be shared by several servers: use PostgreSQL")
		}
		ccfg := cfg.Cluster
		ccfg.Store, ccfg.Fleet, ccfg.Log = cst, fl, log.With("service", "cluster")
		member = cluster.New(ccfg)
		anyPod, once = member, member.WhileLeader
	}
	if cfg.Agents {
		ast, ok := cfg.Store.(agentStore)
		if member == nil || !ok {
			return errors.New("pod agents need a server that owns its pods: run it with a cluster name (drover serve --agents does)")
		}
		cfg.API.Agents = &agents{st: ast, member: member, fl: fl}
	}
	runner := rollout.New(rollout.Config{Store: cfg.Store, Fleet: anyPod, Log: log.With("service", "rollout")})
	acfg := cfg.API
	acfg.Store, acfg.Fleet, acfg.Log, acfg.Rollouts = cfg.Store, apiFleet{anyPod, fl}, log.With("service", "api"), runner
	if member != nil {
		acfg.Rollouts = leaderRollouts{runner, member}
	}
	acfg.Metrics = append(acfg.Metrics, runner.Collectors()...)
	services := []func(context.Context) error{once("rollouts", runner.Run)}
	if member != nil {
		services = append(services, member.Run)
	}
	if cfg.Follow.Repo != "" {
		gc := cfg.Follow
		gc.Commits, gc.Rollouts, gc.Log = cfg.Store, runner, log.With("service", "gitops")
		gc.Applied = func() *zone.Design { return fl.Index().Design() }
		gc.Apply = func(ctx context.Context, d *zone.Design, commit string, audit *store.AuditEntry) (*store.Revision, *zone.Plan, error) {
			rev, p, err := store.Apply(ctx, cfg.Store, store.ApplyRequest{Design: d, Commit: commit, Actor: audit.Actor, At: audit.At, Audit: audit})
			if err != nil {
				return nil, nil, err
			}
			return rev, p, fl.Sync(ctx, &fleet.Applied{Revision: rev, Index: zone.NewIndex(d)})
		}
		if cfg.PowerSecrets != nil {
			gc.Check = cfg.PowerSecrets.Check
		}
		follower := gitops.New(gc)
		acfg.GitOps = follower
		services = append(services, once("git follower", follower.Run))
	}
	ready := []<-chan struct{}{dsrv.Ready(), tsrv.Ready(), bsrv.Ready()}
	if len(cfg.EventSinks) > 0 {
		disp := events.New(events.Config{Source: cfg.Store, Sinks: cfg.EventSinks, Log: log.With("service", "events")})
		acfg.Metrics = append(acfg.Metrics, disp.Collectors()...)
		services = append(services, once("events", disp.Run))
	}
	if cfg.DNS.Addr != "" {
		ncfg := cfg.DNS
		ncfg.Designs, ncfg.Log = fl, log.With("service", "dns")
		ncfg.AppliedAt = func(ctx context.Context) (time.Time, error) {
			rev, err := cfg.Store.CurrentRevision(ctx)
			if err != nil {
				return time.Time{}, err
			}
			return rev.AppliedAt, nil
		}
		ns := nameserver.New(ncfg)
		acfg.DNS = ns
		acfg.Metrics = append(acfg.Metrics, ns.Collectors()...)
		services = append(services, ns.Run)
		ready = append(ready, ns.Ready())
	}
	acfg.Metrics = append(acfg.Metrics, dhcp.Collector(stats), tftpMetrics, boot.Collector(bootStats), fl.Collector())
	if ctl != nil {
		acfg.Metrics = append(acfg.Metrics, ctl.Collectors()...)
		acfg.CheckDesign = cfg.PowerSecrets.Check
	}
	web, err := ui.New(ui.Config{Store: cfg.Store, Fleet: anyPod, Rollouts: acfg.Rollouts, RoleRank: api.RoleRank, Secure: acfg.TLSCert != "", Log: log.With("service", "ui")})
	if err != nil {
		return err
	}
	acfg.UI = web
	asrv := api.New(acfg)

	// Listeners stop first; the inventory stops last so that every change they
	// queued is written before Run returns.
	fleetCtx, stopFleet := context.WithCancel(context.Background())
	fleetDone := make(chan error, 1)
	go func() { fleetDone <- fl.Run(fleetCtx) }()

	services = append(services, dsrv.Run, tsrv.Run, bsrv.Run, asrv.Run, func(ctx context.Context) error {
		return follow(ctx, fl, cfg.ReloadInterval, log)
	})
	err = service.Group(ctx, append(ready, asrv.Ready()), func() {
		log.Info("drover serving", "dhcp", dsrv.Addr(), "tftp", tsrv.Addr(), "http", bsrv.Addr(), "api", asrv.Addr())
		if cfg.Started != nil {
			cfg.Started(Listeners{DHCP: dsrv.Addr().String(), TFTP: tsrv.Addr().String(), HTTP: bsrv.Addr().String(), API: asrv.Addr().String()})
		}
	}, services...)
	stopFleet()
	err = errors.Join(err, <-fleetDone)
	snap := stats.Snapshot()
	attrs := []any{}
	for _, k := range counter.Names(snap) {
		attrs = append(attrs, k, snap[k])
	}
	log.Info("drover stopped", attrs...)
	return err
}

// firstAdminToken creates an admin token when the store has none and writes
// its secret to a file only its owner can read; the secret is never logged.
func firstAdminToken(ctx context.Context, st store.Store, path string, log *slog.Logger) error {
	ts, err := st.Tokens(ctx)
	if err != nil || len(ts) > 0 {
		return err
	}
	if path == "" {
		return errors.New("no operator tokens exist and no --admin-token-file was given to write the first one to")
	}
	token := api.NewSecret()
	now := time.Now()
	t := &store.Token{Name: "admin", Role: api.RoleAdmin, Hash: secret.Hash(token), Created: now}
	// The secret is on disk before its hash is in the database (never a token
	// nobody has), under a name of its own until then: servers sharing a new
	// database that start together with one state directory race for the
	// token, and the file must end up holding the one that was created.
	tmp := path + "." + secret.Hex(6) + ".tmp"
	if err := os.WriteFile(tmp, []byte(token+"\n"), 0o600); err != nil {
		return fmt.Errorf("write the first admin token: %w", err)
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		os.Remove(tmp)
		return err
	}
	audit := &store.AuditEntry{At: now, Actor: "drover", Action: "token-create", Target: "admin", Outcome: "ok", Detail: "first start: admin token written to " + path}
	if err := st.CreateToken(ctx, t, audit); err != nil {
		os.Remove(tmp)
		if ts, terr := st.Tokens(ctx); terr == nil && len(ts) > 0 {
			return nil // another server created it
		}
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write the first admin token: %w (it is in %s)", err, tmp)
	}
	log.Warn("first start: created an admin token; keep it safe", "file", path)
	return nil
}

// serverHolder is how a server names itself in the writer lock.
const serverHolder = "drover serve"

// LockWriter takes the store's writer lock for a server. It waits a little
// for a short-lived holder (a CLI apply carrying out its machine changes) and
// refuses at once when the holder is another server, unless standby is set:
// then it waits for as long as the other server holds the lock, and returns
// when that one stops or dies.
func LockWriter(ctx context.Context, st store.Store, log *slog.Logger, standby bool) (func(), error) {
	deadline := time.Now().Add(15 * time.Second)
	var waitingFor string
	for {
		release, err := st.LockWriter(serverHolder)
		var busy *store.WriterBusyError
		if err == nil {
			if waitingFor != "" {
				log.Warn("taking over: the active server is gone", "was", waitingFor)
			}
			return release, nil
		}
		server := errors.As(err, &busy) && strings.HasPrefix(busy.Holder, serverHolder)
		switch {
		case standby && server:
			if busy.Holder != waitingFor {
				log.Info("standing by: another server is active; taking over when it stops", "active", busy.Holder)
				waitingFor = busy.Holder
			}
		case busy == nil || server || time.Now().After(deadline):
			hint := "one drover serve per database: stop the other one first"
			if server {
				hint = "one active drover serve per database: stop the other one, start this one with --standby, or run every server with --shared"
			}
			return nil, fmt.Errorf("%w (%s)", err, hint)
		default:
			log.Info("waiting for the database's writer lock", "holder", busy.Holder)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// follow switches the inventory to each newly applied design.
func follow(ctx context.Context, fl *fleet.Fleet, every time.Duration, log *slog.Logger) error {
	t := time.NewTicker(every)
	defer t.Stop()
	var lastErr string
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := fl.Sync(ctx, nil); err != nil {
			if err.Error() != lastErr && ctx.Err() == nil {
				log.Error("new design revision not loaded; still serving the previous one", "revision", fl.Revision(), "err", err)
			}
			lastErr = err.Error()
			continue
		}
		lastErr = ""
	}
}

// bootstrap applies the followed repository's head commit whole when the
// database has no design yet: nothing runs that a test zone could protect.
func bootstrap(ctx context.Context, cfg Config, log *slog.Logger) error {
	if _, err := cfg.Store.CurrentRevision(ctx); !errors.Is(err, store.ErrNotFound) {
		return err
	}
	gc := cfg.Follow
	gc.Commits, gc.Log = cfg.Store, log.With("service", "gitops")
	gc.Applied = func() *zone.Design { return nil }
	gc.Apply = func(ctx context.Context, d *zone.Design, commit string, audit *store.AuditEntry) (*store.Revision, *zone.Plan, error) {
		return store.Apply(ctx, cfg.Store, store.ApplyRequest{Design: d, Commit: commit, Actor: audit.Actor, At: audit.At, Audit: audit})
	}
	if cfg.PowerSecrets != nil {
		gc.Check = cfg.PowerSecrets.Check
	}
	if err := gitops.New(gc).Sync(ctx); err != nil {
		return err
	}
	if _, err := cfg.Store.CurrentRevision(ctx); errors.Is(err, store.ErrNotFound) {
		cs, _ := cfg.Store.Commits(ctx)
		if len(cs) > 0 && len(cs[0].Problems) > 0 {
			return fmt.Errorf("the head commit %s of %s is not a valid design, and nothing is applied yet:\n%s", cs[0].Commit, cfg.Follow.Repo, strings.Join(cs[0].Problems, "\n"))
		}
		return fmt.Errorf("nothing was applied from %s", cfg.Follow.Repo)
	}
	return nil
}

// apiFleet is the API's fleet: actions reach any pod, a design is synced here.
type apiFleet struct {
	anyPod interface {
		rollout.Fleet
		ui.Fleet
	}
	own *fleet.Fleet
}

func (a apiFleet) Operate(ctx context.Context, op fleet.Op) (machine.Machine, error) {
	return a.anyPod.Operate(ctx, op)
}

func (a apiFleet) PowerAction(ctx context.Context, op fleet.PowerOp) (fleet.PowerResult, error) {
	return a.anyPod.PowerAction(ctx, op)
}

func (a apiFleet) Index() *zone.Index { return a.own.Index() }

func (a apiFleet) Sync(ctx context.Context, latest *fleet.Applied) error {
	return a.own.Sync(ctx, latest)
}

// leaderRollouts starts and steers rollouts on the leader only, where the
// runner runs: another server refuses, naming the leader.
type leaderRollouts struct {
	runner *rollout.Runner
	member *cluster.Cluster
}

func (l leaderRollouts) Plan(q rollout.Request) (rollout.Schedule, error) { return l.runner.Plan(q) }

func (l leaderRollouts) lead() error {
	if lead, _ := l.member.Leader(); lead {
		return nil
	}
	return fmt.Errorf("%w: rollouts run on the leading server; send this to %s", api.ErrElsewhere, l.member.LeaderAPI())
}

func (l leaderRollouts) Start(ctx context.Context, q rollout.Request, actor string, audit store.AuditEntry) (*store.Rollout, rollout.Schedule, error) {
	if err := l.lead(); err != nil {
		return nil, rollout.Schedule{}, err
	}
	return l.runner.Start(ctx, q, actor, audit)
}

func (l leaderRollouts) Pause(ctx context.Context, id int64, actor, reason string, audit store.AuditEntry) (*store.Rollout, error) {
	if err := l.lead(); err != nil {
		return nil, err
	}
	return l.runner.Pause(ctx, id, actor, reason, audit)
}

func (l leaderRollouts) Resume(ctx context.Context, id int64, actor string, audit store.AuditEntry) (*store.Rollout, error) {
	if err := l.lead(); err != nil {
		return nil, err
	}
	return l.runner.Resume(ctx, id, actor, audit)
}

func (l leaderRollouts) Abort(ctx context.Context, id int64, actor, reason string, audit store.AuditEntry) (*store.Rollout, error) {
	if err := l.lead(); err != nil {
		return nil, err
	}
	return l.runner.Abort(ctx, id, actor, reason, audit)
}

// Cabling checks the machines of this server's pods against the design.
func (a apiFleet) Cabling() []cabling.Report { return a.own.Cabling() }
