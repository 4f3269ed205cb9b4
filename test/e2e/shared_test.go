package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drover/drover/internal/machine"
	"github.com/drover/drover/internal/netns"
	"github.com/drover/drover/internal/pgtest"
	"github.com/drover/drover/internal/store"
)

// sharedServer is one of several drover serve --shared in the server namespace.
type sharedServer struct {
	name, addr, api, log string
	proc                 *netns.Proc
}

// TestSharedServersDivideThePods runs two active drover servers on one
// PostgreSQL behind relays that forward to both (as dhcrelay does with
// several servers). They divide the pods: the zone-wide pseudo-pod (the
// leader's) and pod e2e/p1. An operator call reaching the server that does
// not own a machine's pod is carried out by the one that does. The owner of
// p1 is killed with SIGKILL while clients renew: the other takes the pod
// over and the clients keep their addresses and install. A new server
// joins and gets its share back; then the leader is killed and the zone-wide
// work moves. The database and a packet capture show no address acknowledged
// to two clients.
func TestSharedServersDivideThePods(t *testing.T) {
	require(t, map[string]string{"ip": "iproute2", "dhclient": "isc-dhcp-client", "dhcrelay": "isc-dhcp-relay", "curl": "curl", "tcpdump": "tcpdump"})
	pg := pgtest.Start(t)
	name := pg.NewDatabase(t)
	tp := newTopoOn(t, pg.SocketURL(name))
	ctx := context.Background()
	st, err := store.OpenPostgres(ctx, pg.URL(name))
	must(t, err)
	defer st.Close()

	// The single server applied the design; the shared servers take over from it.
	tp.server.Kill()
	tp.server.Wait()
	for i := 1; i <= 3; i++ {
		_, err := tp.net.Run(ctx, "srv", "ip", "addr", "add", tp.ip("252.%d/32", i), "dev", "lo")
		must(t, err)
	}
	tp.relayTo("shared", tp.ip("252.1"), tp.ip("252.2"), tp.ip("252.3"))
	pcap := filepath.Join(tp.dir, "dhcp.pcap")
	capture, err := tp.net.Start("srv", filepath.Join(tp.dir, "tcpdump.log"), nil, "tcpdump", "-i", "any", "-n", "-U", "-w", pcap, "udp port 67 or udp port 68")
	must(t, err)
	start := func(n int) *sharedServer {
		s := &sharedServer{name: fmt.Sprintf("ctl%d", n), addr: tp.ip("252.%d", n), api: fmt.Sprintf("http://127.0.0.1:%d", 9190+n),
			log: filepath.Join(tp.dir, fmt.Sprintf("ctl%d.log", n))}
		args := tp.serveArgs(false, "--shared", "--name", s.name, "--dhcp-listen", s.addr+":67", "--tftp-listen", s.addr+":69",
			"--http-listen", s.addr+":8080", "--api-listen", strings.TrimPrefix(s.api, "http://"))
		s.proc, err = tp.net.Start("srv", s.log, nil, args...)
		must(t, err)
		t.Cleanup(s.proc.Kill)
		t.Cleanup(func() {
			if t.Failed() {
				b, _ := os.ReadFile(s.log)
				t.Logf("%s log (tail):\n%s", s.name, tail(string(b), 40))
			}
		})
		return s
	}
	// owners waits until every pod has a live owner among the servers
	// given, each holding at least one, and returns pod -> owner.
	owners := func(what string, servers ...*sharedServer) map[string]string {
		t.Helper()
		var got map[string]string
		waitFor(t, what, 30*time.Second, func() bool {
			list, err := st.PodOwners(ctx)
			if err != nil {
				return false
			}
			got = map[string]string{}
			count := map[string]int{}
			for _, o := range list {
				if o.Live {
					got[o.Pod] = o.Owner
					count[o.Owner]++
				}
			}
			for _, s := range servers {
				if count[s.name] == 0 {
					return false
				}
			}
			return got[""] != "" && got["e2e/p1"] != "" && len(count) == len(servers)
		})
		return got
	}
	byName := func(n string, servers ...*sharedServer) *sharedServer {
		for _, s := range servers {
			if s.name == n {
				return s
			}
		}
		t.Fatalf("no server %s", n)
		return nil
	}
	drover := func(s *sharedServer, args ...string) (string, error) {
		out, err := tp.net.Run(ctx, "srv", append([]string{droverBin, "--server", s.api, "--token-file", filepath.Join(tp.dir, "drover-admin.token")}, args...)...)
		return string(out), err
	}

	// keep checks that every client keeps its address and name, now from server s.
	var before map[string]lease
	keep := func(t *testing.T, s *sharedServer) {
		for ns, w := range before {
			l, err := tp.dhclient(ns)
			if err != nil {
				t.Fatal(err)
			}
			if l.Addr != w.Addr || l.Host != w.Host || !strings.Contains(l.File, s.addr) {
				t.Errorf("%s: %s %s from %s, had %s %s", ns, l.Addr, l.Host, l.File, w.Addr, w.Host)
			}
		}
	}

	a, b := start(1), start(2)
	own := owners("two servers to divide the pods", a, b)
	leader, p1 := byName(own[""], a, b), byName(own["e2e/p1"], a, b)
	t.Logf("leader %s, e2e/p1 served by %s", leader.name, p1.name)

	t.Run("the pod's owner answers every client", tp.identities)
	before = map[string]lease{}
	for _, ns := range []string{"c11", "c12", "c21", "c22"} {
		l, err := tp.dhclient(ns)
		must(t, err)
		before[ns] = l
	}
	t.Run("an install reaches deployed through the pod's owner", func(t *testing.T) { tp.install(t) })
	t.Run("an operator call on one server is carried out by the pod's owner", func(t *testing.T) {
		// The leader does not own e2e/p1: it queues the calls for the owner.
		out, err := drover(leader, "retire", "e2e-compute-02")
		if err == nil || !strings.Contains(out, "illegal transition: cannot retire e2e-compute-02 while it is deploying") {
			t.Errorf("retire of an installing machine through %s: %v\n%s", leader.name, err, out)
		}
		if out, err := drover(leader, "maintenance", "enter", "e2e-storage-01", "--reason", "disk", "--owner", "ops", "--expires", "1h"); err != nil {
			t.Fatalf("maintenance through %s: %v\n%s", leader.name, err, out)
		}
		m, err := st.Machine(ctx, "e2e-storage-01")
		must(t, err)
		tl, err := st.Timeline(ctx, m.ID, 0, 0)
		must(t, err)
		if last := tl[len(tl)-1]; last.Actor != "admin" || m.State != machine.Maintenance {
			t.Errorf("e2e-storage-01 after maintenance enter: %s, last entry %+v", m.State, last)
		}
		audit, err := st.Audit(ctx, store.AuditFilter{Action: "maintenance-enter"})
		if err != nil || len(audit) != 1 || audit[0].Actor != "admin" || audit[0].Outcome != "ok" {
			t.Errorf("audit of the maintenance: %+v %v", audit, err)
		}
		if out, err := drover(leader, "maintenance", "leave", "e2e-storage-01"); err != nil {
			t.Fatalf("maintenance leave: %v\n%s", err, out)
		}
	})

	killed := time.Now()
	p1.proc.Kill()
	own = owners("the survivor to take over e2e/p1", leader)
	took := time.Since(killed)
	t.Logf("%s served e2e/p1 %s after %s was killed", leader.name, took.Round(time.Millisecond), p1.name)
	t.Run("clients keep their addresses through the survivor", func(t *testing.T) { keep(t, leader) })
	t.Run("an install reaches deployed through the survivor", func(t *testing.T) {
		l, err := tp.dhclient("c11")
		must(t, err)
		code, script := tp.curl("c11", l.File)
		if code != 200 || !strings.Contains(script, "hostname=e2e-compute-01") {
			t.Fatalf("script from the survivor: %d\n%s", code, script)
		}
		token, base := between(script, "drover.token=", " "), between(script, "drover.url=", " ")
		code, body := tp.curl("c11", "-X", "POST", "-H", "Content-Type: application/json", "-d", `{"status":"installed"}`, base+"/phone-home?token="+token)
		if code != 200 || !strings.Contains(body, `"state":"deployed"`) {
			t.Fatalf("phone-home through the survivor: %d %s", code, body)
		}
	})

	c := start(3)
	own = owners("a new server to get its share", leader, c)
	if own[""] != leader.name || own["e2e/p1"] != c.name {
		t.Errorf("after the third server joined: %v, want the leader %s to keep the zone-wide work and %s to serve e2e/p1", own, leader.name, c.name)
	}
	killed = time.Now()
	leader.proc.Kill()
	own = owners("the zone-wide work to move", c)
	t.Logf("%s led %s after the leader %s was killed", c.name, time.Since(killed).Round(time.Millisecond), leader.name)
	waitFor(t, "the new leader to say so", 10*time.Second, func() bool {
		b, _ := os.ReadFile(c.log)
		return strings.Contains(string(b), "leading: running the zone-wide work here")
	})
	t.Run("clients keep their addresses after both kills", func(t *testing.T) { keep(t, c) })

	t.Run("no address was given to two clients", func(t *testing.T) {
		oneMachineAndAddressEach(t, st)
		for _, n := range []string{"e2e-storage-01", "e2e-compute-01"} {
			if m, err := st.Machine(ctx, n); err != nil || m.State != machine.Deployed {
				t.Errorf("%s: %+v %v", n, m, err)
			}
		}
		capture.Stop(2 * time.Second)
		out, err := tp.net.Run(ctx, "srv", "tcpdump", "-r", pcap, "-n", "-v")
		must(t, err)
		acked, acks := map[string]map[string]bool{}, 0
		for _, p := range dhcpPackets(string(out)) {
			if p.kind != "ACK" || p.yiaddr == "" || p.yiaddr == "0.0.0.0" {
				continue
			}
			acks++
			if acked[p.yiaddr] == nil {
				acked[p.yiaddr] = map[string]bool{}
			}
			acked[p.yiaddr][p.chaddr] = true
		}
		if acks < 12 {
			t.Errorf("the capture has %d ACKs, want at least the 12 the clients got", acks)
		}
		for addr, macs := range acked {
			if len(macs) > 1 {
				t.Errorf("%s was acknowledged to %d clients: %v", addr, len(macs), macs)
			}
		}
		t.Logf("capture: %d ACKs for %d addresses, each to one client", acks, len(acked))
	})
}

