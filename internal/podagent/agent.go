// Package podagent is `drover agent`: it serves DHCP, TFTP and machine HTTP
// for one pod from a box inside the pod, so the pod keeps booting and
// installing when the controller is out of reach.
//
// The agent runs the same inventory, DHCP, TFTP and boot services as a
// server, over a database of its own (SQLite in its state directory). On its
// first start it attaches to the controller, which hands it the pod (the
// servers stop answering for it and can no longer write its machines) and a
// snapshot of the pod's machines and leases. From then on the agent decides
// for the pod's machines, and its database is the durable queue of what the
// controller has not acknowledged yet: every second it sends the machine
// rows and leases that changed and the timeline entries after the last one
// the controller holds, and gets back the applied design's revision and the
// operator actions queued for the pod.
package podagent

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/drover/drover/internal/api"
	"github.com/drover/drover/internal/boot"
	"github.com/drover/drover/internal/cluster"
	"github.com/drover/drover/internal/counter"
	"github.com/drover/drover/internal/dhcp"
	"github.com/drover/drover/internal/fleet"
	"github.com/drover/drover/internal/httpserve"
	"github.com/drover/drover/internal/service"
	"github.com/drover/drover/internal/store"
	"github.com/drover/drover/internal/tftp"
	"github.com/drover/drover/internal/zone"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Config is everything `drover agent` runs with.
type Config struct {
	Controller    string // the controller's operator API URL
	ArtifactsFrom string // the controller's machine HTTP URL, where artifacts missing here come from
	Token         string // an agent token of Pod
	Pod           string // zone/pod
	StateDir      string // the agent's database and artifact cache
	DHCP          dhcp.Config
	BootFiles     dhcp.BootFiles
	TFTP          tftp.Config
	Boot          boot.Config // ArtifactRoot defaults to StateDir/artifacts
	// Every is how often the agent reports (default 1 s); after Offline
	// (default 10 s) without an answer the controller counts as unreachable
	// and machines the agent has not seen wait for it.
	Every, Offline time.Duration
	HTTP           *http.Client
	// MetricsListen, when set, serves Prometheus metrics (/metrics) and
	// /healthz there: the pod's DHCP, TFTP, boot and inventory counters and
	// the agent's own (reports, queue, controller reachable).
	MetricsListen string
	Log           *slog.Logger
	// Started, if set, is called once every listener is ready.
	Started func(Listeners)
}

// Listeners are the addresses the agent's services listen on.
type Listeners struct{ DHCP, TFTP, HTTP string }

// localOwner owns the pod in the agent's own database.
const localOwner = "agent"

// state is what the agent keeps beside its database.
type state struct {
	Pod      string `json:"pod"`
	Epoch    int64  `json:"epoch"`    // the controller's epoch for this agent
	Revision int64  `json:"revision"` // the controller's design revision served here
	Cursor   int64  `json:"cursor"`   // the last local timeline entry the controller holds
}

// Agent is one running pod agent.
type Agent struct {
	cfg   Config
	st    *store.DB
	c     *client
	fl    *fleet.Fleet
	path  string // of the state file
	state state
	// lastOK is when the controller last answered (unix nanoseconds).
	lastOK atomic.Int64
	// reports counts reports by outcome; queued is the timeline entries the
	// controller did not hold at the last count.
	reports *prometheus.CounterVec
	queued  atomic.Int64
	// sent is, per machine id, the hash of the row the controller last took;
	// leases likewise, as one hash and the addresses.
	sent       map[int64][32]byte
	leaseHash  [32]byte
	leaseAddrs map[netip.Addr]bool
	// finished are outcomes of queued actions not yet taken by the controller.
	finished map[int64]api.AgentOpResult
	// catalogue is the hash of the artifact catalogue copied here.
	catalogue string
	fillMu    sync.Mutex
	filling   map[string]*sync.Mutex // one fetch per path at a time
}

