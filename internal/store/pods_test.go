package store

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/drover/drover/internal/machine"
)

func testPodOwnership(t *testing.T, b backend) {
	ctx := context.Background()
	s := b.open(t)
	other := b.again(t, s)
	ttl := 300 * time.Millisecond
	epoch, ok, err := s.ClaimPod(ctx, "bgo/p1", "a", ttl)
	if err != nil || !ok || epoch != 1 {
		t.Fatalf("first claim: epoch %d ok %v err %v", epoch, ok, err)
	}
	if _, ok, err := other.ClaimPod(ctx, "bgo/p1", "b", ttl); err != nil || ok {
		t.Fatalf("claim of a live lease: ok %v err %v, want refused", ok, err)
	}
	fence := map[string]int64{"bgo/p1": 1}
	write := func(st *DB, owner string, f map[string]int64) error {
		return st.Update(ctx, func(tx Tx) error {
			if err := tx.Fence(ctx, owner, f); err != nil {
				return err
			}
			return tx.SetPodRevision(ctx, "bgo/p1", 3)
		})
	}
	if err := write(s, "a", fence); err != nil {
		t.Fatalf("fenced write by the owner: %v", err)
	}
	if err := write(other, "b", fence); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("fenced write by another server: %v, want ErrNotOwner", err)
	}
	if got, err := s.RenewPods(ctx, "a", ttl); err != nil || got["bgo/p1"] != 1 {
		t.Fatalf("renew: %v %v", got, err)
	}
	time.Sleep(ttl + 100*time.Millisecond)
	if got, err := s.RenewPods(ctx, "a", ttl); err != nil || len(got) != 0 {
		t.Fatalf("an expired lease was renewed: %v %v", got, err)
	}
	if err := write(s, "a", fence); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("write under an expired lease: %v, want ErrNotOwner", err)
	}
	epoch, ok, err = other.ClaimPod(ctx, "bgo/p1", "b", ttl)
	if err != nil || !ok || epoch != 2 {
		t.Fatalf("claim of an expired lease: epoch %d ok %v err %v, want epoch 2", epoch, ok, err)
	}
	owners, err := s.PodOwners(ctx)
	if err != nil || len(owners) != 1 || owners[0].Owner != "b" || !owners[0].Live || owners[0].Revision != 3 {
		t.Fatalf("owners %+v %v", owners, err)
	}
	if err := other.ReleasePod(ctx, "bgo/p1", "b"); err != nil {
		t.Fatal(err)
	}
	if epoch, ok, err = s.ClaimPod(ctx, "bgo/p1", "a", ttl); err != nil || !ok || epoch != 3 {
		t.Fatalf("claim of a released pod: epoch %d ok %v err %v", epoch, ok, err)
	}
	live, err := s.Heartbeat(ctx, Controller{Name: "a", API: "http://a"}, ttl)
	if err != nil || len(live) != 1 || live[0].API != "http://a" {
		t.Fatalf("heartbeat: %+v %v", live, err)
	}

	op := &MachineOp{Pod: "bgo/p1", Kind: "operate", Request: `{}`, Created: time.Now()}
	if err := other.AddMachineOp(ctx, op); err != nil {
		t.Fatal(err)
	}
	open, err := s.OpenMachineOps(ctx, []string{"bgo/p1", "bgo/p2"})
	if err != nil || len(open) != 1 || open[0].ID != op.ID {
		t.Fatalf("open ops %+v %v", open, err)
	}
	op.Result, op.ErrorKind, op.Error = `{"id":1}`, "illegal", "no"
	if err := s.Update(ctx, func(tx Tx) error { return tx.FinishMachineOp(ctx, op) }); err != nil {
		t.Fatal(err)
	}
	got, err := other.MachineOp(ctx, op.ID)
	if err != nil || !got.Done || got.Result != op.Result || got.ErrorKind != "illegal" {
		t.Fatalf("finished op %+v %v", got, err)
	}
	if open, _ := s.OpenMachineOps(ctx, []string{"bgo/p1"}); len(open) != 0 {
		t.Fatalf("a finished op is still open: %+v", open)
	}
}

