package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/drover/drover/internal/machine"
)

// BenchmarkPutMachine writes machines as the fleet's writer does in a boot
// storm: groups of 500 scattered machines in a transaction, on a table of
// 20,000, each write setting a new install token (and, the first time a
// machine is written, a new state) while its identity stays.
func BenchmarkPutMachine(b *testing.B) {
	ctx := context.Background()
	s := benchSQLite(b)
	const machines, group = 20000, 500
	ms := make([]machine.Machine, machines)
	now := time.Now()
	for i := range ms {
		ms[i] = machine.Machine{ID: int64(i + 1), MAC: fmt.Sprintf("52:54:00:%02x:%02x:%02x", i>>16, (i>>8)&0xff, i&0xff),
			SlotKey: fmt.Sprintf("p1-tor1/swp%d", i), Name: fmt.Sprintf("m-%d", i), State: machine.Deploying, StateSince: now, Created: now}
	}
	seedMachines(b, s, ms, group)
	b.ResetTimer()
	next := 0
	for b.Loop() {
		if err := s.Update(ctx, func(tx Tx) error {
			for range group {
				m := &ms[next%machines]
				next += 7919 // a prime: the group's machines are scattered, as in a storm
				m.State, m.StateSince, m.InstallTokenHash = machine.Deployed, time.Now(), fmt.Sprint(next)
				if err := tx.PutMachine(ctx, m); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*group), "ns/machine")
}

// BenchmarkMachineListing is one page of 1,000 from the middle of 100,000
// machines, as the API's listing reads it (MachinesPage), against reading
// every machine to cut the page out (Machines, what each page did before).
func BenchmarkMachineListing(b *testing.B) {
	ctx := context.Background()
	s := benchSQLite(b)
	const machines = 100_000
	ms := make([]machine.Machine, machines)
	now := time.Now()
	for i := range ms {
		ms[i] = machine.Machine{ID: int64(i + 1), MAC: fmt.Sprintf("52:54:00:%02x:%02x:%02x", i>>16, (i>>8)&0xff, i&0xff),
			SlotKey: fmt.Sprintf("p%d-tor1/swp%d", i/48, i%48), Name: fmt.Sprintf("p%d-compute-%d", i/48, i%48),
			State: machine.Deployed, StateSince: now, Created: now, Facts: map[string]any{"cpus": 8, "memory_mb": 65536}}
	}
	seedMachines(b, s, ms, 5_000)
	b.Run("MachinesPage", func(b *testing.B) {
		for b.Loop() {
			if ms, total, err := s.MachinesPage(ctx, MachineFilter{}, 50_000, 1_000); err != nil || len(ms) != 1_000 || total != machines {
				b.Fatalf("%d of %d: %v", len(ms), total, err)
			}
		}
	})
	b.Run("Machines", func(b *testing.B) {
		for b.Loop() {
			if ms, err := s.Machines(ctx, MachineFilter{}); err != nil || len(ms) != machines {
				b.Fatalf("%d: %v", len(ms), err)
			}
		}
	})
}

// benchSQLite is an empty SQLite store for a benchmark.
func benchSQLite(b *testing.B) *DB {
	s, err := OpenSQLite(context.Background(), filepath.Join(b.TempDir(), "drover.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// seedMachines writes machines, group by group, a transaction each.
func seedMachines(b *testing.B, s *DB, ms []machine.Machine, group int) {
	ctx := context.Background()
	for i := 0; i < len(ms); i += group {
		if err := s.Update(ctx, func(tx Tx) error {
			for j := i; j < min(i+group, len(ms)); j++ {
				if err := tx.PutMachine(ctx, &ms[j]); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
}
