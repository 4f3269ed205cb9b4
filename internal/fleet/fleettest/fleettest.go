// Package fleettest runs a real fleet over a real SQLite store for tests of
// the packages built on it.
package fleettest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/drover/drover/internal/fleet"
	"github.com/drover/drover/internal/machine"
	"github.com/drover/drover/internal/store"
	"github.com/drover/drover/internal/zone"
)

// Start applies the design at path to a new store in a temporary directory,
// adds the given machines, and runs a fleet on it until the test ends.
func Start(t testing.TB, path string, machines ...*machine.Machine) (*fleet.Fleet, *store.DB) {
	t.Helper()
	ctx := context.Background()
	d, err := zone.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "drover.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.ApplyDesign(ctx, &store.Revision{Hash: d.Hash, AppliedBy: "test", AppliedAt: time.Now(), Sources: d.Source}, d.Slots, nil); err != nil {
		t.Fatal(err)
	}
	err = st.Update(ctx, func(tx store.Tx) error {
		for _, m := range machines {
			if err := tx.PutMachine(ctx, m); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	fl, err := fleet.New(ctx, fleet.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	fctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- fl.Run(fctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		st.Close()
	})
	return fl, st
}

// Deployed is a deployed machine in a slot, for Start.
func Deployed(mac, slot, name string) *machine.Machine {
	now := time.Now()
	return &machine.Machine{MAC: mac, SlotKey: slot, Name: name, State: machine.Deployed, StateSince: now, Created: now}
}
