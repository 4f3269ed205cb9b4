package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover/drover/internal/machine"
	"github.com/drover/drover/internal/pgtest"
	"github.com/drover/drover/internal/zone"
)

func openTemp(t *testing.T) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "drover.db")
	s, err := OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

// backend is a database the store suite runs on.
type backend struct {
	name string
	// open opens a new, empty store that lives until the test ends.
	open func(t *testing.T) *DB
	// again opens a second handle on the same database, as another process would.
	again func(t *testing.T, s *DB) *DB
}

// TestStore runs the store suite on both backends: SQLite in a temporary
// file, and a real PostgreSQL server the test starts (internal/pgtest).
func TestStore(t *testing.T) {
	suite := []struct {
		name string
		test func(*testing.T, backend)
	}{
		{"ApplyDesign", testApplyDesign},
		{"ApplySwapsNamesBetweenSlots", testApplySwapsNamesBetweenSlots},
		{"UpdateIsAllOrNothing", testUpdateIsAllOrNothing},
		{"MachinesAndTimeline", testMachinesAndTimeline},
		{"MachinesPage", testMachinesPage},
		{"Leases", testLeases},
		{"SlotAndMachineInSlotLookups", testSlotAndMachineInSlotLookups},
		{"WriterLockIsExclusiveAndReleased", testWriterLockIsExclusiveAndReleased},
		{"ArtifactChannels", testArtifactChannels},
		{"Outbox", testOutbox},
		{"Rollouts", testRollouts},
		{"TokensAndAudit", testTokensAndAudit},
		{"ConcurrentApplies", testConcurrentApplies},
		{"LeaseHolders", testLeaseHolders},
		{"ReserveIDs", testReserveIDs},
		{"WriterLost", testWriterLost},
		{"PodOwnership", testPodOwnership},
		{"AgentMirror", testAgentMirror},
		{"AppendEntries", testAppendEntries},
		{"MachineIdentityChanges", testMachineIdentityChanges},
	}
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			for _, tc := range suite {
				t.Run(tc.name, func(t *testing.T) { tc.test(t, b) })
			}
		})
	}
}

func backends(t *testing.T) []backend {
	sqlite := backend{
		name: "sqlite",
		open: func(t *testing.T) *DB { s, _ := openTemp(t); return s },
		again: func(t *testing.T, s *DB) *DB {
			o, err := OpenSQLite(context.Background(), s.path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { o.Close() })
			return o
		},
	}
	pg, pgErr := pgtest.New()
	if pgErr == nil {
		t.Cleanup(pg.Stop)
	}
	url := map[*DB]string{}
	var mu sync.Mutex
	openURL := func(t *testing.T, u string) *DB {
		s, err := OpenPostgres(context.Background(), u)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		mu.Lock()
		url[s] = u
		mu.Unlock()
		return s
	}
	postgres := backend{
		name: "postgres",
		open: func(t *testing.T) *DB {
			if pgErr != nil {
				pgtest.Missing(t, pgErr)
			}
			return openURL(t, pg.NewDB(t))
		},
		again: func(t *testing.T, s *DB) *DB {
			mu.Lock()
			u := url[s]
			mu.Unlock()
			return openURL(t, u)
		},
	}
	return []backend{sqlite, postgres}
}

