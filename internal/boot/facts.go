// Package boot is the HTTP service machines talk to while they boot and
// install: per-machine iPXE scripts, artifacts, rendered install templates and
// phone-home. It is a listener of its own, separate from the operators' API.
package boot

import (
	"net"
	"net/url"

	"github.com/drover/drover/internal/fleet"
)

// Facts are what install templates and kernel arguments are rendered from.
type Facts struct {
	Name          string
	PermanentName string
	FQDN          string
	Zone          string
	Environment   string
	Pod           string
	Switch        string
	Port          string
	Role          string
	Variant       string
	ID            int
	MAC           string
	Address       string
	Prefix        int
	Netmask       string
	Gateway       string
	DNS           []string
	Domain        string
	BMCAddress    string
	Networks      []Network
	Firmware      string
	Classes       []string
	Params        map[string]any
	Token         string
	BaseURL       string
	PhoneHomeURL  string
	// In the seed templates of profiles with an image only: the zone's SSH
	// keys, and the URL the installed system phones home `booted` with.
	SSHKeys   []string
	BootedURL string
}

// Network is one of a host's addresses.
type Network struct {
	Name    string
	Address string
	Prefix  int
	Gateway string
}

// TemplateURL is where the installer fetches one of its rendered templates.
func (f Facts) TemplateURL(name string) string {
	return f.BaseURL + "/install/" + url.PathEscape(name) + "?token=" + url.QueryEscape(f.Token)
}

func factsFor(t fleet.Target, base string) Facts {
	s := t.Slot
	f := Facts{
		Name: s.Name, PermanentName: s.PermanentName, FQDN: s.FQDN(), Zone: s.Zone, Environment: s.Environment,
		Pod: s.Pod, Switch: s.Switch, Port: s.Port, Role: s.Role, Variant: s.Variant, ID: s.ID, MAC: t.Machine.MAC,
		Address: s.Address.String(), Prefix: s.Prefix.Bits(), Netmask: net.IP(net.CIDRMask(s.Prefix.Bits(), 32)).String(),
		Gateway: s.Gateway.String(), Domain: s.Domain, Firmware: s.Firmware,
		Token: t.Token, BaseURL: base, Params: map[string]any{},
	}
	f.PhoneHomeURL = base + "/phone-home?token=" + url.QueryEscape(t.Token)
	if s.BMCAddress.IsValid() {
		f.BMCAddress = s.BMCAddress.String()
	}
	for _, n := range s.Networks {
		nw := Network{Name: n.Network, Address: n.Address.Addr().String(), Prefix: n.Address.Bits()}
		if n.Gateway.IsValid() {
			nw.Gateway = n.Gateway.String()
		}
		f.Networks = append(f.Networks, nw)
	}
	if z := t.Zone; z != nil {
		for _, d := range z.DNS() {
			f.DNS = append(f.DNS, d.String())
		}
		if r := z.Role(s.Role); r != nil {
			f.Classes, f.Params = r.Merged(s.Variant)
		}
	}
	return f
}
