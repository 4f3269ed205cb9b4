package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/drover/drover/internal/fleet"
	"github.com/drover/drover/internal/machine"
	"github.com/drover/drover/internal/store"
	"github.com/drover/drover/internal/zone"
)

// backend is where the read and design commands get their answers: the
// database itself (--db) or a drover server's operator API (--server). Every
// such command takes the same path through it, so both answer alike.
type backend interface {
	Slots(ctx context.Context, f store.SlotFilter) ([]*zone.Slot, error)
	Machines(ctx context.Context, f store.MachineFilter) ([]*machine.Machine, error)
	// Show finds a machine by name, MAC or id, or else a slot by name or key
	// (then Machine is nil: nothing has booted in it yet).
	Show(ctx context.Context, ref string) (shown, error)
	// Plan compares the design at path with the applied one. serverPath says
	// the path is on the server rather than uploaded (remote only).
	Plan(ctx context.Context, path string, serverPath bool) (planned, error)
	// Apply makes the design at path current; note says what happened to machines.
	Apply(ctx context.Context, path string, serverPath bool, actor string) (rev *store.Revision, p *zone.Plan, note string, err error)
	Close() error
}

// shown is one machine (or an empty slot) with its timeline.
type shown struct {
	Machine  *machine.Machine `json:"machine"`
	Slot     *zone.Slot       `json:"slot,omitempty"`
	Timeline []machine.Entry  `json:"timeline"`
}

// planned is a plan and what it was made from.
type planned struct {
	Hash    string    `json:"design_hash"`
	Changes bool      `json:"changes"`
	Plan    zone.Plan `json:"plan"`
	// Current says the design is the applied one already (known locally only).
	Current int64 `json:"-"`
}

func (g *globals) backend(ctx context.Context) (backend, error) {
	if g.remote() {
		c, err := g.client()
		if err != nil {
			return nil, err
		}
		return &remoteBackend{c: c}, nil
	}
	st, err := g.open(ctx)
	if err != nil {
		return nil, err
	}
	return &localBackend{st: st}, nil
}

type localBackend struct {
	st *store.DB
	// planned is the design Plan read, so that Apply applies exactly what was
	// shown (and reads and parses it once).
	planned     *zone.Design
	plannedPath string
}

// design reads the design at path, or returns the one Plan read from it.
func (b *localBackend) design(path string) (*zone.Design, error) {
	if b.planned != nil && b.plannedPath == path {
		return b.planned, nil
	}
	d, err := loadDesign(path)
	if err != nil {
		return nil, err
	}
	b.planned, b.plannedPath = d, path
	return d, nil
}

func (b *localBackend) Close() error { return b.st.Close() }

func (b *localBackend) Slots(ctx context.Context, f store.SlotFilter) ([]*zone.Slot, error) {
	return b.st.Slots(ctx, f)
}

func (b *localBackend) Machines(ctx context.Context, f store.MachineFilter) ([]*machine.Machine, error) {
	return b.st.Machines(ctx, f)
}

func (b *localBackend) Show(ctx context.Context, ref string) (shown, error) {
	m, err := b.st.Machine(ctx, ref)
	if errors.Is(err, store.ErrNotFound) {
		sl, serr := b.st.Slot(ctx, ref)
		if serr != nil {
			return shown{}, notFound(ref, serr)
		}
		// A slot named by its key or permanent name may hold a machine.
		if m, err = b.st.MachineInSlot(ctx, sl.Key); errors.Is(err, store.ErrNotFound) {
			return shown{Slot: sl, Timeline: []machine.Entry{}}, nil
		}
	}
	if err != nil {
		return shown{}, err
	}
	s := shown{Machine: m}
	if m.SlotKey != "" {
		s.Slot, _ = b.st.Slot(ctx, m.SlotKey)
	}
	s.Timeline, err = b.st.Timeline(ctx, m.ID, 0, 0)
	return s, err
}

func notFound(ref string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return &exitError{code: exitNotFound, err: fmt.Errorf("no machine or slot named %q (see drover machines, drover slots)", ref)}
	}
	return err
}

func (b *localBackend) Plan(ctx context.Context, path string, _ bool) (planned, error) {
	d, err := b.design(path)
	if err != nil {
		return planned{}, err
	}
	current, err := b.st.Slots(ctx, store.SlotFilter{})
	if err != nil {
		return planned{}, err
	}
	p := zone.Diff(current, d.Slots)
	res := planned{Hash: d.Hash, Changes: !p.Empty(), Plan: *p}
	if cur, err := b.st.CurrentRevision(ctx); err == nil && cur.Hash == d.Hash {
		res.Current = cur.ID
	}
	return res, nil
}

