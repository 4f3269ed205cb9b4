package boot

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path"

	"github.com/drover/drover/internal/dhcp"
	"github.com/drover/drover/internal/fleet"
	"github.com/drover/drover/internal/machine"
	"github.com/drover/drover/internal/zone"
)

// ztpTicket serves what a switch's DHCP answer pointed it at: the ONIE
// installer, or one of its rendered files. The ticket came in that answer and
// works only from the address leased with it; fetching a file starts the
// provisioning: the switch gets a fresh token (in its files' URLs and for its
// phone-home), and the previous one stops working.
func (s *Server) ztpTicket(w http.ResponseWriter, r *http.Request) {
	ticket, name := r.PathValue("ticket"), r.PathValue("name")
	if name == dhcp.OnieInstaller {
		t, err := s.cfg.Fleet.Holder(ticket, source(r))
		if err != nil || !t.Slot.IsSwitch() {
			http.Error(w, "ZTP ticket is not valid for this client: restart from DHCP", http.StatusForbidden)
			return
		}
		installer := ""
		if sw := t.Zone.Switch(t.Slot.Name); sw != nil {
			installer = sw.Installer()
		}
		if installer == "" {
			http.Error(w, "the fabric has no ONIE installer for "+t.Slot.NetworkOS, http.StatusNotFound)
			return
		}
		s.cfg.Fleet.NoteMachine(t.Machine.ID, machine.KindZTP, "ONIE installer "+installer)
		s.serveFile(w, r, s.artifacts, machine.KindArtifact, path.Clean(installer))
		return
	}
	t, err := s.cfg.Fleet.Script(r.Context(), ticket, source(r))
	switch {
	case errors.Is(err, fleet.ErrUnknown):
		http.Error(w, "ZTP ticket is not valid for this client: restart from DHCP", http.StatusForbidden)
		return
	case err != nil:
		s.cfg.Log.Error("ztp", "err", err)
		http.Error(w, "server error", http.StatusInternalServerError)
		return
	case !t.Slot.IsSwitch():
		http.Error(w, "not a switch drover provisions", http.StatusForbidden)
		return
	case t.Action != fleet.ActionInstall:
		http.Error(w, fmt.Sprintf("switch %s is %s: drover provisions it again after `drover reinstall %s`", t.Slot.Name, t.Machine.State, t.Slot.Name), http.StatusConflict)
		return
	}
	s.serveSwitchFile(w, r, t, name)
}

// ztpFile serves one rendered file to the switch whose token it is.
func (s *Server) ztpFile(w http.ResponseWriter, r *http.Request) {
	t, err := s.cfg.Fleet.Installing(token(r))
	if err != nil || !t.Slot.IsSwitch() {
		http.Error(w, "switch token is not valid: wrong, replaced by a newer ZTP fetch, or the switch is not being provisioned", http.StatusForbidden)
		return
	}
	t.Token = token(r)
	s.serveSwitchFile(w, r, t, r.PathValue("name"))
}

// serveSwitchFile renders every file of the switch, all or nothing, and
// serves the one asked for; the fetch goes on the switch's timeline.
func (s *Server) serveSwitchFile(w http.ResponseWriter, r *http.Request, t fleet.Target, name string) {
	sw := t.Zone.Switch(t.Slot.Name)
	if sw == nil {
		http.Error(w, "switch "+t.Slot.Name+" is not in the design", http.StatusNotFound)
		return
	}
	host, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		host = r.Host
	}
	files, err := sw.Render(zone.SwitchRuntime{URL: baseURL(r), Server: host, Token: t.Token})
	if err != nil {
		s.cfg.Log.Error("switch configuration", "switch", sw.Name, "err", err)
		s.cfg.Fleet.NoteMachine(t.Machine.ID, machine.KindTemplateError, err.Error())
		http.Error(w, "drover could not render this switch's configuration: "+err.Error(), http.StatusInternalServerError)
		return
	}
	body, ok := files[name]
	if !ok {
		http.Error(w, fmt.Sprintf("network OS %s has no template %q", sw.OS, name), http.StatusNotFound)
		return
	}
	s.cfg.Fleet.NoteMachine(t.Machine.ID, machine.KindZTP, fmt.Sprintf("served %s (%d bytes, %s)", name, len(body), sw.OS))
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	io.WriteString(w, body)
}