type dhcpPacket struct{ kind, yiaddr, chaddr string }

// dhcpPackets reads tcpdump -v output: one packet per unindented line, its
// BOOTP fields on the indented lines after it.
func dhcpPackets(out string) []dhcpPacket {
	var ps []dhcpPacket
	for _, line := range strings.Split(out, "\n") {
		if line == "" {
			continue
		}
		if line[0] != ' ' && line[0] != '\t' {
			ps = append(ps, dhcpPacket{})
			continue
		}
		if len(ps) == 0 {
			continue
		}
		p := &ps[len(ps)-1]
		f := strings.Fields(line)
		switch {
		case len(f) >= 2 && f[0] == "Your-IP":
			p.yiaddr = f[1]
		case len(f) >= 2 && f[0] == "Client-Ethernet-Address":
			p.chaddr = f[1]
		case strings.Contains(line, "DHCP-Message (53)"):
			p.kind = f[len(f)-1]
		}
	}
	return ps
}

// relayTo replaces the ToRs' relays with ISC dhcrelay forwarding to servers.
func (tp *topo) relayTo(tag string, servers ...string) {
	tp.t.Helper()
	for tor, ports := range map[string]int{"tor1": 4, "tor2": 2} {
		if b, err := os.ReadFile(filepath.Join(tp.dir, tor+".pid")); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				syscall.Kill(pid, syscall.SIGTERM)
			}
		}
		relay := []string{"dhcrelay", "-4", "-d", "-q", "-a", "-m", "replace"}
		for p := 1; p <= ports; p++ {
			relay = append(relay, "-id", fmt.Sprintf("swp%d", p))
		}
		relay = append(relay, "-iu", "up0", "-pf", filepath.Join(tp.dir, tor+"-"+tag+".pid"))
		if _, err := tp.net.Start(tor, filepath.Join(tp.dir, tor+"-"+tag+".log"), nil, append(relay, servers...)...); err != nil {
			tp.t.Fatal(err)
		}
	}
}
