package ui

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/drover/drover/internal/fleet"
	"github.com/drover/drover/internal/machine"
	"github.com/drover/drover/internal/power"
	"github.com/drover/drover/internal/store"
	"github.com/drover/drover/internal/zone"
)

type stateCount struct {
	State string
	N     int
}

type podSummary struct {
	Zone, Name string
	Slots      int
	Counts     []stateCount
}

type zoneSummary struct {
	Name, Environment string
	Slots             int
	Counts            []stateCount
	Pods              []podSummary
	Problems          []problem
}

type problem struct {
	Name, Slot, State, Why string
}

func counts(m map[string]int) []stateCount {
	var out []stateCount
	for _, st := range machine.States() {
		if n := m[string(st)]; n > 0 {
			out = append(out, stateCount{string(st), n})
		}
	}
	if n := m["empty"]; n > 0 {
		out = append(out, stateCount{"empty", n})
	}
	return out
}

// problemOf says why a machine needs a look: failed, or stuck past half its watchdog.
func problemOf(m machine.Machine, now time.Time) string {
	switch {
	case m.State == machine.DeployFailed || m.State == machine.CommissioningFailed:
		return string(m.State)
	case m.State.IsWork() && !m.Deadline.IsZero() && now.After(m.StateSince.Add(m.Deadline.Sub(m.StateSince)/2)):
		return fmt.Sprintf("%s for %s, past half its watchdog", m.State, now.Sub(m.StateSince).Round(time.Second))
	}
	return ""
}

// zones is the first page: every zone with its counts per state and per
// pod, zones with problems first and their problem machines listed.
func (u *UI) zones(w http.ResponseWriter, r *http.Request, _ *session, v *view) {
	d := u.cfg.Fleet.Index().Design()
	now := u.cfg.Now()
	byPod := map[[2]string][]*zone.Slot{}
	for _, s := range d.Slots {
		k := [2]string{s.Zone, s.Pod}
		byPod[k] = append(byPod[k], s)
	}
	var out []zoneSummary
	for _, z := range d.Zones {
		zs := zoneSummary{Name: z.Name, Environment: z.Environment}
		zc := map[string]int{}
		for _, p := range z.Pods {
			pc := map[string]int{}
			ps := podSummary{Zone: z.Name, Name: p.Name}
			for _, s := range byPod[[2]string{z.Name, p.Name}] {
				ps.Slots++
				m, ok := u.cfg.Fleet.InSlot(s.Key)
				if !ok {
					pc["empty"]++
					zc["empty"]++
					continue
				}
				pc[string(m.State)]++
				zc[string(m.State)]++
				if why := problemOf(m, now); why != "" {
					zs.Problems = append(zs.Problems, problem{Name: s.Name, Slot: s.Key, State: string(m.State), Why: why})
				}
			}
			ps.Counts = counts(pc)
			zs.Slots += ps.Slots
			zs.Pods = append(zs.Pods, ps)
		}
		zs.Counts = counts(zc)
		out = append(out, zs)
	}
	sort.SliceStable(out, func(i, j int) bool { return len(out[i].Problems) > 0 && len(out[j].Problems) == 0 })
	v.Title, v.Page = "Zones", out
	u.render(w, r, "zones", v)
}

type portBox struct {
	Port, Slot, Name, State, Href string
	Empty                         bool // a port without a slot
}

type switchRack struct {
	Name, Kind string
	Ports      []portBox
}

type podPage struct {
	Zone, Pod, Environment string
	Switches               []switchRack
}

func (u *UI) podOf(r *http.Request) (*zone.Zone, *zone.Pod) {
	ix := u.cfg.Fleet.Index()
	z := ix.Zone(r.PathValue("zone"))
	if z == nil {
		return nil, nil
	}
	for _, p := range z.Pods {
		if p.Name == r.PathValue("pod") {
			return z, p
		}
	}
	return z, nil
}