// Run serves the pod until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Every <= 0 {
		cfg.Every = time.Second
	}
	if cfg.Offline <= 0 {
		cfg.Offline = 10 * time.Second
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Boot.ArtifactRoot == "" {
		cfg.Boot.ArtifactRoot = filepath.Join(cfg.StateDir, "artifacts")
	}
	if err := os.MkdirAll(cfg.Boot.ArtifactRoot, 0o755); err != nil {
		return fmt.Errorf("agent state %s: %w", cfg.StateDir, err)
	}
	st, err := store.OpenSQLite(ctx, filepath.Join(cfg.StateDir, "agent.db"))
	if err != nil {
		return err
	}
	defer st.Close()
	release, err := st.LockWriter("drover agent")
	if err != nil {
		return fmt.Errorf("%w (one agent per state directory)", err)
	}
	defer release()
	// Files take as long as they take; API calls that hang count as failures.
	files := &http.Client{Transport: cfg.HTTP.Transport}
	a := &Agent{cfg: cfg, st: st, c: &client{base: cfg.Controller, token: cfg.Token, http: cfg.HTTP, files: files},
		path: filepath.Join(cfg.StateDir, "agent.json"), sent: map[int64][32]byte{}, finished: map[int64]api.AgentOpResult{},
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "drover_agent_reports_total", Help: "Reports to the controller by outcome (ok, failed)."}, []string{"outcome"})}
	if err := a.load(); err != nil {
		return err
	}
	switch a.state.Pod {
	case "":
		if err := a.attach(ctx); err != nil {
			return fmt.Errorf("first start: the agent takes its pod from the controller, and that failed: %w", err)
		}
	case cfg.Pod:
		cfg.Log.Info("serving the pod from the local database", "pod", cfg.Pod, "controller_revision", a.state.Revision)
	default:
		return fmt.Errorf("the state directory %s belongs to the agent of pod %s, not %s", cfg.StateDir, a.state.Pod, cfg.Pod)
	}
	return a.serve(ctx)
}

// load reads the state file, if any.
func (a *Agent) load() error {
	b, err := os.ReadFile(a.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &a.state); err != nil {
		return fmt.Errorf("agent state %s: %w", a.path, err)
	}
	return nil
}

// save writes the state file whole or not at all.
func (a *Agent) save() error {
	b, err := json.MarshalIndent(a.state, "", "  ")
	if err != nil {
		return err
	}
	tmp := a.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, a.path)
}

// attach takes the pod from the controller and starts the local database from its snapshot.
func (a *Agent) attach(ctx context.Context) error {
	var at struct {
		Epoch int64 `json:"epoch"`
	}
	if err := a.c.call(ctx, http.MethodPost, "/api/v1/agent/attach", nil, &at); err != nil {
		return err
	}
	var snap api.AgentSnapshot
	if err := a.c.call(ctx, http.MethodGet, "/api/v1/agent/snapshot", nil, &snap); err != nil {
		return err
	}
	rev, err := a.applyDesign(ctx, snap.Design)
	if err != nil {
		return err
	}
	err = a.st.Update(ctx, func(tx store.Tx) error {
		for _, m := range snap.Machines {
			if err := tx.PutMachine(ctx, m.Row()); err != nil {
				return err
			}
		}
		if err := tx.PutLeases(ctx, snap.Leases...); err != nil {
			return err
		}
		// The rows come from the controller as of its revision: nothing of it is left to carry out here.
		return tx.SetMachinesRevision(ctx, rev)
	})
	if err != nil {
		return fmt.Errorf("store the pod's snapshot: %w", err)
	}
	last, err := a.st.Entries(ctx, 0, 1<<30)
	if err != nil {
		return err
	}
	a.state = state{Pod: a.cfg.Pod, Epoch: at.Epoch, Revision: snap.Design.ID}
	if n := len(last); n > 0 {
		a.state.Cursor = last[n-1].ID
	}
	if err := a.save(); err != nil {
		return fmt.Errorf("agent state: %w", err)
	}
	a.cfg.Log.Info("attached: the pod is served here", "pod", a.cfg.Pod, "epoch", at.Epoch, "machines", len(snap.Machines), "controller_revision", snap.Design.ID)
	return nil
}

// applyDesign stores a design revision of the controller in the local
// database and returns its local id.
func (a *Agent) applyDesign(ctx context.Context, d api.AgentDesign) (int64, error) {
	zd, err := zone.Parse(d.Sources)
	if err != nil {
		return 0, fmt.Errorf("design revision %d of the controller: %w", d.ID, err)
	}
	rev := &store.Revision{Hash: zd.Hash, AppliedBy: "drover agent", AppliedAt: time.Now(), Summary: fmt.Sprintf("revision %d of the controller", d.ID), Sources: zd.Source}
	if _, err := a.st.ApplyDesign(ctx, rev, zd.Slots, nil); err != nil {
		return 0, err
	}
	return rev.ID, nil
}

