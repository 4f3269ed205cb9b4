package power

import (
	"bytes"
	"fmt"
	"os"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/drover/drover/internal/zone"
)

// Secrets are BMC credentials per zone, optionally per role, read from a file
// kept outside the design (it is not versioned with it) and readable by its
// owner only. They are held in memory; nothing writes them anywhere.
type Secrets struct {
	Path  string
	zones map[string]zoneSecrets
}

type zoneSecrets struct {
	Credentials `yaml:",inline"`
	Roles       map[string]Credentials `yaml:"roles"`
}

// LoadSecrets reads a secrets file:
//
//	zones:
//	  bgo:
//	    username: admin
//	    password: "..."
//	    roles:
//	      storage: {username: root, password: "..."}
func LoadSecrets(path string) (*Secrets, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("power secrets %s: %w", path, err)
	}
	if mode := fi.Mode().Perm(); mode&0o077 != 0 {
		return nil, fmt.Errorf("power secrets %s: mode %04o lets other users read BMC passwords: run `chmod 600 %s`", path, mode, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("power secrets %s: %w", path, err)
	}
	var doc struct {
		Zones map[string]zoneSecrets `yaml:"zones"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("power secrets %s: %s (expected `zones: {ZONE: {username: ..., password: ...}}`)", path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if len(doc.Zones) == 0 {
		return nil, fmt.Errorf("power secrets %s: no zones: add `zones: {ZONE: {username: ..., password: ...}}`", path)
	}
	for name, z := range doc.Zones {
		if err := z.Credentials.check(); err != nil {
			return nil, fmt.Errorf("power secrets %s: zone %s: %w", path, name, err)
		}
		for role, c := range z.Roles {
			if err := c.check(); err != nil {
				return nil, fmt.Errorf("power secrets %s: zone %s role %s: %w", path, name, role, err)
			}
		}
	}
	return &Secrets{Path: path, zones: doc.Zones}, nil
}

// check applies IPMI 2.0's limits: a user name of at most 16 bytes and a
// password of at most 20.
func (c Credentials) check() error {
	switch {
	case c.Username == "" || c.Password == "":
		return fmt.Errorf("add both username and password")
	case len(c.Username) > 16:
		return fmt.Errorf("username %q is longer than IPMI's 16 bytes", c.Username)
	case len(c.Password) > 20:
		return fmt.Errorf("the password is longer than IPMI's 20 bytes")
	}
	return nil
}

// Lookup returns the credentials for a role's BMCs in a zone: the role's own,
// else the zone's.
func (s *Secrets) Lookup(zoneName, role string) (Credentials, bool) {
	if s == nil {
		return Credentials{}, false
	}
	z, ok := s.zones[zoneName]
	if !ok {
		return Credentials{}, false
	}
	if c, ok := z.Roles[role]; ok {
		return c, true
	}
	return z.Credentials, true
}

// Check reports every zone and role of the design whose slots have a power
// driver but no credentials, at the `power:` setting that asks for the driver.
// s may be nil (no secrets file): then every such setting is reported.
func (s *Secrets) Check(d *zone.Design) error {
	var probs zone.Problems
	seen := map[string]bool{}
	for _, sl := range d.Slots {
		if sl.Power == "" || seen[sl.Zone+"/"+sl.Role] {
			continue
		}
		seen[sl.Zone+"/"+sl.Role] = true
		if _, ok := s.Lookup(sl.Zone, sl.Role); ok {
			continue
		}
		z := d.Zone(sl.Zone)
		pos, field := z.PowerPos(sl.Role)
		fix := "start drover serve with --power-secrets FILE holding `zones: {" + sl.Zone + ": {username: ..., password: ...}}`"
		if s != nil {
			fix = fmt.Sprintf("add zone %s (or its role %s) to %s", sl.Zone, sl.Role, s.Path)
		}
		probs = append(probs, &zone.Problem{Pos: pos, Field: field, Fix: fix,
			Msg: fmt.Sprintf("role %s of zone %s uses the %s power driver but has no BMC credentials", sl.Role, sl.Zone, sl.Power)})
	}
	if len(probs) == 0 {
		return nil
	}
	sort.SliceStable(probs, func(i, j int) bool {
		a, b := probs[i].Pos, probs[j].Pos
		return a.File < b.File || a.File == b.File && a.Line < b.Line
	})
	return probs
}
