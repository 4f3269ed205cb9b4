// Package store persists designs, slots, machines, timelines and leases.
// SQLite (embedded, pure Go) is the default; PostgreSQL serves sites that
// run an active server and a standby on it. Every multi-row change is one Update.
package store

import (
	"context"
	"errors"
	"fmt"
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
	// Effects is what the revision does to the machines in its changed and
	// removed slots; the fleet carries them out.
	Effects []SlotEffect `json:"-"`
}

// SlotEffect is what applying a revision does to the machine in one slot: it
// follows the slot's new name, needs a reinstall, or leaves a removed slot.
// The store records effects with the revision; only the fleet, the one writer
// of machine rows, carries them out.
type SlotEffect struct {
	Slot      string   `json:"slot"`
	Name      string   `json:"name"` // the slot's name after the change (before, when removed)
	Removed   bool     `json:"removed,omitempty"`
	Fields    []string `json:"fields,omitempty"`
	Reinstall bool     `json:"reinstall,omitempty"`
	// Pod is the zone/pod the slot was in: the server owning it carries the
	// effect out (empty in revisions from before pods were recorded).
	Pod string `json:"pod,omitempty"`
}

// effectsOf lists what a plan does to the machines in its changed and removed slots.
func effectsOf(p *zone.Plan) []SlotEffect {
	out := make([]SlotEffect, 0, len(p.Removed)+len(p.Changed))
	for _, sl := range p.Removed {
		out = append(out, SlotEffect{Slot: sl.Key, Name: sl.Name, Removed: true, Pod: sl.PodKey()})
	}
	for _, ch := range p.Changed {
		out = append(out, SlotEffect{Slot: ch.Key, Name: ch.After.Name, Fields: ch.Fields, Reinstall: ch.Reinstall, Pod: ch.Before.PodKey()})
	}
	return out
}

// ErrWriterBusy is wrapped by LockWriter's error while another process holds the lock.
var ErrWriterBusy = errors.New("another drover process is writing machines in this database")

// WriterBusyError says who holds the writer lock.
type WriterBusyError struct {
	Lock   string // the lock file
	Holder string // what the holder wrote: "drover serve (pid 1234)"
}

func (e *WriterBusyError) Error() string {
	if e.Holder == "" {
		return fmt.Sprintf("%v (lock %s)", ErrWriterBusy, e.Lock)
	}
	return fmt.Sprintf("%v: %s holds %s", ErrWriterBusy, e.Holder, e.Lock)
}

func (e *WriterBusyError) Unwrap() error { return ErrWriterBusy }

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
	// At is when the writer decided on the lease, the clock another client's
	// lease on the address is expired by (the store's clock when zero).
	At time.Time `json:"-"`
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
	// AppendEntries appends timeline entries in order, a few statements for
	// any number (the group commit's), without reporting their IDs.
	AppendEntries(ctx context.Context, entries []machine.Entry) error
	// PutLeases fails with ErrAddressTaken for an address another MAC holds
	// (unexpired, not of the same slot).
	PutLeases(ctx context.Context, leases ...Lease) error
	DeleteLeases(ctx context.Context, addrs ...netip.Addr) error
	// AddAudit records what an operator did, in the same transaction as the change.
	AddAudit(ctx context.Context, entries ...*AuditEntry) error
	// SetMachinesRevision records that machine rows reflect the effects of
	// every revision up to id, in the same transaction as those effects.
	SetMachinesRevision(ctx context.Context, id int64) error
	// Fence, SetPodRevision and FinishMachineOp serve servers that divide
	// the pods of one database (see pods.go).
	Fence(ctx context.Context, owner string, epochs map[string]int64) error
	SetPodRevision(ctx context.Context, pod string, id int64) error
	FinishMachineOp(ctx context.Context, op *MachineOp) error
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
	Pod     string    `json:"pod,omitempty"` // the one pod an agent token serves (zone/pod)
}