// serve runs the pod's services and the report loop.
func (a *Agent) serve(ctx context.Context) error {
	cfg, log := a.cfg, a.cfg.Log
	epoch, err := a.st.AssignPod(ctx, cfg.Pod, localOwner)
	if err != nil {
		return err
	}
	fl, err := fleet.New(ctx, fleet.Config{Store: idStore{a.st, a}, Log: log, Owner: localOwner})
	if err != nil {
		return err
	}
	a.fl = fl
	dcfg := cfg.DHCP
	dcfg.Log = log.With("service", "dhcp")
	if dcfg.Handler == nil {
		dcfg.Handler = &dhcp.Handler{}
	}
	dcfg.Handler.Leases, dcfg.Handler.Files = gate{fl, a.online}, cfg.BootFiles
	if dcfg.Handler.HTTPPort == 0 {
		dcfg.Handler.HTTPPort = 8080
	}
	if dcfg.Handler.Stats == nil {
		dcfg.Handler.Stats = &counter.Set{}
	}
	bootStats := &counter.Set{}
	dsrv, err := dhcp.NewServer(dcfg)
	if err != nil {
		return err
	}
	tcfg := cfg.TFTP
	tcfg.Log = log.With("service", "tftp")
	tcfg.Roots = append(tcfg.Roots, cfg.Boot.ArtifactRoot)
	if tcfg.Metrics == nil {
		tcfg.Metrics = &tftp.Metrics{}
	}
	tcfg.Done = fl.NoteTransfer
	tsrv, err := tftp.NewServer(tcfg)
	if err != nil {
		return err
	}
	bcfg := cfg.Boot
	bcfg.Fleet, bcfg.Log, bcfg.Fill, bcfg.Catalogue, bcfg.Stats = fl, log.With("service", "boot"), a.fill, a.st, bootStats
	bsrv, err := boot.NewServer(bcfg)
	if err != nil {
		return err
	}
	fleetCtx, stopFleet := context.WithCancel(context.Background())
	fleetDone := make(chan error, 1)
	go func() { fleetDone <- fl.Run(fleetCtx) }()
	if err := fl.Acquire(ctx, map[string]int64{cfg.Pod: epoch}); err != nil {
		stopFleet()
		<-fleetDone
		return err
	}
	pctx, stopPrefetch := context.WithCancel(ctx)
	defer stopPrefetch()
	go a.prefetch(pctx)
	services := []func(context.Context) error{dsrv.Run, tsrv.Run, bsrv.Run, a.reportLoop}
	if cfg.MetricsListen != "" {
		reg := prometheus.NewRegistry()
		reg.MustRegister(dhcp.Collector(dcfg.Handler.Stats), tcfg.Metrics, boot.Collector(bootStats), fl.Collector(), a.reports,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "drover_agent_controller_reachable", Help: "1 when the controller answered the agent's last report within --offline-after."},
				func() float64 { return map[bool]float64{true: 1}[a.online()] }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "drover_agent_queued_entries", Help: "Timeline entries the controller did not hold at the agent's last report."},
				func() float64 { return float64(a.queued.Load()) }))
		services = append(services, func(ctx context.Context) error { return serveMetrics(ctx, cfg.MetricsListen, reg) })
	}
	err = service.Group(ctx, []<-chan struct{}{dsrv.Ready(), tsrv.Ready(), bsrv.Ready()}, func() {
		log.Info("drover agent serving", "pod", cfg.Pod, "dhcp", dsrv.Addr(), "tftp", tsrv.Addr(), "http", bsrv.Addr())
		if cfg.Started != nil {
			cfg.Started(Listeners{DHCP: dsrv.Addr().String(), TFTP: tsrv.Addr().String(), HTTP: bsrv.Addr().String()})
		}
	}, services...)
	stopFleet()
	err = errors.Join(err, <-fleetDone)
	// What the fleet wrote last goes up now if the controller answers; if
	// not, it stays queued in the database for the next start.
	rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.report(rctx); err != nil {
		log.Warn("stopped with reports still queued; they go up at the next start", "err", err)
	}
	return err
}

// serveMetrics serves the agent's metrics until ctx ends.
func serveMetrics(ctx context.Context, addr string, reg *prometheus.Registry) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("agent metrics listen %s: %w", addr, err)
	}
	return httpserve.Serve(ctx, &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, ln, "", "")
}

// online reports whether the controller answered recently.
func (a *Agent) online() bool {
	return time.Since(time.Unix(0, a.lastOK.Load())) < a.cfg.Offline
}

