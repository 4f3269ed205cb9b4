package store

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/drover/drover/internal/machine"
)

func testOutbox(t *testing.T, b backend) {
	ctx := context.Background()
	s := b.open(t)
	m := &machine.Machine{MAC: "52:54:00:00:00:01", State: machine.Discovered, StateSince: time.Now()}
	err := s.Update(ctx, func(tx Tx) error {
		if err := tx.PutMachine(ctx, m); err != nil {
			return err
		}
		e, err := m.Apply(machine.Change{Event: machine.Commission, Actor: "alice", At: time.Now(), Timeout: time.Minute})
		if err != nil {
			return err
		}
		seen := machine.Entry{MachineID: m.ID, At: time.Now(), Actor: "dhcp", Kind: "dhcp-offer"}
		if err := tx.PutMachine(ctx, m); err != nil {
			return err
		}
		return tx.AddEntries(ctx, &seen, &e)
	})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := s.Transitions(ctx, 0, 10)
	if err != nil || len(tr) != 1 || tr[0].To != machine.Commissioning || tr[0].Machine.MAC != m.MAC {
		t.Fatalf("transitions %+v %v", tr, err)
	}
	if c, err := s.EventCursor(ctx, "hook"); err != nil || c != tr[0].ID {
		t.Fatalf("new consumer's cursor %d %v, want the newest entry %d", c, err, tr[0].ID)
	}
	for _, after := range []int64{1, tr[0].ID} {
		if err := s.SetEventCursor(ctx, "hook", after, ""); err != nil {
			t.Fatal(err)
		}
		if c, _ := s.EventCursor(ctx, "hook"); c != after {
			t.Fatalf("cursor %d, want %d", c, after)
		}
	}

	// Consumers that find no cursor at once, while the timeline grows, all
	// start from the same entry: none skips what another saw.
	stop := make(chan struct{})
	wrote := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				wrote <- nil
				return
			default:
			}
			if err := s.Update(ctx, func(tx Tx) error {
				return tx.AddEntries(ctx, &machine.Entry{MachineID: m.ID, At: time.Now(), Actor: "dhcp", Kind: "dhcp-ack"})
			}); err != nil {
				wrote <- err
				return
			}
			// A writer that never lets go starves SQLite's busy handler.
			time.Sleep(200 * time.Microsecond)
		}
	}()
	for round := range 20 {
		name := fmt.Sprintf("new-%d", round)
		got := make([]int64, 4)
		var wg sync.WaitGroup
		for i := range got {
			wg.Go(func() {
				c, err := s.EventCursor(ctx, name)
				if err != nil {
					t.Error(err)
				}
				got[i] = c
			})
		}
		wg.Wait()
		for _, c := range got[1:] {
			if c != got[0] {
				t.Fatalf("first cursors of %s: %v, want one entry", name, got)
			}
		}
	}
	close(stop)
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
}

