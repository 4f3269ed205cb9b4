package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/drover/drover/internal/machine"
)

// BenchmarkMachineListing is one page of 1,000 from the middle of 100,000
// machines, as the API's listing reads it (MachinesPage), against reading
// every machine to cut the page out (Machines, what each page did before).
func BenchmarkMachineListing(b *testing.B) {
	ctx := context.Background()
	s, err := OpenSQLite(ctx, filepath.Join(b.TempDir(), "drover.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const machines, group = 100_000, 5_000
	now := time.Now()
	for i := 0; i < machines; i += group {
		if err := s.Update(ctx, func(tx Tx) error {
			for j := i; j < i+group; j++ {
				m := &machine.Machine{ID: int64(j + 1), MAC: fmt.Sprintf("52:54:00:%02x:%02x:%02x", j>>16, (j>>8)&0xff, j&0xff),
					SlotKey: fmt.Sprintf("p%d-tor1/swp%d", j/48, j%48), Name: fmt.Sprintf("p%d-compute-%d", j/48, j%48),
					State: machine.Deployed, StateSince: now, Created: now, Facts: map[string]any{"cpus": 8, "memory_mb": 65536}}
				if err := tx.PutMachine(ctx, m); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
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
