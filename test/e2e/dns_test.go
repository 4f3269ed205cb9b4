package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drover/drover/internal/netns"
)

// TestDNS serves the lab design's zones from drover and checks them with
// real peers: dig against drover, and a BIND 9 secondary in its own
// namespace that transfers every zone (TSIG) and is told of a design change
// by NOTIFY.
func TestDNS(t *testing.T) {
	require(t, map[string]string{"dig": "bind9-dnsutils", "named": "bind9", "tsig-keygen": "bind9", "named-checkzone": "bind9-utils", "curl": "curl"})
	dir := t.TempDir()
	x := 100 + rand.IntN(150)
	ip := func(last int) string { return fmt.Sprintf("10.%d.53.%d", x, last) }
	n := netns.New("dn" + randomID() + "-")
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	for _, ns := range []string{"pri", "sec"} {
		must(t, n.AddNS(ns))
	}
	must(t, n.Veth("pri", "eth0", "sec", "eth0"))
	must(t, n.Addr("pri", "eth0", ip(1)+"/24"))
	must(t, n.Addr("sec", "eth0", ip(2)+"/24"))

	// The lab design, told to NOTIFY the secondary and naming both servers.
	design := filepath.Join(dir, "design")
	copyDir(t, "../../examples/lab", design)
	zoneFile := filepath.Join(design, "lab.yaml")
	b, err := os.ReadFile(zoneFile)
	must(t, err)
	dnsSection := fmt.Sprintf("\ndns:\n  ttl: 10m\n  notify: [%s]\n  nameservers:\n    - {name: ns1.lab.drover.test, address: %s}\n    - {name: ns2.lab.drover.test, address: %s}\n", ip(2), ip(1), ip(2))
	must(t, os.WriteFile(zoneFile, append(b, dnsSection...), 0o644))
	key := filepath.Join(dir, "xfr.key")
	out, err := exec.Command("tsig-keygen", "drover-xfr").Output()
	must(t, err)
	must(t, os.WriteFile(key, out, 0o600))

	db := filepath.Join(dir, "drover.db")
	logPath := filepath.Join(dir, "drover.log")
	srv, err := n.Start("pri", logPath, nil, droverBin, "--db", db, "serve", "--design", design,
		"--dhcp-listen", "127.0.0.1:0", "--tftp-listen", "127.0.0.1:6969", "--http-listen", "127.0.0.1:8080", "--api-listen", "127.0.0.1:8081",
		"--dns", ip(1)+":53", "--dns-tsig-key", key)
	must(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("drover log (tail):\n%s", tail(string(b), 40))
		}
	})
	run := func(ns string, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := n.Run(ctx, ns, args...)
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	dig := func(ns, server string, args ...string) string {
		t.Helper()
		return strings.TrimSpace(run(ns, append([]string{"dig", "@" + server, "+norec", "+time=2", "+tries=2"}, args...)...))
	}
	waitFor(t, "drover's DNS", 20*time.Second, func() bool {
		if srv.Exited() {
			t.Fatalf("drover exited: %v", srv.Wait())
		}
		out, err := n.Run(context.Background(), "pri", "dig", "@"+ip(1), "+short", "+time=1", "+tries=1", "SOA", "lab.drover.test")
		return err == nil && strings.Contains(string(out), "ns1.lab.drover.test.")
	})
	env := []string{"DROVER_SERVER=http://127.0.0.1:8081", "DROVER_TOKEN_FILE=" + filepath.Join(dir, "drover-admin.token")}
	drover := func(args ...string) string {
		t.Helper()
		return run("pri", append([]string{"env"}, append(env, append([]string{droverBin}, args...)...)...)...)
	}
	var zones []zoneSerial
	must(t, json.Unmarshal([]byte(drover("dns", "zones", "-o", "json")), &zones))
	var names []string
	for _, z := range zones {
		names = append(names, z.Zone)
	}
	// Forward zone, and the reverse zones of boot (10.77.0.0/24), bmc, storage and the per-port subnets.
	for _, want := range []string{"lab.drover.test", "0.77.10.in-addr.arpa", "8.77.10.in-addr.arpa", "16.77.10.in-addr.arpa"} {
		if !slices.Contains(names, want) {
			t.Fatalf("zones %v lack %s", names, want)
		}
	}

	t.Run("dig gets authoritative answers from drover", func(t *testing.T) {
		tests := []struct {
			args []string
			want string
		}{
			{[]string{"+short", "A", "lab-compute-03.lab.drover.test"}, "10.77.0.13"},
			{[]string{"+short", "A", "lab-compute-03.storage.lab.drover.test"}, "10.77.16.13"},
			{[]string{"+short", "A", "lab-compute-03.bmc.lab.drover.test"}, "10.77.8.13"},
			{[]string{"+short", "A", "lab-compute-lvm-03.lab.drover.test"}, "lab-compute-03.lab.drover.test.\n10.77.0.13"},
			{[]string{"+short", "-x", "10.77.0.13"}, "lab-compute-03.lab.drover.test."},
			{[]string{"+short", "-x", "10.77.8.13"}, "lab-compute-03.bmc.lab.drover.test."},
			{[]string{"+short", "NS", "lab.drover.test"}, "ns1.lab.drover.test.\nns2.lab.drover.test."},
			{[]string{"+short", "A", "ns2.lab.drover.test"}, ip(2)},
		}
		for _, tt := range tests {
			if got := dig("pri", ip(1), tt.args...); got != tt.want {
				t.Errorf("dig %v: %q, want %q", tt.args, got, tt.want)
			}
		}
		full := dig("pri", ip(1), "A", "lab-compute-01.lab.drover.test")
		if !strings.Contains(full, "flags: qr aa;") || !strings.Contains(full, "status: NOERROR") {
			t.Errorf("not an authoritative answer:\n%s", full)
		}
		if nx := dig("pri", ip(1), "A", "nosuch.lab.drover.test"); !strings.Contains(nx, "status: NXDOMAIN") || !strings.Contains(nx, "IN\tSOA") {
			t.Errorf("NXDOMAIN with the SOA expected:\n%s", nx)
		}
		if other := dig("pri", ip(1), "A", "example.com"); !strings.Contains(other, "status: REFUSED") {
			t.Errorf("a name outside drover's zones must be refused:\n%s", other)
		}
		if axfr := dig("pri", ip(1), "AXFR", "lab.drover.test"); !strings.Contains(axfr, "Transfer failed") {
			t.Errorf("an unsigned AXFR must be refused:\n%s", axfr)
		}
		axfr := dig("pri", ip(1), "-k", key, "AXFR", "lab.drover.test")
		if !strings.Contains(axfr, "lab-storage-02.lab.drover.test.") || strings.Contains(axfr, "Transfer failed") {
			t.Errorf("signed AXFR:\n%s", axfr)
		}
	})

	t.Run("drover dns export writes zone files BIND loads", func(t *testing.T) {
		exp := filepath.Join(dir, "export")
		drover("dns", "export", exp)
		for _, z := range zones {
			out, err := exec.Command("named-checkzone", z.Zone, filepath.Join(exp, z.Zone+".zone")).CombinedOutput()
			if err != nil || !strings.Contains(string(out), fmt.Sprintf("loaded serial %d", z.Serial)) {
				t.Errorf("named-checkzone %s: %v\n%s", z.Zone, err, out)
			}
		}
	})

	// A BIND 9 secondary of every zone, in its own namespace.
	secDir := filepath.Join(dir, "named")
	must(t, os.MkdirAll(secDir, 0o755))
	var conf strings.Builder
	fmt.Fprintf(&conf, `include "%s";
options {
	directory "%s";
	pid-file "%s/named.pid";
	listen-on port 53 { %s; };
	listen-on-v6 { none; };
	recursion no;
	dnssec-validation no;
	notify no;
	allow-transfer { key drover-xfr; };
};
controls { };
server %s { keys { drover-xfr; }; };
`, key, secDir, secDir, ip(2), ip(1))
	for _, z := range zones {
		fmt.Fprintf(&conf, "zone %q { type secondary; primaries { %s key drover-xfr; }; file %q; };\n", z.Zone, ip(1), z.Zone+".db")
	}
	confPath := filepath.Join(secDir, "named.conf")
	must(t, os.WriteFile(confPath, []byte(conf.String()), 0o644))
	namedLog := filepath.Join(secDir, "named.log")
	named, err := n.Start("sec", namedLog, nil, "named", "-g", "-4", "-c", confPath)
	must(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(namedLog)
			t.Logf("named log (tail):\n%s", tail(string(b), 40))
		}
	})
	serialOn := func(server, zone string) string {
		out, err := n.Run(context.Background(), "sec", "dig", "@"+server, "+short", "+norec", "+time=1", "+tries=1", "SOA", zone)
		if err != nil {
			return ""
		}
		f := strings.Fields(string(out))
		if len(f) < 3 {
			return ""
		}
		return f[2]
	}
	waitFor(t, "the secondary to load every zone", 30*time.Second, func() bool {
		if named.Exited() {
			t.Fatalf("named exited: %v", named.Wait())
		}
		for _, z := range zones {
			if serialOn(ip(2), z.Zone) != fmt.Sprint(z.Serial) {
				return false
			}
		}
		return true
	})

	sameZones := func(t *testing.T) {
		t.Helper()
		for _, z := range zones {
			a := records(dig("sec", ip(1), "-k", key, "+nocmd", "+nostats", "AXFR", z.Zone))
			b := records(dig("sec", ip(2), "-k", key, "+nocmd", "+nostats", "AXFR", z.Zone))
			if !slices.Equal(a, b) || len(a) < 3 {
				t.Errorf("zone %s: drover has %d records, the secondary %d; first difference: %s", z.Zone, len(a), len(b), firstDiff(a, b))
			}
		}
	}
	t.Run("the BIND secondary holds and answers the same zones", func(t *testing.T) {
		sameZones(t)
		if got := dig("sec", ip(2), "+short", "A", "lab-compute-lvm-03.lab.drover.test"); got != "lab-compute-03.lab.drover.test.\n10.77.0.13" {
			t.Errorf("secondary answers %q", got)
		}
	})

	t.Run("a design change reaches the secondary through NOTIFY", func(t *testing.T) {
		before := serialOn(ip(2), "lab.drover.test")
		// The storage role's offset moves: lab-storage-01's BMC moves from .101 to .111.
		b, err := os.ReadFile(zoneFile)
		must(t, err)
		changed := strings.Replace(string(b), "  storage: 100 ", "  storage: 110 ", 1)
		if changed == string(b) {
			t.Fatal("the lab design has no `storage: 100` addressing line to change")
		}
		must(t, os.WriteFile(zoneFile, []byte(changed), 0o644))
		time.Sleep(time.Second) // a later applied time: a new serial even on a fast machine
		run("pri", droverBin, "--db", db, "apply", "--yes", design)
		// The secondary's refresh is 15 minutes: within this wait only NOTIFY explains it.
		waitFor(t, "drover to serve the new design", 20*time.Second, func() bool {
			must(t, json.Unmarshal([]byte(drover("dns", "zones", "-o", "json")), &zones))
			return fmt.Sprint(zones[slices.IndexFunc(zones, func(z zoneSerial) bool { return z.Zone == "lab.drover.test" })].Serial) != before
		})
		waitFor(t, "the secondary to load every changed zone", 30*time.Second, func() bool {
			for _, z := range zones {
				if serialOn(ip(2), z.Zone) != fmt.Sprint(z.Serial) {
					return false
				}
			}
			return true
		})
		if got := dig("sec", ip(2), "+short", "A", "lab-storage-01.bmc.lab.drover.test"); got != "10.77.8.111" {
			t.Errorf("secondary's A for lab-storage-01's BMC: %q", got)
		}
		if got := dig("sec", ip(2), "+short", "-x", "10.77.8.111"); got != "lab-storage-01.bmc.lab.drover.test." {
			t.Errorf("secondary's PTR for the new address: %q", got)
		}
		logb, _ := os.ReadFile(namedLog)
		if !strings.Contains(string(logb), "notify from "+ip(1)) {
			t.Errorf("named logged no NOTIFY from drover")
		}
		sameZones(t)
	})
}

type zoneSerial struct {
	Zone   string `json:"zone"`
	Serial uint32 `json:"serial"`
}

// records are the record lines of dig output, without comments, sorted.
func records(out string) []string {
	var rs []string
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, ";") || strings.Contains(l, "\tTSIG\t") {
			continue
		}
		rs = append(rs, strings.Join(strings.Fields(l), " "))
	}
	slices.Sort(rs)
	return slices.Compact(rs) // the SOA opens and closes a transfer
}

func firstDiff(a, b []string) string {
	for i := range max(len(a), len(b)) {
		switch {
		case i >= len(a):
			return "secondary has " + b[i]
		case i >= len(b):
			return "drover has " + a[i]
		case a[i] != b[i]:
			return a[i] + " | " + b[i]
		}
	}
	return "none"
}
