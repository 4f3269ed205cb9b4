// Package api is the operators' HTTP surface: a JSON REST API under /api/v1
// with bearer-token authentication, roles, an audit log written in the same
// transaction as each change, a timeline stream, an OpenAPI document, and
// Prometheus metrics. It listens apart from the machine-facing services.
package api

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/drover/drover/internal/cabling"
	"github.com/drover/drover/internal/dnszone"
	"github.com/drover/drover/internal/monitoring"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/drover/drover/internal/fleet"
	"github.com/drover/drover/internal/httpserve"
	"github.com/drover/drover/internal/machine"
	"github.com/drover/drover/internal/secret"
	"github.com/drover/drover/internal/store"
	"github.com/drover/drover/internal/zone"
)

//go:embed openapi.json
var openAPI []byte

// Roles, each allowed what the ones before it are.
const (
	RoleViewer   = "viewer"   // read
	RoleOperator = "operator" // machine actions
	RoleAdmin    = "admin"    // designs and tokens
)

// RoleRank orders roles: viewer 1, operator 2, admin 3, anything else 0.
func RoleRank(r string) int { return roleRank(r) }

func roleRank(r string) int {
	switch r {
	case RoleViewer:
		return 1
	case RoleOperator:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// Fleet is what the API needs from the running inventory.
type Fleet interface {
	Operate(ctx context.Context, op fleet.Op) (machine.Machine, error)
	PowerAction(ctx context.Context, op fleet.PowerOp) (fleet.PowerResult, error)
	Index() *zone.Index
	// Sync serves the newest applied revision and carries out its effects on machines.
	Sync(ctx context.Context, latest *fleet.Applied) error
	// Cabling checks what the machines' NICs heard over LLDP against the design.
	Cabling() []cabling.Report
}

// Config configures the API server.
type Config struct {
	Listen    string // TCP address (default 127.0.0.1:9090)
	TLSCert   string // serve TLS when both are set
	TLSKey    string
	Store     store.Store
	Fleet     Fleet
	DesignDir string // where uploaded designs are kept (their templates are rendered from there)
	// CheckDesign checks what a design needs of this server beyond its own
	// validity (BMC credentials for its power drivers); nil: nothing.
	CheckDesign func(*zone.Design) error
	// Rollouts is the rollout runner; nil: rollout actions answer 503.
	Rollouts Rollouts
	// GitOps is the design repository follower; nil: approvals answer 409.
	GitOps GitOps
	// UI, when set, serves every path outside /api/, /healthz and /metrics (the web UI).
	UI http.Handler
	// Monitoring answers `up` from the Prometheus that scrapes the machines
	// (serve --prometheus); nil: the monitoring check answers 503.
	Monitoring interface {
		Up(ctx context.Context) ([]monitoring.Sample, error)
	}
	// DNS is the authoritative nameserver (serve --dns); nil: the DNS zone
	// calls answer 503.
	DNS interface {
		Zones() *dnszone.Set
	}
	// Agents is the controller's side of pod agents; nil: agent calls answer 409.
	Agents Agents
	// Metrics are the services' own collectors, served at /metrics.
	Metrics []prometheus.Collector
	Log     *slog.Logger
	Now     func() time.Time
}

// Server is the operator API.
type Server struct {
	cfg      Config
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	routes   []route
	handler  http.Handler
	ready    chan struct{}
	addr     net.Addr
}

// route is one entry of the API: the router, the authorisation check, the
// OpenAPI completeness test and the authorisation matrix test all read this table.
type route struct {
	Method, Path string
	Role         string // "" for public routes
	Mutates      bool
	handle       func(w http.ResponseWriter, r *http.Request, c *call)
}

// call is the context of one authenticated request.
type call struct {
	token     *store.Token
	requestID string
}

func (c *call) actor() string {
	if c.token == nil {
		return "anonymous"
	}
	return c.token.Name
}

// New builds the server and its routes.
func New(cfg Config) *Server {
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:9090"
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{cfg: cfg, reg: prometheus.NewRegistry(), ready: make(chan struct{})}
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "drover_api_requests_total", Help: "Operator API requests by route, method and status."}, []string{"route", "method", "code"})
	s.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "drover_api_request_duration_seconds", Help: "Operator API request latency by route and method.", Buckets: prometheus.DefBuckets}, []string{"route", "method"})
	s.reg.MustRegister(s.requests, s.latency, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.reg.MustRegister(cfg.Metrics...)
	s.routes = s.table()
	mux := http.NewServeMux()
	for _, rt := range s.routes {
		mux.Handle(rt.Method+" "+rt.Path, s.wrap(rt))
	}
	notFound := func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such API route: see /api/v1/openapi.json")
	}
	mux.HandleFunc("/api/", notFound)
	if cfg.UI != nil {
		mux.Handle("/", cfg.UI)
	} else {
		mux.HandleFunc("/", notFound)
	}
	s.handler = mux
	return s
}