// pod is the rack elevation: every switch with its ports in order, each
// slot's machine as a box coloured and labelled by its state.
func (u *UI) pod(w http.ResponseWriter, r *http.Request, _ *session, v *view) {
	z, p := u.podOf(r)
	if p == nil {
		u.fail(w, r, v, http.StatusNotFound, fmt.Sprintf("no pod %s in zone %s", r.PathValue("pod"), r.PathValue("zone")))
		return
	}
	ix := u.cfg.Fleet.Index()
	pg := podPage{Zone: z.Name, Pod: p.Name, Environment: z.Environment}
	for _, sw := range p.Switches {
		rack := switchRack{Name: sw.Name, Kind: sw.Kind}
		for _, port := range sw.PortNames() {
			b := portBox{Port: port}
			s := ix.Slot(sw.Name + "/" + port)
			switch {
			case s == nil:
				b.Empty = true
			default:
				b.Slot, b.Name, b.State, b.Href = s.Key, s.Name, "empty", "/machines/"+url.PathEscape(s.Name)
				if m, ok := u.cfg.Fleet.InSlot(s.Key); ok {
					b.State = string(m.State)
				}
			}
			rack.Ports = append(rack.Ports, b)
		}
		pg.Switches = append(pg.Switches, rack)
	}
	v.Title, v.Page = "Pod "+p.Name+" of "+z.Name, pg
	u.render(w, r, "pod", v)
}

// podEvents streams the pod's machines' states as server-sent events: one
// `state` event per slot whose state changed, checked every 250 ms.
func (u *UI) podEvents(w http.ResponseWriter, r *http.Request, _ *session, _ *view) {
	_, p := u.podOf(r)
	if p == nil {
		http.Error(w, "no such pod", http.StatusNotFound)
		return
	}
	var keys []string
	for _, sw := range p.Switches {
		for _, port := range sw.PortNames() {
			if s := u.cfg.Fleet.Index().Slot(sw.Name + "/" + port); s != nil {
				keys = append(keys, s.Key)
			}
		}
	}
	last := map[string]string{}
	stream(w, r, 250*time.Millisecond, func(send func(event string, v any)) {
		for _, k := range keys {
			st := "empty"
			if m, ok := u.cfg.Fleet.InSlot(k); ok {
				st = string(m.State)
			}
			if last[k] != st {
				last[k] = st
				send("state", map[string]string{"slot": k, "state": st})
			}
		}
	})
}

// stream serves server-sent events: every tick, poll sends what changed.
func stream(w http.ResponseWriter, r *http.Request, every time.Duration, poll func(send func(string, any))) {
	flusher, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	send := func(event string, v any) {
		b, _ := json.Marshal(v)
		fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	beat := time.Now()
	for {
		poll(send)
		if time.Since(beat) > 15*time.Second {
			io.WriteString(w, ": keep-alive\n\n")
			beat = time.Now()
		}
		if flusher != nil {
			flusher.Flush()
		}
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
		}
	}
}

type machinePage struct {
	Machine  *machine.Machine
	Slot     *zone.Slot
	Timeline []machine.Entry
	LastID   int64
	Facts    []fact
	Actions  []string // allowed by its state
	Power    bool
	Expires  string
}

type fact struct{ Key, Value string }

func (u *UI) lookup(r *http.Request) (*machine.Machine, *zone.Slot, error) {
	ref := r.PathValue("ref")
	m, err := u.cfg.Store.Machine(r.Context(), ref)
	if err == nil {
		return m, u.cfg.Fleet.Index().Slot(m.SlotKey), nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return nil, nil, err
	}
	// An empty slot, by name or key.
	sl, serr := u.cfg.Store.Slot(r.Context(), ref)
	if serr != nil {
		return nil, nil, err
	}
	if mm, ok := u.cfg.Fleet.InSlot(sl.Key); ok {
		return &mm, sl, nil
	}
	return nil, sl, nil
}

