package store

import (
	"context"
	"errors"
	"testing"
	"time"
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
