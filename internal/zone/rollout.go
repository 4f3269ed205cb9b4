package zone

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Rollout is how changes roll through a zone's machines (`rollout:` in a zone file).
type Rollout struct {
	Meta Meta
	// Order is the order of environments across the whole design; every zone
	// that writes it must write the same list.
	Order []string `yaml:"order"`
	// AutoApply: a followed git commit that changes this zone is applied (and
	// rolled out) at once; otherwise it waits for `drover approve`.
	AutoApply      bool           `yaml:"auto_apply"`
	Canary         *int           `yaml:"canary"`          // machines first, alone (default 1)
	Soak           string         `yaml:"soak"`            // wait after the canary before the rest
	CanaryApproval bool           `yaml:"canary_approval"` // pause after the canary until resumed
	MaxUnavailable MaxUnavailable `yaml:"max_unavailable"`
	FailureBudget  int            `yaml:"failure_budget"` // failures tolerated before the rollout pauses
	Drain          *Hook          `yaml:"drain"`
	Undrain        *Hook          `yaml:"undrain"`
	Health         *Health        `yaml:"health"`
}

// MaxUnavailable bounds the machines a rollout takes down at once: per pod
// and per role, each a count ("2") or a share ("25%", rounded down, at least 1).
type MaxUnavailable struct {
	Meta  Meta
	Pod   string            `yaml:"pod"`
	Roles map[string]string `yaml:"roles"`
}

// Hook runs before (drain) or after (undrain) a machine's reinstall: a command
// run by drover with the machine's facts in its environment, or an HTTP POST of
// them to a URL. Either must succeed within its timeout.
type Hook struct {
	Meta    Meta
	Command string `yaml:"command"`
	URL     string `yaml:"url"`
	Timeout string `yaml:"timeout"`
}

// Health is the gate a reinstalled machine passes after its phone-home: an
// HTTP URL answering 2xx, a TCP port accepting connections, or a command
// exiting 0, within the timeout. URLs and commands may name {{name}} and
// {{address}}.
type Health struct {
	Meta    Meta
	URL     string `yaml:"url"`
	TCP     int    `yaml:"tcp"`
	Command string `yaml:"command"`
	Timeout string `yaml:"timeout"`
}

// Rollout defaults.
const (
	DefaultCanary       = 1
	DefaultHookTimeout  = 5 * time.Minute
	DefaultHealthWindow = 10 * time.Minute
)

// DefaultOrder is the environments' rollout order when no zone sets one.
var DefaultOrder = []string{"dev", "test", "prod"}

// Policy is a zone's rollout settings with defaults filled in.
type Policy struct {
	Zone           string           `json:"zone"`
	Environment    string           `json:"environment"`
	AutoApply      bool             `json:"auto_apply"`
	Canary         int              `json:"canary"`
	Soak           time.Duration    `json:"soak"`
	CanaryApproval bool             `json:"canary_approval"`
	PodMax         Limit            `json:"pod_max"`
	RoleMax        map[string]Limit `json:"role_max,omitempty"`
	FailureBudget  int              `json:"failure_budget"`
	Drain          *HookSpec        `json:"drain,omitempty"`
	Undrain        *HookSpec        `json:"undrain,omitempty"`
	Health         *HealthSpec      `json:"health,omitempty"`
}

// Limit is a count or a percentage of a group's size.
type Limit struct {
	N       int  `json:"n"`
	Percent bool `json:"percent,omitempty"`
}

// Of is the bound for a group of size n: a share is rounded down but never below 1.
func (l Limit) Of(n int) int {
	if !l.Percent {
		return l.N
	}
	return max(1, n*l.N/100)
}

func (l Limit) String() string {
	if l.Percent {
		return fmt.Sprintf("%d%%", l.N)
	}
	return strconv.Itoa(l.N)
}

// HookSpec is a parsed Hook.
type HookSpec struct {
	Command string        `json:"command,omitempty"`
	URL     string        `json:"url,omitempty"`
	Timeout time.Duration `json:"timeout"`
}

// HealthSpec is a parsed Health gate.
type HealthSpec struct {
	URL     string        `json:"url,omitempty"`
	TCP     int           `json:"tcp,omitempty"`
	Command string        `json:"command,omitempty"`
	Timeout time.Duration `json:"timeout"`
}

// Policy returns the zone's rollout policy with defaults.
func (z *Zone) Policy() Policy {
	r := &z.Rollout
	p := Policy{Zone: z.Name, Environment: z.Environment, AutoApply: r.AutoApply, Canary: DefaultCanary,
		CanaryApproval: r.CanaryApproval, PodMax: Limit{N: 1}, FailureBudget: r.FailureBudget}
	if r.Canary != nil {
		p.Canary = *r.Canary
	}
	p.Soak, _ = time.ParseDuration(r.Soak)
	if l, err := parseLimit(r.MaxUnavailable.Pod); err == nil && r.MaxUnavailable.Pod != "" {
		p.PodMax = l
	}
	for role, v := range r.MaxUnavailable.Roles {
		if l, err := parseLimit(v); err == nil {
			if p.RoleMax == nil {
				p.RoleMax = map[string]Limit{}
			}
			p.RoleMax[role] = l
		}
	}
	hook := func(h *Hook) *HookSpec {
		if h == nil {
			return nil
		}
		t, err := time.ParseDuration(h.Timeout)
		if err != nil || h.Timeout == "" {
			t = DefaultHookTimeout
		}
		return &HookSpec{Command: h.Command, URL: h.URL, Timeout: t}
	}
	p.Drain, p.Undrain = hook(r.Drain), hook(r.Undrain)
	if h := r.Health; h != nil {
		t, err := time.ParseDuration(h.Timeout)
		if err != nil || h.Timeout == "" {
			t = DefaultHealthWindow
		}
		p.Health = &HealthSpec{URL: h.URL, TCP: h.TCP, Command: h.Command, Timeout: t}
	}
	return p
}

