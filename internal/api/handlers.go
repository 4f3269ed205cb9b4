package api

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/drover/drover/internal/cabling"
	"github.com/drover/drover/internal/fleet"
	"github.com/drover/drover/internal/machine"
	"github.com/drover/drover/internal/power"
	"github.com/drover/drover/internal/secret"
	"github.com/drover/drover/internal/store"
	"github.com/drover/drover/internal/zone"
)

type page struct {
	Items   any `json:"items"`
	Total   int `json:"total"`
	Page    int `json:"page"`
	PerPage int `json:"per_page"`
}

// countParam reads a query parameter that is a count or an id: absent is 0;
// anything but a whole number from 0 is the client's error.
func countParam(r *http.Request, name string) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s %q: use a whole number from 0", name, v)
	}
	return n, nil
}

// pageParams reads ?page= (from 1) and ?per_page= (default 100, at most
// 1000); offset is where the page starts, saturated for a page far past any end.
func pageParams(r *http.Request) (p, per, offset int, err error) {
	p, per = 1, 100
	if v := r.URL.Query().Get("page"); v != "" {
		if p, err = strconv.Atoi(v); err != nil || p < 1 {
			return 0, 0, 0, fmt.Errorf("page %q: use a number from 1", v)
		}
	}
	if v := r.URL.Query().Get("per_page"); v != "" {
		if per, err = strconv.Atoi(v); err != nil || per < 1 || per > 1000 {
			return 0, 0, 0, fmt.Errorf("per_page %q: use a number from 1 to 1000", v)
		}
	}
	offset = math.MaxInt
	if p-1 <= math.MaxInt/per {
		offset = (p - 1) * per
	}
	return p, per, offset, nil
}

// paginate slices items by ?page= and ?per_page=.
func paginate[T any](r *http.Request, items []T) (page, error) {
	p, per, offset, err := pageParams(r)
	if err != nil {
		return page{}, err
	}
	start := min(offset, len(items))
	end := min(start+per, len(items))
	out := items[start:end]
	if out == nil {
		out = []T{}
	}
	return page{Items: out, Total: len(items), Page: p, PerPage: per}, nil
}

func writePage[T any](w http.ResponseWriter, r *http.Request, items []T) {
	pg, err := paginate(r, items)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, pg)
}

func (s *Server) applied() *zone.Design { return s.cfg.Fleet.Index().Design() }

type zoneView struct {
	Name        string   `json:"name"`
	Environment string   `json:"environment"`
	Domain      string   `json:"domain"`
	Pods        []string `json:"pods"`
}

func (s *Server) zones(w http.ResponseWriter, r *http.Request, _ *call) {
	var out []zoneView
	for _, z := range s.applied().Zones {
		v := zoneView{Name: z.Name, Environment: z.Environment, Domain: z.Domain, Pods: []string{}}
		for _, p := range z.Pods {
			v.Pods = append(v.Pods, p.Name)
		}
		out = append(out, v)
	}
	writePage(w, r, out)
}

type podView struct {
	Zone     string        `json:"zone"`
	Name     string        `json:"name"`
	Networks []networkView `json:"networks"`
	Switches []string      `json:"switches"`
}

type networkView struct {
	Name    string `json:"name"`
	Subnet  string `json:"subnet"`
	Gateway string `json:"gateway,omitempty"`
	Pool    string `json:"pool,omitempty"`
}

func (s *Server) pods(w http.ResponseWriter, r *http.Request, _ *call) {
	zf := r.URL.Query().Get("zone")
	var out []podView
	for _, z := range s.applied().Zones {
		if zf != "" && z.Name != zf {
			continue
		}
		for _, p := range z.Pods {
			v := podView{Zone: z.Name, Name: p.Name, Networks: []networkView{}, Switches: []string{}}
			for _, n := range p.Networks {
				v.Networks = append(v.Networks, networkView{Name: n.Name, Subnet: n.Subnet, Gateway: n.Gateway, Pool: n.Pool})
			}
			for _, sw := range p.Switches {
				v.Switches = append(v.Switches, sw.Name)
			}
			out = append(out, v)
		}
	}
	writePage(w, r, out)
}

type switchView struct {
	Zone        string `json:"zone"`
	Pod         string `json:"pod"`
	Name        string `json:"name"`
	Kind        string `json:"kind"`
	BootNetwork string `json:"boot_network"`
	Relay       string `json:"relay,omitempty"`
	RemoteID    string `json:"remote_id,omitempty"`
	PortSubnets string `json:"port_subnets,omitempty"`
	Ports       int    `json:"ports"`
}