func (s *Server) table() []route {
	return append([]route{
		{"GET", "/healthz", "", false, func(w http.ResponseWriter, _ *http.Request, _ *call) {
			writeJSON(w, 200, map[string]string{"status": "ok"})
		}},
		{"GET", "/metrics", "", false, s.metrics},
		{"GET", "/api/v1/openapi.json", "", false, func(w http.ResponseWriter, _ *http.Request, _ *call) {
			w.Header().Set("Content-Type", "application/json")
			w.Write(openAPI)
		}},
		{"GET", "/api/v1/zones", RoleViewer, false, s.zones},
		{"GET", "/api/v1/pods", RoleViewer, false, s.pods},
		{"GET", "/api/v1/switches", RoleViewer, false, s.switches},
		{"GET", "/api/v1/slots", RoleViewer, false, s.slots},
		{"GET", "/api/v1/slots/{ref}", RoleViewer, false, s.slot},
		{"GET", "/api/v1/machines", RoleViewer, false, s.machines},
		{"GET", "/api/v1/machines/{ref}", RoleViewer, false, s.machine},
		{"GET", "/api/v1/machines/{ref}/timeline", RoleViewer, false, s.timeline},
		{"POST", "/api/v1/machines/{ref}/reinstall", RoleOperator, true, s.reinstall},
		{"POST", "/api/v1/machines/{ref}/power", RoleOperator, true, s.power},
		{"POST", "/api/v1/machines/{ref}/maintenance", RoleOperator, true, s.act(fleet.ActMaintenanceEnter)},
		{"DELETE", "/api/v1/machines/{ref}/maintenance", RoleOperator, true, s.act(fleet.ActMaintenanceLeave)},
		{"POST", "/api/v1/machines/{ref}/retire", RoleOperator, true, s.act(fleet.ActRetire)},
		{"POST", "/api/v1/machines/{ref}/release", RoleOperator, true, s.act(fleet.ActRelease)},
		{"GET", "/api/v1/design", RoleViewer, false, s.design},
		{"GET", "/api/v1/design/revisions", RoleViewer, false, s.revisions},
		{"POST", "/api/v1/design/plan", RoleAdmin, false, s.plan},
		{"POST", "/api/v1/design/apply", RoleAdmin, true, s.apply},
		{"GET", "/api/v1/design/pending", RoleViewer, false, s.pending},
		{"POST", "/api/v1/design/pending/{commit}/approve", RoleAdmin, true, s.approve},
		{"GET", "/api/v1/rollouts", RoleViewer, false, s.rolloutList},
		{"POST", "/api/v1/rollouts/plan", RoleViewer, false, s.rolloutPlan},
		{"POST", "/api/v1/rollouts", RoleAdmin, true, s.rolloutStart},
		{"GET", "/api/v1/rollouts/{id}", RoleViewer, false, s.rolloutGet},
		{"POST", "/api/v1/rollouts/{id}/pause", RoleOperator, true, s.rolloutAct("pause")},
		{"POST", "/api/v1/rollouts/{id}/resume", RoleOperator, true, s.rolloutAct("resume")},
		{"POST", "/api/v1/rollouts/{id}/abort", RoleAdmin, true, s.rolloutAct("abort")},
		{"GET", "/api/v1/leases", RoleViewer, false, s.leases},
		{"GET", "/api/v1/audit", RoleViewer, false, s.audit},
		{"GET", "/api/v1/cabling", RoleViewer, false, s.cabling},
		{"GET", "/api/v1/inventory/ansible", RoleViewer, false, s.ansible},
		{"GET", "/api/v1/inventory/puppet/{name}", RoleViewer, false, s.handoffHost(puppetENC)},
		{"GET", "/api/v1/inventory/chef/{name}", RoleViewer, false, s.handoffHost(chefNode)},
		{"GET", "/api/v1/monitoring/targets", RoleViewer, false, s.prometheus},
		{"GET", "/api/v1/monitoring/check", RoleViewer, false, s.monitoringCheck},
		{"GET", "/api/v1/dns/zones", RoleViewer, false, s.dnsZones},
		{"GET", "/api/v1/dns/zones/{zone}", RoleViewer, false, s.dnsZone},
		{"GET", "/api/v1/tokens", RoleAdmin, false, s.tokens},
		{"POST", "/api/v1/tokens", RoleAdmin, true, s.createToken},
		{"DELETE", "/api/v1/tokens/{name}", RoleAdmin, true, s.revokeToken},
	}, s.agentRoutes()...)
}

