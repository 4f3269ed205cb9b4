package zone

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Design is a validated set of zones and every slot derived from them.
type Design struct {
	Zones  []*Zone
	Slots  []*Slot // in SlotLess order: zone, pod, key, numbers by value
	Files  []string
	Hash   string // sha256 over the files' names and contents
	Source map[string][]byte
}

// Slot is a place a machine can stand in and everything derived from it.
type Slot struct {
	Key           string       `json:"key"`
	Zone          string       `json:"zone"`
	Environment   string       `json:"environment"`
	Pod           string       `json:"pod"`
	Switch        string       `json:"switch,omitempty"`
	Port          string       `json:"port,omitempty"`
	MAC           string       `json:"mac,omitempty"`
	Role          string       `json:"role"`
	Variant       string       `json:"variant,omitempty"`
	ID            int          `json:"id"`
	Name          string       `json:"name"`
	PermanentName string       `json:"permanent_name"`
	Domain        string       `json:"domain"`
	Address       netip.Addr   `json:"address"`
	Prefix        netip.Prefix `json:"prefix"`
	Gateway       netip.Addr   `json:"gateway"`
	BMCAddress    netip.Addr   `json:"bmc_address,omitzero"`
	BMCPort       string       `json:"bmc_port,omitempty"` // lom-switch/port the slot's BMC is plugged into
	Power         PowerDriver  `json:"power,omitempty"`    // how drover drives the BMC; empty: it does not
	Networks      []NetAddress `json:"networks"`
	Profile       string       `json:"profile,omitempty"`
	// ProfileDigest changes with what the profile installs (kernel, initrds,
	// arguments, templates), so a plan marks its machines for reinstall.
	ProfileDigest string        `json:"profile_digest,omitempty"`
	Firmware      string        `json:"firmware,omitempty"`
	OnReplace     ReplacePolicy `json:"on_replace"`
	// NetworkOS is set on a switch's management slot: the slot is a switch
	// drover provisions by ZTP (Role is "switch", Name the switch's name).
	NetworkOS string `json:"network_os,omitempty"`
}

// IsSwitch reports whether the slot is a switch's management port (false for no slot).
func (s *Slot) IsSwitch() bool { return s != nil && s.NetworkOS != "" }

// NetAddress is a host's address on one pod network.
type NetAddress struct {
	Network string       `json:"network"`
	Address netip.Prefix `json:"address"` // host address with the network's prefix length
	Gateway netip.Addr   `json:"gateway,omitzero"`
}

// FQDN is the slot's fully qualified permanent name.
func (s *Slot) FQDN() string { return s.PermanentName + "." + s.Domain }

// Zone returns the zone with that name.
func (d *Design) Zone(name string) *Zone {
	for _, z := range d.Zones {
		if z.Name == name {
			return z
		}
	}
	return nil
}

// Role returns a role of the zone.
func (z *Zone) Role(name string) *Role { return z.roles[name] }

// Profile returns an install profile of the zone.
func (z *Zone) Profile(name string) *Profile { return z.profiles[name] }

// DNS returns the zone's DNS servers.
func (z *Zone) DNS() []netip.Addr { return z.dns }

// Lease returns the zone's DHCP lease time.
func (z *Zone) Lease() time.Duration {
	if z.LeaseTime == "" {
		return time.Hour // before parsing: the error ParseDuration builds for "" is an allocation per DHCP reply
	}
	d, err := time.ParseDuration(z.LeaseTime)
	if err != nil {
		return time.Hour
	}
	return d
}

// Timeout is the watchdog for a work state ("commissioning", "deploying").
func (z *Zone) Timeout(state string) time.Duration {
	var s string
	switch state {
	case "commissioning":
		s = z.Timeouts.Commissioning
	case "deploying":
		s = z.Timeouts.Deploying
	}
	if d, err := time.ParseDuration(s); err == nil && s != "" {
		return d
	}
	if state == "deploying" {
		return time.Hour
	}
	return 30 * time.Minute
}

// Load reads a design from a zone file or a directory of zone files
// (*.yaml and *.yml directly inside it), validates it whole and derives its slots.
// On any problem it returns Problems listing every one of them.
func Load(path string) (*Design, error) {
	files, err := designFiles(path)
	if err != nil {
		return nil, err
	}
	src := make(map[string][]byte, len(files))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("load design %s: %w", path, err)
		}
		src[f] = b
	}
	return Parse(src)
}

func designFiles(path string) ([]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("load design: %w", err)
	}
	if !st.IsDir() {
		return []string{path}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("load design %s: %w", path, err)
	}
	var files []string
	for _, e := range entries {
		ext := filepath.Ext(e.Name())
		if !e.IsDir() && (ext == ".yaml" || ext == ".yml") {
			files = append(files, filepath.Join(path, e.Name()))
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("load design %s: no .yaml zone files in the directory", path)
	}
	sort.Strings(files)
	return files, nil
}

