// Package cabling compares what a machine's NICs hear over LLDP with where
// the design (and option 82) put the machine: a host on the wrong port, or a
// second NIC on another machine's port or another pod's switch.
package cabling

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"

	"github.com/drover/drover/internal/install"
	"github.com/drover/drover/internal/zone"
)

// Status of a machine's cabling.
const (
	OK       = "ok"
	Mismatch = "mismatch"
	NoLLDP   = "no-lldp" // nothing heard: the network does not run LLDP, or not yet reported
)

// Finding is one cable that is not where the design says.
type Finding struct {
	Interface string `json:"interface"`
	MAC       string `json:"mac"`
	Seen      string `json:"seen"`     // switch/port the NIC hears
	Expected  string `json:"expected"` // switch/port the design wants, if it says
	Problem   string `json:"problem"`
}

func (f Finding) String() string { return f.Problem }

// Report is one machine's cabling.
type Report struct {
	Machine    string              `json:"machine"`
	Slot       string              `json:"slot"`
	Status     string              `json:"status"`
	Findings   []Finding           `json:"findings,omitempty"`
	Neighbours []install.Neighbour `json:"neighbours,omitempty"`
}

// Neighbours reads the LLDP neighbours from an agent's facts.
func Neighbours(facts map[string]any) []install.Neighbour {
	raw, ok := facts["lldp"]
	if !ok {
		return nil
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return nil
	}
	var out []install.Neighbour
	if json.Unmarshal(b, &out) != nil {
		return nil
	}
	return out
}

// Where is the switch/port a neighbour advertises: its system name (without
// a domain) and its port ID, or its port description when the ID is a MAC.
func Where(n install.Neighbour) string {
	sw, _, _ := strings.Cut(n.SystemName, ".")
	port := n.PortID
	if _, err := net.ParseMAC(port); err == nil && n.PortDescription != "" {
		port = n.PortDescription
	}
	return sw + "/" + port
}

// Check compares a machine in slot s (booted from NIC bootMAC) with what its
// NICs heard.
func Check(ix *zone.Index, s *zone.Slot, bootMAC string, heard []install.Neighbour) Report {
	r := Report{Machine: s.Name, Slot: s.Key, Status: OK, Neighbours: heard}
	if len(heard) == 0 {
		r.Status = NoLLDP
		return r
	}
	want := s.Switch + "/" + s.Port
	pod := s.Zone + "/" + s.Pod
	for _, n := range heard {
		at := Where(n)
		sw, _, _ := strings.Cut(at, "/")
		switch {
		case strings.EqualFold(n.MAC, bootMAC):
			if s.Switch != "" && at != want {
				r.Findings = append(r.Findings, Finding{Interface: n.Interface, MAC: n.MAC, Seen: at, Expected: want,
					Problem: fmt.Sprintf("boot NIC %s (%s) is cabled to %s; the design puts %s on %s", n.Interface, n.MAC, at, s.Name, want)})
			}
		case at == want:
			r.Findings = append(r.Findings, Finding{Interface: n.Interface, MAC: n.MAC, Seen: at, Expected: "another port",
				Problem: fmt.Sprintf("NIC %s (%s) is on %s, %s's boot port, but it is not the NIC that booted (%s): the cables are swapped", n.Interface, n.MAC, at, s.Name, bootMAC)})
		default:
			if other := ix.Slot(at); other != nil && other.Key != s.Key {
				r.Findings = append(r.Findings, Finding{Interface: n.Interface, MAC: n.MAC, Seen: at,
					Problem: fmt.Sprintf("NIC %s (%s) of %s is on %s, the port of %s", n.Interface, n.MAC, s.Name, at, other.Name)})
			} else if p, known := ix.SwitchPod(sw); known && p != pod {
				r.Findings = append(r.Findings, Finding{Interface: n.Interface, MAC: n.MAC, Seen: at,
					Problem: fmt.Sprintf("NIC %s (%s) of %s is on switch %s of pod %s; %s is in pod %s", n.Interface, n.MAC, s.Name, sw, p, s.Name, pod)})
			}
		}
	}
	if len(r.Findings) > 0 {
		r.Status = Mismatch
	}
	return r
}