// Handler is the API's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Ready is closed once the server listens.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr is the listening address, once Ready.
func (s *Server) Addr() net.Addr { return s.addr }

// Run serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("api listen %s: %w", s.cfg.Listen, err)
	}
	s.addr = ln.Addr()
	close(s.ready)
	srv := &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(s.cfg.Log.Handler(), slog.LevelWarn)}
	s.cfg.Log.Info("operator API listening", "addr", s.addr, "tls", s.cfg.TLSCert != "")
	return httpserve.Serve(ctx, srv, ln, s.cfg.TLSCert, s.cfg.TLSKey)
}

// NewSecret returns a new operator token: 256 random bits, recognisable by its prefix.
func NewSecret() string { return "drv_" + secret.Hex(32) }

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// wrap adds request ids, metrics, logging, authentication and authorisation.
func (s *Server) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		c := &call{requestID: r.Header.Get("X-Request-Id")}
		if len(c.requestID) == 0 || len(c.requestID) > 64 {
			c.requestID = secret.Hex(8)
		}
		w.Header().Set("X-Request-Id", c.requestID)
		sw := &statusWriter{ResponseWriter: w, code: 200}
		defer func() {
			s.requests.WithLabelValues(rt.Path, rt.Method, strconv.Itoa(sw.code)).Inc()
			s.latency.WithLabelValues(rt.Path, rt.Method).Observe(time.Since(start).Seconds())
			level := slog.LevelDebug
			if rt.Mutates || sw.code == http.StatusUnauthorized || sw.code == http.StatusForbidden {
				level = slog.LevelInfo
			}
			s.cfg.Log.Log(r.Context(), level, "api", "method", r.Method, "path", r.URL.Path, "code", sw.code, "actor", c.actor(), "request_id", c.requestID, "took", time.Since(start))
		}()
		if rt.Role != "" && !s.authorise(sw, r, rt, c) {
			return
		}
		rt.handle(sw, r, c)
	})
}

// authorise checks the bearer token and its role; failures are audited.
func (s *Server) authorise(w http.ResponseWriter, r *http.Request, rt route, c *call) bool {
	deny := func(code int, errCode, msg string, actor string) bool {
		e := &store.AuditEntry{At: s.cfg.Now(), Actor: actor, Action: "authorise " + rt.Method + " " + rt.Path,
			Target: r.URL.Path, Outcome: "denied: " + errCode, RequestID: c.requestID}
		// The refusal stands either way; an audit that could not be written is
		// an error an operator must see.
		if err := s.cfg.Store.AddAudit(r.Context(), e); err != nil {
			s.cfg.Log.Error("refused request not audited", "actor", actor, "action", e.Action, "outcome", e.Outcome, "request_id", c.requestID, "err", err)
		}
		if code == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="drover"`)
		}
		writeError(w, code, errCode, msg)
		return false
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		return deny(http.StatusUnauthorized, "unauthenticated", "send an operator token: Authorization: Bearer TOKEN", "anonymous")
	}
	t, err := s.cfg.Store.TokenByHash(r.Context(), secret.Hash(token))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return deny(http.StatusUnauthorized, "unauthenticated", "the token is not valid", "anonymous")
	case err != nil:
		writeError(w, http.StatusInternalServerError, "internal", "could not check the token")
		return false
	case t.Revoked:
		return deny(http.StatusUnauthorized, "token_revoked", "the token was revoked: ask an admin for a new one", t.Name)
	case !t.Expires.IsZero() && s.cfg.Now().After(t.Expires):
		return deny(http.StatusUnauthorized, "token_expired", "the token expired at "+t.Expires.Format(time.RFC3339)+": ask an admin for a new one", t.Name)
	}
	c.token = t
	// An agent's token opens the agent calls of its own pod and nothing
	// else; those calls are for agents only.
	if (t.Role == RoleAgent) != (rt.Role == RoleAgent) || (t.Role == RoleAgent && t.Pod == "") {
		return deny(http.StatusForbidden, "forbidden", fmt.Sprintf("token %q has role %s; %s %s is for %s", t.Name, t.Role, rt.Method, rt.Path, map[bool]string{true: "pod agents only", false: "operators"}[rt.Role == RoleAgent]), t.Name)
	}
	if roleRank(t.Role) < roleRank(rt.Role) {
		return deny(http.StatusForbidden, "forbidden", fmt.Sprintf("token %q has role %s; %s %s needs %s", t.Name, t.Role, rt.Method, rt.Path, rt.Role), t.Name)
	}
	return true
}

type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]apiError{"error": {Code: code, Message: msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func (s *Server) metrics(w http.ResponseWriter, r *http.Request, _ *call) {
	promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}).ServeHTTP(w, r)
}