func (u *UI) machine(w http.ResponseWriter, r *http.Request, _ *session, v *view) {
	m, sl, err := u.lookup(r)
	if err != nil {
		u.fail(w, r, v, http.StatusNotFound, fmt.Sprintf("no machine or slot %q", r.PathValue("ref")))
		return
	}
	pg := machinePage{Machine: m, Slot: sl, Expires: "4h"}
	if m != nil {
		tl, err := u.cfg.Store.Timeline(r.Context(), m.ID, 0, 0)
		if err != nil {
			u.fail(w, r, v, http.StatusInternalServerError, err.Error())
			return
		}
		if len(tl) > 200 {
			tl = tl[len(tl)-200:]
		}
		slices.Reverse(tl) // newest first, as the live stream prepends
		pg.Timeline = tl
		if len(tl) > 0 {
			pg.LastID = tl[0].ID
		}
		for k, val := range m.Facts {
			b, _ := json.Marshal(val)
			pg.Facts = append(pg.Facts, fact{k, strings.Trim(string(b), `"`)})
		}
		sort.Slice(pg.Facts, func(i, j int) bool { return pg.Facts[i].Key < pg.Facts[j].Key })
		pg.Actions = allowed(m)
		pg.Power = sl != nil && sl.Power != "" && sl.BMCAddress.IsValid()
	}
	v.Title, v.Page = "Machine", pg
	if m != nil {
		v.Title = m.Label()
	} else if sl != nil {
		v.Title = sl.Name + " (empty slot)"
	}
	u.render(w, r, "machine", v)
}

// allowed lists the actions the lifecycle table allows the machine now.
func allowed(m *machine.Machine) []string {
	var out []string
	for _, a := range []struct {
		action string
		ev     machine.Event
		inSlot bool
	}{{fleet.ActReinstall, machine.Reinstall, true}, {fleet.ActMaintenanceEnter, machine.EnterMaintenance, false},
		{fleet.ActMaintenanceLeave, machine.LeaveMaintenance, false}, {fleet.ActRelease, machine.Release, true}, {fleet.ActRetire, machine.Retire, false}} {
		if m.State.Allows(a.ev) && (!a.inSlot || m.SlotKey != "") {
			out = append(out, a.action)
		}
	}
	return out
}

func (u *UI) machineEvents(w http.ResponseWriter, r *http.Request, _ *session, _ *view) {
	m, _, err := u.lookup(r)
	if err != nil || m == nil {
		http.Error(w, "no such machine", http.StatusNotFound)
		return
	}
	var after int64
	fmt.Sscan(r.URL.Query().Get("after"), &after)
	lastState := ""
	stream(w, r, 500*time.Millisecond, func(send func(string, any)) {
		tl, err := u.cfg.Store.Timeline(r.Context(), m.ID, after, 500)
		if err != nil {
			return
		}
		for _, e := range tl {
			send("entry", e)
			after = e.ID
		}
		if cur, ok := u.cfg.Fleet.InSlot(m.SlotKey); ok && cur.ID == m.ID && string(cur.State) != lastState {
			lastState = string(cur.State)
			send("state", map[string]string{"state": lastState})
		}
	})
}