// reportLoop reports every Every, at once again while a backlog drains.
func (a *Agent) reportLoop(ctx context.Context) error {
	t := time.NewTicker(a.cfg.Every)
	defer t.Stop()
	var lastErr string
	for {
		err := a.report(ctx)
		switch {
		case errors.Is(err, errFenced):
			return err
		case err != nil && ctx.Err() == nil:
			if err.Error() != lastErr {
				a.cfg.Log.Warn("controller unreachable: serving known machines from the local database, queueing reports", "err", err)
			}
			lastErr = err.Error()
		case err == nil && lastErr != "":
			a.cfg.Log.Info("controller reachable again: queued reports sent")
			lastErr = ""
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// reportBatch bounds the timeline entries of one report.
const reportBatch = 2000

// report sends what changed since the controller's last answer, until the
// queue is empty, and does what the answer asks.
func (a *Agent) report(ctx context.Context) error {
	for {
		entries, err := a.st.Entries(ctx, a.state.Cursor, reportBatch)
		if err != nil {
			return err
		}
		rep := &api.AgentReport{Epoch: a.state.Epoch, Entries: entries}
		ms, err := a.st.AllMachines(ctx)
		if err != nil {
			return err
		}
		hashes := map[int64][32]byte{}
		for _, m := range ms {
			am := api.ToAgent(m)
			h := hashOf(am)
			if a.sent[m.ID] != h {
				rep.Machines = append(rep.Machines, am)
				hashes[m.ID] = h
			}
		}
		ls, err := a.st.Leases(ctx)
		if err != nil {
			return err
		}
		lh := hashOf(ls)
		addrs := map[netip.Addr]bool{}
		if lh != a.leaseHash {
			rep.Leases = ls
			for _, l := range ls {
				addrs[l.Addr] = true
			}
			for addr := range a.leaseAddrs {
				if !addrs[addr] {
					rep.Gone = append(rep.Gone, addr)
				}
			}
		}
		if done, err := a.st.MachinesRevision(ctx); err == nil {
			if latest, err := a.st.LatestRevisionID(ctx); err == nil && done >= latest {
				rep.Revision = a.state.Revision
			}
		}
		if n := len(entries); n > 0 {
			a.queued.Store(entries[n-1].ID - a.state.Cursor)
		}
		var reply api.AgentReply
		if err := a.c.call(ctx, http.MethodPost, "/api/v1/agent/report", rep, &reply); err != nil {
			a.reports.WithLabelValues("failed").Inc()
			return err
		}
		a.reports.WithLabelValues("ok").Inc()
		a.lastOK.Store(time.Now().UnixNano())
		for id, h := range hashes {
			a.sent[id] = h
		}
		if lh != a.leaseHash {
			a.leaseHash, a.leaseAddrs = lh, addrs
		}
		if n := len(entries); n > 0 && reply.Acked >= entries[n-1].ID {
			a.queued.Store(0)
		}
		if reply.Acked != a.state.Cursor {
			a.state.Cursor = reply.Acked
			if err := a.save(); err != nil {
				return err
			}
		}
		if reply.Revision > a.state.Revision {
			if err := a.followDesign(ctx); err != nil {
				a.cfg.Log.Error("new design revision not served here yet", "revision", reply.Revision, "err", err)
			}
		}
		if reply.Catalogue != a.catalogue {
			if err := a.copyCatalogue(ctx); err != nil {
				a.cfg.Log.Error("artifact catalogue not copied", "err", err)
			} else {
				a.catalogue = reply.Catalogue
			}
		}
		a.carryOut(ctx, reply.Ops)
		if len(entries) < reportBatch {
			return nil
		}
	}
}

func hashOf(v any) [32]byte {
	b, _ := json.Marshal(v)
	return sha256.Sum256(b)
}

// followDesign serves the controller's newest design revision and carries
// out its effects on the pod's machines.
func (a *Agent) followDesign(ctx context.Context) error {
	var d api.AgentDesign
	if err := a.c.call(ctx, http.MethodGet, "/api/v1/agent/design", nil, &d); err != nil {
		return err
	}
	if _, err := a.applyDesign(ctx, d); err != nil {
		return err
	}
	if err := a.fl.Sync(ctx, nil); err != nil {
		return err
	}
	a.state.Revision = d.ID
	if err := a.save(); err != nil {
		return err
	}
	a.cfg.Log.Info("serving a new design revision", "controller_revision", d.ID)
	go a.prefetch(ctx)
	return nil
}

// carryOut does the operator actions queued for the pod and sends their outcomes.
func (a *Agent) carryOut(ctx context.Context, ops []store.MachineOp) {
	for i := range ops {
		op := ops[i]
		res, ok := a.finished[op.ID]
		if !ok {
			if _, err := cluster.Execute(ctx, a.fl, &op, false); errors.Is(err, fleet.ErrStopped) || ctx.Err() != nil {
				return
			}
			res = api.AgentOpResult{ID: op.ID, Result: op.Result, ErrorKind: op.ErrorKind, Error: op.Error}
			a.finished[op.ID] = res
		}
		if err := a.c.call(ctx, http.MethodPost, fmt.Sprintf("/api/v1/agent/ops/%d", op.ID), res, nil); err != nil {
			return
		}
		delete(a.finished, op.ID)
	}
}

// copyCatalogue copies the controller's artifact catalogue (the images
// profiles install) into the local database and caches every image a
// channel points at.
func (a *Agent) copyCatalogue(ctx context.Context) error {
	var list []store.Artifact
	if err := a.c.call(ctx, http.MethodGet, "/api/v1/agent/artifacts", nil, &list); err != nil {
		return err
	}
	var images []string
	for _, x := range list {
		if err := a.st.AddArtifact(ctx, x, ""); err != nil {
			return err
		}
		for _, ch := range x.Channels {
			if err := a.st.Promote(ctx, x.Name, x.Version, ch); err != nil {
				return err
			}
		}
		if len(x.Channels) > 0 {
			images = append(images, "sha256/"+x.SHA256)
		}
	}
	go func() {
		for _, rel := range images {
			if err := a.fill(context.WithoutCancel(ctx), rel); err != nil {
				a.cfg.Log.Warn("image not cached", "path", rel, "err", err)
			}
		}
	}()
	return nil
}

// fill fetches an artifact missing from the cache from the controller.
func (a *Agent) fill(ctx context.Context, rel string) error {
	if a.cfg.ArtifactsFrom == "" {
		return errors.New("no --artifacts-from to fetch it from")
	}
	a.fillMu.Lock()
	if a.filling == nil {
		a.filling = map[string]*sync.Mutex{}
	}
	mu := a.filling[rel]
	if mu == nil {
		mu = &sync.Mutex{}
		a.filling[rel] = mu
	}
	a.fillMu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	dst := filepath.Join(a.cfg.Boot.ArtifactRoot, filepath.FromSlash(rel))
	if _, err := os.Stat(dst); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".fetch-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	ferr := a.c.fetch(ctx, strings.TrimRight(a.cfg.ArtifactsFrom, "/")+"/artifacts/"+rel, tmp)
	if cerr := tmp.Close(); ferr == nil {
		ferr = cerr
	}
	if ferr != nil {
		return fmt.Errorf("fetch artifact %s: %w", rel, ferr)
	}
	os.Chmod(tmp.Name(), 0o644)
	return os.Rename(tmp.Name(), dst)
}

// prefetch fills the cache with the kernels and initrds of the design's
// profiles, so that installs go on while the controller is out of reach.
func (a *Agent) prefetch(ctx context.Context) {
	if a.cfg.ArtifactsFrom == "" {
		return
	}
	zoneName, _, _ := strings.Cut(a.cfg.Pod, "/")
	for _, z := range a.fl.Index().Design().Zones {
		if z.Name != zoneName {
			continue
		}
		for _, p := range z.Profiles {
			for _, f := range append([]string{p.Kernel}, p.Initrds...) {
				if f == "" || strings.Contains(f, "://") || !filepath.IsLocal(f) {
					continue
				}
				if err := a.fill(ctx, f); err != nil && ctx.Err() == nil {
					a.cfg.Log.Warn("artifact not cached", "path", f, "err", err)
				}
			}
		}
	}
}

// idStore is the agent's database, whose new machines take their ids from
// the controller's, so that they never clash with another pod's.
type idStore struct {
	*store.DB
	a *Agent
}

func (s idStore) ReserveIDs(ctx context.Context, _ string, n int) (int64, error) {
	var r struct {
		First int64 `json:"first"`
	}
	if err := s.a.c.call(ctx, http.MethodPost, "/api/v1/agent/ids", map[string]int{"n": n}, &r); err != nil {
		return 0, fmt.Errorf("new machines take their ids from the controller: %w", err)
	}
	return r.First, nil
}

// gate is the agent's DHCP inventory: while the controller is out of reach,
// machines the agent has not seen wait for it.
type gate struct {
	*fleet.Fleet
	online func() bool
}

func (g gate) wait(mac string) error {
	if g.online() || g.Knows(mac) {
		return nil
	}
	return &fleet.Refusal{Reason: "the controller is out of reach: a machine this agent has not seen waits for it", Silent: true}
}

func (g gate) Offer(ctx context.Context, r fleet.Request) (fleet.Assignment, error) {
	if err := g.wait(r.MAC); err != nil {
		return fleet.Assignment{}, err
	}
	return g.Fleet.Offer(ctx, r)
}

func (g gate) Ack(ctx context.Context, r fleet.Request) (fleet.Assignment, error) {
	if err := g.wait(r.MAC); err != nil {
		return fleet.Assignment{}, err
	}
	return g.Fleet.Ack(ctx, r)
}
