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
	s, err := OpenSQLite(ctx, filepath.Join(b.TempDir(), "drover.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const machines, group = 20000, 500
	ms := make([]machine.Machine, machines)
	now := time.Now()
	for i := range ms {
		ms[i] = machine.Machine{ID: int64(i + 1), MAC: fmt.Sprintf("52:54:00:%02x:%02x:%02x", i>>16, (i>>8)&0xff, i&0xff),
			SlotKey: fmt.Sprintf("p1-tor1/swp%d", i), Name: fmt.Sprintf("m-%d", i), State: machine.Deploying, StateSince: now, Created: now}
	}
	for i := 0; i < machines; i += group {
		if err := s.Update(ctx, func(tx Tx) error {
			for j := i; j < i+group; j++ {
				if err := tx.PutMachine(ctx, &ms[j]); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
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