func (s *Server) switches(w http.ResponseWriter, r *http.Request, _ *call) {
	q := r.URL.Query()
	var out []switchView
	for _, z := range s.applied().Zones {
		for _, p := range z.Pods {
			for _, sw := range p.Switches {
				if q.Get("zone") != "" && z.Name != q.Get("zone") || q.Get("pod") != "" && p.Name != q.Get("pod") {
					continue
				}
				out = append(out, switchView{Zone: z.Name, Pod: p.Name, Name: sw.Name, Kind: sw.Kind, BootNetwork: sw.BootNetwork,
					Relay: sw.Relay, RemoteID: sw.RemoteID, PortSubnets: sw.PortSubnets, Ports: len(sw.PortNames())})
			}
		}
	}
	writePage(w, r, out)
}

func (s *Server) slots(w http.ResponseWriter, r *http.Request, _ *call) {
	q := r.URL.Query()
	slots, err := s.cfg.Store.Slots(r.Context(), store.SlotFilter{Zone: q.Get("zone"), Pod: q.Get("pod"), Role: q.Get("role"), Variant: q.Get("variant")})
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	writePage(w, r, slots)
}

// slot answers one slot and the machine in it, or null when nothing has
// booted in it yet.
func (s *Server) slot(w http.ResponseWriter, r *http.Request, _ *call) {
	ref := r.PathValue("ref")
	sl, err := s.cfg.Store.Slot(r.Context(), ref)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no slot %q (use a name or key; see GET /api/v1/slots)", ref))
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	m, err := s.cfg.Store.MachineInSlot(r.Context(), sl.Key)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"slot": sl, "machine": m})
}

func (s *Server) machines(w http.ResponseWriter, r *http.Request, _ *call) {
	q := r.URL.Query()
	f := store.MachineFilter{Zone: q.Get("zone"), Pod: q.Get("pod"), Role: q.Get("role"), Variant: q.Get("variant")}
	if v := q.Get("state"); v != "" {
		st, err := machine.ParseState(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", err.Error())
			return
		}
		f.State = st
	}
	p, per, offset, err := pageParams(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	// The store reads whole rows for this page only: paging through every
	// machine costs one sort per page, not a full read.
	ms, total, err := s.cfg.Store.MachinesPage(r.Context(), f, offset, per)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, page{Items: ms, Total: total, Page: p, PerPage: per})
}

func (s *Server) lookup(w http.ResponseWriter, r *http.Request) (*machine.Machine, bool) {
	ref := r.PathValue("ref")
	m, err := s.cfg.Store.Machine(r.Context(), ref)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no machine %q (use a name, MAC or id; see GET /api/v1/machines)", ref))
		return nil, false
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return nil, false
	}
	return m, true
}

func (s *Server) machine(w http.ResponseWriter, r *http.Request, _ *call) {
	m, ok := s.lookup(w, r)
	if !ok {
		return
	}
	tl, err := s.cfg.Store.Timeline(r.Context(), m.ID, 0, 0)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	out := map[string]any{"machine": m, "timeline": tl}
	if m.SlotKey != "" {
		out["slot"] = s.cfg.Fleet.Index().Slot(m.SlotKey)
	}
	writeJSON(w, http.StatusOK, out)
}

// timeline returns a machine's timeline after ?after=ID, or streams it as
// server-sent events with ?follow=true or Accept: text/event-stream.
func (s *Server) timeline(w http.ResponseWriter, r *http.Request, _ *call) {
	m, ok := s.lookup(w, r)
	if !ok {
		return
	}
	after, err := countParam(r, "after")
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	if !wantsStream(r) {
		tl, err := s.cfg.Store.Timeline(r.Context(), m.ID, after, 0)
		if err != nil {
			writeError(w, http.StatusInternalServerError, "internal", err.Error())
			return
		}
		writeJSON(w, http.StatusOK, tl)
		return
	}
	flusher, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	poll := time.NewTicker(500 * time.Millisecond)
	defer poll.Stop()
	lastBeat := time.Now()
	for {
		tl, err := s.cfg.Store.Timeline(r.Context(), m.ID, after, 500)
		if err != nil {
			return
		}
		for _, e := range tl {
			b, _ := json.Marshal(e)
			fmt.Fprintf(w, "id: %d\nevent: entry\ndata: %s\n\n", e.ID, b)
			after = e.ID
		}
		if time.Since(lastBeat) > 15*time.Second {
			io.WriteString(w, ": keep-alive\n\n")
			lastBeat = time.Now()
		}
		if flusher != nil {
			flusher.Flush()
		}
		select {
		case <-r.Context().Done():
			return
		case <-poll.C:
		}
	}
}