// Parse validates a design given as file name -> contents.
func Parse(src map[string][]byte) (*Design, error) {
	d := &Design{Source: src}
	for name := range src {
		d.Files = append(d.Files, name)
	}
	sort.Strings(d.Files)
	h := sha256.New()
	errs := &problems{}
	for _, name := range d.Files {
		fmt.Fprintf(h, "%s\x00%d\x00", filepath.Base(name), len(src[name]))
		h.Write(src[name])
		z := parseZone(name, src[name], errs)
		if z != nil {
			d.Zones = append(d.Zones, z)
		}
	}
	d.Hash = hex.EncodeToString(h.Sum(nil))
	// A file that did not decode (unknown key, wrong type) is not checked
	// further, since its zero values would only add noise; every other file is,
	// so one file's typo never hides another file's problems.
	undecoded := map[string]bool{}
	for _, p := range errs.list {
		undecoded[p.Pos.File] = true
	}
	if len(undecoded) == 0 {
		compile(d, errs)
	} else {
		rest := &Design{Source: src, Files: d.Files}
		for _, z := range d.Zones {
			if !undecoded[z.Meta.At.File] {
				rest.Zones = append(rest.Zones, z)
			}
		}
		compile(rest, errs)
	}
	if len(errs.list) > 0 {
		return nil, errs.list.sorted()
	}
	return d, nil
}

func parseZone(file string, b []byte, errs *problems) *Zone {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
		errs.add(Pos{File: file, Line: 1, Col: 1}, "", "start the file with `zone: NAME`, or remove it from the design", "the file is empty or holds only comments")
		return nil
	} else if err != nil {
		errs.add(yamlErrorPos(file, err), "", "fix the YAML syntax", "%s", yamlErrorText(err))
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		errs.add(Pos{File: file, Line: extra.Line, Col: extra.Column}, "", "put each zone in its own file", "a zone file holds one YAML document")
		return nil
	}
	if len(doc.Content) == 0 {
		errs.add(Pos{File: file, Line: 1, Col: 1}, "", "start the file with `zone: NAME`", "the file is empty")
		return nil
	}
	z := &Zone{}
	d := &decoder{file: file, errs: errs}
	d.decode(doc.Content[0], reflectValueOf(z), "")
	return z
}

// yamlErrorPos extracts "line N" from yaml.v3's syntax errors, which carry no column.
func yamlErrorPos(file string, err error) Pos {
	var line int
	msg := err.Error()
	if i := strings.Index(msg, "line "); i >= 0 {
		fmt.Sscanf(msg[i:], "line %d", &line)
	}
	if line == 0 {
		line = 1
	}
	return Pos{File: file, Line: line, Col: 1}
}

func yamlErrorText(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if i := strings.Index(msg, ": "); i >= 0 && strings.HasPrefix(msg, "line ") {
		msg = msg[i+2:]
	}
	return msg
}

// GitCommit returns the commit of the git checkout holding path, with
// "+dirty" when the design files differ from it, or "" outside a checkout.
func GitCommit(ctx context.Context, path string) string {
	dir := path
	if st, err := os.Stat(path); err == nil && !st.IsDir() {
		dir = filepath.Dir(path)
	}
	out, err := exec.CommandContext(ctx, "git", "-C", dir, "rev-parse", "HEAD").Output()
	if err != nil {
		return ""
	}
	commit := strings.TrimSpace(string(out))
	status, err := exec.CommandContext(ctx, "git", "-C", dir, "status", "--porcelain", "--", ".").Output()
	if err == nil && len(bytes.TrimSpace(status)) > 0 {
		commit += "+dirty"
	}
	return commit
}

// RelayAddr is a pod-shaped switch's relay address (invalid when it has only a remote-id).
func (sw *Switch) RelayAddr() netip.Addr { return sw.relay }

// PortNames are the switch's declared ports, in order.
func (sw *Switch) PortNames() []string { return append([]string(nil), sw.ports...) }

// PortBlock is the block a per-port switch's port subnets are carved from.
func (sw *Switch) PortBlock() netip.Prefix { return sw.portBlock }

// PowerPos is where the driver of a role's slots is set: the role's `power:`
// when it has one, else the zone's. For errors that concern that setting.
func (z *Zone) PowerPos(role string) (Pos, string) {
	if r := z.roles[role]; r != nil && r.Power != "" {
		return r.Meta.PosOf("power"), r.Meta.PathOf("power")
	}
	return z.Meta.PosOf("power"), "power"
}

// Boot returns the pod's boot subnet and gateway.
func (p *Pod) Boot() (netip.Prefix, netip.Addr) {
	for _, n := range p.Networks {
		if n.Name == "boot" {
			return n.prefix, n.gateway
		}
	}
	return netip.Prefix{}, netip.Addr{}
}

// Subnets returns every subnet of the design (networks and per-port blocks).
func (d *Design) Subnets() []netip.Prefix {
	var out []netip.Prefix
	for _, z := range d.Zones {
		for _, p := range z.Pods {
			for _, n := range p.Networks {
				out = append(out, n.prefix)
			}
			for _, sw := range p.Switches {
				if sw.portBlock.IsValid() {
					out = append(out, sw.portBlock)
				}
			}
		}
	}
	return out
}