// Store is the persistence drover needs. Listings are never nil: an empty
// one is an empty slice, so that JSON answers say [] rather than null.
type Store interface {
	// Update runs fn in one transaction: all its writes land, or none do.
	Update(ctx context.Context, fn func(Tx) error) error

	CurrentRevision(ctx context.Context) (*Revision, error)
	// LatestRevisionID is the id of the applied design (0 when none), cheap enough to poll.
	LatestRevisionID(ctx context.Context) (int64, error)
	Revisions(ctx context.Context) ([]Revision, error)
	// ApplyDesign makes slots current in one transaction: it diffs them against
	// the stored slots, writes them and records the revision with its effects
	// on machines (rev.Effects). It never writes a machine: the fleet carries
	// the effects out. It returns the plan it applied. audit, when given, is
	// recorded in the same transaction with the new revision.
	ApplyDesign(ctx context.Context, rev *Revision, slots []*zone.Slot, audit *AuditEntry) (*zone.Plan, error)
	// PendingRevisions are the revisions whose effects machine rows do not
	// reflect yet, oldest first (without sources).
	PendingRevisions(ctx context.Context) ([]Revision, error)
	// MachinesRevision is the newest revision whose effects machine rows reflect.
	MachinesRevision(ctx context.Context) (int64, error)
	// PodRevisions is, per pod, the revision its machine rows reflect, for
	// pods written by servers that divide the database; RevisionsAfter lists
	// the revisions after one, oldest first.
	PodRevisions(ctx context.Context) (map[string]int64, error)
	RevisionsAfter(ctx context.Context, id int64) ([]Revision, error)
	// LockWriter takes the database's writer lock, held by the one fleet that
	// writes machines; ErrWriterBusy when another process holds it. The
	// returned function releases it; a dead holder's lock is released too.
	// holder says who takes it ("drover serve"), for others' error messages.
	LockWriter(holder string) (release func(), err error)
	Slots(ctx context.Context, f SlotFilter) ([]*zone.Slot, error)
	// Slot finds an applied slot by name, permanent name or key.
	Slot(ctx context.Context, ref string) (*zone.Slot, error)

	Machines(ctx context.Context, f MachineFilter) ([]*machine.Machine, error)
	// MachinesPage is limit machines from offset in Machines' order, and
	// how many match the filter in all.
	MachinesPage(ctx context.Context, f MachineFilter, offset, limit int) ([]*machine.Machine, int, error)
	// Machine finds a machine by name, MAC or numeric id.
	Machine(ctx context.Context, ref string) (*machine.Machine, error)
	// MachineInSlot is the machine standing in a slot, or ErrNotFound.
	MachineInSlot(ctx context.Context, slotKey string) (*machine.Machine, error)
	Timeline(ctx context.Context, machineID, afterID int64, limit int) ([]machine.Entry, error)
	// Transitions, EventCursor and SetEventCursor are the outbox of state
	// changes for consumers outside drover (see outbox.go).
	Transitions(ctx context.Context, afterID int64, limit int) ([]Transition, error)
	EventCursor(ctx context.Context, name string) (int64, error)
	SetEventCursor(ctx context.Context, name string, afterID int64, lastError string) error
	// ReserveIDs takes n consecutive machine ids from the database and
	// returns the first; PutMachine with ID 0 takes one itself.
	ReserveIDs(ctx context.Context, kind string, n int) (int64, error)
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

	// Rollouts: created with their machines and audit entry in one
	// transaction; afterwards only the rollout runner updates them.
	CreateRollout(ctx context.Context, r *Rollout, ms []RolloutMachine, audit *AuditEntry) error
	UpdateRollout(ctx context.Context, r *Rollout, ms []RolloutMachine, audits ...*AuditEntry) error
	Rollouts(ctx context.Context) ([]Rollout, error)
	Rollout(ctx context.Context, id int64) (*Rollout, []RolloutMachine, error)
	// Commits a git follower saw, newest first.
	PutCommit(ctx context.Context, c *PendingCommit) error
	Commits(ctx context.Context) ([]PendingCommit, error)

	Close() error
}