// Apply records the design and sees the revision's effects on machines
// carried out by the one writer of machines: the running server when one
// holds the database, otherwise a fleet started here for that alone.
func (b *localBackend) Apply(ctx context.Context, path string, _ bool, actor string) (*store.Revision, *zone.Plan, string, error) {
	d, err := b.design(path)
	if err != nil {
		return nil, nil, "", err
	}
	rev, p, err := store.Apply(ctx, b.st, store.ApplyRequest{Design: d, Dir: path, Actor: actor})
	if err != nil {
		return nil, nil, "", err
	}
	release, err := b.st.LockWriter("drover apply")
	if errors.Is(err, store.ErrWriterBusy) {
		if waitMachinesRevision(ctx, b.st, rev.ID, 10*time.Second) {
			if len(rev.Effects) == 0 {
				return rev, p, "", nil
			}
			return rev, p, "The running drover server has updated the machines in changed and removed slots.", nil
		}
		return rev, p, fmt.Sprintf("A drover server holds this database; it updates the machines in changed and removed slots when it loads revision %d.", rev.ID), nil
	}
	if err != nil {
		return nil, nil, "", err
	}
	defer release()
	if _, err := fleet.New(ctx, fleet.Config{Store: b.st}); err != nil {
		return nil, nil, "", fmt.Errorf("revision %d is applied, but its changes to machines are not: %w (a server started on this database carries them out)", rev.ID, err)
	}
	return rev, p, "", nil
}

// waitMachinesRevision waits until the machine rows reflect revision id.
func waitMachinesRevision(ctx context.Context, st store.Store, id int64, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for {
		got, err := st.MachinesRevision(ctx)
		if err == nil && got >= id {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
}

type remoteBackend struct{ c *apiClient }

func (b *remoteBackend) Close() error { return nil }

func filterQuery(values map[string]string) url.Values {
	q := url.Values{}
	for k, v := range values {
		if v != "" {
			q.Set(k, v)
		}
	}
	return q
}

func (b *remoteBackend) Slots(ctx context.Context, f store.SlotFilter) ([]*zone.Slot, error) {
	return all[*zone.Slot](ctx, b.c, "/api/v1/slots", filterQuery(map[string]string{"zone": f.Zone, "pod": f.Pod, "role": f.Role, "variant": f.Variant}))
}

func (b *remoteBackend) Machines(ctx context.Context, f store.MachineFilter) ([]*machine.Machine, error) {
	return all[*machine.Machine](ctx, b.c, "/api/v1/machines", filterQuery(map[string]string{"zone": f.Zone, "pod": f.Pod, "role": f.Role, "variant": f.Variant, "state": string(f.State)}))
}

func (b *remoteBackend) Show(ctx context.Context, ref string) (shown, error) {
	var s shown
	err := b.c.call(ctx, "GET", machinePath(ref, ""), nil, &s)
	var ee *exitError
	if errors.As(err, &ee) && ee.code == exitNotFound {
		var slot struct {
			Slot    *zone.Slot       `json:"slot"`
			Machine *machine.Machine `json:"machine"`
		}
		if serr := b.c.call(ctx, "GET", "/api/v1/slots/"+url.PathEscape(ref), nil, &slot); serr != nil {
			if errors.As(serr, &ee) && ee.code == exitNotFound {
				return shown{}, notFound(ref, store.ErrNotFound)
			}
			return shown{}, serr
		}
		if slot.Machine == nil {
			return shown{Slot: slot.Slot, Timeline: []machine.Entry{}}, nil
		}
		// A slot named by its key or permanent name holds this machine.
		err = b.c.call(ctx, "GET", machinePath(slot.Machine.MAC, ""), nil, &s)
	}
	return s, err
}

func (b *remoteBackend) Plan(ctx context.Context, path string, serverPath bool) (planned, error) {
	body, err := designBody(path, serverPath)
	if err != nil {
		return planned{}, err
	}
	var res planned
	err = b.c.call(ctx, http.MethodPost, "/api/v1/design/plan", body, &res)
	return res, err
}

// Apply uploads the design (or names it on the server); the server answers
// once its fleet has carried out the revision's effects on machines.
func (b *remoteBackend) Apply(ctx context.Context, path string, serverPath bool, _ string) (*store.Revision, *zone.Plan, string, error) {
	body, err := designBody(path, serverPath)
	if err != nil {
		return nil, nil, "", err
	}
	var res struct {
		Revision store.Revision `json:"revision"`
		Plan     zone.Plan      `json:"plan"`
	}
	if err := b.c.call(ctx, http.MethodPost, "/api/v1/design/apply", body, &res); err != nil {
		return nil, nil, "", err
	}
	return &res.Revision, &res.Plan, "", nil
}
