package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover/drover/internal/machine"
	"github.com/drover/drover/internal/pgtest"
	"github.com/drover/drover/internal/store"
)

// TestNetworkBootOnPostgres runs drover serve on a real PostgreSQL 15 the
// test starts: clients behind ISC dhcrelay get their slots' identities, one
// installs to deployed, and the database holds what drover acknowledged.
func TestNetworkBootOnPostgres(t *testing.T) {
	require(t, map[string]string{"ip": "iproute2", "dhclient": "isc-dhcp-client", "dhcrelay": "isc-dhcp-relay", "curl": "curl"})
	pg := pgtest.Start(t)
	name := pg.NewDatabase(t)
	// The server runs in a network namespace: it reaches PostgreSQL through its Unix socket.
	tp := newTopoOn(t, pg.SocketURL(name))

	t.Run("each port gets its slot's identity", tp.identities)
	t.Run("an install reaches deployed", func(t *testing.T) { tp.install(t) })

	t.Run("the database holds every machine and one holder per address", func(t *testing.T) {
		ctx := context.Background()
		st, err := store.OpenPostgres(ctx, pg.URL(name))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		ms, err := st.Machines(ctx, store.MachineFilter{})
		if err != nil {
			t.Fatal(err)
		}
		byName := map[string]*machine.Machine{}
		for _, m := range ms {
			byName[m.Name] = m
		}
		for _, n := range []string{"e2e-compute-01", "e2e-compute-02", "e2e-storage-01", "e2e-storage-02"} {
			if byName[n] == nil {
				t.Errorf("no machine %s in PostgreSQL (have %d machines)", n, len(ms))
			}
		}
		if m := byName["e2e-storage-01"]; m == nil || m.State != machine.Deployed {
			t.Errorf("e2e-storage-01: %+v", m)
		}
		ls, err := st.Leases(ctx)
		if err != nil {
			t.Fatal(err)
		}
		macs := map[string]string{}
		for _, l := range ls {
			if prev, ok := macs[l.MAC]; ok {
				t.Errorf("%s holds %s and %s", l.MAC, prev, l.Addr)
			}
			macs[l.MAC] = l.Addr.String()
		}
		if len(ls) < 4 {
			t.Errorf("%d leases stored, want the 4 clients'", len(ls))
		}
		// The CLI reads the same database.
		if s := tp.show(t, "e2e-storage-01"); s.Machine.State != "deployed" || !s.has("phone-home") {
			t.Errorf("drover show on PostgreSQL: %+v", s.Machine)
		}
	})
}

// TestStandbyTakesOver runs an active and a standby drover serve on one
// PostgreSQL; the active one is killed with SIGKILL after its clients got
// their addresses. The standby takes over the same service address (as a
// floating address or a relay forwarding to both would give it), and the
// clients carry on: same addresses, an install to deployed, whole timelines.
func TestStandbyTakesOver(t *testing.T) {
	require(t, map[string]string{"ip": "iproute2", "dhclient": "isc-dhcp-client", "dhcrelay": "isc-dhcp-relay", "curl": "curl"})
	pg := pgtest.Start(t)
	name := pg.NewDatabase(t)
	tp := newTopoOn(t, pg.SocketURL(name))
	// A second server without --standby refuses to start and names the active one.
	secondLog := filepath.Join(tp.dir, "second.log")
	second, err := tp.net.Start("srv", secondLog, nil, tp.serveArgs(false)...)
	must(t, err)
	if err := second.Wait(); err == nil {
		t.Fatal("a second active server started on the same database")
	}
	if b, _ := os.ReadFile(secondLog); !strings.Contains(string(b), "drover serve (pid ") || !strings.Contains(string(b), "start this one with --standby") {
		t.Errorf("the second server's refusal does not name the active one:\n%s", b)
	}
	standbyLog := filepath.Join(tp.dir, "standby.log")
	standby, err := tp.net.Start("srv", standbyLog, nil, tp.serveArgs(false, "--standby")...)
	must(t, err)
	t.Cleanup(standby.Kill)
	waitFor(t, "the standby to stand by", 20*time.Second, func() bool {
		b, _ := os.ReadFile(standbyLog)
		return strings.Contains(string(b), "standing by")
	})

	t.Run("the active server gives the clients their identities", tp.identities)
	before := map[string]lease{}
	for _, ns := range []string{"c11", "c22"} {
		l, err := tp.dhclient(ns)
		must(t, err)
		before[ns] = l
	}

	killed := time.Now()
	tp.server.Kill()
	waitFor(t, "the standby to take over", 30*time.Second, func() bool {
		if standby.Exited() {
			b, _ := os.ReadFile(standbyLog)
			t.Fatalf("standby exited: %v\n%s", standby.Wait(), tail(string(b), 20))
		}
		out, err := tp.net.Run(context.Background(), "srv", "curl", "-sf", "http://127.0.0.1:8080/healthz")
		return err == nil && strings.TrimSpace(string(out)) == "ok"
	})
	t.Logf("standby answered /healthz %s after the active server was killed", time.Since(killed).Round(time.Millisecond))
	tp.server = standby

	t.Run("clients keep their addresses through the standby", func(t *testing.T) {
		for ns, w := range before {
			l, err := tp.dhclient(ns)
			if err != nil {
				t.Fatal(err)
			}
			if l.Addr != w.Addr || l.Host != w.Host {
				t.Errorf("%s: %s %s after the takeover, %s %s before", ns, l.Addr, l.Host, w.Addr, w.Host)
			}
		}
	})
	t.Run("an install reaches deployed through the standby", func(t *testing.T) { tp.install(t) })
	t.Run("the database holds one machine per client and one holder per address", func(t *testing.T) {
		ctx := context.Background()
		st, err := store.OpenPostgres(ctx, pg.URL(name))
		must(t, err)
		defer st.Close()
		oneMachineAndAddressEach(t, st)
		s := tp.show(t, "e2e-storage-01")
		for _, k := range []string{"dhcp-offer", "dhcp-ack", "ipxe-script", "template", "phone-home"} {
			if !s.has(k) {
				t.Errorf("timeline of e2e-storage-01 lacks %s", k)
			}
		}
	})
}

// oneMachineAndAddressEach checks the database: one machine per client of
// the topology, one address per MAC (a declined address aside).
func oneMachineAndAddressEach(t *testing.T, st *store.DB) {
	t.Helper()
	ctx := context.Background()
	ms, err := st.Machines(ctx, store.MachineFilter{})
	must(t, err)
	names := map[string]int{}
	for _, m := range ms {
		names[m.Name]++
	}
	for _, n := range []string{"e2e-compute-01", "e2e-compute-02", "e2e-storage-01", "e2e-storage-02"} {
		if names[n] != 1 {
			t.Errorf("%d machines named %s", names[n], n)
		}
	}
	ls, err := st.Leases(ctx)
	must(t, err)
	held := map[string]string{}
	for _, l := range ls {
		if prev, ok := held[l.MAC]; ok && l.State != "declined" {
			t.Errorf("%s holds %s and %s", l.MAC, prev, l.Addr)
		}
		held[l.MAC] = l.Addr.String()
	}
}