type actBody struct {
	Reason     string `json:"reason"`
	Owner      string `json:"owner"`
	Expires    string `json:"expires"`     // RFC 3339 time, or a duration from now ("4h")
	PowerCycle bool   `json:"power_cycle"` // reinstall only: boot from the network once and power-cycle through the BMC
}

func decodeBody(r *http.Request, v any) error {
	if r.ContentLength == 0 {
		return nil
	}
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("request body: %w", err)
	}
	return nil
}

// reinstall marks a machine for reinstalling; with "power_cycle" it then sets
// its next boot to the network and power-cycles it through its BMC.
func (s *Server) reinstall(w http.ResponseWriter, r *http.Request, c *call) {
	var body actBody
	if err := decodeBody(r, &body); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	if !body.PowerCycle {
		s.operate(w, r, c, fleet.ActReinstall, body)
		return
	}
	m, ok := s.operateOnly(w, r, c, fleet.ActReinstall, body)
	if !ok {
		return
	}
	res, err := s.cfg.Fleet.PowerAction(r.Context(), fleet.PowerOp{Ref: strconv.FormatInt(m.ID, 10), Actions: []power.Action{power.PXEOnce, power.Cycle},
		Actor: c.actor(), Reason: "reinstall", Audit: store.AuditEntry{Actor: c.actor(), RequestID: c.requestID, Detail: body.Reason}})
	if err != nil {
		powerError(w, fmt.Errorf("%s is marked for reinstalling, but the power cycle failed: %w", m.Label(), err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"machine": m, "power": res})
}

type powerBody struct {
	Action string `json:"action"`
	Reason string `json:"reason"`
}

func (s *Server) power(w http.ResponseWriter, r *http.Request, c *call) {
	var body powerBody
	if err := decodeBody(r, &body); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	a, err := power.ParseAction(body.Action)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", `"action": `+err.Error())
		return
	}
	res, err := s.cfg.Fleet.PowerAction(r.Context(), fleet.PowerOp{Ref: r.PathValue("ref"), Actions: []power.Action{a}, Actor: c.actor(), Reason: body.Reason,
		Audit: store.AuditEntry{Actor: c.actor(), RequestID: c.requestID, Detail: body.Reason}})
	if err != nil {
		powerError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// powerError answers a failed power action: 404 for no such machine, 409
// when drover cannot drive its BMC, 502 when the BMC failed.
func powerError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, fleet.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, fleet.ErrNoPower):
		writeError(w, http.StatusConflict, "no_power_control", err.Error())
	default:
		writeError(w, http.StatusBadGateway, "bmc_failed", err.Error())
	}
}

func (s *Server) act(action string) func(w http.ResponseWriter, r *http.Request, c *call) {
	return func(w http.ResponseWriter, r *http.Request, c *call) {
		var body actBody
		if err := decodeBody(r, &body); err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", err.Error())
			return
		}
		if body.PowerCycle {
			writeError(w, http.StatusBadRequest, "bad_request", `"power_cycle" belongs to reinstall only`)
			return
		}
		s.operate(w, r, c, action, body)
	}
}

func (s *Server) operate(w http.ResponseWriter, r *http.Request, c *call, action string, body actBody) {
	if m, ok := s.operateOnly(w, r, c, action, body); ok {
		writeJSON(w, http.StatusOK, m)
	}
}

// operateOnly performs an operator action; on failure it answers and returns false.
func (s *Server) operateOnly(w http.ResponseWriter, r *http.Request, c *call, action string, body actBody) (machine.Machine, bool) {
	op := fleet.Op{Ref: r.PathValue("ref"), Action: action, Actor: c.actor(), Reason: body.Reason,
		Audit: store.AuditEntry{Actor: c.actor(), RequestID: c.requestID, Detail: body.Reason}}
	if action == fleet.ActMaintenanceEnter {
		mi, err := machine.ParseMaintenance(body.Reason, body.Owner, body.Expires, s.cfg.Now())
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", err.Error())
			return machine.Machine{}, false
		}
		op.Maintenance = mi
		op.Audit.Detail = fmt.Sprintf("%s (owner %s, until %s)", mi.Reason, mi.Owner, mi.Expires.Format(time.RFC3339))
	}
	m, err := s.cfg.Fleet.Operate(r.Context(), op)
	switch {
	case errors.Is(err, fleet.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, machine.ErrIllegal):
		writeError(w, http.StatusConflict, "illegal_transition", err.Error())
	case err != nil:
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
	default:
		return m, true
	}
	return machine.Machine{}, false
}