// act runs a machine action from a form (operator), audited as the API's are.
func (u *UI) act(w http.ResponseWriter, r *http.Request, s *session, v *view) {
	m, _, err := u.lookup(r)
	if err != nil || m == nil {
		u.fail(w, r, v, http.StatusNotFound, fmt.Sprintf("no machine %q", r.PathValue("ref")))
		return
	}
	ref := fmt.Sprint(m.ID)
	back := "/machines/" + url.PathEscape(r.PathValue("ref"))
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	audit := store.AuditEntry{Actor: s.name, Detail: strings.TrimSpace("from the web UI " + reason)}
	action := r.PathValue("action")
	var done string
	switch action {
	case "power":
		a, perr := power.ParseAction(r.PostFormValue("power"))
		if perr != nil {
			err = perr
			break
		}
		var res fleet.PowerResult
		res, err = u.cfg.Fleet.PowerAction(r.Context(), fleet.PowerOp{Ref: ref, Actions: []power.Action{a}, Actor: s.name, Reason: reason, Audit: audit})
		done = fmt.Sprintf("power %s: power %s", a, res.State)
	case fleet.ActReinstall, fleet.ActMaintenanceEnter, fleet.ActMaintenanceLeave, fleet.ActRetire, fleet.ActRelease:
		op := fleet.Op{Ref: ref, Action: action, Actor: s.name, Reason: reason, Audit: audit}
		if action == fleet.ActMaintenanceEnter {
			info, merr := machine.ParseMaintenance(r.PostFormValue("reason"), r.PostFormValue("owner"), r.PostFormValue("expires"), u.cfg.Now())
			if merr != nil {
				err = merr
				break
			}
			op.Maintenance = info
		}
		_, err = u.cfg.Fleet.Operate(r.Context(), op)
		done = action + " done"
		if err == nil && action == fleet.ActReinstall && r.PostFormValue("power_cycle") == "on" {
			_, err = u.cfg.Fleet.PowerAction(r.Context(), fleet.PowerOp{Ref: ref, Actions: []power.Action{power.PXEOnce, power.Cycle}, Actor: s.name, Reason: "reinstall", Audit: audit})
			done = "reinstall: power-cycled through its BMC"
		}
	default:
		u.fail(w, r, v, http.StatusNotFound, fmt.Sprintf("no action %q", action))
		return
	}
	if err != nil {
		http.Redirect(w, r, back+"?error="+url.QueryEscape(err.Error()), http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, back+"?done="+url.QueryEscape(done), http.StatusSeeOther)
}

type designPage struct {
	Revisions []store.Revision
	Commits   []commitView
}

type commitView struct {
	store.PendingCommit
	PlanText string
}

func (u *UI) design(w http.ResponseWriter, r *http.Request, _ *session, v *view) {
	revs, err := u.cfg.Store.Revisions(r.Context())
	if err != nil {
		u.fail(w, r, v, http.StatusInternalServerError, err.Error())
		return
	}
	slices.Reverse(revs)
	cs, err := u.cfg.Store.Commits(r.Context())
	if err != nil {
		u.fail(w, r, v, http.StatusInternalServerError, err.Error())
		return
	}
	pg := designPage{Revisions: revs}
	for _, c := range cs {
		cv := commitView{PendingCommit: c}
		if c.Plan != nil {
			var b strings.Builder
			c.Plan.Write(&b)
			cv.PlanText = b.String()
		}
		pg.Commits = append(pg.Commits, cv)
	}
	v.Title, v.Page = "Design", pg
	u.render(w, r, "design", v)
}

type auditPage struct {
	Filter  store.AuditFilter
	Entries []store.AuditEntry
}

func (u *UI) audit(w http.ResponseWriter, r *http.Request, _ *session, v *view) {
	q := r.URL.Query()
	f := store.AuditFilter{Actor: q.Get("actor"), Action: q.Get("action"), Target: q.Get("target"), Outcome: q.Get("outcome"), Limit: 500}
	es, err := u.cfg.Store.Audit(r.Context(), f)
	if err != nil {
		u.fail(w, r, v, http.StatusInternalServerError, err.Error())
		return
	}
	slices.Reverse(es)
	v.Title, v.Page = "Audit log", auditPage{Filter: f, Entries: es}
	u.render(w, r, "audit", v)
}

type searchHit struct{ Name, Href, Why string }

// search finds machines by name, MAC or any address of their slot (every
// network and the BMC) or lease; one hit goes straight to it.
func (u *UI) search(w http.ResponseWriter, r *http.Request, _ *session, v *view) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	var hits []searchHit
	add := func(name, why string) {
		for _, h := range hits {
			if h.Name == name {
				return
			}
		}
		hits = append(hits, searchHit{Name: name, Href: "/machines/" + url.PathEscape(name), Why: why})
	}
	if q != "" {
		if m, err := u.cfg.Store.Machine(r.Context(), strings.ToLower(q)); err == nil {
			add(m.Label(), "machine "+m.MAC)
		}
		addr, aerr := netip.ParseAddr(q)
		for _, s := range u.cfg.Fleet.Index().Design().Slots {
			switch {
			case strings.Contains(s.Name, q) || strings.Contains(s.PermanentName, q):
				add(s.Name, "slot "+s.Key)
			case aerr == nil && (s.Address == addr || s.BMCAddress == addr):
				add(s.Name, "address "+q)
			case aerr == nil:
				for _, n := range s.Networks {
					if n.Address.Addr() == addr {
						add(s.Name, n.Network+" address "+q)
					}
				}
			}
		}
		if aerr == nil {
			if ls, err := u.cfg.Store.Leases(r.Context()); err == nil {
				for _, l := range ls {
					if l.Addr == addr {
						if m, err := u.cfg.Store.Machine(r.Context(), l.MAC); err == nil {
							add(m.Label(), "lease "+q)
						}
					}
				}
			}
		}
	}
	if len(hits) == 1 {
		http.Redirect(w, r, hits[0].Href, http.StatusSeeOther)
		return
	}
	v.Title, v.Query, v.Page = "Search", q, hits
	u.render(w, r, "search", v)
}
