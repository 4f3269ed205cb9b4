package e2e

import (
	"context"
	"testing"

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