func (s *Server) design(w http.ResponseWriter, r *http.Request, _ *call) {
	rev, err := s.cfg.Store.CurrentRevision(r.Context())
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", "no design is applied")
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, rev)
}

func (s *Server) revisions(w http.ResponseWriter, r *http.Request, _ *call) {
	revs, err := s.cfg.Store.Revisions(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	writePage(w, r, revs)
}

type designBody struct {
	Path  string            `json:"path"`  // a design on the server
	Files map[string]string `json:"files"` // or uploaded: relative path -> content
}

// loadDesign reads the design named or uploaded in a request. Uploads are kept
// in the design directory under their content hash, templates included.
func (s *Server) loadDesign(r *http.Request) (*zone.Design, string, int, error) {
	var b designBody
	if err := decodeBody(r, &b); err != nil {
		return nil, "", http.StatusBadRequest, err
	}
	if (b.Path == "") == (len(b.Files) == 0) {
		return nil, "", http.StatusBadRequest, errors.New(`send either "path" (a design on the server) or "files" (name -> content)`)
	}
	dir := b.Path
	if len(b.Files) > 0 {
		if s.cfg.DesignDir == "" {
			return nil, "", http.StatusBadRequest, errors.New("this server keeps no uploaded designs: send a path")
		}
		names := make([]string, 0, len(b.Files))
		for n := range b.Files {
			clean := path.Clean(n)
			if n == "" || path.IsAbs(n) || clean != n || strings.HasPrefix(clean, "..") {
				return nil, "", http.StatusBadRequest, fmt.Errorf("file name %q: use relative paths inside the design", n)
			}
			names = append(names, n)
		}
		sort.Strings(names)
		h := sha256.New()
		for _, n := range names {
			fmt.Fprintf(h, "%s\x00%d\x00%s", n, len(b.Files[n]), b.Files[n])
		}
		dir = filepath.Join(s.cfg.DesignDir, hex.EncodeToString(h.Sum(nil))[:16])
		for _, n := range names {
			p := filepath.Join(dir, filepath.FromSlash(n))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return nil, "", http.StatusInternalServerError, err
			}
			if err := os.WriteFile(p, []byte(b.Files[n]), 0o644); err != nil {
				return nil, "", http.StatusInternalServerError, err
			}
		}
	}
	d, err := zone.Load(dir)
	if err != nil {
		return nil, dir, http.StatusUnprocessableEntity, err
	}
	if s.cfg.CheckDesign != nil {
		if err := s.cfg.CheckDesign(d); err != nil {
			return nil, dir, http.StatusUnprocessableEntity, err
		}
	}
	return d, dir, http.StatusOK, nil
}

func designError(w http.ResponseWriter, status int, err error) {
	var ps zone.Problems
	if errors.As(err, &ps) {
		msgs := make([]string, len(ps))
		for i, p := range ps {
			msgs[i] = p.Error()
		}
		writeJSON(w, status, map[string]any{"error": apiError{Code: "invalid_design", Message: fmt.Sprintf("the design has %d problem(s)", len(ps))}, "problems": msgs})
		return
	}
	code := "bad_request"
	if status == http.StatusUnprocessableEntity {
		code = "invalid_design"
	}
	writeError(w, status, code, err.Error())
}

func (s *Server) plan(w http.ResponseWriter, r *http.Request, _ *call) {
	d, _, status, err := s.loadDesign(r)
	if err != nil {
		designError(w, status, err)
		return
	}
	current, err := s.cfg.Store.Slots(r.Context(), store.SlotFilter{})
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	p := zone.Diff(current, d.Slots)
	writeJSON(w, http.StatusOK, map[string]any{"design_hash": d.Hash, "changes": !p.Empty(), "plan": p, "summary": d.String()})
}