// Order is the design's environment order for rollouts.
func (d *Design) Order() []string {
	for _, z := range d.Zones {
		if len(z.Rollout.Order) > 0 {
			return slices.Clone(z.Rollout.Order)
		}
	}
	return slices.Clone(DefaultOrder)
}

func parseLimit(s string) (Limit, error) {
	s = strings.TrimSpace(s)
	if p, ok := strings.CutSuffix(s, "%"); ok {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 || n > 100 {
			return Limit{}, fmt.Errorf("%q is not a share between 1%% and 100%%", s)
		}
		return Limit{N: n, Percent: true}, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return Limit{}, fmt.Errorf("%q is not a positive count or a share like 25%%", s)
	}
	return Limit{N: n}, nil
}

// rollout checks a zone's rollout section.
func (c *compiler) rollout(z *Zone) {
	r := &z.Rollout
	m := &r.Meta
	if len(r.Order) > 0 {
		seen := map[string]bool{}
		for _, e := range r.Order {
			if !slices.Contains(DefaultOrder, e) || seen[e] {
				c.errs.add(m.PosOf("order"), m.PathOf("order"), "list each of dev, test and prod once, e.g. [dev, test, prod]", "%q is not an environment or is listed twice", e)
				return
			}
			seen[e] = true
		}
		if !seen[z.Environment] && z.Environment != "" {
			c.errs.add(m.PosOf("order"), m.PathOf("order"), "add "+z.Environment+" to the list", "the order leaves out this zone's own environment %s", z.Environment)
		}
		if c.order == nil {
			c.order, c.orderAt = r.Order, m.PosOf("order")
		} else if !slices.Equal(c.order, r.Order) {
			c.errs.add(m.PosOf("order"), m.PathOf("order"), "write the same order in every zone that sets one, or set it in one zone only",
				"the order %v differs from %v at %s", r.Order, c.order, c.orderAt)
		}
	}
	if r.Canary != nil && *r.Canary < 0 {
		c.errs.add(m.PosOf("canary"), m.PathOf("canary"), "write 0 (no canary) or more", "%d is negative", *r.Canary)
	}
	if r.FailureBudget < 0 {
		c.errs.add(m.PosOf("failure_budget"), m.PathOf("failure_budget"), "write 0 (pause at the first failure) or more", "%d is negative", r.FailureBudget)
	}
	c.duration(m, "soak", r.Soak)
	mu := &r.MaxUnavailable
	if mu.Pod != "" {
		if _, err := parseLimit(mu.Pod); err != nil {
			c.errs.add(mu.Meta.PosOf("pod"), mu.Meta.PathOf("pod"), "write a count like 2 or a share like 25%", "%v", err)
		}
	}
	for role, v := range mu.Roles {
		at, path := mu.Meta.PosOf("roles"), mu.Meta.PathOf("roles."+role)
		if _, err := parseLimit(v); err != nil {
			c.errs.add(at, path, "write a count like 1 or a share like 25%", "%v", err)
		}
		if z.roles[role] == nil {
			c.errs.add(at, path, "name a role of this zone", "unknown role %q", role)
		}
	}
	for _, h := range []struct {
		name string
		hook *Hook
	}{{"drain", r.Drain}, {"undrain", r.Undrain}} {
		if h.hook == nil {
			continue
		}
		hm := &h.hook.Meta
		if (h.hook.Command == "") == (h.hook.URL == "") {
			c.errs.add(hm.At, hm.Path, "give either `command:` or `url:`", "the %s hook needs exactly one of command and url", h.name)
		}
		c.checkURL(hm, "url", h.hook.URL)
		c.duration(hm, "timeout", h.hook.Timeout)
	}
	if h := r.Health; h != nil {
		hm := &h.Meta
		n := 0
		for _, set := range []bool{h.URL != "", h.TCP != 0, h.Command != ""} {
			if set {
				n++
			}
		}
		if n != 1 {
			c.errs.add(hm.At, hm.Path, "give one of `url:`, `tcp:` or `command:`", "the health gate needs exactly one check (the phone-home is always checked)")
		}
		if h.TCP < 0 || h.TCP > 65535 {
			c.errs.add(hm.PosOf("tcp"), hm.PathOf("tcp"), "write a TCP port number", "%d is not a port", h.TCP)
		}
		c.checkURL(hm, "url", h.URL)
		c.duration(hm, "timeout", h.Timeout)
	}
}

// checkOrder: a rollout order set in one zone must name every zone's environment.
func (c *compiler) checkOrder() {
	if c.order == nil {
		return
	}
	for _, z := range c.d.Zones {
		if len(z.Rollout.Order) == 0 && z.Environment != "" && !slices.Contains(c.order, z.Environment) {
			c.errs.add(z.Meta.PosOf("environment"), "environment", "add "+z.Environment+" to the rollout order at "+c.orderAt.String(),
				"environment %s is not in the design's rollout order %v", z.Environment, c.order)
		}
	}
}

func (c *compiler) checkURL(m *Meta, field, s string) {
	if s == "" {
		return
	}
	u, err := url.Parse(strings.NewReplacer("{{name}}", "x", "{{address}}", "x").Replace(s))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		c.errs.add(m.PosOf(field), m.PathOf(field), "write an http:// or https:// URL", "%q is not an HTTP URL", s)
	}
}
