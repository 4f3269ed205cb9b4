package fleet

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/drover/drover/internal/machine"
	"github.com/drover/drover/internal/store"
	"github.com/drover/drover/internal/zone"
)

// Applied is an applied revision parsed into the index the fleet serves.
type Applied struct {
	Revision *store.Revision
	Index    *zone.Index
}

// ErrNoDesign is returned when no design has been applied to the store.
var ErrNoDesign = errors.New("no design is applied: run `drover apply PATH` or pass --design PATH")

// LoadApplied parses the current revision from the store.
func LoadApplied(ctx context.Context, st store.Store) (Applied, error) {
	rev, err := st.CurrentRevision(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return Applied{}, ErrNoDesign
	}
	if err != nil {
		return Applied{}, err
	}
	d, err := zone.Parse(rev.Sources)
	if err != nil {
		return Applied{}, fmt.Errorf("applied design revision %d no longer validates: %w", rev.ID, err)
	}
	return Applied{Revision: rev, Index: zone.NewIndex(d)}, nil
}

// Revision is the id of the applied revision the fleet serves.
func (f *Fleet) Revision() int64 { return f.served.Load() }

// Sync makes the fleet serve the newest applied revision and carries out what
// every revision since the one the machine rows reflect does to machines
// (rename, needs-reinstall, leaving a removed slot), in order, through the
// fleet's own write path, together with the record of how far that went. It
// returns once all of it is durable. latest, when set, is a revision the
// caller has just applied and parsed, so it is not parsed again.
//
// An apply only records a revision and its effects; the fleet alone writes
// machine rows, so no write of the fleet can undo an apply: before Sync the
// rows do not have the apply's changes yet, after it the fleet's own copy has them.
func (f *Fleet) Sync(ctx context.Context, latest *Applied) error {
	f.syncMu.Lock()
	defer f.syncMu.Unlock()
	id, err := f.st.LatestRevisionID(ctx)
	if err != nil {
		return err
	}
	if id == f.served.Load() {
		return nil
	}
	var ap Applied
	if latest != nil && latest.Revision.ID == id {
		ap = *latest
	} else if ap, err = LoadApplied(ctx, f.st); err != nil {
		return err
	}
	pending, err := f.st.PendingRevisions(ctx)
	if err != nil {
		return err
	}
	f.mu.Lock()
	b := newBatch()
	f.switchTo(ap, pending, b)
	done := f.submit(b)
	f.mu.Unlock()
	if err := wait(ctx, done); err != nil {
		return fmt.Errorf("carry out design revision %d: %w", ap.Revision.ID, err)
	}
	f.log.Info("serving new design", "revision", ap.Revision.ID, "summary", ap.Revision.Summary)
	return nil
}

// switchTo serves ap and carries out the effects of the pending revisions up
// to ap's. Called with f.mu held.
func (f *Fleet) switchTo(ap Applied, pending []store.Revision, b *batch) {
	f.ix.Store(ap.Index)
	f.served.Store(ap.Revision.ID)
	for _, rev := range pending {
		if rev.ID > ap.Revision.ID {
			break
		}
		for _, e := range rev.Effects {
			// Another server's pods are its own to change; a pod whose rows
			// are ahead (written while servers divided the database) has
			// this effect already.
			if pod := f.effectPod(ap.Index, e); f.owns(pod) && f.podRev[pod] < rev.ID {
				f.carryOut(rev, e, b)
			}
		}
		if f.owner == "" {
			b.revision = rev.ID
		}
	}
	if f.owner != "" {
		b.podRevisions = map[string]int64{}
		for pod := range f.owned {
			b.podRevisions[pod] = ap.Revision.ID
			f.podRev[pod] = ap.Revision.ID
		}
	}
}

func (f *Fleet) carryOut(rev store.Revision, e store.SlotEffect, b *batch) {
	m := f.bySlot[e.Slot]
	if m == nil {
		return
	}
	entry := machine.Entry{MachineID: m.ID, At: rev.AppliedAt, Actor: rev.AppliedBy}
	if e.Removed {
		f.detach(m, b)
		entry.Kind = machine.KindSlotRemoved
		entry.Reason = fmt.Sprintf("slot %s (%s) was removed from the design (revision %d)", e.Slot, e.Name, rev.ID)
	} else {
		m.Name = e.Name
		entry.Kind = machine.KindSlotChanged
		entry.Reason = fmt.Sprintf("design changed %s (revision %d)", strings.Join(e.Fields, ", "), rev.ID)
		if e.Reinstall && m.State != machine.Discovered && m.State != machine.Retired {
			m.NeedsReinstall = true
			entry.Reason += "; needs reinstall"
		}
	}
	b.touch(m)
	b.add(entry)
}
