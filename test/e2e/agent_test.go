package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover/drover/internal/netns"
)

// TestPodAgent runs a pod agent in a namespace of its own (the pod's agent
// box) with the ToRs' relays forwarding to it. Machines boot through the
// agent; the controller is killed (SIGKILL) while two of them install; they
// finish and reach deployed through the agent alone, while a machine the
// agent has never seen waits. The controller comes back: the agent's queue
// drains and every timeline in the controller's database is whole, entry for
// entry as the agent has it. An operator call to the controller is carried
// out by the agent. A stolen agent token reads nothing and acts on nothing.
func TestPodAgent(t *testing.T) {
	require(t, map[string]string{"ip": "iproute2", "dhclient": "isc-dhcp-client", "dhcrelay": "isc-dhcp-relay", "curl": "curl"})
	tp := newTopo(t)
	ctx := context.Background()
	n := tp.net
	must(t, n.AddNS("pa"))
	must(t, n.Veth("srv", "pa0", "pa", "eth0"))
	must(t, n.Addr("srv", "pa0", tp.ip("253.1/30")))
	must(t, n.Addr("pa", "eth0", tp.ip("253.2/30")))
	must(t, n.Route("pa", "default", tp.ip("253.1")))
	ctl, agentAddr := "http://"+tp.ip("253.1")+":9090", tp.ip("253.2")

	// The controller accepts agents; its API is reachable from the agent box.
	tp.server.Kill()
	tp.server.Wait()
	ctlLog := filepath.Join(tp.dir, "controller.log")
	startController := func() *netns.Proc {
		p, err := n.Start("srv", ctlLog, nil, tp.serveArgs(false, "--agents", "--api-listen", "0.0.0.0:9090")...)
		must(t, err)
		t.Cleanup(p.Kill)
		waitFor(t, "the controller to listen", 20*time.Second, func() bool {
			out, err := n.Run(ctx, "pa", "curl", "-sf", ctl+"/healthz")
			return err == nil && strings.Contains(string(out), "ok")
		})
		return p
	}
	server := startController()
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(ctlLog)
			t.Logf("controller log (tail):\n%s", tail(string(b), 40))
		}
	})
	admin := filepath.Join(tp.dir, "drover-admin.token")
	drover := func(args ...string) (string, error) {
		out, err := n.Run(ctx, "srv", append([]string{droverBin, "--server", "http://127.0.0.1:9090", "--token-file", admin}, args...)...)
		return string(out), err
	}
	if out, err := drover("tokens", "create", "pa1", "--role", "agent", "--pod", "e2e/p9"); err == nil || !strings.Contains(out, "pod of the applied design") {
		t.Errorf("an agent token of a pod the design lacks: %v\n%s", err, out)
	}
	out, err := drover("tokens", "create", "pa1", "--role", "agent", "--pod", "e2e/p1")
	if err != nil {
		t.Fatalf("agent token: %v\n%s", err, out)
	}
	secret := strings.TrimSpace(strings.Split(out, "\n")[0])
	tokenFile := filepath.Join(tp.dir, "agent.token")
	must(t, os.WriteFile(tokenFile, []byte(secret+"\n"), 0o600))

	t.Run("a stolen agent token reads nothing and acts on nothing", func(t *testing.T) {
		call := func(method, path, body string) int {
			args := []string{"-X", method, "-H", "Authorization: Bearer " + secret, "-o", "/dev/null"}
			if body != "" {
				args = append(args, "-H", "Content-Type: application/json", "-d", body)
			}
			code, _ := tp.curl("pa", append(args, ctl+path)...)
			return code
		}
		for _, c := range []struct{ method, path, body string }{
			{"GET", "/api/v1/machines", ""},
			{"GET", "/api/v1/leases", ""},
			{"GET", "/api/v1/design", ""},
			{"POST", "/api/v1/machines/e2e-compute-01/reinstall", "{}"},
			{"POST", "/api/v1/machines/e2e-compute-01/power", `{"action":"cycle"}`},
			{"GET", "/api/v1/agents", ""},
			// Before it attached, the pod is not its to report on.
			{"POST", "/api/v1/agent/report", `{"epoch":1}`},
		} {
			want := 403
			if c.path == "/api/v1/agent/report" {
				want = 409
			}
			if got := call(c.method, c.path, c.body); got != want {
				t.Errorf("%s %s with the agent token: %d, want %d", c.method, c.path, got, want)
			}
		}
	})

	// The agent box: DHCP, TFTP and HTTP for pod e2e/p1.
	agentDir, agentLog := filepath.Join(tp.dir, "agent"), filepath.Join(tp.dir, "agent.log")
	startAgent := func() *netns.Proc {
		p, err := n.Start("pa", agentLog, nil, droverBin, "agent", "--controller", ctl, "--pod", "e2e/p1", "--token-file", tokenFile,
			"--state", agentDir, "--dhcp-listen", agentAddr+":67", "--tftp-listen", agentAddr+":69", "--http-listen", agentAddr+":8080",
			"--offline-after", "3s", "--log-level", "debug")
		must(t, err)
		t.Cleanup(p.Kill)
		waitFor(t, "the agent to serve", 20*time.Second, func() bool {
			if p.Exited() {
				t.Fatalf("the agent exited: %v", p.Wait())
			}
			out, err := n.Run(ctx, "pa", "curl", "-sf", "http://"+agentAddr+":8080/healthz")
			return err == nil && strings.TrimSpace(string(out)) == "ok"
		})
		return p
	}
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(agentLog)
			t.Logf("agent log (tail):\n%s", tail(string(b), 60))
		}
	})
	agent := startAgent()
	// The ToRs' relays forward to the agent now.
	tp.relayTo("agent", agentAddr)

	t.Run("the agent answers every port with its slot's identity", func(t *testing.T) {
		tp.identities(t)
		for _, ns := range []string{"c11", "c21"} {
			l, err := tp.dhclient(ns)
			must(t, err)
			if !strings.Contains(l.File, agentAddr) {
				t.Errorf("%s boots from %s, not from the agent", ns, l.File)
			}
		}
	})
	t.Run("the controller holds what the agent decided", func(t *testing.T) {
		waitFor(t, "the agent's machines at the controller", 10*time.Second, func() bool {
			s, err := showOn(tp.db, "e2e-storage-01")
			return err == nil && s.has("dhcp-ack")
		})
	})

	// Two machines begin to install: DHCP, script, kernel.
	type install struct{ ns, name, script, token, base string }
	installs := []*install{{ns: "c11", name: "e2e-compute-01"}, {ns: "c21", name: "e2e-storage-01"}}
	for _, in := range installs {
		l, err := tp.dhclient(in.ns)
		must(t, err)
		code, body := tp.curl(in.ns, l.File)
		if code != 200 || !strings.Contains(body, "hostname="+in.name) {
			t.Fatalf("%s: script %d\n%s", in.name, code, body)
		}
		in.script, in.token, in.base = l.File, between(body, "drover.token=", " "), between(body, "drover.url=", " ")
		if code, b := tp.curl(in.ns, "-o", "/dev/null", between(body, "kernel ", " ")); code != 200 {
			t.Fatalf("%s: kernel %d %s", in.name, code, b)
		}
	}

	// The controller dies in the middle of the installs.
	server.Kill()
	server.Wait()
	waitFor(t, "the agent to count the controller out of reach", 20*time.Second, func() bool {
		b, _ := os.ReadFile(agentLog)
		return strings.Contains(string(b), "controller unreachable")
	})
	time.Sleep(3 * time.Second) // --offline-after

	t.Run("installs reach deployed through the agent alone", func(t *testing.T) {
		for _, in := range installs {
			if _, err := tp.dhclient(in.ns); err != nil {
				t.Errorf("%s renews: %v", in.name, err)
			}
			if code, b := tp.curl(in.ns, "-o", "/dev/null", in.base+"/artifacts/tiny/initrd.gz?step=initrd"); code != 200 {
				t.Errorf("%s: initrd from the agent's cache: %d %s", in.name, code, b)
			}
			code, body := tp.curl(in.ns, in.base+"/install/install?token="+in.token)
			if code != 200 || !strings.Contains(body, "hostname="+in.name) {
				t.Fatalf("%s: template %d\n%s", in.name, code, body)
			}
			if code, b := tp.curl(in.ns, "-X", "POST", "-d", "status=progress", "-d", "message=partitioning", in.base+"/phone-home?token="+in.token); code != 200 {
				t.Errorf("%s: progress %d %s", in.name, code, b)
			}
			code, body = tp.curl(in.ns, "-X", "POST", "-H", "Content-Type: application/json", "-d", `{"status":"installed"}`, in.base+"/phone-home?token="+in.token)
			if code != 200 || !strings.Contains(body, `"state":"deployed"`) {
				t.Fatalf("%s: phone-home %d %s", in.name, code, body)
			}
			code, body = tp.curl(in.ns, in.script)
			if code != 200 || !strings.Contains(body, "\nexit\n") {
				t.Errorf("%s: script once deployed %d\n%s", in.name, code, body)
			}
		}
	})
	t.Run("a machine the agent has not seen waits for the controller", func(t *testing.T) {
		// One DHCP attempt of 8 s: no answer.
		conf := filepath.Join(tp.dir, "c13-short.conf")
		must(t, os.WriteFile(conf, []byte("timeout 8;\nretry 1;\nsend user-class \"iPXE\";\n"), 0o644))
		pid := filepath.Join(tp.dir, "c13-short.pid")
		defer netns.KillPIDFile(pid)
		out, err := n.Run(ctx, "c13", "dhclient", "-1", "-4", "-sf", "/bin/true", "-lf", filepath.Join(tp.dir, "c13-short.leases"), "-pf", pid, "-cf", conf, "eth0")
		if err == nil {
			t.Errorf("c13 got an address while the controller is away:\n%s", out)
		}
		b, _ := os.ReadFile(agentLog)
		if !strings.Contains(string(b), "waits for it") {
			t.Error("the agent's log does not say why c13 got no answer")
		}
	})

	metric := func(name string) float64 {
		out, err := n.Run(ctx, "pa", "curl", "-sf", "http://127.0.0.1:9091/metrics")
		if err != nil {
			t.Fatalf("agent metrics: %v", err)
		}
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, name+" ") {
				var v float64
				fmt.Sscan(strings.TrimPrefix(line, name+" "), &v)
				return v
			}
		}
		t.Fatalf("agent metrics lack %s", name)
		return 0
	}
	t.Run("the agent's metrics say the controller is away and entries are queued", func(t *testing.T) {
		if r, q := metric("drover_agent_controller_reachable"), metric("drover_agent_queued_entries"); r != 0 || q == 0 {
			t.Errorf("reachable %v, queued %v", r, q)
		}
		if metric(`drover_dhcp_replies_total{type="ACK"}`) == 0 {
			t.Error("the agent counts no DHCP ACKs")
		}
	})
	t.Run("a restarted agent serves from its database while the controller is away", func(t *testing.T) {
		agent.Stop(5 * time.Second)
		agent = startAgent()
		if l, err := tp.dhclient("c11"); err != nil || l.Host != "e2e-compute-01" {
			t.Errorf("c11 through the restarted agent: %+v %v", l, err)
		}
	})

	// The controller comes back; the agent sends what it queued.
	server = startController()
	waitFor(t, "the agent to send its queue", 30*time.Second, func() bool {
		b, _ := os.ReadFile(agentLog)
		return strings.Contains(string(b), "controller reachable again")
	})
	t.Run("every timeline is whole at the controller", func(t *testing.T) {
		for _, in := range installs {
			var ctlSide, agentSide shown
			waitFor(t, in.name+"'s timeline at the controller", 10*time.Second, func() bool {
				var err error
				ctlSide, err = showOn(tp.db, in.name)
				return err == nil && ctlSide.Machine.State == "deployed"
			})
			agentSide, err := showOn(filepath.Join(agentDir, "agent.db"), in.name)
			must(t, err)
			if got, want := kinds(ctlSide), kinds(agentSide); got != want {
				t.Errorf("%s: controller's timeline\n  %s\nagent's\n  %s", in.name, got, want)
			}
			for _, k := range []string{"dhcp-offer", "dhcp-ack", "ipxe-script", "kernel", "initrd", "template", "progress", "phone-home"} {
				if !ctlSide.has(k) {
					t.Errorf("%s: the controller's timeline lacks %s", in.name, k)
				}
			}
		}
	})
	t.Run("the agent's metrics say the queue is empty", func(t *testing.T) {
		if r, q := metric("drover_agent_controller_reachable"), metric("drover_agent_queued_entries"); r != 1 || q != 0 {
			t.Errorf("reachable %v, queued %v", r, q)
		}
	})
	t.Run("the waiting machine boots once the controller is back", func(t *testing.T) {
		l, err := tp.dhclient("c13")
		if err != nil || l.Host != "e2e-compute-03" {
			t.Errorf("c13: %+v %v", l, err)
		}
	})
	t.Run("an operator call to the controller is carried out by the agent", func(t *testing.T) {
		if out, err := drover("maintenance", "enter", "e2e-storage-01", "--reason", "disk", "--owner", "ops", "--expires", "1h"); err != nil {
			t.Fatalf("maintenance through the controller: %v\n%s", err, out)
		}
		waitFor(t, "the agent's row at the controller", 10*time.Second, func() bool {
			s, err := showOn(tp.db, "e2e-storage-01")
			return err == nil && s.Machine.State == "maintenance"
		})
		if s, err := showOn(filepath.Join(agentDir, "agent.db"), "e2e-storage-01"); err != nil || s.Machine.State != "maintenance" {
			t.Errorf("the agent's row: %+v %v", s.Machine, err)
		}
		out, err := drover("agents")
		if err != nil || !strings.Contains(out, "e2e/p1") {
			t.Errorf("drover agents: %v\n%s", err, out)
		}
	})
	t.Run("a detached pod's agent is refused and stops", func(t *testing.T) {
		if out, err := drover("agents", "detach", "e2e/p1"); err != nil {
			t.Fatalf("detach: %v\n%s", err, out)
		}
		waitFor(t, "the agent to stop", 15*time.Second, agent.Exited)
		if out, err := drover("agents", "detach", "e2e/p1"); err == nil || !strings.Contains(out, "no agent holds pod e2e/p1") {
			t.Errorf("detaching a pod no agent holds: %v\n%s", err, out)
		}
		b, _ := os.ReadFile(agentLog)
		if !strings.Contains(string(b), "no longer holds its pod") {
			t.Errorf("the agent's log does not say why it stopped:\n%s", tail(string(b), 5))
		}
		waitFor(t, "the controller to serve e2e/p1 again", 15*time.Second, func() bool {
			b, _ := os.ReadFile(ctlLog)
			return strings.Count(string(b), `msg="serving pod" pod=e2e/p1`) >= 2
		})
	})
}

// showOn is drover show on a database file.
func showOn(db, ref string) (shown, error) {
	var s shown
	out, err := exec.Command(droverBin, "--db", db, "show", "-o", "json", ref).Output()
	if err != nil {
		return s, fmt.Errorf("drover show %s: %w", ref, err)
	}
	return s, json.Unmarshal(out, &s)
}

// kinds is a timeline as the list of its entries' kinds and transitions.
func kinds(s shown) string {
	var k []string
	for _, e := range s.Timeline {
		k = append(k, e.Kind+":"+e.From+">"+e.To)
	}
	return strings.Join(k, " ")
}
