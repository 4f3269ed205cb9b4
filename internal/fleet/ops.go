package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/drover/drover/internal/machine"
	"github.com/drover/drover/internal/store"
)

// Operator actions on a machine.
const (
	ActReinstall        = "reinstall"
	ActMaintenanceEnter = "maintenance-enter"
	ActMaintenanceLeave = "maintenance-leave"
	ActRetire           = "retire"
	ActRelease          = "release"
)

// ErrNotFound is returned for a machine reference that matches nothing.
var ErrNotFound = errors.New("no such machine")

// Op is an operator's request to change a machine.
type Op struct {
	Ref         string // name, MAC or id
	Action      string
	Actor       string
	Reason      string
	Maintenance *machine.MaintenanceInfo
	Audit       store.AuditEntry // written in the same transaction as the change
	// Finish, when set, is another server's request this op carries out: its
	// outcome (Result, the machine as JSON) is recorded in the same
	// transaction as the change, so it is done once even across a crash.
	Finish *store.MachineOp `json:"-"`
}

// find resolves a machine reference. Called with f.mu held.
func (f *Fleet) find(ref string) *machine.Machine {
	if m := f.byMAC[ref]; m != nil {
		return m
	}
	for _, m := range f.bySlot {
		if m.Name == ref {
			return m
		}
	}
	if id, err := strconv.ParseInt(ref, 10, 64); err == nil {
		return f.byID[id]
	}
	return nil
}

// Operate performs an operator action. It changes nothing and records nothing
// when the action is not allowed; otherwise the change, its timeline entries
// and the audit entry are written in one transaction before it returns.
func (f *Fleet) Operate(ctx context.Context, op Op) (machine.Machine, error) {
	f.mu.Lock()
	m := f.find(op.Ref)
	if m == nil {
		f.mu.Unlock()
		return machine.Machine{}, fmt.Errorf("%w: %q", ErrNotFound, op.Ref)
	}
	now := f.now()
	before := *m
	b := newBatch()
	entries, err := f.operate(m, op, now, b)
	if err != nil {
		*m = before
		f.mu.Unlock()
		return machine.Machine{}, err
	}
	b.add(entries...)
	b.touch(m)
	audit := op.Audit
	audit.At, audit.Action, audit.Outcome = now, op.Action, "ok"
	if audit.Target == "" {
		audit.Target = m.Label()
	}
	b.audits = append(b.audits, &audit)
	snap := *m
	if op.Finish != nil {
		res, err := json.Marshal(snap)
		if err != nil {
			f.mu.Unlock()
			return machine.Machine{}, err
		}
		op.Finish.Result = string(res)
		b.ops = append(b.ops, op.Finish)
	}
	done := f.submit(b)
	f.mu.Unlock()
	if err := wait(ctx, done); err != nil {
		return machine.Machine{}, fmt.Errorf("%s %s: %w", op.Action, snap.Label(), err)
	}
	return snap, nil
}

func (f *Fleet) operate(m *machine.Machine, op Op, now time.Time, b *batch) ([]machine.Entry, error) {
	reason := op.Reason
	if reason == "" {
		reason = op.Action + " by " + op.Actor
	}
	change := func(ev machine.Event) ([]machine.Entry, error) {
		e, err := m.Apply(machine.Change{Event: ev, Actor: op.Actor, At: now, Reason: reason, Maintenance: op.Maintenance})
		if err != nil {
			return nil, err
		}
		return []machine.Entry{e}, nil
	}
	switch op.Action {
	case ActReinstall:
		if m.SlotKey == "" {
			return nil, fmt.Errorf("%w: %s is in no slot: there is nothing to install it as", machine.ErrIllegal, m.Label())
		}
		timeout := time.Hour
		if s := f.Index().Slot(m.SlotKey); s != nil {
			if z := f.Index().Zone(s.Zone); z != nil {
				timeout = z.Timeout(string(machine.Deploying))
			}
		}
		e, ok := m.Install(op.Actor, reason, now, timeout)
		if !ok {
			return nil, fmt.Errorf("%w: cannot reinstall %s while it is %s", machine.ErrIllegal, m.Label(), m.State)
		}
		f.revokeToken(m)
		return []machine.Entry{e}, nil
	case ActMaintenanceEnter:
		return change(machine.EnterMaintenance)
	case ActMaintenanceLeave:
		return change(machine.LeaveMaintenance)
	case ActRetire:
		es, err := change(machine.Retire)
		if err != nil {
			return nil, err
		}
		f.detach(m, b)
		return es, nil
	case ActRelease:
		es, err := change(machine.Release)
		if err != nil {
			return nil, err
		}
		es[0].Reason += " (released from slot " + m.SlotKey + ")"
		f.detach(m, b)
		return es, nil
	}
	return nil, fmt.Errorf("unknown action %q", op.Action)
}

// detach takes a machine out of its slot and ends its lease and token; what
// the slot needed (a reinstall) no longer concerns it.
func (f *Fleet) detach(m *machine.Machine, b *batch) {
	f.revokeToken(m)
	m.NeedsReinstall = false
	if m.SlotKey != "" {
		delete(f.bySlot, m.SlotKey)
		m.Location = m.SlotKey
		m.SlotKey = ""
	}
	if a, ok := f.leaseOf[m.MAC]; ok {
		delete(f.leases, a)
		delete(f.leaseOf, m.MAC)
		b.freeLease(a)
	}
}

// Counts returns how many machines are in each state and leases in each state.
func (f *Fleet) Counts() (machines map[machine.State]int, leases map[string]int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	machines, leases = map[machine.State]int{}, map[string]int{}
	for _, m := range f.byID {
		machines[m.State]++
	}
	now := f.now()
	for _, l := range f.leases {
		if now.Before(l.Expires) {
			leases[l.State]++
		}
	}
	return machines, leases
}
