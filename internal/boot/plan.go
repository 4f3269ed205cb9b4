package boot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/drover/drover/internal/install"
	"github.com/drover/drover/internal/machine"
	"github.com/drover/drover/internal/secret"
	"github.com/drover/drover/internal/store"
	"github.com/drover/drover/internal/zone"
)

// Catalogue resolves a profile's image to a checksummed artifact.
type Catalogue interface {
	ResolveArtifact(ctx context.Context, name, channel string) (store.Artifact, error)
}

// plan answers an install agent: what to write, and the seed to write with it.
func (s *Server) plan(w http.ResponseWriter, r *http.Request) {
	tok := token(r)
	t, err := s.cfg.Fleet.Installing(tok)
	if err != nil {
		http.Error(w, tokenRefused, http.StatusForbidden)
		return
	}
	t.Token = tok
	base := baseURL(r)
	p := t.Zone.Profile(t.Slot.Profile)
	if p == nil {
		http.Error(w, fmt.Sprintf("profile %q is not in the design", t.Slot.Profile), http.StatusConflict)
		return
	}
	plan := install.Plan{Name: t.Slot.Name}
	fail := func(code int, err error) {
		s.cfg.Log.Error("install plan", "machine", t.Slot.Name, "err", err)
		s.cfg.Fleet.NoteMachine(t.Machine.ID, machine.KindTemplateError, "install plan: "+err.Error())
		http.Error(w, err.Error(), code)
	}
	name, channel, hasImage := p.ImageRef(t.Zone)
	switch {
	case !hasImage:
		if _, ok := p.TemplatePath("install"); !ok {
			fail(http.StatusConflict, fmt.Errorf("profile %s has neither an image nor an `install` template", p.Name))
			return
		}
		plan.Script = base + "/install/install"
		s.cfg.Fleet.NoteMachine(t.Machine.ID, machine.KindTemplate, "install plan: run the profile's install script")
	case s.cfg.Catalogue == nil:
		fail(http.StatusConflict, errors.New("this drover has no artifact catalogue"))
		return
	default:
		a, err := s.cfg.Catalogue.ResolveArtifact(r.Context(), name, channel)
		if err != nil {
			fail(http.StatusConflict, fmt.Errorf("profile %s image %s: %w", p.Name, p.Image, err))
			return
		}
		boot, err := s.cfg.Fleet.IssueBootToken(r.Context(), tok)
		if err != nil {
			http.Error(w, tokenRefused, http.StatusForbidden)
			return
		}
		f := factsFor(t, base)
		f.SSHKeys = t.Zone.AuthorizedKeys()
		f.BootedURL = base + "/phone-home?status=booted&token=" + url.QueryEscape(boot)
		// A new instance-id for every install: cloud-init runs its first-boot modules again.
		instance := fmt.Sprintf("drover-%d-%s", t.Machine.ID, secret.Hash(boot)[:12])
		if plan.Seed, err = s.templates.seedFor(p, t.Slot, t.Machine, f, instance); err != nil {
			fail(http.StatusInternalServerError, err)
			return
		}
		plan.Image = &install.Image{Name: a.Name, Version: a.Version, URL: base + "/artifacts/sha256/" + a.SHA256,
			SHA256: a.SHA256, Size: a.Size, Format: a.Format, DiskBytes: a.Disk}
		s.cfg.Fleet.NoteMachine(t.Machine.ID, machine.KindTemplate, fmt.Sprintf("install plan: image %s %s from channel %s (sha256 %s…, %d bytes)", a.Name, a.Version, channel, a.SHA256[:12], a.Size))
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(plan)
}

// seedFor renders the machine's NoCloud seed: the profile's `meta-data`,
// `user-data` and `network-config` templates where it has them, drover's
// defaults where not. All three render or none is handed out.
func (c *templates) seedFor(p *zone.Profile, s *zone.Slot, m machine.Machine, f Facts, instanceID string) (install.Seed, error) {
	defaults := map[string]string{
		"meta-data":      fmt.Sprintf("instance-id: %s\nlocal-hostname: %s\n", instanceID, s.PermanentName),
		"user-data":      defaultUserData(f),
		"network-config": defaultNetworkConfig(s, m.MAC, f),
	}
	out := map[string]string{}
	for name, def := range defaults {
		path, ok := p.TemplatePath(name)
		if !ok {
			out[name] = def
			continue
		}
		text, err := c.readFile(path)
		if err != nil {
			return install.Seed{}, fmt.Errorf("template %s: %w", name, err)
		}
		if out[name], err = c.renderText("template "+name, text, f); err != nil {
			return install.Seed{}, err
		}
	}
	return install.Seed{MetaData: out["meta-data"], UserData: out["user-data"], NetworkConfig: out["network-config"]}, nil
}

// defaultUserData names the host, installs the zone's SSH keys for root and
// phones home `booted` on first boot (cloud-init's phone_home module).
func defaultUserData(f Facts) string {
	var b strings.Builder
	b.WriteString("#cloud-config\n")
	fmt.Fprintf(&b, "hostname: %s\nfqdn: %s\nprefer_fqdn_over_hostname: false\nmanage_etc_hosts: true\n", f.PermanentName, f.FQDN)
	b.WriteString("disable_root: false\nssh_pwauth: false\n")
	if len(f.SSHKeys) > 0 {
		b.WriteString("users:\n  - name: root\n    lock_passwd: true\n    ssh_authorized_keys:\n")
		for _, k := range f.SSHKeys {
			fmt.Fprintf(&b, "      - %q\n", k)
		}
	}
	fmt.Fprintf(&b, "phone_home:\n  url: %q\n  post: [instance_id, hostname, fqdn]\n  tries: 30\n", f.BootedURL)
	return b.String()
}

// defaultNetworkConfig puts the slot's address in every host network (the
// BMC's is not the host's) on the NIC the machine booted from, named eth0,
// with the boot network's gateway and the zone's DNS (cloud-init network
// config version 1).
func defaultNetworkConfig(s *zone.Slot, mac string, f Facts) string {
	var b strings.Builder
	fmt.Fprintf(&b, "version: 1\nconfig:\n  - type: physical\n    name: eth0\n    mac_address: %q\n    subnets:\n", mac)
	for _, n := range s.Networks {
		if n.Network == "bmc" || !n.Address.IsValid() {
			continue
		}
		fmt.Fprintf(&b, "      - type: static\n        address: %s\n", n.Address)
		if n.Network == "boot" {
			if n.Gateway.IsValid() {
				fmt.Fprintf(&b, "        gateway: %s\n", n.Gateway)
			}
			if len(f.DNS) > 0 {
				fmt.Fprintf(&b, "        dns_nameservers: [%s]\n", strings.Join(f.DNS, ", "))
			}
			fmt.Fprintf(&b, "        dns_search: [%s]\n", s.Domain)
		}
	}
	return b.String()
}
