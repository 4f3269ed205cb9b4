package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/drover/drover/internal/netns"
)

// topo is the virtual network of the boot tests:
//
//	c11..c14 --swp1..swp4-- tor1 (ISC dhcrelay) --t1-+
//	c21..c22 --swp1..swp2-- tor2 (ISC dhcrelay) --t2-+-- srv (drover serve)
//	rg (a direct client on the server's segment) --d0-+
//	ld (perfdhcp, acting as the relay p1-tor3) -----l0-+
type topo struct {
	t      *testing.T
	net    *netns.Net
	dir    string
	x      int // second octet of every address: 10.x.0.0/16
	db     string
	design string
	server *netns.Proc
}

func (tp *topo) ip(format string, a ...any) string {
	return fmt.Sprintf("10.%d."+format, append([]any{tp.x}, a...)...)
}

const designTmpl = `zone: e2e
environment: test
domain: e2e.drover.test
dns_servers: [10.X.250.1]
lease_time: 10m
profiles:
  tiny:
    kernel: tiny/vmlinuz
    initrd: [tiny/initrd.gz]
    args: console=ttyS0 hostname={{.Name}}
    templates:
      install: install.sh
roles:
  compute: {profile: tiny, params: {ratio: 4}}
  storage: {profile: tiny, firmware: uefi}
addressing:
  compute: 10
  storage: 100
pods:
  p1:
    networks:
      boot: {subnet: 10.X.0.0/22, gateway: 10.X.0.1, pool: 10.X.1.0-10.X.3.250}
    switches:
      p1-tor1:
        kind: tor
        boot_network: per-port
        port_subnets: 10.X.11.0/24
        ports: [swp1-swp4]
        slots:
          - {ports: swp1-swp3, role: compute, ids: 1-3}
      p1-tor2:
        kind: tor
        boot_network: per-port
        port_subnets: 10.X.12.0/24
        ports: [swp1-swp2]
        slots:
          - {ports: swp1-swp2, role: storage, ids: 1-2}
      p1-tor3:
        kind: tor
        relay: 10.X.0.2
        remote_id: p1-tor3
        ports: [swp1-swp48]
        slots:
          - {ports: swp1, role: compute, ids: 9}
`

const installTmpl = `#!/bin/sh
# {{.Name}} ({{.Role}}) in {{.Zone}}/{{.Pod}}
hostname={{.PermanentName}}
address={{.Address}}/{{.Prefix}}
ratio={{index .Params "ratio"}}
phone_home={{.PhoneHomeURL}}
`

func newTopo(t *testing.T) *topo { t.Helper(); return newTopoOn(t, "") }

