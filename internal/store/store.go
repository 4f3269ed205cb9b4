// Package store persists designs, slots, machines, timelines and leases.
// SQLite (embedded, pure Go) is the default; the interface is shaped so a
// PostgreSQL implementation can follow: every multi-row change is one Update.
package store

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/drover/drover/internal/machine"
	"github.com/drover/drover/internal/zone"
)

// ErrNotFound is returned when a looked-up record does not exist.
var ErrNotFound = errors.New("not found")

// Revision is one applied design.
type Revision struct {
	ID        int64             `json:"id"`
	Hash      string            `json:"hash"`
	Commit    string            `json:"commit,omitempty"`
	AppliedBy string            `json:"applied_by"`
	AppliedAt time.Time         `json:"applied_at"`
	Summary   string            `json:"summary"`
	Sources   map[string][]byte `json:"-"`
}

// SlotFilter narrows a slot listing; empty fields match everything.
type SlotFilter struct {
	Zone, Pod, Role, Variant string
}

// MachineFilter narrows a machine listing; empty fields match everything.
type MachineFilter struct {
	Zone, Pod, Role, Variant string
	State                    machine.State
}

// Lease is an address given to a client.
type Lease struct {
	Addr    netip.Addr `json:"address"`
	MAC     string     `json:"mac"`
	SlotKey string     `json:"slot,omitempty"`
	Expires time.Time  `json:"expires"`
	State   string     `json:"state"` // offered, bound, declined
}

// Tx is what a transaction can do. Everything done through one Tx commits or
// rolls back together.
type Tx interface {
	MachineByID(ctx context.Context, id int64) (*machine.Machine, error)
	MachineByMAC(ctx context.Context, mac string) (*machine.Machine, error)
	MachineBySlot(ctx context.Context, slotKey string) (*machine.Machine, error)
	// PutMachine inserts (ID 0, and sets ID) or updates a machine.
	PutMachine(ctx context.Context, m *machine.Machine) error
	// AddEntries appends timeline entries, setting their IDs.
	AddEntries(ctx context.Context, entries ...*machine.Entry) error
	PutLeases(ctx context.Context, leases ...Lease) error
	DeleteLeases(ctx context.Context, addrs ...netip.Addr) error
}

// Store is the persistence drover needs.
type Store interface {
	// Update runs fn in one transaction: all its writes land, or none do.
	Update(ctx context.Context, fn func(Tx) error) error

	CurrentRevision(ctx context.Context) (*Revision, error)
	// LatestRevisionID is the id of the applied design (0 when none), cheap enough to poll.
	LatestRevisionID(ctx context.Context) (int64, error)
	Revisions(ctx context.Context) ([]Revision, error)
	// ApplyDesign makes slots current in one transaction: it diffs them against
	// the stored slots, writes them, updates the machines in changed or removed
	// slots (with timeline entries) and records the revision. It returns the plan it applied.
	ApplyDesign(ctx context.Context, rev *Revision, slots []*zone.Slot) (*zone.Plan, error)
	Slots(ctx context.Context, f SlotFilter) ([]*zone.Slot, error)

	Machines(ctx context.Context, f MachineFilter) ([]*machine.Machine, error)
	// Machine finds a machine by name, MAC or numeric id.
	Machine(ctx context.Context, ref string) (*machine.Machine, error)
	Timeline(ctx context.Context, machineID, afterID int64, limit int) ([]machine.Entry, error)
	// AllMachines returns every machine, for a server to load its inventory.
	AllMachines(ctx context.Context) ([]*machine.Machine, error)

	Leases(ctx context.Context) ([]Lease, error)
	// PutLeases writes a batch of leases in one transaction.
	PutLeases(ctx context.Context, leases []Lease) error
	DeleteLeases(ctx context.Context, addrs []netip.Addr) error

	Close() error
}
