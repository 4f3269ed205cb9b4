package api

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/drover/drover/internal/dnszone"
	"github.com/drover/drover/internal/handoff"
	"github.com/drover/drover/internal/monitoring"
	"github.com/drover/drover/internal/store"
)

// hosts pairs the served design's slots with the machines in them.
func (s *Server) hosts(r *http.Request) ([]handoff.Host, error) {
	ms, err := s.cfg.Store.Machines(r.Context(), store.MachineFilter{})
	if err != nil {
		return nil, err
	}
	return handoff.Hosts(s.cfg.Fleet.Index(), ms), nil
}

// ansible is the Ansible dynamic inventory: ?host=NAME for one host's
// variables (`--host`), else the whole inventory (`--list`).
func (s *Server) ansible(w http.ResponseWriter, r *http.Request, _ *call) {
	hosts, err := s.hosts(r)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	name := r.URL.Query().Get("host")
	if name == "" {
		writeJSON(w, http.StatusOK, handoff.Ansible(hosts))
		return
	}
	h, ok := handoff.Find(hosts, name)
	if !ok {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no host %q in the design (a slot name, permanent name or FQDN)", name))
		return
	}
	writeJSON(w, http.StatusOK, handoff.AnsibleHostVars(h))
}

func puppetENC(h handoff.Host) (any, error) { return handoff.ENC(h) }
func chefNode(h handoff.Host) (any, error)  { return handoff.Chef(h), nil }

// handoffHost answers one host in a configuration management tool's format.
func (s *Server) handoffHost(render func(handoff.Host) (any, error)) func(http.ResponseWriter, *http.Request, *call) {
	return func(w http.ResponseWriter, r *http.Request, _ *call) {
		hosts, err := s.hosts(r)
		if err != nil {
			writeError(w, http.StatusInternalServerError, "internal", err.Error())
			return
		}
		name := r.PathValue("name")
		h, ok := handoff.Find(hosts, name)
		if !ok {
			writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no host %q in the design (a slot name, permanent name or FQDN)", name))
			return
		}
		out, err := render(h)
		if err != nil {
			writeError(w, http.StatusConflict, "conflict", err.Error())
			return
		}
		writeJSON(w, http.StatusOK, out)
	}
}

// targetQuery reads ?port= (default 9100, node_exporter) and ?network=
// (default boot), which pick the address monitoring scrapes.
func targetQuery(w http.ResponseWriter, r *http.Request) (network string, port int, ok bool) {
	q := r.URL.Query()
	port = 9100
	if v := q.Get("port"); v != "" {
		p, err := strconv.Atoi(v)
		if err != nil || p < 1 || p > 65535 {
			writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("port %q: give a TCP port, 1-65535", v))
			return "", 0, false
		}
		port = p
	}
	return q.Get("network"), port, true
}

// targets are the monitored hosts' exporters as ?port= and ?network= pick
// them; false when it has answered the request with an error.
func (s *Server) targets(w http.ResponseWriter, r *http.Request) ([]handoff.TargetGroup, bool) {
	network, port, ok := targetQuery(w, r)
	if !ok {
		return nil, false
	}
	hosts, err := s.hosts(r)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return nil, false
	}
	return handoff.Prometheus(hosts, network, port), true
}

// prometheus is Prometheus HTTP service discovery of the monitored hosts' exporters.
func (s *Server) prometheus(w http.ResponseWriter, r *http.Request, _ *call) {
	if groups, ok := s.targets(w, r); ok {
		writeJSON(w, http.StatusOK, groups)
	}
}

// monitoringCheck lists the monitored machines Prometheus does not see as up.
func (s *Server) monitoringCheck(w http.ResponseWriter, r *http.Request, _ *call) {
	if s.cfg.Monitoring == nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "this server has no Prometheus to ask: start drover serve with --prometheus URL")
		return
	}
	groups, ok := s.targets(w, r)
	if !ok {
		return
	}
	up, err := s.cfg.Monitoring.Up(r.Context())
	if err != nil {
		writeError(w, http.StatusBadGateway, "bad_gateway", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, monitoring.Check(groups, up))
}

// dnsSet is the served zones; nil when it has answered 503.
func (s *Server) dnsSet(w http.ResponseWriter) *dnszone.Set {
	var set *dnszone.Set
	if s.cfg.DNS != nil {
		set = s.cfg.DNS.Zones()
	}
	if set == nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "this server serves no DNS: start drover serve with --dns ADDR")
	}
	return set
}

// DNSZone is a served zone as the API lists it.
type DNSZone struct {
	Zone    string   `json:"zone"`
	Serial  uint32   `json:"serial"`
	Records int      `json:"records"`
	Notify  []string `json:"notify"`
}

// dnsZones lists the zones the nameserver is authoritative for.
func (s *Server) dnsZones(w http.ResponseWriter, r *http.Request, _ *call) {
	set := s.dnsSet(w)
	if set == nil {
		return
	}
	out := []DNSZone{}
	for _, z := range set.Zones() {
		notify := []string{}
		for _, a := range z.Notify {
			notify = append(notify, a.String())
		}
		out = append(out, DNSZone{Zone: strings.TrimSuffix(z.Origin, "."), Serial: z.Serial(), Records: len(z.Records()) + 1, Notify: notify})
	}
	writeJSON(w, http.StatusOK, out)
}

// dnsZone is one zone as a BIND master file.
func (s *Server) dnsZone(w http.ResponseWriter, r *http.Request, _ *call) {
	set := s.dnsSet(w)
	if set == nil {
		return
	}
	z := set.Zone(r.PathValue("zone"))
	if z == nil {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no zone %q is served (GET /api/v1/dns/zones lists them)", r.PathValue("zone")))
		return
	}
	w.Header().Set("Content-Type", "text/dns; charset=utf-8")
	z.WriteTo(w)
}
