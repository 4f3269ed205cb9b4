package zone

import (
	"fmt"
	"io"
	"net/netip"
	"slices"
	"sort"
	"strings"
)

// Plan is what applying a design changes, slot by slot.
type Plan struct {
	Added   []*Slot      `json:"added"`
	Removed []*Slot      `json:"removed"`
	Changed []SlotChange `json:"changed"`
}

// SlotChange is one slot whose derived identity changes.
type SlotChange struct {
	Key       string   `json:"key"`
	Before    *Slot    `json:"before"`
	After     *Slot    `json:"after"`
	Fields    []string `json:"fields"`
	Reinstall bool     `json:"reinstall"` // the machine in it must be reinstalled
}

// Empty reports whether the plan changes nothing.
func (p *Plan) Empty() bool { return len(p.Added)+len(p.Removed)+len(p.Changed) == 0 }

// reinstallFields are the changes that make a deployed machine wrong until reinstalled.
var reinstallFields = []string{"role", "variant", "profile"}

// Diff compares the slots in use with the slots of a design. Both lists may be in any order.
func Diff(current, next []*Slot) *Plan {
	p := &Plan{}
	cur := make(map[string]*Slot, len(current))
	for _, s := range current {
		cur[s.Key] = s
	}
	for _, n := range next {
		c, ok := cur[n.Key]
		if !ok {
			p.Added = append(p.Added, n)
			continue
		}
		delete(cur, n.Key)
		if fields := changedFields(c, n); len(fields) > 0 {
			ch := SlotChange{Key: n.Key, Before: c, After: n, Fields: fields}
			for _, f := range fields {
				if slices.Contains(reinstallFields, f) {
					ch.Reinstall = true
				}
			}
			p.Changed = append(p.Changed, ch)
		}
	}
	for _, c := range cur {
		p.Removed = append(p.Removed, c)
	}
	sort.Slice(p.Added, func(i, j int) bool { return SlotLess(p.Added[i], p.Added[j]) })
	sort.Slice(p.Removed, func(i, j int) bool { return SlotLess(p.Removed[i], p.Removed[j]) })
	sort.Slice(p.Changed, func(i, j int) bool { return SlotLess(p.Changed[i].After, p.Changed[j].After) })
	return p
}

func changedFields(a, b *Slot) []string {
	var f []string
	add := func(name string, changed bool) {
		if changed {
			f = append(f, name)
		}
	}
	add("role", a.Role != b.Role)
	add("variant", a.Variant != b.Variant)
	// Slots stored before digests existed have none: unknown is not a change.
	add("profile", a.Profile != b.Profile || a.ProfileDigest != "" && b.ProfileDigest != "" && a.ProfileDigest != b.ProfileDigest)
	add("name", a.Name != b.Name || a.PermanentName != b.PermanentName)
	add("address", a.Address != b.Address || a.Prefix != b.Prefix || a.Gateway != b.Gateway)
	add("bmc_address", a.BMCAddress != b.BMCAddress)
	add("bmc_port", a.BMCPort != b.BMCPort)
	add("power", a.Power != b.Power)
	add("networks", !sameNetworks(a.Networks, b.Networks))
	add("pod", a.Pod != b.Pod)
	add("zone", a.Zone != b.Zone || a.Environment != b.Environment || a.Domain != b.Domain)
	add("mac", a.MAC != b.MAC)
	add("firmware", a.Firmware != b.Firmware)
	add("on_replace", a.OnReplace != b.OnReplace)
	add("id", a.ID != b.ID)
	return f
}

func sameNetworks(a, b []NetAddress) bool {
	return slices.EqualFunc(a, b, func(x, y NetAddress) bool { return x == y })
}

// Write prints the plan for a person: changes grouped by zone and pod.
func (p *Plan) Write(w io.Writer) {
	if p.Empty() {
		fmt.Fprintln(w, "No changes: the design matches what is applied.")
		return
	}
	type group struct{ zone, pod string }
	lines := map[group][]string{}
	var groups []group
	put := func(s *Slot, line string) {
		g := group{s.Zone, s.Pod}
		if _, ok := lines[g]; !ok {
			groups = append(groups, g)
		}
		lines[g] = append(lines[g], line)
	}
	for _, s := range p.Added {
		put(s, fmt.Sprintf("  + %-28s %-22s %s", s.Name, s.Key, addrOrDash(s.Address)))
	}
	for _, c := range p.Changed {
		var parts []string
		for _, f := range c.Fields {
			parts = append(parts, fmt.Sprintf("%s %s -> %s", f, fieldValue(c.Before, f), fieldValue(c.After, f)))
		}
		mark := "~"
		note := ""
		if c.Reinstall {
			mark, note = "!", "  (reinstall)"
		}
		put(c.After, fmt.Sprintf("  %s %-28s %-22s %s%s", mark, c.After.Name, c.Key, strings.Join(parts, "; "), note))
	}
	for _, s := range p.Removed {
		put(s, fmt.Sprintf("  - %-28s %-22s %s", s.Name, s.Key, addrOrDash(s.Address)))
	}
	sort.SliceStable(groups, func(i, j int) bool {
		if groups[i].zone != groups[j].zone {
			return NaturalLess(groups[i].zone, groups[j].zone)
		}
		return NaturalLess(groups[i].pod, groups[j].pod)
	})
	for _, g := range groups {
		fmt.Fprintf(w, "zone %s, pod %s:\n", g.zone, g.pod)
		for _, l := range lines[g] {
			fmt.Fprintln(w, l)
		}
	}
	reinstall := 0
	for _, c := range p.Changed {
		if c.Reinstall {
			reinstall++
		}
	}
	fmt.Fprintf(w, "Plan: %d to add, %d to change (%d need reinstall), %d to remove.\n", len(p.Added), len(p.Changed), reinstall, len(p.Removed))
}

func addrOrDash(a netip.Addr) string {
	if !a.IsValid() {
		return "-"
	}
	return a.String()
}

func fieldValue(s *Slot, field string) string {
	v := ""
	switch field {
	case "role":
		v = s.Role
	case "variant":
		v = s.Variant
	case "profile":
		v = s.Profile
		if s.ProfileDigest != "" {
			v += "@" + s.ProfileDigest[:8]
		}
	case "name":
		v = s.Name
	case "address":
		v = addrOrDash(s.Address)
	case "bmc_address":
		v = addrOrDash(s.BMCAddress)
	case "bmc_port":
		v = s.BMCPort
	case "power":
		v = string(s.Power)
	case "pod":
		v = s.Pod
	case "zone":
		v = s.Zone
	case "mac":
		v = s.MAC
	case "firmware":
		v = s.Firmware
	case "on_replace":
		v = string(s.OnReplace)
	case "id":
		v = fmt.Sprint(s.ID)
	case "networks":
		parts := make([]string, len(s.Networks))
		for i, n := range s.Networks {
			parts[i] = n.Network + "=" + n.Address.Addr().String()
		}
		v = strings.Join(parts, ",")
	}
	if v == "" {
		return "(none)"
	}
	return v
}