func testRollouts(t *testing.T, b backend) {
	ctx := context.Background()
	s := b.open(t)
	r := &Rollout{Created: time.Now().UTC(), Actor: "alice", State: RolloutRunning, Source: "test"}
	ms := []RolloutMachine{{Seq: 0, Slot: "p1-tor1/swp1", Phase: PhasePending}, {Seq: 1, Slot: "p1-tor1/swp2", Phase: PhasePending}}
	if err := s.CreateRollout(ctx, r, ms, &AuditEntry{At: time.Now(), Actor: "alice", Action: "rollout.create", Outcome: "ok"}); err != nil {
		t.Fatal(err)
	}
	if r.ID == 0 || ms[1].RolloutID != r.ID {
		t.Fatalf("rollout id %d, machines %+v", r.ID, ms)
	}
	ms[0].Phase = PhaseDone
	r.State = RolloutDone
	if err := s.UpdateRollout(ctx, r, ms[:1]); err != nil {
		t.Fatal(err)
	}
	got, gotMs, err := s.Rollout(ctx, r.ID)
	if err != nil || got.State != RolloutDone || len(gotMs) != 2 || gotMs[0].Phase != PhaseDone || gotMs[1].Phase != PhasePending {
		t.Fatalf("rollout %+v %+v %v", got, gotMs, err)
	}
	if _, _, err := s.Rollout(ctx, r.ID+100); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown rollout: %v", err)
	}
	for i, c := range []string{"aaa", "bbb"} {
		if err := s.PutCommit(ctx, &PendingCommit{Commit: c, Seen: time.Unix(100, 0), Status: CommitPending, Message: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutCommit(ctx, &PendingCommit{Commit: "aaa", Seen: time.Unix(100, 0), Status: CommitApplied}); err != nil {
		t.Fatal(err)
	}
	cs, err := s.Commits(ctx)
	if err != nil || len(cs) != 2 || cs[0].Commit != "bbb" || cs[1].Status != CommitApplied {
		t.Fatalf("commits (newest first, same time: last seen first) %+v %v", cs, err)
	}
}

func testTokensAndAudit(t *testing.T, b backend) {
	ctx := context.Background()
	s := b.open(t)
	tok := &Token{Name: "ci", Role: "operator", Hash: "h1", Created: time.Now().UTC()}
	if err := s.CreateToken(ctx, tok, &AuditEntry{At: time.Now(), Actor: "admin", Action: "token.create", Target: "ci", Outcome: "ok"}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateToken(ctx, &Token{Name: "ci", Role: "viewer", Hash: "h2", Created: time.Now()}, nil); !errors.Is(err, ErrExists) {
		t.Fatalf("second token named ci: %v", err)
	}
	got, err := s.TokenByHash(ctx, "h1")
	if err != nil || got.Name != "ci" || got.Revoked || got.ID != tok.ID {
		t.Fatalf("token %+v %v", got, err)
	}
	if err := s.RevokeToken(ctx, "ci", nil); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeToken(ctx, "ci", nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoking twice: %v", err)
	}
	if got, _ := s.TokenByHash(ctx, "h1"); !got.Revoked {
		t.Fatal("revoked token not marked")
	}
	if err := s.AddAudit(ctx, &AuditEntry{At: time.Now(), Actor: "anonymous", Action: "login", Outcome: "denied"}); err != nil {
		t.Fatal(err)
	}
	a, err := s.Audit(ctx, AuditFilter{Outcome: "denied"})
	if err != nil || len(a) != 1 || a[0].Action != "login" {
		t.Fatalf("audit %+v %v", a, err)
	}
	if all, _ := s.Audit(ctx, AuditFilter{AfterID: a[0].ID - 1}); len(all) != 1 {
		t.Fatalf("audit after id: %+v", all)
	}
}

// Two servers applying at once: each apply diffs against the other's
// result, never against a half-written design, and both revisions are kept.
func testConcurrentApplies(t *testing.T, b backend) {
	ctx := context.Background()
	s := b.open(t)
	other := b.again(t, s)
	d1 := labDesign(t)
	d2 := labDesign(t, "{ports: swp1-swp2, role: compute, ids: 1-2}", "{ports: swp1-swp2, role: compute, ids: 5-6}",
		"{ports: swp1-swp3, bmc_of: compute, ids: 1-3}", "{ports: swp3, bmc_of: compute, ids: 3}")
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, d := range []*DB{s, other} {
		design := d1
		if i == 1 {
			design = d2
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = d.ApplyDesign(ctx, &Revision{Hash: design.Hash, AppliedBy: "t", AppliedAt: time.Now(), Summary: "s", Sources: design.Source}, design.Slots, nil)
		}()
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("concurrent applies: %v, %v", errs[0], errs[1])
	}
	revs, _ := s.Revisions(ctx)
	if len(revs) != 2 {
		t.Fatalf("revisions %+v", revs)
	}
	want := d1
	if revs[0].Hash == d2.Hash {
		want = d2
	}
	slots, _ := s.Slots(ctx, SlotFilter{})
	if len(slots) != len(want.Slots) {
		t.Fatalf("%d slots stored, the last applied design has %d", len(slots), len(want.Slots))
	}
}

// The database keeps an address to one holder, whoever writes it.
func testLeaseHolders(t *testing.T, b backend) {
	ctx := context.Background()
	s := b.open(t)
	other := b.again(t, s)
	a := netip.MustParseAddr("10.77.0.200")
	soon := time.Now().Add(time.Hour)
	if err := s.PutLeases(ctx, []Lease{{Addr: a, MAC: "m1", Expires: soon, State: "offered"}}); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name  string
		lease Lease
		taken bool
	}{
		{"the holder extends it", Lease{Addr: a, MAC: "m1", Expires: soon, State: "bound"}, false},
		{"another MAC cannot take it", Lease{Addr: a, MAC: "m2", Expires: soon, State: "offered"}, true},
		{"its holder lets it expire", Lease{Addr: a, MAC: "m1", Expires: time.Now().Add(-time.Second), State: "bound"}, false},
		{"then another MAC takes it", Lease{Addr: a, MAC: "m2", Expires: soon, State: "offered"}, false},
		{"a slot's lease", Lease{Addr: a, MAC: "m2", SlotKey: "p1-tor1/swp1", Expires: soon, State: "bound"}, false},
		{"passes to the slot's new machine", Lease{Addr: a, MAC: "m3", SlotKey: "p1-tor1/swp1", Expires: soon, State: "offered"}, false},
		{"but not to another slot's", Lease{Addr: a, MAC: "m4", SlotKey: "p1-tor1/swp2", Expires: soon, State: "offered"}, true},
	}
	for i, st := range steps {
		db := []*DB{s, other}[i%2]
		err := db.Update(ctx, func(tx Tx) error { return tx.PutLeases(ctx, st.lease) })
		if st.taken != errors.Is(err, ErrAddressTaken) || !st.taken && err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
	}
	ls, _ := s.Leases(ctx)
	if len(ls) != 1 || ls[0].MAC != "m3" {
		t.Fatalf("leases %+v", ls)
	}
}

// Machine ids come from the database: two servers reserving at once never
// get the same, and a machine written without one takes the next.
func testReserveIDs(t *testing.T, b backend) {
	ctx := context.Background()
	s := b.open(t)
	other := b.again(t, s)
	var mu sync.Mutex
	seen := map[int64]bool{}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		db := []*DB{s, other}[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 10; j++ {
				first, err := db.ReserveIDs(ctx, "machines", 16)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for id := first; id < first+16; id++ {
					if seen[id] {
						t.Errorf("id %d given twice", id)
					}
					seen[id] = true
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	m := &machine.Machine{MAC: "52:54:00:00:00:99", State: machine.Discovered, StateSince: time.Now()}
	if err := s.Update(ctx, func(tx Tx) error { return tx.PutMachine(ctx, m) }); err != nil {
		t.Fatal(err)
	}
	if seen[m.ID] || m.ID != int64(len(seen))+1 {
		t.Fatalf("new machine id %d after %d reserved", m.ID, len(seen))
	}
}

// A server whose lock session ends (the database restarted, the network to
// it failed) learns it within seconds, so that it stops before a standby
// takes over; PostgreSQL only (SQLite's lock is a file held by the process).
func testWriterLost(t *testing.T, b backend) {
	if b.name != "postgres" {
		t.Skip("SQLite's writer lock is held by the process itself")
	}
	s := b.open(t)
	release, err := s.LockWriter("test")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	other := b.again(t, s)
	if _, err := other.ExecContext(context.Background(), `SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()`); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.WriterLost():
	case <-time.After(15 * time.Second):
		t.Fatal("the lock's session was terminated, and WriterLost did not say so")
	}
	again, err := other.LockWriter("test two")
	if err != nil {
		t.Fatalf("the lock after its session ended: %v", err)
	}
	again()
}
