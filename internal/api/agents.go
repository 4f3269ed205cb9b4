package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"

	"github.com/drover/drover/internal/fleet"
	"github.com/drover/drover/internal/machine"
	"github.com/drover/drover/internal/store"
)

// RoleAgent is a pod agent's role: the agent calls of its own pod, nothing else.
const RoleAgent = "agent"

// Agents is the controller's side of pod agents (serve --agents).
type Agents interface {
	// Attach hands pod to its agent and returns the agent's epoch.
	Attach(ctx context.Context, pod string) (int64, error)
	// Detach gives the pod back to the servers.
	Detach(ctx context.Context, pod string) error
	Snapshot(ctx context.Context, pod string) (*AgentSnapshot, error)
	// Report writes what the agent decided and answers what it should do next.
	Report(ctx context.Context, pod string, r *AgentReport) (*AgentReply, error)
	FinishOp(ctx context.Context, pod string, r *AgentOpResult) error
	// Catalogue is the artifact catalogue (images of install profiles) and its hash.
	Catalogue(ctx context.Context) ([]store.Artifact, string, error)
	List(ctx context.Context) ([]AgentInfo, error)
}

// ErrNoAgents is returned by every agent call to a server that does not accept agents.
var ErrNoAgents = errors.New("this server does not accept pod agents: start it with drover serve --agents")

// AgentMachine is a machine row as agent and controller exchange it, with
// the hashes of its tokens (never the tokens).
type AgentMachine struct {
	machine.Machine
	InstallTokenHash string `json:"install_token_hash,omitempty"`
	BootTokenHash    string `json:"boot_token_hash,omitempty"`
}

// ToAgent and FromAgent convert machine rows for the wire.
func ToAgent(m *machine.Machine) AgentMachine {
	return AgentMachine{Machine: *m, InstallTokenHash: m.InstallTokenHash, BootTokenHash: m.BootTokenHash}
}

func (a AgentMachine) Row() *machine.Machine {
	m := a.Machine
	m.InstallTokenHash, m.BootTokenHash = a.InstallTokenHash, a.BootTokenHash
	return &m
}

// AgentDesign is the applied design revision with its source files.
type AgentDesign struct {
	ID      int64             `json:"id"`
	Hash    string            `json:"hash"`
	Sources map[string][]byte `json:"sources"`
}

// AgentSnapshot is what an agent starts its pod from: the design and the
// pod's machines and leases.
type AgentSnapshot struct {
	Pod      string         `json:"pod"`
	Design   AgentDesign    `json:"design"`
	Machines []AgentMachine `json:"machines"`
	Leases   []store.Lease  `json:"leases"`
}

// AgentReport is what an agent sends up: its machine rows that changed,
// its leases, the ones it let go, and its timeline entries in order (IDs its own).
type AgentReport struct {
	Epoch    int64           `json:"epoch"`
	Revision int64           `json:"revision"` // the controller's design revision its rows reflect
	Machines []AgentMachine  `json:"machines,omitempty"`
	Leases   []store.Lease   `json:"leases,omitempty"`
	Gone     []netip.Addr    `json:"gone,omitempty"`
	Entries  []machine.Entry `json:"entries,omitempty"`
}

// AgentReply is the controller's answer: the agent's last timeline entry it
// holds, the applied design revision, and the actions queued for the pod.
type AgentReply struct {
	Acked    int64             `json:"acked"`
	Revision int64             `json:"revision"`
	Ops      []store.MachineOp `json:"ops"`
	// Catalogue is the hash of the artifact catalogue: the agent fetches it when it changes.
	Catalogue string `json:"catalogue"`
}

// AgentOpResult is the outcome of a queued action an agent carried out.
type AgentOpResult struct {
	ID        int64  `json:"id"`
	Result    string `json:"result,omitempty"`
	ErrorKind string `json:"error_kind,omitempty"`
	Error     string `json:"error,omitempty"`
}

// AgentInfo is a pod held by its agent.
type AgentInfo struct {
	Pod      string `json:"pod"`
	Epoch    int64  `json:"epoch"`
	Revision int64  `json:"revision"` // design revision its rows reflect
	Acked    int64  `json:"acked"`    // the agent's last timeline entry held here
}

func (s *Server) agentRoutes() []route {
	return []route{
		{"POST", "/api/v1/agent/attach", RoleAgent, true, s.agentAttach},
		{"GET", "/api/v1/agent/snapshot", RoleAgent, false, s.agentSnapshot},
		{"GET", "/api/v1/agent/design", RoleAgent, false, s.agentDesign},
		{"POST", "/api/v1/agent/ids", RoleAgent, false, s.agentIDs},
		{"POST", "/api/v1/agent/report", RoleAgent, false, s.agentReport},
		{"POST", "/api/v1/agent/ops/{id}", RoleAgent, false, s.agentOpDone},
		{"GET", "/api/v1/agent/artifacts", RoleAgent, false, s.agentArtifacts},
		{"GET", "/api/v1/agents", RoleViewer, false, s.agentList},
		{"DELETE", "/api/v1/agents/{zone}/{pod}", RoleAdmin, true, s.agentDetach},
	}
}

