package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover/drover/internal/netns"
)

const bmcDesign = `zone: e2e
environment: test
domain: e2e.drover.test
power: ipmi
profiles:
  tiny: {kernel: tiny/vmlinuz}
roles:
  compute: {profile: tiny}
addressing:
  compute: 10
pods:
  p1:
    networks:
      boot: {subnet: 10.X.0.0/22, gateway: 10.X.0.1}
      bmc:  {subnet: 10.X.20.0/24, gateway: 10.X.20.1}
    switches:
      p1-tor1:
        kind: tor
        relay: 10.X.0.2
        ports: [swp1-swp8]
        slots:
          - {ports: swp1-swp3, role: compute, ids: 1-3}
      p1-lom1:
        kind: lom
        relay: 10.X.20.2
        ports: [swp1-swp48]
        slots:
          - {ports: swp1-swp3, bmc_of: compute, ids: 1-3}
`

// TestBMCGetsItsAddressByLoMPort: BMCs (ISC dhclient) behind a lom switch
// (ISC dhcrelay, circuit-id = port) get the BMC address of the host their
// port serves, and nothing to boot; a BMC on an unmapped port gets nothing
// and is recorded as discovered.
func TestBMCGetsItsAddressByLoMPort(t *testing.T) {
	require(t, map[string]string{"ip": "iproute2", "dhclient": "isc-dhcp-client", "dhcrelay": "isc-dhcp-relay", "curl": "curl"})
	tp := &topo{t: t, dir: t.TempDir(), x: 100 + rand.IntN(150)}
	tp.net = netns.New("db" + randomID() + "-")
	t.Cleanup(func() {
		if t.Failed() {
			for _, f := range []string{"drover.log", "lom.log"} {
				b, _ := os.ReadFile(filepath.Join(tp.dir, f))
				t.Logf("%s (tail):\n%s", f, tail(string(b), 40))
			}
		}
		if err := tp.net.Close(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	n := tp.net
	for _, ns := range []string{"srv", "lom", "b3", "b9"} {
		must(t, n.AddNS(ns))
	}
	must(t, n.Veth("srv", "l0", "lom", "up0"))
	must(t, n.Addr("srv", "l0", tp.ip("250.1/30")))
	must(t, n.Addr("lom", "up0", tp.ip("250.2/30")))
	must(t, n.Route("srv", tp.ip("20.0/24"), tp.ip("250.2")))
	must(t, n.Route("lom", "default", tp.ip("250.1")))
	must(t, n.Forward("lom"))
	// One relay address for the whole switch, as a pod-shaped switch has:
	// every port interface carries it, so dhcrelay's giaddr is the same.
	for _, c := range []struct{ ns, port, mac string }{{"b3", "swp3", "52:54:00:b3:00:03"}, {"b9", "swp9", "52:54:00:b3:00:09"}} {
		must(t, n.Veth("lom", c.port, c.ns, "eth0"))
		must(t, n.SetMAC(c.ns, "eth0", c.mac))
	}
	must(t, n.Addr("lom", "swp3", tp.ip("20.2/24")))
	must(t, n.Addr("lom", "swp9", tp.ip("20.2/32")))
	if _, err := n.Start("lom", filepath.Join(tp.dir, "lom.log"), nil, "dhcrelay", "-4", "-d", "-q", "-a", "-m", "replace",
		"-id", "swp3", "-id", "swp9", "-iu", "up0", "-pf", filepath.Join(tp.dir, "lom.pid"), tp.ip("250.1")); err != nil {
		t.Fatal(err)
	}
	tp.design = filepath.Join(tp.dir, "design")
	must(t, os.MkdirAll(tp.design, 0o755))
	must(t, os.WriteFile(filepath.Join(tp.design, "e2e.yaml"), []byte(strings.ReplaceAll(bmcDesign, "10.X.", fmt.Sprintf("10.%d.", tp.x))), 0o644))
	tp.db = filepath.Join(tp.dir, "drover.db")
	tp.startServer(true)

	l, err := tp.dhclient("b3")
	if err != nil {
		t.Fatal(err)
	}
	if l.Addr != tp.ip("20.13") || l.Host != "e2e-compute-03-bmc" || l.File != "" {
		t.Fatalf("BMC on lom port swp3 got %+v, want %s as e2e-compute-03-bmc with no boot file", l, tp.ip("20.13"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if out, err := n.Run(ctx, "b9", "timeout", "8", "dhclient", "-1", "-4", "-sf", "/bin/true", "-lf", filepath.Join(tp.dir, "b9.leases"),
		"-pf", filepath.Join(tp.dir, "b9.pid"), "eth0"); err == nil {
		t.Fatalf("a BMC on an unmapped lom port got a lease: %s", out)
	}
	netns.KillPIDFile(filepath.Join(tp.dir, "b9.pid"))
	b, err := exec.Command(droverBin, "--db", tp.db, "machines", "--state", "discovered").CombinedOutput()
	out := string(b)
	if err != nil || !strings.Contains(out, "52:54:00:b3:00:09") {
		t.Fatalf("the BMC on swp9 is not recorded as discovered: %v\n%s", err, out)
	}
	if shown, _ := exec.Command(droverBin, "--db", tp.db, "show", "52:54:00:b3:00:09").CombinedOutput(); !strings.Contains(string(shown), "port swp9 of lom switch p1-lom1") ||
		!strings.Contains(string(shown), "serves no host") {
		t.Fatalf("the discovered BMC does not say where it is:\n%s", shown)
	}
	if strings.Contains(out, "52:54:00:b3:00:03") {
		t.Fatalf("the BMC on a mapped port was recorded as a machine:\n%s", out)
	}
}