// newTopoOn builds the topology with drover on the database db (a postgres://
// URL), or on a SQLite file in the test's directory when db is empty.
func newTopoOn(t *testing.T, db string) *topo {
	t.Helper()
	tp := &topo{t: t, dir: t.TempDir(), x: 100 + rand.IntN(150)}
	tp.net = netns.New("dv" + randomID() + "-")
	t.Cleanup(func() {
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(tp.dir, "drover.log")); err == nil {
				t.Logf("drover log (tail):\n%s", tail(string(b), 60))
			}
		}
		if err := tp.net.Close(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	n := tp.net
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, ns := range []string{"srv", "tor1", "tor2", "c11", "c12", "c13", "c14", "c21", "c22", "rg", "ld"} {
		must(n.AddNS(ns))
	}
	must(n.Veth("srv", "t1", "tor1", "up0"))
	must(n.Veth("srv", "t2", "tor2", "up0"))
	must(n.Veth("srv", "d0", "rg", "eth0"))
	must(n.Veth("srv", "l0", "ld", "eth0"))
	must(n.Addr("srv", "t1", tp.ip("250.1/30")))
	must(n.Addr("tor1", "up0", tp.ip("250.2/30")))
	must(n.Addr("srv", "t2", tp.ip("251.1/30")))
	must(n.Addr("tor2", "up0", tp.ip("251.2/30")))
	must(n.Addr("srv", "d0", tp.ip("9.1/24")))
	must(n.Addr("rg", "eth0", tp.ip("9.2/24")))
	must(n.Addr("srv", "l0", tp.ip("0.1/22")))
	must(n.Addr("ld", "eth0", tp.ip("0.2/22")))
	must(n.Route("rg", "default", tp.ip("9.1")))
	must(n.Forward("srv"))
	must(n.Route("srv", tp.ip("11.0/24"), tp.ip("250.2")))
	must(n.Route("srv", tp.ip("12.0/24"), tp.ip("251.2")))
	for tor, ports := range map[string]int{"tor1": 4, "tor2": 2} {
		third := map[string]int{"tor1": 11, "tor2": 12}[tor]
		for p := 1; p <= ports; p++ {
			client := fmt.Sprintf("c%c%d", tor[3], p)
			must(n.Veth(tor, fmt.Sprintf("swp%d", p), client, "eth0"))
			must(n.SetMAC(client, "eth0", fmt.Sprintf("52:54:00:%02x:%02x:%02x", tp.x, third, p)))
			must(n.Addr(tor, fmt.Sprintf("swp%d", p), tp.ip("%d.%d/29", third, 8*(p-1)+1)))
		}
		must(n.Forward(tor))
		up := map[string]string{"tor1": "250.1", "tor2": "251.1"}[tor]
		must(n.Route(tor, "default", tp.ip(up)))
		relay := []string{"dhcrelay", "-4", "-d", "-q", "-a", "-m", "replace"}
		for p := 1; p <= ports; p++ {
			relay = append(relay, "-id", fmt.Sprintf("swp%d", p))
		}
		relay = append(relay, "-iu", "up0", "-pf", filepath.Join(tp.dir, tor+".pid"), tp.ip(up))
		if _, err := n.Start(tor, filepath.Join(tp.dir, tor+".log"), nil, relay...); err != nil {
			t.Fatal(err)
		}
	}
	tp.design = filepath.Join(tp.dir, "design")
	must(os.MkdirAll(tp.design, 0o755))
	must(os.WriteFile(filepath.Join(tp.design, "e2e.yaml"), []byte(strings.ReplaceAll(designTmpl, "10.X.", fmt.Sprintf("10.%d.", tp.x))), 0o644))
	must(os.WriteFile(filepath.Join(tp.design, "install.sh"), []byte(installTmpl), 0o644))
	art := filepath.Join(tp.dir, "artifacts", "tiny")
	must(os.MkdirAll(art, 0o755))
	must(os.WriteFile(filepath.Join(art, "vmlinuz"), bytes.Repeat([]byte("k"), 300_000), 0o644))
	must(os.WriteFile(filepath.Join(art, "initrd.gz"), bytes.Repeat([]byte("i"), 500_000), 0o644))
	tp.db = db
	if db == "" {
		tp.db = filepath.Join(tp.dir, "drover.db")
	}
	tp.startServer(true)
	return tp
}

// serveArgs is the command line of drover serve in the server namespace.
func (tp *topo) serveArgs(withDesign bool, extra ...string) []string {
	args := []string{droverBin, "--db", tp.db, "serve", "--state-dir", tp.dir, "--artifacts", filepath.Join(tp.dir, "artifacts"), "--log-level", "debug",
		"--prometheus", "http://127.0.0.1:9099"} // the Prometheus of the monitoring test
	if withDesign {
		args = append(args, "--design", tp.design)
	}
	return append(args, extra...)
}

// startServer runs drover serve in the server namespace and waits until it answers.
func (tp *topo) startServer(withDesign bool) {
	tp.t.Helper()
	p, err := tp.net.Start("srv", filepath.Join(tp.dir, "drover.log"), nil, tp.serveArgs(withDesign)...)
	if err != nil {
		tp.t.Fatal(err)
	}
	tp.server = p
	waitFor(tp.t, "drover to listen", 20*time.Second, func() bool {
		if p.Exited() {
			tp.t.Fatalf("drover exited: %v", p.Wait())
		}
		out, err := tp.net.Run(context.Background(), "srv", "curl", "-sf", "http://127.0.0.1:8080/healthz")
		return err == nil && strings.TrimSpace(string(out)) == "ok"
	})
}

// lease is what dhclient reported through its hook.
type lease struct {
	Addr, Host, File string
}

// dhclient runs ISC dhclient once in a client namespace, as an iPXE-like
// client (user class iPXE) so that it is given a boot script URL.
func (tp *topo) dhclient(ns string) (lease, error) {
	tp.t.Helper()
	out := filepath.Join(tp.dir, ns+".lease-out")
	os.Remove(out)
	hook := filepath.Join(tp.dir, ns+".hook")
	os.WriteFile(hook, []byte(`#!/bin/sh
case "$reason" in BOUND|RENEW|REBIND|REBOOT)
  ip addr flush dev "$interface"
  ip addr add "$new_ip_address/$new_subnet_mask" dev "$interface"
  ip route replace default via "${new_routers%% *}"
  echo "$new_ip_address|$new_host_name|$new_filename" > `+out+`
esac
`), 0o755)
	conf := filepath.Join(tp.dir, ns+".conf")
	os.WriteFile(conf, []byte("send user-class \"iPXE\";\nrequest subnet-mask, routers, domain-name, domain-name-servers, host-name;\n"), 0o644)
	pid := filepath.Join(tp.dir, ns+".dhclient.pid")
	defer netns.KillPIDFile(pid)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if b, err := tp.net.Run(ctx, ns, "dhclient", "-1", "-4", "-sf", hook, "-lf", filepath.Join(tp.dir, ns+".leases"), "-pf", pid, "-cf", conf, "eth0"); err != nil {
		return lease{}, fmt.Errorf("dhclient in %s: %w (%s)", ns, err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return lease{}, fmt.Errorf("dhclient in %s reported no lease", ns)
	}
	f := strings.Split(strings.TrimSpace(string(b)), "|")
	for len(f) < 3 {
		f = append(f, "")
	}
	return lease{Addr: f[0], Host: f[1], File: f[2]}, nil
}

// curl runs curl in a namespace and returns the status code and body.
func (tp *topo) curl(ns string, args ...string) (int, string) {
	tp.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := tp.net.Run(ctx, ns, append([]string{"curl", "-s", "-w", "\n%{http_code}"}, args...)...)
	if err != nil {
		return 0, err.Error() // no HTTP answer at all
	}
	s := strings.TrimRight(string(out), "\n")
	i := strings.LastIndex(s, "\n")
	var code int
	fmt.Sscan(s[i+1:], &code)
	return code, s[:max(i, 0)]
}

type shown struct {
	Machine struct {
		Name, MAC, State, Slot string
		Facts                  map[string]any
	} `json:"machine"`
	Timeline []struct{ Kind, Reason, From, To string } `json:"timeline"`
}

func (tp *topo) show(t *testing.T, ref string) shown {
	t.Helper()
	out, err := exec.Command(droverBin, "--db", tp.db, "show", "-o", "json", ref).Output()
	if err != nil {
		t.Fatalf("drover show %s: %v", ref, err)
	}
	var s shown
	if err := json.Unmarshal(out, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s shown) has(kind string) bool {
	for _, e := range s.Timeline {
		if e.Kind == kind {
			return true
		}
	}
	return false
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// identities checks that every port's client gets its slot's identity through ISC dhcrelay.
func (tp *topo) identities(t *testing.T) {
	want := map[string]lease{
		"c11": {tp.ip("11.2"), "e2e-compute-01", ""}, "c12": {tp.ip("11.10"), "e2e-compute-02", ""},
		"c21": {tp.ip("12.2"), "e2e-storage-01", ""}, "c22": {tp.ip("12.10"), "e2e-storage-02", ""},
	}
	for ns, w := range want {
		l, err := tp.dhclient(ns)
		if err != nil {
			t.Fatal(err)
		}
		if l.Addr != w.Addr || l.Host != w.Host {
			t.Errorf("%s got %s %s, want %s %s", ns, l.Addr, l.Host, w.Addr, w.Host)
		}
		if !strings.HasPrefix(l.File, "http://") || !strings.HasSuffix(l.File, ".ipxe") {
			t.Errorf("%s boot file %q is not a script URL", ns, l.File)
		}
	}
}

// install takes e2e-storage-01 through relay, script, kernel, template and
// phone-home with its one-time token, and returns its install script.
func (tp *topo) install(t *testing.T) string {
	var script string
	l, err := tp.dhclient("c21")
	if err != nil {
		t.Fatal(err)
	}
	code, _ := tp.curl("rg", l.File)
	if code != 403 {
		t.Errorf("script fetched from another host: %d", code)
	}
	code, body := tp.curl("c21", l.File)
	if code != 200 || !strings.Contains(body, "kernel http://") || !strings.Contains(body, "initrd=initrd.gz") || !strings.Contains(body, "hostname=e2e-storage-01") {
		t.Fatalf("script %d:\n%s", code, body)
	}
	script = body
	token := between(body, "drover.token=", " ")
	base := between(body, "drover.url=", " ")
	kernel := between(body, "kernel ", " ")
	if code, b := tp.curl("c21", "-o", "/dev/null", kernel); code != 200 {
		t.Errorf("kernel: %d %s", code, b)
	}
	if code, b := tp.curl("c21", "-r", "100-199", kernel); code != 206 || len(b) != 100 {
		t.Errorf("kernel range: %d, %d bytes", code, len(b))
	}
	code, body = tp.curl("c21", base+"/install/install?token="+token)
	if code != 200 || !strings.Contains(body, "hostname=e2e-storage-01") || !strings.Contains(body, "address="+tp.ip("12.2")+"/29") || !strings.Contains(body, "phone_home="+base+"/phone-home?token=") {
		t.Fatalf("template %d:\n%s", code, body)
	}
	if code, _ := tp.curl("c21", base+"/install/install?token=wrong"); code != 403 {
		t.Errorf("wrong token: %d", code)
	}
	if code, b := tp.curl("c21", "-X", "POST", "-d", "status=progress", "-d", "message=partitioning", base+"/phone-home?token="+token); code != 200 {
		t.Errorf("progress: %d %s", code, b)
	}
	code, body = tp.curl("c21", "-X", "POST", "-H", "Content-Type: application/json", "-d", `{"status":"installed","facts":{"cpus":2}}`, base+"/phone-home?token="+token)
	if code != 200 || !strings.Contains(body, `"state":"deployed"`) {
		t.Fatalf("phone-home: %d %s", code, body)
	}
	if code, _ := tp.curl("c21", base+"/install/install?token="+token); code != 403 {
		t.Errorf("reused token: %d", code)
	}
	if code, _ := tp.curl("c21", "-X", "POST", "-d", "status=installed", base+"/phone-home?token="+token); code != 403 {
		t.Errorf("reused token on phone-home: %d", code)
	}
	code, body = tp.curl("c21", l.File)
	if code != 200 || !strings.Contains(body, "\nexit\n") || strings.Contains(body, "kernel") {
		t.Fatalf("script of a deployed machine %d:\n%s", code, body)
	}
	s := tp.show(t, "e2e-storage-01")
	if s.Machine.State != "deployed" || s.Machine.Facts["cpus"] != 2.0 {
		t.Errorf("machine %+v", s.Machine)
	}
	for _, k := range []string{"dhcp-offer", "dhcp-ack", "ipxe-script", "kernel", "template", "progress", "phone-home"} {
		if !s.has(k) {
			t.Errorf("timeline lacks %s", k)
		}
	}
	return script
}

func TestNetworkBoot(t *testing.T) {
	require(t, map[string]string{"ip": "iproute2", "dhclient": "isc-dhcp-client", "dhcrelay": "isc-dhcp-relay",
		"atftp": "atftp", "curl": "curl", "perfdhcp": "kea-admin", "tcpdump": "tcpdump", "prometheus": "prometheus", "python3": "python3"})
	tp := newTopo(t)

	t.Run("each port gets its slot's identity through ISC dhcrelay", tp.identities)

	t.Run("a machine moved to another port takes that port's identity", func(t *testing.T) {
		// c11's machine (compute-01) is unplugged and plugged into swp3.
		must(t, tp.net.SetMAC("c11", "eth0", "02:00:00:00:00:11"))
		must(t, tp.net.SetMAC("c13", "eth0", fmt.Sprintf("52:54:00:%02x:%02x:%02x", tp.x, 11, 1)))
		l, err := tp.dhclient("c13")
		if err != nil {
			t.Fatal(err)
		}
		if l.Addr != tp.ip("11.18") || l.Host != "e2e-compute-03" {
			t.Fatalf("moved machine got %s %s, want %s e2e-compute-03", l.Addr, l.Host, tp.ip("11.18"))
		}
		if s := tp.show(t, "e2e-compute-03"); !s.has("moved") {
			t.Errorf("timeline lacks the move: %+v", s.Timeline)
		}
	})

	var script string
	t.Run("script, template and phone-home with a one-time token", func(t *testing.T) { script = tp.install(t) })

	t.Run("Prometheus discovers the deployed machine through http_sd and scrapes it", func(t *testing.T) {
		if script == "" {
			t.Skip("needs the deployed machine of the previous step")
		}
		// The machine's exporter: a static metrics page at its address, port 9100.
		metrics := filepath.Join(tp.dir, "exporter")
		must(t, os.MkdirAll(metrics, 0o755))
		must(t, os.WriteFile(filepath.Join(metrics, "metrics"), []byte("drover_e2e_exporter 1\n"), 0o644))
		exporter, err := tp.net.Start("c21", filepath.Join(tp.dir, "exporter.log"), nil, "python3", "-m", "http.server", "9100", "--bind", tp.ip("12.2"), "--directory", metrics)
		must(t, err)
		t.Cleanup(exporter.Kill)
		// Prometheus beside drover, discovering from drover's API with a token file.
		promDir := filepath.Join(tp.dir, "prometheus")
		must(t, os.MkdirAll(promDir, 0o755))
		cfg := fmt.Sprintf(`scrape_configs:
  - job_name: machines
    scrape_interval: 1s
    http_sd_configs:
      - url: http://127.0.0.1:9090/api/v1/monitoring/targets
        refresh_interval: 1s
        authorization:
          type: Bearer      # Prometheus 2.42 sends the bare token in http_sd without it
          credentials_file: %s
`, filepath.Join(tp.dir, "drover-admin.token"))
		must(t, os.WriteFile(filepath.Join(promDir, "prometheus.yml"), []byte(cfg), 0o644))
		prom, err := tp.net.Start("srv", filepath.Join(promDir, "prometheus.log"), nil, "prometheus", "--config.file="+filepath.Join(promDir, "prometheus.yml"),
			"--storage.tsdb.path="+filepath.Join(promDir, "data"), "--web.listen-address=127.0.0.1:9099")
		must(t, err)
		t.Cleanup(func() {
			prom.Kill()
			if t.Failed() {
				b, _ := os.ReadFile(filepath.Join(promDir, "prometheus.log"))
				e, _ := os.ReadFile(filepath.Join(tp.dir, "exporter.log"))
				t.Logf("prometheus.log (tail):\n%s\nexporter.log:\n%s", tail(string(b), 15), e)
			}
		})
		var targets string
		waitFor(t, "Prometheus to scrape e2e-storage-01", time.Minute, func() bool {
			out, err := tp.net.Run(context.Background(), "srv", "curl", "-sf", "http://127.0.0.1:9099/api/v1/targets?state=active")
			targets = string(out)
			return err == nil && strings.Contains(targets, `"health":"up"`)
		})
		for _, want := range []string{`"name":"e2e-storage-01"`, `"role":"storage"`, `"state":"deployed"`, `"instance":"` + tp.ip("12.2") + `:9100"`} {
			if !strings.Contains(targets, want) {
				t.Errorf("Prometheus's target lacks %s:\n%s", want, targets)
			}
		}
		out, err := tp.net.Run(context.Background(), "srv", "curl", "-sfG", "http://127.0.0.1:9099/api/v1/query", "--data-urlencode", `query=drover_e2e_exporter{name="e2e-storage-01",zone="e2e"}`)
		if err != nil || !strings.Contains(string(out), `"value":[`) {
			t.Errorf("query: %v %s", err, out)
		}
		// The coverage check: everything up, then the exporter stops and the machine is listed.
		check := func() (string, error) {
			out, err := tp.net.Run(context.Background(), "srv", droverBin, "--server", "http://127.0.0.1:9090", "--token-file", filepath.Join(tp.dir, "drover-admin.token"), "monitoring", "check")
			return string(out), err
		}
		if out, err := check(); err != nil || !strings.Contains(out, "every monitored machine is up") {
			t.Errorf("monitoring check with the exporter up: %v %s", err, out)
		}
		exporter.Kill()
		var out2 string
		waitFor(t, "the check to list the machine whose exporter stopped", time.Minute, func() bool {
			out2, err = check()
			return err != nil && strings.Contains(out2, "e2e-storage-01") && strings.Contains(out2, "down")
		})
	})

	t.Run("new hardware in a deployed slot gets its identity", func(t *testing.T) {
		if script == "" {
			t.Skip("needs the deployed slot of the previous step")
		}
		must(t, tp.net.SetMAC("c21", "eth0", "52:54:00:fe:fe:01"))
		l, err := tp.dhclient("c21")
		if err != nil {
			t.Fatal(err)
		}
		if l.Addr != tp.ip("12.2") || l.Host != "e2e-storage-01" {
			t.Fatalf("replacement got %s %s", l.Addr, l.Host)
		}
		s := tp.show(t, "e2e-storage-01")
		if s.Machine.MAC != "52:54:00:fe:fe:01" || s.Machine.State != "deploying" || !s.has("hardware-replaced") {
			t.Errorf("replacement machine %+v, timeline %+v", s.Machine, s.Timeline)
		}
	})

	t.Run("undefined port and forged option 82 get no install", func(t *testing.T) {
		l, err := tp.dhclient("c14")
		if err != nil {
			t.Fatal(err)
		}
		if l.Host != "" || l.Addr != tp.ip("11.26") {
			t.Errorf("undefined port got %s %q", l.Addr, l.Host)
		}
		code, body := tp.curl("c14", l.File)
		if code != 200 || strings.Contains(body, "kernel") || !strings.Contains(body, "not installing") {
			t.Errorf("script for an unknown machine %d:\n%s", code, body)
		}
		mac := fmt.Sprintf("52:54:00:%02x:%02x:%02x", tp.x, 11, 4)
		if s := tp.show(t, mac); s.Machine.State != "discovered" || s.Machine.Slot != "" {
			t.Errorf("unknown machine %+v", s.Machine)
		}
		cmd := exec.Command("ip", "netns", "exec", tp.net.NS("rg"), os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "DROVER_E2E_HELPER=forge-direct", "DROVER_E2E_SERVER="+tp.ip("9.1"), "DROVER_E2E_MAC=02:00:00:00:00:66")
		out, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "no-offer" {
			t.Errorf("forged direct client: %v %s", err, out)
		}
		if s := tp.show(t, "02:00:00:00:00:66"); s.Machine.State != "discovered" || s.Machine.Slot != "" {
			t.Errorf("forging client %+v", s.Machine)
		}
	})

	t.Run("atftp gets ipxe.efi with blksize and windowsize", func(t *testing.T) {
		out := filepath.Join(tp.dir, "ipxe.efi")
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		trace, err := tp.net.Run(ctx, "c12", "atftp", "--option", "blksize 1428", "--option", "windowsize 8", "--trace", "-g", "-r", "ipxe.efi", "-l", out, tp.ip("250.1"))
		if err != nil {
			t.Fatal(err)
		}
		want, _ := os.ReadFile("/usr/lib/ipxe/ipxe.efi")
		got, _ := os.ReadFile(out)
		if len(want) == 0 || !bytes.Equal(got, want) {
			t.Fatalf("ipxe.efi: got %d bytes, want %d", len(got), len(want))
		}
		if oack := between(string(trace), "received OACK", "\n"); !strings.Contains(oack, "blksize: 1428") || !strings.Contains(oack, "windowsize: 8") {
			t.Errorf("OACK not in trace:\n%s", string(trace[:min(len(trace), 400)]))
		}
		trace, _ = tp.net.Run(ctx, "c12", "atftp", "--trace", "-g", "-r", "../../etc/passwd", "-l", out+".x", tp.ip("250.1"))
		if b, _ := os.ReadFile(out + ".x"); len(b) > 0 || !strings.Contains(string(trace), "access violation") {
			t.Errorf("path outside the root served: %s", trace)
		}
	})

	t.Run("perfdhcp through the relay path with option 82", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		out, err := tp.net.Run(ctx, "ld", "timeout", "40", "perfdhcp", "-4", "-l", tp.ip("0.2"), "-R", "100", "-r", "25", "-p", "4",
			"-o", "82,"+option82("swp7", "p1-tor3"), tp.ip("0.1"))
		if err != nil {
			t.Fatalf("perfdhcp reported drops or failed: %v\n%s", err, tail(string(out), 30))
		}
	})

	t.Run("kill -9 during a burst: no address offered to two clients", func(t *testing.T) {
		pcap := filepath.Join(tp.dir, "burst.pcap")
		dump, err := tp.net.Start("srv", filepath.Join(tp.dir, "tcpdump.log"), nil, "tcpdump", "-i", "l0", "-U", "-n", "-w", pcap, "udp", "port", "67")
		must(t, err)
		time.Sleep(time.Second) // tcpdump attaches
		load, err := tp.net.Start("ld", filepath.Join(tp.dir, "perfdhcp.log"), nil, "timeout", "60", "perfdhcp", "-4", "-l", tp.ip("0.2"),
			"-R", "300", "-r", "100", "-p", "8", "-o", "82,"+option82("swp8", "p1-tor3"), tp.ip("0.1"))
		must(t, err)
		time.Sleep(3 * time.Second)
		killed := time.Now()
		tp.server.Kill()
		tp.startServer(false)
		load.Wait() // drops while the server was down are expected
		time.Sleep(500 * time.Millisecond)
		dump.Stop(5 * time.Second)
		replies := readReplies(t, pcap)
		holder := map[string]string{}
		after := 0
		for _, r := range replies {
			if prev, ok := holder[r.addr]; ok && prev != r.mac {
				t.Errorf("%s given to %s and to %s", r.addr, prev, r.mac)
			}
			holder[r.addr] = r.mac
			if r.at.After(killed) {
				after++
			}
		}
		if len(replies) < 100 || after < 50 {
			t.Errorf("too little traffic to judge: %d replies, %d after the restart", len(replies), after)
		}
		t.Logf("%d offers/acks to %d addresses, %d after the restart", len(replies), len(holder), after)
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func between(s, start, end string) string {
	i := strings.Index(s, start)
	if i < 0 {
		return ""
	}
	s = s[i+len(start):]
	if j := strings.IndexAny(s, end+"\n"); j >= 0 {
		return s[:j]
	}
	return s
}

// option82 encodes relay agent information for perfdhcp's -o.
func option82(circuit, remote string) string {
	b := []byte{1, byte(len(circuit))}
	b = append(b, circuit...)
	b = append(b, 2, byte(len(remote)))
	b = append(b, remote...)
	return fmt.Sprintf("%x", b)
}

type reply struct {
	at        time.Time
	addr, mac string
}

// readReplies reads a tcpdump capture (Ethernet, IPv4, UDP) and returns every
// DHCPOFFER and DHCPACK with an address in it.
func readReplies(t *testing.T, path string) []reply {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil || len(b) < 24 {
		t.Fatalf("capture %s: %v (%d bytes)", path, err, len(b))
	}
	if binary.LittleEndian.Uint32(b) != 0xa1b2c3d4 || binary.LittleEndian.Uint32(b[20:]) != 1 {
		t.Fatalf("capture %s is not a little-endian Ethernet pcap", path)
	}
	var out []reply
	for off := 24; off+16 <= len(b); {
		sec, usec := binary.LittleEndian.Uint32(b[off:]), binary.LittleEndian.Uint32(b[off+4:])
		n := int(binary.LittleEndian.Uint32(b[off+8:]))
		pkt := b[off+16 : min(off+16+n, len(b))]
		off += 16 + n
		if len(pkt) < 14+20+8 || binary.BigEndian.Uint16(pkt[12:]) != 0x0800 {
			continue
		}
		ihl := int(pkt[14]&0x0f) * 4
		if pkt[23] != 17 || len(pkt) < 14+ihl+8 {
			continue
		}
		msg, err := dhcpv4.FromBytes(pkt[14+ihl+8:])
		if err != nil || msg.OpCode != dhcpv4.OpcodeBootReply {
			continue
		}
		if mt := msg.MessageType(); (mt == dhcpv4.MessageTypeOffer || mt == dhcpv4.MessageTypeAck) && !msg.YourIPAddr.Equal(net.IPv4zero) {
			out = append(out, reply{at: time.Unix(int64(sec), int64(usec)*1000), addr: msg.YourIPAddr.String(), mac: msg.ClientHWAddr.String()})
		}
	}
	return out
}
