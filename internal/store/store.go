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
	// AddAudit records what an operator did, in the same transaction as the change.
	AddAudit(ctx context.Context, entries ...*AuditEntry) error
}

// AuditEntry is one line of the audit log.
type AuditEntry struct {
	ID        int64     `json:"id"`
	At        time.Time `json:"at"`
	Actor     string    `json:"actor"`
	Action    string    `json:"action"`
	Target    string    `json:"target,omitempty"`
	Outcome   string    `json:"outcome"`
	RequestID string    `json:"request_id,omitempty"`
	Revision  int64     `json:"revision,omitempty"`
	Detail    string    `json:"detail,omitempty"`
}

// AuditFilter narrows an audit listing; empty fields match everything.
type AuditFilter struct {
	Actor, Action, Target, Outcome string
	Since                          time.Time
	AfterID                        int64
	Limit                          int
}

// Token is an operator API token. Only its hash is stored.
type Token struct {
	ID      int64     `json:"id"`
	Name    string    `json:"name"`
	Role    string    `json:"role"`
	Hash    string    `json:"-"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires,omitzero"`
	Revoked bool      `json:"revoked"`
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
	// audit, when given, is recorded in the same transaction with the new revision.
	ApplyDesign(ctx context.Context, rev *Revision, slots []*zone.Slot, audit *AuditEntry) (*zone.Plan, error)
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

	// Tokens: creating and revoking are audited in the same transaction.
	CreateToken(ctx context.Context, t *Token, audit *AuditEntry) error
	RevokeToken(ctx context.Context, name string, audit *AuditEntry) error
	TokenByHash(ctx context.Context, hash string) (*Token, error)
	Tokens(ctx context.Context) ([]Token, error)
	// AddAudit records an entry that belongs to no other change (a failed login).
	AddAudit(ctx context.Context, e *AuditEntry) error
	Audit(ctx context.Context, f AuditFilter) ([]AuditEntry, error)

	Close() error
}