// testAgentMirror: an agent's pod is assigned over a live server lease,
// never expires, and takes the agent's reports once each, fenced by its epoch.
func testAgentMirror(t *testing.T, b backend) {
	ctx := context.Background()
	s := b.open(t)
	if _, ok, err := s.ClaimPod(ctx, "bgo/p1", "server", time.Minute); err != nil || !ok {
		t.Fatalf("server claim: %v %v", ok, err)
	}
	epoch, err := s.AssignPod(ctx, "bgo/p1", AgentOwner("bgo/p1"))
	if err != nil || epoch != 2 {
		t.Fatalf("assign: epoch %d %v, want 2", epoch, err)
	}
	if err := s.Update(ctx, func(tx Tx) error { return tx.Fence(ctx, "server", map[string]int64{"bgo/p1": 1}) }); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("the server's write after the agent took the pod: %v, want ErrNotOwner", err)
	}
	first, err := s.ReserveIDs(ctx, "machines", 1)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	m := &machine.Machine{ID: first, MAC: "52:54:00:00:00:01", State: machine.Deploying, StateSince: now, Created: now, InstallTokenHash: "h"}
	report := &Mirror{Pod: "bgo/p1", Epoch: epoch, Machines: []*machine.Machine{m},
		Leases:  []Lease{{Addr: netip.MustParseAddr("10.0.0.5"), MAC: m.MAC, Expires: now.Add(time.Hour), State: "bound"}},
		Entries: []machine.Entry{{ID: 7, MachineID: first, At: now, Actor: "agent", Kind: machine.KindDHCPAck}, {ID: 9, MachineID: first, At: now, Actor: "agent", Kind: machine.KindIPXEScript}}}
	for range 2 { // sent twice: its answer was lost
		acked, err := s.MirrorPod(ctx, report)
		if err != nil || acked != 9 {
			t.Fatalf("mirror: acked %d %v, want 9", acked, err)
		}
	}
	tl, err := s.Timeline(ctx, first, 0, 0)
	if err != nil || len(tl) != 2 || tl[1].Kind != machine.KindIPXEScript {
		t.Fatalf("timeline after a report sent twice: %+v %v", tl, err)
	}
	got, err := s.Machine(ctx, m.MAC)
	if err != nil || got.State != machine.Deploying || got.InstallTokenHash != "h" {
		t.Fatalf("mirrored machine %+v %v", got, err)
	}
	report.Gone, report.Leases, report.Entries = []netip.Addr{netip.MustParseAddr("10.0.0.5")}, nil, nil
	if _, err := s.MirrorPod(ctx, report); err != nil {
		t.Fatal(err)
	}
	if ls, _ := s.Leases(ctx); len(ls) != 0 {
		t.Errorf("a lease the agent let go is still held: %+v", ls)
	}
	stale := *report
	stale.Epoch = 1
	if _, err := s.MirrorPod(ctx, &stale); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("a report under an old epoch: %v, want ErrNotOwner", err)
	}
	if acked, err := s.AgentCursor(ctx, "bgo/p1"); err != nil || acked != 9 {
		t.Fatalf("cursor %d %v", acked, err)
	}
	owners, err := s.PodOwners(ctx)
	if err != nil || len(owners) != 1 || !owners[0].Live || !IsAgent(owners[0].Owner) {
		t.Fatalf("owners %+v %v", owners, err)
	}
	if all, err := s.Entries(ctx, 0, 10); err != nil || len(all) != 2 {
		t.Fatalf("entries %+v %v", all, err)
	}
}

// testAppendEntries: a group's entries, more than one statement holds,
// keep their order on the timeline.
func testAppendEntries(t *testing.T, b backend) {
	ctx := context.Background()
	s := b.open(t)
	m := &machine.Machine{MAC: "52:54:00:00:09:01", State: machine.Discovered, StateSince: time.Now(), Created: time.Now()}
	var in []machine.Entry
	for i := range entriesPerStatement + 57 {
		in = append(in, machine.Entry{MachineID: 0, At: time.Now(), Actor: "t", Kind: machine.KindDHCPAck, Reason: fmt.Sprint(i)})
	}
	err := s.Update(ctx, func(tx Tx) error {
		if err := tx.PutMachine(ctx, m); err != nil {
			return err
		}
		for i := range in {
			in[i].MachineID = m.ID
		}
		return tx.AppendEntries(ctx, in)
	})
	if err != nil {
		t.Fatal(err)
	}
	tl, err := s.Timeline(ctx, m.ID, 0, 1000)
	if err != nil || len(tl) != len(in) {
		t.Fatalf("timeline: %d entries, %v", len(tl), err)
	}
	for i, e := range tl {
		if e.Reason != fmt.Sprint(i) {
			t.Fatalf("entry %d is %q", i, e.Reason)
		}
	}
	if err := s.Update(ctx, func(tx Tx) error { return tx.AppendEntries(ctx, []machine.Entry{{Kind: "x"}}) }); err == nil {
		t.Error("an entry without a machine was appended")
	}
}