func (s *Server) apply(w http.ResponseWriter, r *http.Request, c *call) {
	d, dir, status, err := s.loadDesign(r)
	if err != nil {
		designError(w, status, err)
		return
	}
	now := s.cfg.Now()
	audit := &store.AuditEntry{At: now, Actor: c.actor(), Action: "design-apply", Target: d.Hash[:12], Outcome: "ok", RequestID: c.requestID, Detail: d.String()}
	rev, p, err := store.Apply(r.Context(), s.cfg.Store, store.ApplyRequest{Design: d, Dir: dir, Actor: c.actor(), At: now, Audit: audit})
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	// The answer comes once the fleet serves the revision and the machines carry its effects.
	if err := s.cfg.Fleet.Sync(r.Context(), &fleet.Applied{Revision: rev, Index: zone.NewIndex(d)}); err != nil {
		writeError(w, http.StatusInternalServerError, "internal", fmt.Sprintf("revision %d is applied but this server does not serve it yet: %v (the server retries every 2 s and logs why; its machines change once it serves the revision)", rev.ID, err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"revision": rev, "plan": p})
}

func (s *Server) leases(w http.ResponseWriter, r *http.Request, _ *call) {
	ls, err := s.cfg.Store.Leases(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	writePage(w, r, ls)
}

func (s *Server) audit(w http.ResponseWriter, r *http.Request, _ *call) {
	q := r.URL.Query()
	f := store.AuditFilter{Actor: q.Get("actor"), Action: q.Get("action"), Target: q.Get("target"), Outcome: q.Get("outcome")}
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", "since: write an RFC 3339 time")
			return
		}
		f.Since = t
	}
	after, err := countParam(r, "after")
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	limit, err := countParam(r, "limit")
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	f.AfterID, f.Limit = after, int(limit)
	es, err := s.cfg.Store.Audit(r.Context(), f)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, es)
}

func (s *Server) tokens(w http.ResponseWriter, r *http.Request, _ *call) {
	ts, err := s.cfg.Store.Tokens(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, ts)
}

type tokenBody struct {
	Name      string `json:"name"`
	Role      string `json:"role"`
	ExpiresIn string `json:"expires_in"` // a duration; empty: never
	Pod       string `json:"pod"`        // the pod (zone/pod) of an agent token
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request, c *call) {
	var b tokenBody
	if err := decodeBody(r, &b); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	if b.Name == "" || len(b.Name) > 64 || strings.ContainsAny(b.Name, " /\t\n") {
		writeError(w, http.StatusBadRequest, "bad_request", `"name" is required: letters, digits, dashes, at most 64`)
		return
	}
	switch {
	case b.Role == RoleAgent:
		if !s.podInDesign(b.Pod) {
			writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf(`an agent token serves one pod: "pod" must be a pod of the applied design as zone/pod (got %q)`, b.Pod))
			return
		}
	case roleRank(b.Role) == 0:
		writeError(w, http.StatusBadRequest, "bad_request", `"role" must be viewer, operator, admin or agent`)
		return
	case b.Pod != "":
		writeError(w, http.StatusBadRequest, "bad_request", `"pod" is for agent tokens only`)
		return
	}
	now := s.cfg.Now()
	token := NewSecret()
	t := &store.Token{Name: b.Name, Role: b.Role, Hash: secret.Hash(token), Created: now, Pod: b.Pod}
	if b.ExpiresIn != "" {
		d, err := time.ParseDuration(b.ExpiresIn)
		if err != nil || d <= 0 {
			writeError(w, http.StatusBadRequest, "bad_request", `"expires_in" must be a positive duration like 720h`)
			return
		}
		t.Expires = now.Add(d)
	}
	audit := &store.AuditEntry{At: now, Actor: c.actor(), Action: "token-create", Target: b.Name, Outcome: "ok", RequestID: c.requestID, Detail: "role " + b.Role + map[bool]string{true: " of pod " + b.Pod}[b.Pod != ""]}
	if err := s.cfg.Store.CreateToken(r.Context(), t, audit); err != nil {
		if errors.Is(err, store.ErrExists) {
			writeError(w, http.StatusConflict, "exists", err.Error())
			return
		}
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"token": t, "secret": token, "note": "the secret is shown once: store it now"})
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request, c *call) {
	name := r.PathValue("name")
	audit := &store.AuditEntry{At: s.cfg.Now(), Actor: c.actor(), Action: "token-revoke", Target: name, Outcome: "ok", RequestID: c.requestID}
	if err := s.cfg.Store.RevokeToken(r.Context(), name, audit); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no active token %q", name))
			return
		}
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"revoked": name})
}

// cabling lists what the machines' NICs heard over LLDP against the design.
func (s *Server) cabling(w http.ResponseWriter, _ *http.Request, _ *call) {
	reports := append([]cabling.Report{}, s.cfg.Fleet.Cabling()...)
	writeJSON(w, http.StatusOK, reports)
}

// podInDesign reports whether pod (zone/pod) is a pod of the applied design.
func (s *Server) podInDesign(pod string) bool {
	for _, z := range s.cfg.Fleet.Index().Design().Zones {
		for _, p := range z.Pods {
			if z.Name+"/"+p.Name == pod {
				return true
			}
		}
	}
	return false
}
