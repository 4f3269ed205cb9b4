// Package handoff gives configuration management what the design and the
// live state say about every host, in the formats those tools already read:
// an Ansible dynamic inventory, a Puppet external node classifier (ENC)
// answer, and Chef node JSON.
package handoff

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/drover/drover/internal/machine"
	"github.com/drover/drover/internal/zone"
)

// Host is a slot of the design with the machine in it, if any.
type Host struct {
	Slot    *zone.Slot
	Zone    *zone.Zone
	Machine *machine.Machine // nil: no machine has been seen in the slot
}

// StateAbsent is the state of a slot no machine has been seen in.
const StateAbsent = "absent"

// Hosts pairs every slot of the design with the machine in it.
func Hosts(ix *zone.Index, machines []*machine.Machine) []Host {
	bySlot := map[string]*machine.Machine{}
	for _, m := range machines {
		if m.SlotKey != "" && m.State != machine.Retired {
			bySlot[m.SlotKey] = m
		}
	}
	d := ix.Design()
	out := make([]Host, 0, len(d.Slots))
	for _, s := range d.Slots {
		if s.IsSwitch() {
			continue // switches are configured by ZTP from the design, not by config management
		}
		out = append(out, Host{Slot: s, Zone: ix.Zone(s.Zone), Machine: bySlot[s.Key]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Slot.Name < out[j].Slot.Name })
	return out
}

// Find is the host a name refers to: its name, permanent name or FQDN.
func Find(hosts []Host, name string) (Host, bool) {
	for _, h := range hosts {
		s := h.Slot
		if name == s.Name || name == s.PermanentName || strings.EqualFold(strings.TrimSuffix(name, "."), s.FQDN()) {
			return h, true
		}
	}
	return Host{}, false
}

// State is the machine's lifecycle state, or "absent".
func (h Host) State() string {
	if h.Machine == nil {
		return StateAbsent
	}
	return string(h.Machine.State)
}

// ClassesParams are the host's role classes and parameters (variant merged).
func (h Host) ClassesParams() ([]string, map[string]any) {
	if h.Zone != nil {
		if r := h.Zone.Role(h.Slot.Role); r != nil {
			return r.Merged(h.Slot.Variant)
		}
	}
	return nil, map[string]any{}
}

// Vars is everything drover knows of a host, as configuration management
// variables (each tool prefixes or nests them its own way).
func (h Host) Vars() map[string]any {
	s := h.Slot
	classes, params := h.ClassesParams()
	if classes == nil {
		classes = []string{}
	}
	v := map[string]any{
		"name": s.Name, "permanent_name": s.PermanentName, "fqdn": s.FQDN(), "domain": s.Domain,
		"zone": s.Zone, "environment": s.Environment, "pod": s.Pod, "role": s.Role, "variant": s.Variant,
		"id": s.ID, "slot": s.Key, "switch": s.Switch, "port": s.Port, "state": h.State(),
		"address": s.Address.String(), "prefix": s.Prefix.Bits(), "gateway": addr(s.Gateway.String(), s.Gateway.IsValid()),
		"bmc_address": addr(s.BMCAddress.String(), s.BMCAddress.IsValid()), "firmware": s.Firmware, "profile": s.Profile,
		"classes": classes, "params": params,
	}
	nets := map[string]any{"boot": map[string]any{"address": s.Address.String(), "prefix": s.Prefix.Bits(), "gateway": addr(s.Gateway.String(), s.Gateway.IsValid())}}
	for _, n := range s.Networks {
		nets[n.Network] = map[string]any{"address": n.Address.Addr().String(), "prefix": n.Address.Bits(), "gateway": addr(n.Gateway.String(), n.Gateway.IsValid())}
	}
	if s.BMCAddress.IsValid() {
		nets["bmc"] = map[string]any{"address": s.BMCAddress.String()}
	}
	v["networks"] = nets
	v["mac"], v["facts"], v["maintenance"] = "", map[string]any{}, false
	if m := h.Machine; m != nil {
		v["mac"] = m.MAC
		if m.Facts != nil {
			v["facts"] = m.Facts
		}
		v["maintenance"] = m.Maintenance != nil
	}
	return v
}

func addr(s string, ok bool) string {
	if !ok {
		return ""
	}
	return s
}

var notGroupChar = regexp.MustCompile(`[^A-Za-z0-9_]`)

// GroupName makes an Ansible group name (letters, digits, underscores).
func GroupName(parts ...string) string {
	return notGroupChar.ReplaceAllString(strings.Join(parts, "_"), "_")
}

// Ansible is a dynamic inventory as `--list` prints it: groups by zone, pod,
// role, variant, environment and state, and every host's variables under
// _meta.hostvars (so Ansible need not call --host per host). Host variables
// are prefixed drover_; ansible_host is the boot address.
func Ansible(hosts []Host) map[string]any {
	groups := map[string][]string{}
	hostvars := map[string]any{}
	for _, h := range hosts {
		s := h.Slot
		name := s.Name
		for _, g := range []string{GroupName("zone", s.Zone), GroupName("pod", s.Zone, s.Pod), GroupName("role", s.Role),
			GroupName("environment", s.Environment), GroupName("state", h.State())} {
			groups[g] = append(groups[g], name)
		}
		if s.Variant != "" {
			g := GroupName("variant", s.Role, s.Variant)
			groups[g] = append(groups[g], name)
		}
		hostvars[name] = AnsibleHostVars(h)
	}
	out := map[string]any{"_meta": map[string]any{"hostvars": hostvars}}
	children := make([]string, 0, len(groups))
	for g, members := range groups {
		slices.Sort(members)
		out[g] = map[string]any{"hosts": members}
		children = append(children, g)
	}
	slices.Sort(children)
	out["all"] = map[string]any{"children": children}
	return out
}

// AnsibleHostVars is one host's variables, as `--host NAME` prints them.
func AnsibleHostVars(h Host) map[string]any {
	v := map[string]any{"ansible_host": h.Slot.Address.String()}
	for k, val := range h.Vars() {
		v["drover_"+k] = val
	}
	return v
}

// ENC is a Puppet external node classifier's answer for a host: its
// classes, its role parameters and drover's variables (prefixed drover_) as
// top-scope parameters, and its zone's environment as Puppet environment.
// A parameter of the role named like one of drover's is refused rather than
// silently shadowed.
func ENC(h Host) (map[string]any, error) {
	classes, params := h.ClassesParams()
	if classes == nil {
		classes = []string{}
	}
	top := map[string]any{}
	for k, v := range params {
		top[k] = v
	}
	for k, v := range h.Vars() {
		if k == "params" || k == "classes" {
			continue
		}
		if _, clash := top["drover_"+k]; clash {
			return nil, fmt.Errorf("%s: role parameter drover_%s clashes with drover's own variable", h.Slot.Name, k)
		}
		top["drover_"+k] = v
	}
	return map[string]any{"classes": classes, "parameters": top, "environment": h.Slot.Environment}, nil
}

// Chef is node JSON for `chef-client -j`: the run list from the role's
// classes (each a recipe), its parameters as normal attributes, and drover's
// variables under "drover".
func Chef(h Host) map[string]any {
	classes, params := h.ClassesParams()
	runList := make([]string, 0, len(classes))
	for _, c := range classes {
		if strings.HasPrefix(c, "recipe[") || strings.HasPrefix(c, "role[") {
			runList = append(runList, c)
		} else {
			runList = append(runList, "recipe["+c+"]")
		}
	}
	out := map[string]any{}
	for k, v := range params {
		out[k] = v
	}
	vars := h.Vars()
	delete(vars, "params")
	out["drover"] = vars
	out["run_list"] = runList
	out["name"] = h.Slot.FQDN()
	out["chef_environment"] = h.Slot.Environment
	return out
}

// TargetGroup is one entry of Prometheus HTTP service discovery.
type TargetGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// Monitored says whether monitoring should watch a host: its OS runs
// (deployed, or in maintenance, where alerts are silenced instead).
func (h Host) Monitored() bool {
	return h.Machine != nil && (h.Machine.State == machine.Deployed || h.Machine.State == machine.Maintenance)
}

// Prometheus lists the monitored hosts' exporters for http_sd_configs: the
// host's address in network (boot when empty) and port, labelled with its
// name, zone, pod, role, variant, environment and state.
func Prometheus(hosts []Host, network string, port int) []TargetGroup {
	out := []TargetGroup{}
	for _, h := range hosts {
		if !h.Monitored() {
			continue
		}
		s := h.Slot
		a := s.Address
		if network != "" && network != "boot" {
			a = netip.Addr{}
			for _, n := range s.Networks {
				if n.Network == network {
					a = n.Address.Addr()
				}
			}
			if !a.IsValid() {
				continue // this host has no address in that network
			}
		}
		out = append(out, TargetGroup{
			Targets: []string{netip.AddrPortFrom(a, uint16(port)).String()},
			Labels: map[string]string{"name": s.Name, "zone": s.Zone, "pod": s.Pod, "role": s.Role, "variant": s.Variant,
				"environment": s.Environment, "state": h.State(), "slot": s.Key},
		})
	}
	return out
}