// agents answers 409 when this server takes no agents.
func (s *Server) agents(w http.ResponseWriter) Agents {
	if s.cfg.Agents == nil {
		writeError(w, http.StatusConflict, "no_agents", ErrNoAgents.Error())
	}
	return s.cfg.Agents
}

func (s *Server) agentError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, fleet.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, store.ErrNotOwner):
		writeError(w, http.StatusConflict, "not_owner", err.Error()+": another agent took the pod, or it was detached")
	case errors.Is(err, ErrForeign):
		writeError(w, http.StatusForbidden, "forbidden", err.Error())
	default:
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
	}
}

// ErrForeign is returned for an agent's report that names another pod's machine.
var ErrForeign = errors.New("not of the agent's pod")

func (s *Server) agentAttach(w http.ResponseWriter, r *http.Request, c *call) {
	ag := s.agents(w)
	if ag == nil {
		return
	}
	pod := c.token.Pod
	epoch, err := ag.Attach(r.Context(), pod)
	s.auditAgent(r, c, "agent-attach", pod, fmt.Sprintf("epoch %d", epoch), err)
	if err != nil {
		s.agentError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"pod": pod, "epoch": epoch})
}

func (s *Server) agentSnapshot(w http.ResponseWriter, r *http.Request, c *call) {
	ag := s.agents(w)
	if ag == nil {
		return
	}
	snap, err := ag.Snapshot(r.Context(), c.token.Pod)
	if err != nil {
		s.agentError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, snap)
}

func (s *Server) agentDesign(w http.ResponseWriter, r *http.Request, _ *call) {
	if s.agents(w) == nil {
		return
	}
	rev, err := s.cfg.Store.CurrentRevision(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, AgentDesign{ID: rev.ID, Hash: rev.Hash, Sources: rev.Sources})
}

// agentIDs reserves machine ids for the agent's new machines.
func (s *Server) agentIDs(w http.ResponseWriter, r *http.Request, _ *call) {
	if s.agents(w) == nil {
		return
	}
	var b struct {
		N int `json:"n"`
	}
	if err := decodeBody(r, &b); err != nil || b.N <= 0 || b.N > 4096 {
		writeError(w, http.StatusBadRequest, "bad_request", `"n" must be 1 to 4096`)
		return
	}
	first, err := s.cfg.Store.ReserveIDs(r.Context(), "machines", b.N)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]int64{"first": first, "n": int64(b.N)})
}

func (s *Server) agentReport(w http.ResponseWriter, r *http.Request, c *call) {
	ag := s.agents(w)
	if ag == nil {
		return
	}
	var rep AgentReport
	if err := decodeBody(r, &rep); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	reply, err := ag.Report(r.Context(), c.token.Pod, &rep)
	if err != nil {
		s.agentError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, reply)
}

func (s *Server) agentOpDone(w http.ResponseWriter, r *http.Request, c *call) {
	ag := s.agents(w)
	if ag == nil {
		return
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	var res AgentOpResult
	if err == nil {
		err = decodeBody(r, &res)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "an op id and its result are needed")
		return
	}
	res.ID = id
	if err := ag.FinishOp(r.Context(), c.token.Pod, &res); err != nil {
		s.agentError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int64{"finished": id})
}

func (s *Server) agentArtifacts(w http.ResponseWriter, r *http.Request, _ *call) {
	ag := s.agents(w)
	if ag == nil {
		return
	}
	list, _, err := ag.Catalogue(r.Context())
	if err != nil {
		s.agentError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) agentList(w http.ResponseWriter, r *http.Request, _ *call) {
	ag := s.agents(w)
	if ag == nil {
		return
	}
	list, err := ag.List(r.Context())
	if err != nil {
		s.agentError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) agentDetach(w http.ResponseWriter, r *http.Request, c *call) {
	ag := s.agents(w)
	if ag == nil {
		return
	}
	pod := r.PathValue("zone") + "/" + r.PathValue("pod")
	err := ag.Detach(r.Context(), pod)
	s.auditAgent(r, c, "agent-detach", pod, "", err)
	if err != nil {
		s.agentError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"detached": pod})
}

// auditAgent records a change of a pod's holder, done or failed.
func (s *Server) auditAgent(r *http.Request, c *call, action, pod, detail string, err error) {
	outcome := "ok"
	if err != nil {
		outcome = "error: " + err.Error()
	}
	audit := &store.AuditEntry{At: s.cfg.Now(), Actor: c.actor(), Action: action, Target: pod, Outcome: outcome, RequestID: c.requestID, Detail: detail}
	if aerr := s.cfg.Store.AddAudit(r.Context(), audit); aerr != nil {
		s.cfg.Log.Error("not audited", "action", action, "pod", pod, "err", aerr)
	}
}