func labDesign(t *testing.T, edits ...string) *zone.Design {
	t.Helper()
	b, err := os.ReadFile("../../examples/lab/lab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for i := 0; i+1 < len(edits); i += 2 {
		if !strings.Contains(text, edits[i]) {
			t.Fatalf("lab design lacks %q", edits[i])
		}
		text = strings.Replace(text, edits[i], edits[i+1], 1)
	}
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "templates"), 0o755)
	os.WriteFile(filepath.Join(dir, "templates", "install.sh"), []byte("#!/bin/sh\n"), 0o644)
	os.CopyFS(filepath.Join(dir, "templates", "switch"), os.DirFS("../../examples/lab/templates/switch")) // the lab's switches' ZTP templates
	path := filepath.Join(dir, "lab.yaml")
	os.WriteFile(path, []byte(text), 0o644)
	d, err := zone.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func apply(t *testing.T, s Store, d *zone.Design) *zone.Plan {
	t.Helper()
	p, err := s.ApplyDesign(context.Background(), &Revision{Hash: d.Hash, AppliedBy: "test", AppliedAt: time.Now(), Summary: d.String(), Sources: d.Source}, d.Slots, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMigrationsAreIdempotentAndVersioned(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	s.Close()
	s2, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	if _, err := s2.db.Exec(`INSERT INTO schema_migrations(version, applied_at) VALUES (999, 0)`); err != nil {
		t.Fatal(err)
	}
	s2.Close()
	if _, err := OpenSQLite(ctx, path); err == nil || !strings.Contains(err.Error(), "upgrade drover") {
		t.Fatalf("opening a newer schema: %v", err)
	}
}

func testApplyDesign(t *testing.T, b backend) {
	ctx := context.Background()
	s := b.open(t)
	d := labDesign(t)
	if p := apply(t, s, d); len(p.Added) != len(d.Slots) || len(p.Changed)+len(p.Removed) != 0 {
		t.Fatalf("first apply: %+v", p)
	}
	if p := apply(t, s, d); !p.Empty() {
		t.Fatalf("second apply changed %+v", p)
	}
	slots, err := s.Slots(ctx, SlotFilter{Role: "compute"})
	if err != nil || len(slots) != 3 {
		t.Fatalf("compute slots: %d %v", len(slots), err)
	}
	if slots[0].Address != netip.MustParseAddr("10.77.0.11") || slots[0].BMCAddress != netip.MustParseAddr("10.77.8.11") {
		t.Errorf("slot round trip lost addresses: %+v", slots[0])
	}

	// Machines in swp1 (deployed) and swp2 (deployed), then swp1 changes role and swp2 disappears.
	put := func(mac, slot, name string) *machine.Machine {
		m := &machine.Machine{MAC: mac, SlotKey: slot, Name: name, State: machine.Deployed, StateSince: time.Now()}
		if err := s.Update(ctx, func(tx Tx) error { return tx.PutMachine(ctx, m) }); err != nil {
			t.Fatal(err)
		}
		return m
	}
	m1 := put("52:54:00:00:00:11", "p1-tor1/swp1", "lab-compute-01")
	m2 := put("52:54:00:00:00:12", "p1-tor1/swp2", "lab-compute-02")
	next := labDesign(t,
		"{ports: swp1-swp2, role: compute, ids: 1-2}", "{ports: swp1, role: storage, ids: 9}",
		"{ports: swp1-swp3, bmc_of: compute, ids: 1-3}", "{ports: swp3, bmc_of: compute, ids: 3}")
	p := apply(t, s, next)
	if len(p.Removed) != 1 || len(p.Changed) != 1 || !p.Changed[0].Reinstall {
		t.Fatalf("plan %+v", p)
	}
	// The apply records effects; it writes no machine (the fleet does).
	got1, _ := s.Machine(ctx, m1.MAC)
	if got1.Name != "lab-compute-01" || got1.NeedsReinstall || got1.SlotKey != "p1-tor1/swp1" {
		t.Fatalf("apply wrote a machine row: %+v", got1)
	}
	got2, _ := s.Machine(ctx, m2.MAC)
	if got2.SlotKey != "p1-tor1/swp2" {
		t.Fatalf("apply wrote a machine row: %+v", got2)
	}
	if tl, _ := s.Timeline(ctx, m2.ID, 0, 0); len(tl) != 0 {
		t.Fatalf("apply wrote a timeline: %+v", tl)
	}
	pending, err := s.PendingRevisions(ctx)
	if err != nil || len(pending) != 3 {
		t.Fatalf("pending revisions: %d %v", len(pending), err)
	}
	want := []SlotEffect{
		{Slot: "p1-tor1/swp2", Name: "lab-compute-02", Removed: true, Pod: "lab/p1"},
		{Slot: "p1-tor1/swp1", Name: "lab-storage-09", Fields: p.Changed[0].Fields, Reinstall: true, Pod: "lab/p1"},
	}
	if got := pending[2].Effects; !reflect.DeepEqual(got, want) {
		t.Fatalf("effects of the last revision:\n got %+v\nwant %+v", got, want)
	}
	if err := s.Update(ctx, func(tx Tx) error { return tx.SetMachinesRevision(ctx, pending[2].ID) }); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.MachinesRevision(ctx); n != pending[2].ID {
		t.Fatalf("machines revision %d, want %d", n, pending[2].ID)
	}
	if pending, _ = s.PendingRevisions(ctx); len(pending) != 0 {
		t.Fatalf("still pending: %+v", pending)
	}
	revs, _ := s.Revisions(ctx)
	if len(revs) != 3 || revs[0].Hash != next.Hash {
		t.Fatalf("revisions %+v", revs)
	}
	cur, err := s.CurrentRevision(ctx)
	if err != nil || len(cur.Sources) != 1 {
		t.Fatalf("current revision sources: %v %v", cur, err)
	}
}

func testApplySwapsNamesBetweenSlots(t *testing.T, b backend) {
	s := b.open(t)
	apply(t, s, labDesign(t))
	// Swap the ids of swp1 and swp2: each name moves to the other slot in one transaction.
	p := apply(t, s, labDesign(t, "{ports: swp1-swp2, role: compute, ids: 1-2}", "{ports: swp1, role: compute, ids: 2}\n          - {ports: swp2, role: compute, ids: 1}"))
	if len(p.Changed) != 2 {
		t.Fatalf("plan %+v", p)
	}
}

func testUpdateIsAllOrNothing(t *testing.T, b backend) {
	ctx := context.Background()
	s := b.open(t)
	boom := errors.New("boom")
	err := s.Update(ctx, func(tx Tx) error {
		m := &machine.Machine{MAC: "52:54:00:00:00:01", State: machine.Discovered, StateSince: time.Now()}
		if err := tx.PutMachine(ctx, m); err != nil {
			return err
		}
		if err := tx.AddEntries(ctx, &machine.Entry{MachineID: m.ID, At: time.Now(), Actor: "t", Kind: "seen"}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update: %v", err)
	}
	if ms, _ := s.Machines(ctx, MachineFilter{}); len(ms) != 0 {
		t.Fatalf("rolled-back machine persisted: %+v", ms[0])
	}
}

func testMachinesAndTimeline(t *testing.T, b backend) {
	ctx := context.Background()
	s := b.open(t)
	apply(t, s, labDesign(t))
	var id int64
	err := s.Update(ctx, func(tx Tx) error {
		for i, slot := range []string{"p1-tor1/swp1", "p1-tor2/swp1", ""} {
			m := &machine.Machine{MAC: "52:54:00:00:01:0" + string(rune('0'+i)), SlotKey: slot, State: machine.Ready, StateSince: time.Now()}
			if slot == "" {
				m.State = machine.Discovered
			}
			if err := tx.PutMachine(ctx, m); err != nil {
				return err
			}
			id = m.ID
		}
		m, err := tx.MachineByID(ctx, id)
		if err != nil {
			return err
		}
		e, err := m.Apply(machine.Change{Event: machine.Commission, Actor: "alice", At: time.Now(), Timeout: time.Minute})
		if err != nil {
			return err
		}
		if err := tx.PutMachine(ctx, m); err != nil {
			return err
		}
		return tx.AddEntries(ctx, &e)
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		f    MachineFilter
		want int
	}{
		{MachineFilter{}, 3},
		{MachineFilter{Zone: "lab"}, 2},
		{MachineFilter{Role: "storage"}, 1},
		{MachineFilter{State: machine.Commissioning}, 1},
		{MachineFilter{Zone: "lab", State: machine.Ready}, 2},
		{MachineFilter{Pod: "p2"}, 0},
	}
	for _, tt := range tests {
		ms, err := s.Machines(ctx, tt.f)
		if err != nil || len(ms) != tt.want {
			t.Errorf("Machines(%+v) = %d, %v; want %d", tt.f, len(ms), err, tt.want)
		}
	}
	m, err := s.Machine(ctx, "52:54:00:00:01:02")
	if err != nil || m.State != machine.Commissioning || m.Deadline.IsZero() {
		t.Fatalf("machine %+v %v", m, err)
	}
	tl, err := s.Timeline(ctx, m.ID, 0, 0)
	if err != nil || len(tl) != 1 || tl[0].From != machine.Discovered || tl[0].To != machine.Commissioning || tl[0].Actor != "alice" {
		t.Fatalf("timeline %+v %v", tl, err)
	}
	if _, err := s.Machine(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown machine: %v", err)
	}
}

// testMachinesPage: pages of every size, laid end to end, are Machines'
// listing, filtered or not, across more machines than one query of a page reads.
func testMachinesPage(t *testing.T, b backend) {
	ctx := context.Background()
	s := b.open(t)
	apply(t, s, labDesign(t))
	err := s.Update(ctx, func(tx Tx) error {
		for i, slot := range []string{"p1-tor1/swp1", "p1-tor2/swp1"} {
			m := &machine.Machine{MAC: fmt.Sprintf("52:54:00:00:02:%02x", i), SlotKey: slot, State: machine.Ready, StateSince: time.Now()}
			if err := tx.PutMachine(ctx, m); err != nil {
				return err
			}
		}
		// Discovered machines, unnamed: ordered by where they were seen,
		// numbers by value, then by MAC (three share each port).
		for i := 0; i < 250; i++ {
			m := &machine.Machine{MAC: fmt.Sprintf("52:54:00:01:%02x:%02x", i%7, i), Location: fmt.Sprintf("leaf/swp%d", i/3),
				State: machine.Discovered, StateSince: time.Now()}
			if err := tx.PutMachine(ctx, m); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []MachineFilter{{}, {State: machine.Discovered}, {Zone: "lab"}, {Pod: "p2"}} {
		all, err := s.Machines(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, per := range []int{1, 7, 100, 101, 1000} {
			var got []string
			for offset := 0; ; offset += per {
				pg, total, err := s.MachinesPage(ctx, f, offset, per)
				if err != nil {
					t.Fatalf("MachinesPage(%+v, %d, %d): %v", f, offset, per, err)
				}
				if total != len(all) || len(pg) > per {
					t.Fatalf("MachinesPage(%+v, %d, %d) = %d machines of %d; want at most %d of %d", f, offset, per, len(pg), total, per, len(all))
				}
				if len(pg) == 0 {
					break
				}
				for _, m := range pg {
					got = append(got, m.MAC)
					if m.State == "" || m.StateSince.IsZero() {
						t.Fatalf("page machine %+v: not read whole", m)
					}
				}
			}
			want := make([]string, len(all))
			for i, m := range all {
				want[i] = m.MAC
			}
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("pages of %d (%+v) = %v; want %v", per, f, got, want)
			}
		}
	}
	all, _ := s.Machines(ctx, MachineFilter{})
	if all[2].Location != "leaf/swp0" || all[5].Location != "leaf/swp1" || all[8].Location != "leaf/swp2" || all[len(all)-1].Location != "leaf/swp83" {
		t.Errorf("order: %s, %s, %s ... %s", all[2].Location, all[5].Location, all[8].Location, all[len(all)-1].Location)
	}
	if pg, total, err := s.MachinesPage(ctx, MachineFilter{}, 1<<40, 10); err != nil || len(pg) != 0 || total != 252 {
		t.Errorf("page far past the end = %d of %d, %v", len(pg), total, err)
	}
}

func testLeases(t *testing.T, b backend) {
	ctx := context.Background()
	s := b.open(t)
	exp := time.Now().Add(time.Hour).UTC().Truncate(time.Microsecond)
	a1, a2 := netip.MustParseAddr("10.77.0.11"), netip.MustParseAddr("10.77.0.12")
	if err := s.PutLeases(ctx, []Lease{{Addr: a1, MAC: "m1", Expires: exp, State: "bound"}, {Addr: a2, MAC: "m2", Expires: exp, State: "offered"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutLeases(ctx, []Lease{{Addr: a2, MAC: "m2", Expires: exp, State: "bound"}}); err != nil {
		t.Fatal(err)
	}
	ls, err := s.Leases(ctx)
	if err != nil || len(ls) != 2 || ls[1].State != "bound" || !ls[0].Expires.Equal(exp) {
		t.Fatalf("leases %+v %v", ls, err)
	}
	if err := s.DeleteLeases(ctx, []netip.Addr{a1}); err != nil {
		t.Fatal(err)
	}
	if ls, _ := s.Leases(ctx); len(ls) != 1 || ls[0].Addr != a2 {
		t.Fatalf("after delete %+v", ls)
	}
}

func testWriterLockIsExclusiveAndReleased(t *testing.T, b backend) {
	s := b.open(t)
	release, err := s.LockWriter("test one")
	if err != nil {
		t.Fatal(err)
	}
	other := b.again(t, s)
	if _, err := other.LockWriter("test two"); !errors.Is(err, ErrWriterBusy) || !strings.Contains(err.Error(), "test one (pid ") {
		t.Fatalf("second writer lock: %v, want ErrWriterBusy naming the holder", err)
	}
	release()
	again, err := other.LockWriter("test two")
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	again()
}

// The outbox's reader finds transitions by the partial index, not by a scan
// of the whole timeline.
func TestTransitionsUseTheirIndex(t *testing.T) {
	s, _ := openTemp(t)
	rows, err := s.db.Query(`EXPLAIN QUERY PLAN `+transitionsQuery, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if !strings.Contains(strings.Join(plan, "; "), "USING COVERING INDEX events_transitions") &&
		!strings.Contains(strings.Join(plan, "; "), "USING INDEX events_transitions") {
		t.Fatalf("plan %q does not use events_transitions", plan)
	}
}

// Every connection of the pool has the settings the store relies on:
// durability (WAL, synchronous NORMAL), foreign keys, and statement journals
// in memory.
func TestSQLiteConnectionSettings(t *testing.T) {
	s, _ := openTemp(t)
	ctx := context.Background()
	// Hold several connections at once, so that more than one is checked.
	var conns []*sql.Conn
	for range 3 {
		c, err := s.db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	tests := []struct{ pragma, want string }{
		{"journal_mode", "wal"},
		{"synchronous", "1"}, // NORMAL
		{"foreign_keys", "1"},
		{"temp_store", "2"},         // MEMORY
		{"wal_autocheckpoint", "0"}, // the checkpointer's
	}
	for _, tt := range tests {
		for i, c := range conns {
			var got string
			if err := c.QueryRowContext(ctx, "PRAGMA "+tt.pragma).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("connection %d: PRAGMA %s = %s, want %s", i, tt.pragma, got, tt.want)
			}
		}
	}
}

// A database from before the fleet carried out design effects had its
// machines updated by the apply itself: nothing is pending after the upgrade.
func TestMigrationMarksOldRevisionsCarriedOut(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	apply(t, s, labDesign(t))
	apply(t, s, labDesign(t, "{ports: swp1-swp2, role: compute, ids: 1-2}", "{ports: swp1-swp2, role: compute, ids: 5-6}",
		"{ports: swp1-swp3, bmc_of: compute, ids: 1-3}", "{ports: swp3, bmc_of: compute, ids: 3}"))
	for _, q := range []string{`ALTER TABLE tokens DROP COLUMN pod`, `DROP TABLE machine_ops`, `DROP TABLE controllers`, `DROP TABLE pod_owners`, `DROP TABLE id_blocks`, `DROP INDEX events_transitions`, `DROP TABLE event_cursors`, `DROP TABLE artifact_channels`, `DROP TABLE artifacts`, `ALTER TABLE machines DROP COLUMN boot_token`, `DROP TABLE rollout_machines`, `DROP TABLE rollouts`, `DROP TABLE commits`, `DROP TABLE fleet_state`,
		`ALTER TABLE revisions DROP COLUMN effects`, `DELETE FROM schema_migrations WHERE version >= 4`} {
		if _, err := s.db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	s2, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if n, err := s2.MachinesRevision(ctx); err != nil || n != 2 {
		t.Fatalf("machines revision after upgrade: %d %v, want 2", n, err)
	}
	if p, err := s2.PendingRevisions(ctx); err != nil || len(p) != 0 {
		t.Fatalf("pending after upgrade: %+v %v", p, err)
	}
}

func testSlotAndMachineInSlotLookups(t *testing.T, b backend) {
	ctx := context.Background()
	s := b.open(t)
	apply(t, s, labDesign(t))
	for _, ref := range []string{"lab-compute-lvm-03", "p1-tor1/swp3", "lab-compute-03"} { // name, key, permanent name
		sl, err := s.Slot(ctx, ref)
		if err != nil || sl.Key != "p1-tor1/swp3" {
			t.Errorf("Slot(%q) = %v, %v; want p1-tor1/swp3", ref, sl, err)
		}
	}
	if _, err := s.Slot(ctx, "nothing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Slot(nothing): %v, want ErrNotFound", err)
	}
	if _, err := s.MachineInSlot(ctx, "p1-tor1/swp3"); !errors.Is(err, ErrNotFound) {
		t.Errorf("empty slot: %v, want ErrNotFound", err)
	}
	m := &machine.Machine{MAC: "52:54:00:00:00:33", SlotKey: "p1-tor1/swp3", Name: "lab-compute-lvm-03", State: machine.Deployed, StateSince: time.Now()}
	if err := s.Update(ctx, func(tx Tx) error { return tx.PutMachine(ctx, m) }); err != nil {
		t.Fatal(err)
	}
	if got, err := s.MachineInSlot(ctx, "p1-tor1/swp3"); err != nil || got.MAC != m.MAC {
		t.Errorf("MachineInSlot: %v %v", got, err)
	}
}

// testMachineIdentityChanges writes machines whose slot, name and MAC change
// (SQLite sets those columns in a statement of their own, only when they
// differ): each change lands, a slot passes from one machine to another
// within a transaction, and a slot another machine holds is refused.
func testMachineIdentityChanges(t *testing.T, b backend) {
	ctx := context.Background()
	s := b.open(t)
	apply(t, s, labDesign(t))
	put := func(ms ...*machine.Machine) error {
		return s.Update(ctx, func(tx Tx) error {
			for _, m := range ms {
				if err := tx.PutMachine(ctx, m); err != nil {
					return err
				}
			}
			return nil
		})
	}
	a := &machine.Machine{MAC: "52:54:00:00:02:01", SlotKey: "p1-tor1/swp1", Name: "a", State: machine.Ready, StateSince: time.Now()}
	b2 := &machine.Machine{MAC: "52:54:00:00:02:02", State: machine.Discovered, StateSince: time.Now()}
	if err := put(a, b2); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name    string
		change  func()
		wantErr bool
		wantA   machine.Machine // MAC, slot, name, state
		wantB   machine.Machine
	}{
		{"state alone", func() { a.State = machine.Deployed }, false,
			machine.Machine{MAC: "52:54:00:00:02:01", SlotKey: "p1-tor1/swp1", Name: "a", State: machine.Deployed},
			machine.Machine{MAC: "52:54:00:00:02:02", State: machine.Discovered}},
		{"rename", func() { a.Name = "a2" }, false,
			machine.Machine{MAC: "52:54:00:00:02:01", SlotKey: "p1-tor1/swp1", Name: "a2", State: machine.Deployed},
			machine.Machine{MAC: "52:54:00:00:02:02", State: machine.Discovered}},
		{"the slot passes from a to b", func() { a.SlotKey, a.Name, b2.SlotKey, b2.Name, b2.State = "", "", "p1-tor1/swp1", "b", machine.Ready }, false,
			machine.Machine{MAC: "52:54:00:00:02:01", State: machine.Deployed},
			machine.Machine{MAC: "52:54:00:00:02:02", SlotKey: "p1-tor1/swp1", Name: "b", State: machine.Ready}},
		{"a new MAC (a replaced board)", func() { a.MAC = "52:54:00:00:02:03" }, false,
			machine.Machine{MAC: "52:54:00:00:02:03", State: machine.Deployed},
			machine.Machine{MAC: "52:54:00:00:02:02", SlotKey: "p1-tor1/swp1", Name: "b", State: machine.Ready}},
		{"a takes the slot b holds: refused, nothing changes", func() { a.SlotKey, a.State = "p1-tor1/swp1", machine.Ready }, true,
			machine.Machine{MAC: "52:54:00:00:02:03", State: machine.Deployed},
			machine.Machine{MAC: "52:54:00:00:02:02", SlotKey: "p1-tor1/swp1", Name: "b", State: machine.Ready}},
	}
	for _, st := range steps {
		st.change()
		if err := put(a, b2); (err != nil) != st.wantErr {
			t.Fatalf("%s: put: %v, want error %v", st.name, err, st.wantErr)
		}
		for _, c := range []struct {
			id   int64
			want machine.Machine
		}{{a.ID, st.wantA}, {b2.ID, st.wantB}} {
			var got *machine.Machine
			err := s.Update(ctx, func(tx Tx) (err error) { got, err = tx.MachineByID(ctx, c.id); return err })
			if err != nil {
				t.Fatal(err)
			}
			if got.MAC != c.want.MAC || got.SlotKey != c.want.SlotKey || got.Name != c.want.Name || got.State != c.want.State {
				t.Errorf("%s: machine %d is %s/%q/%q/%s, want %s/%q/%q/%s", st.name, c.id, got.MAC, got.SlotKey, got.Name, got.State,
					c.want.MAC, c.want.SlotKey, c.want.Name, c.want.State)
			}
		}
	}
}

// Statements a transaction prepares are prepared once more for the pool when
// it ends, and later transactions run those; never more than maxPrepared.
func TestStatementsSharedAcrossTransactions(t *testing.T) {
	s, _ := openTemp(t)
	ctx := context.Background()
	// selectN runs SELECT n; preparedHere says whether the transaction had
	// to prepare it itself rather than run the pool's statement.
	var preparedHere bool
	selectN := func(n int) func(Tx) error {
		return func(tx Tx) error {
			var got int
			q := fmt.Sprintf("SELECT %d", n)
			if err := tx.(*sqlTx).QueryRowContext(ctx, q).Scan(&got); err != nil || got != n {
				return fmt.Errorf("%s: %d, %v", q, got, err)
			}
			preparedHere = len(tx.(*sqlTx).unshared) > 0
			return nil
		}
	}
	before := s.nPrepared.Load()
	if err := s.Update(ctx, selectN(1)); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.prepared.Load("SELECT 1"); !ok || s.nPrepared.Load() != before+1 {
		t.Fatalf("SELECT 1 not shared after its transaction (%d prepared, %d before)", s.nPrepared.Load(), before)
	}
	shared, _ := s.prepared.Load("SELECT 1")
	if err := s.Update(ctx, selectN(1)); err != nil {
		t.Fatal(err)
	}
	if again, _ := s.prepared.Load("SELECT 1"); again != shared || s.nPrepared.Load() != before+1 {
		t.Fatal("SELECT 1 prepared again for the pool")
	}
	if preparedHere {
		t.Fatal("the second transaction prepared SELECT 1 itself instead of running the pool's")
	}
	for n := 2; n < maxPrepared+20; n++ {
		if err := s.Update(ctx, selectN(n)); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.nPrepared.Load(); got != maxPrepared {
		t.Errorf("%d statements prepared, want the bound %d", got, maxPrepared)
	}
	if err := s.Update(ctx, selectN(maxPrepared+50)); err != nil {
		t.Errorf("a statement past the bound: %v", err)
	}
}

// TestCheckpointsOffTheWriter: with SQLite's own checkpoints off, what a
// transaction writes still reaches the database file, and the log does not
// grow past what was written since the last checkpoint.
func TestCheckpointsOffTheWriter(t *testing.T) {
	s, path := openTemp(t)
	ctx := context.Background()
	size := func(p string) int64 {
		st, err := os.Stat(p)
		if err != nil {
			return 0
		}
		return st.Size()
	}
	entries := machineEntries(t, s, 2000)
	write := func() {
		t.Helper()
		if err := s.Update(ctx, func(tx Tx) error { return tx.AppendEntries(ctx, entries) }); err != nil {
			t.Fatal(err)
		}
	}
	before := size(path)
	write()
	var busy, logged, copied int
	deadline := time.Now().Add(10 * time.Second)
	for size(path) < before+int64(len(entries))*200 {
		if time.Now().After(deadline) {
			got := size(path)
			s.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &logged, &copied)
			t.Fatalf("database file %d bytes 10 s after writing %d entries (%d before): not checkpointed (log %d frames)", got, len(entries), before, logged)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A checkpointed log is written again from its start: after many
	// rounds it is still about one round's size. Checkpoints come sooner
	// from here on, so the rounds take less than seconds.
	s.ckpt.close()
	s.ckpt = startCheckpointer(s.db, 50*time.Millisecond, walResetFrames)
	wal := path + "-wal"
	one := size(wal)
	for range 8 {
		time.Sleep(s.ckpt.every + 100*time.Millisecond)
		write()
	}
	if got := size(wal); got > 2*one {
		t.Errorf("log %d bytes after 9 checkpointed writes, %d after one: it is not reused", got, one)
	}
}

// TestCheckpointsResetABusyLog: a writer that never pauses leaves no moment
// at which every frame is copied; the log is still started over once it
// passes its bound, rather than growing with everything written.
func TestCheckpointsResetABusyLog(t *testing.T) {
	s, path := openTemp(t)
	s.ckpt.close()
	s.ckpt = startCheckpointer(s.db, 50*time.Millisecond, 64)
	ctx := context.Background()
	entries := machineEntries(t, s, 200)
	var written int64 // bytes of entries written, a lower bound of the log's frames
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); {
		if err := s.Update(ctx, func(tx Tx) error { return tx.AppendEntries(ctx, entries) }); err != nil {
			t.Fatal(err)
		}
		written += int64(len(entries)) * 200
	}
	st, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() > written/4 {
		t.Errorf("log %d bytes after %d bytes of entries written without a pause: it was not started over", st.Size(), written)
	}
}

// machineEntries stores a machine and returns n timeline entries of about
// 200 bytes each for it, for tests that fill the log.
func machineEntries(t *testing.T, s *DB, n int) []machine.Entry {
	t.Helper()
	ctx := context.Background()
	m := &machine.Machine{MAC: "02:00:00:00:00:01", State: machine.Discovered, StateSince: time.Now()}
	if err := s.Update(ctx, func(tx Tx) error { return tx.PutMachine(ctx, m) }); err != nil {
		t.Fatal(err)
	}
	entries := make([]machine.Entry, n)
	for i := range entries {
		entries[i] = machine.Entry{MachineID: m.ID, At: time.Now(), Actor: "test", Kind: "progress", Reason: strings.Repeat("x", 200)}
	}
	return entries
}
