package rollout

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/drover/drover/internal/store"
	"github.com/drover/drover/internal/zone"
)

// Checks runs hooks and health checks: the seam between the runner and the
// commands, URLs and ports it reaches.
type Checks interface {
	Hook(ctx context.Context, h zone.HookSpec, f Facts) error
	Health(ctx context.Context, h zone.HealthSpec, f Facts) error
}

// Facts describe the machine a hook or check is about. Commands get them as
// DROVER_* environment variables, webhooks as a JSON body.
type Facts map[string]string

func facts(s *zone.Slot, m store.RolloutMachine, id int64, step string) Facts {
	f := Facts{"name": m.Name, "slot": m.Slot, "zone": m.Zone, "environment": m.Env, "pod": m.Pod, "role": m.Role, "step": step,
		"rollout": strconv.FormatInt(id, 10)}
	if s != nil {
		f["address"], f["fqdn"], f["variant"] = s.Address.String(), s.FQDN(), s.Variant
		if s.BMCAddress.IsValid() {
			f["bmc_address"] = s.BMCAddress.String()
		}
	}
	return f
}

func (f Facts) env() []string {
	out := os.Environ()
	for k, v := range f {
		out = append(out, "DROVER_"+strings.ToUpper(k)+"="+v)
	}
	return out
}

func (f Facts) expand(s string) string {
	return strings.NewReplacer("{{name}}", f["name"], "{{address}}", f["address"]).Replace(s)
}

// RealChecks runs commands with sh, POSTs webhooks and dials ports.
type RealChecks struct{}

// Hook runs a drain or undrain hook.
func (RealChecks) Hook(ctx context.Context, h zone.HookSpec, f Facts) error {
	if h.Command != "" {
		return run(ctx, f.expand(h.Command), f)
	}
	body, _ := json.Marshal(f)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.expand(h.URL), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s answered %s", h.URL, resp.Status)
	}
	return nil
}

// Health runs one attempt of a health check.
func (RealChecks) Health(ctx context.Context, h zone.HealthSpec, f Facts) error {
	attempt, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	switch {
	case h.Command != "":
		return run(attempt, f.expand(h.Command), f)
	case h.TCP != 0:
		var d net.Dialer
		c, err := d.DialContext(attempt, "tcp", net.JoinHostPort(f["address"], strconv.Itoa(h.TCP)))
		if err != nil {
			return err
		}
		return c.Close()
	default:
		req, err := http.NewRequestWithContext(attempt, http.MethodGet, f.expand(h.URL), nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("%s answered %s", req.URL, resp.Status)
		}
		return nil
	}
}

func run(ctx context.Context, command string, f Facts) error {
	cmd := exec.CommandContext(ctx, "sh", "-c", command)
	cmd.Env = f.env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if len(msg) > 300 {
			msg = "..." + msg[len(msg)-300:]
		}
		if msg != "" {
			return fmt.Errorf("%q: %v: %s", command, err, msg)
		}
		return fmt.Errorf("%q: %v", command, err)
	}
	return nil
}
