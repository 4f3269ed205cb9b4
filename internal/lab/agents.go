package lab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/drover/drover/internal/netns"
	"github.com/drover/drover/internal/zone"
)

// Agent is a pod agent the lab runs (lab up --agents).
type Agent struct {
	Pod   string `json:"pod"`
	NS    string `json:"ns"`
	Addr  string `json:"addr"` // where its ToRs relay and its machines fetch from
	State string `json:"state"`
	Log   string `json:"log"`
	PID   int    `json:"pid"`
}

// labAgent is an agent being wired: its link to drover serve.
type labAgent struct {
	pod       string
	name, ns  string
	addr, srv netip.Addr // the agent's address and drover serve's on their link
}

// wireAgents makes a namespace per pod that has machines to boot, linked to
// drover's: the pod's agent box. It returns them by pod (zone/pod).
func wireAgents(cfg *Config, n *netns.Net, st *State, d *zone.Design, ix *zone.Index, only map[string]bool, extra map[string][]bootPort,
	addNS func(string) (string, error)) (map[string]*labAgent, error) {
	if !cfg.Agents {
		return nil, nil
	}
	out := map[string]*labAgent{}
	j := 0
	for _, z := range d.Zones {
		for _, p := range z.Pods {
			boots := false
			for _, sw := range p.Switches {
				if sw.Kind == "tor" && len(portsToBoot(ix, sw, only, len(cfg.Only) > 0, extra[sw.Name])) > 0 {
					boots = true
				}
			}
			if !boots {
				continue
			}
			base := agentBase().As4()
			base[3] = byte(4*j + 1)
			srv := netip.AddrFrom4(base)
			base[3]++
			a := &labAgent{pod: z.Name + "/" + p.Name, name: fmt.Sprintf("agent%d", j), addr: netip.AddrFrom4(base), srv: srv}
			ns, err := addNS(a.name)
			if err != nil {
				return nil, err
			}
			a.ns = ns
			link := fmt.Sprintf("ag%d", j)
			if err := firstErr(n.Veth("boot", link, a.name, "eth0"), n.Addr("boot", link, srv.String()+"/30"),
				n.Addr(a.name, "eth0", a.addr.String()+"/30"), n.Route(a.name, "default", srv.String()), n.Forward("boot")); err != nil {
				return nil, err
			}
			out[a.pod] = a
			j++
		}
	}
	return out, nil
}

// startAgents gives each agent a token of its pod and starts it.
func startAgents(ctx context.Context, cfg *Config, st *State, agents map[string]*labAgent) error {
	if len(agents) == 0 {
		return nil
	}
	for _, a := range agents {
		secret, err := agentToken(ctx, st, a)
		if err != nil {
			return err
		}
		// The lab's database starts empty, so does each agent's.
		dir := filepath.Join(cfg.StateDir, a.name)
		os.RemoveAll(dir)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		tokenFile := filepath.Join(dir, "agent.token")
		if err := os.WriteFile(tokenFile, []byte(secret+"\n"), 0o600); err != nil {
			return err
		}
		log := filepath.Join(cfg.StateDir, a.name+".log")
		args := []string{cfg.Drover, "agent", "--controller", "http://" + a.srv.String() + ":9090", "--pod", a.pod, "--token-file", tokenFile,
			"--state", dir, "--dhcp-listen", a.addr.String() + ":67", "--tftp-listen", a.addr.String() + ":69", "--http-listen", a.addr.String() + ":8080",
			"--server-ip", a.addr.String()}
		if err := startHelper(st, a.ns, log, args); err != nil {
			return err
		}
		h := st.Helpers[len(st.Helpers)-1]
		st.Agents = append(st.Agents, Agent{Pod: a.pod, NS: a.ns, Addr: a.addr.String(), State: dir, Log: log, PID: h.PID})
		if err := waitHealthy(ctx, a.ns, "http://"+a.addr.String()+":8080/healthz", h.PID, log); err != nil {
			return err
		}
	}
	return nil
}

// agentToken creates the agent token of a's pod with the drover CLI, in
// drover's namespace.
func agentToken(ctx context.Context, st *State, a *labAgent) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", st.Server.NS, st.Drover, "--server", "http://127.0.0.1:9090",
		"--token-file", filepath.Join(filepath.Dir(st.DB), "drover-admin.token"), "tokens", "create", "lab-"+a.name, "--role", "agent", "--pod", a.pod).Output()
	if err != nil {
		return "", fmt.Errorf("create the agent token of %s: %w", a.pod, err)
	}
	return strings.TrimSpace(string(out)), nil
}
