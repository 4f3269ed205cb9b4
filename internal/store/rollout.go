package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/drover/drover/internal/zone"
)

// Rollout states.
const (
	RolloutQueued   = "queued"   // waits for the rollout before it to end
	RolloutRunning  = "running"  // machines are being reinstalled
	RolloutPaused   = "paused"   // by an operator, a failure or a canary approval; resume continues
	RolloutAborting = "aborting" // aborted; machines in the middle of their reinstall finish it
	RolloutDone     = "done"
	RolloutAborted  = "aborted" // untouched machines stay untouched
)

// Rollout is a durable reinstall of a set of machines in waves. Only the
// rollout runner writes it once created.
type Rollout struct {
	ID       int64                  `json:"id"`
	Created  time.Time              `json:"created"`
	Actor    string                 `json:"actor"`
	Reason   string                 `json:"reason,omitempty"`
	Source   string                 `json:"source"` // what chose the machines
	State    string                 `json:"state"`
	Detail   string                 `json:"detail,omitempty"` // why it is paused or how it ended
	Updated  time.Time              `json:"updated"`
	Order    []string               `json:"order"`
	Policies map[string]zone.Policy `json:"policies"` // by zone, as they were when it started
	// Gates are per zone: when its canary finished and whether it was approved.
	Gates map[string]*Gate `json:"gates,omitempty"`
	// Budget is how many failures (beyond the acknowledged ones) it tolerates before pausing.
	Budget int `json:"failure_budget"`
}

// Gate is a zone's canary gate.
type Gate struct {
	CanaryDone time.Time `json:"canary_done,omitzero"`
	Passed     bool      `json:"passed,omitempty"`
}

// Phases of a machine in a rollout, in order. Done, failed, skipped and
// cancelled are final.
const (
	PhasePending    = "pending"
	PhaseDraining   = "draining"
	PhaseCycling    = "power-cycling"
	PhaseInstalling = "installing"
	PhaseChecking   = "health-check"
	PhaseUndraining = "undraining"
	PhaseDone       = "done"
	PhaseFailed     = "failed"
	PhaseSkipped    = "skipped"   // maintenance or no machine: never touched
	PhaseCancelled  = "cancelled" // the rollout was aborted before its turn
)

// RolloutMachine is one slot's progress in a rollout.
type RolloutMachine struct {
	RolloutID  int64     `json:"rollout"`
	Seq        int       `json:"seq"` // its position in the plan
	Slot       string    `json:"slot"`
	Name       string    `json:"name"`
	MachineID  int64     `json:"machine_id,omitempty"`
	Zone       string    `json:"zone"`
	Env        string    `json:"environment"`
	Pod        string    `json:"pod"`
	Role       string    `json:"role"`
	Wave       int       `json:"wave"`
	Batch      int       `json:"batch"` // -1 until it starts; 0 is the zone's canary
	Phase      string    `json:"phase"`
	PhaseSince time.Time `json:"phase_since"`
	Detail     string    `json:"detail,omitempty"`
	// Acknowledged: an operator resumed the rollout after this machine
	// failed; it no longer counts against the budget or max_unavailable.
	Acknowledged bool      `json:"acknowledged,omitempty"`
	Started      time.Time `json:"started,omitzero"`
	Finished     time.Time `json:"finished,omitzero"`
}

// Final reports whether the machine's part in the rollout is over.
func (m *RolloutMachine) Final() bool {
	switch m.Phase {
	case PhaseDone, PhaseFailed, PhaseSkipped, PhaseCancelled:
		return true
	}
	return false
}

// CreateRollout records a new rollout and its machines in one transaction, with its audit entry.
func (s *DB) CreateRollout(ctx context.Context, r *Rollout, ms []RolloutMachine, audit *AuditEntry) error {
	return s.inTx(ctx, func(tx *sqlTx) error {
		data, err := json.Marshal(r)
		if err != nil {
			return err
		}
		id, err := insertID(ctx, tx, `INSERT INTO rollouts (created, state, data) VALUES (?,?,?)`, r.Created.UnixNano(), r.State, string(data))
		if err != nil {
			return fmt.Errorf("record rollout: %w", err)
		}
		r.ID = id
		for i := range ms {
			ms[i].RolloutID = r.ID
		}
		if err := putRolloutMachines(ctx, tx, ms); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE rollouts SET data = ? WHERE id = ?`, mustJSON(r), r.ID); err != nil {
			return err
		}
		if audit != nil {
			audit.Target = fmt.Sprintf("rollout %d", r.ID)
			return addAudit(ctx, tx, audit)
		}
		return nil
	})
}

// UpdateRollout writes a rollout and any of its machines in one transaction, with audit entries.
func (s *DB) UpdateRollout(ctx context.Context, r *Rollout, ms []RolloutMachine, audits ...*AuditEntry) error {
	return s.inTx(ctx, func(tx *sqlTx) error {
		if r != nil {
			res, err := tx.ExecContext(ctx, `UPDATE rollouts SET state = ?, data = ? WHERE id = ?`, r.State, mustJSON(r), r.ID)
			if err != nil {
				return fmt.Errorf("update rollout %d: %w", r.ID, err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return fmt.Errorf("update rollout %d: %w", r.ID, ErrNotFound)
			}
		}
		if err := putRolloutMachines(ctx, tx, ms); err != nil {
			return err
		}
		return addAudit(ctx, tx, audits...)
	})
}

func putRolloutMachines(ctx context.Context, tx *sqlTx, ms []RolloutMachine) error {
	for _, m := range ms {
		if _, err := tx.ExecContext(ctx, `INSERT INTO rollout_machines (rollout_id, slot_key, seq, phase, data) VALUES (?,?,?,?,?)
			ON CONFLICT(rollout_id, slot_key) DO UPDATE SET phase = excluded.phase, data = excluded.data`,
			m.RolloutID, m.Slot, m.Seq, m.Phase, mustJSON(m)); err != nil {
			return fmt.Errorf("record rollout %d machine %s: %w", m.RolloutID, m.Slot, err)
		}
	}
	return nil
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only plain structs are marshalled here
	}
	return string(b)
}

// Rollouts lists rollouts, newest first (without their machines).
func (s *DB) Rollouts(ctx context.Context) ([]Rollout, error) {
	out, err := jsonRows[Rollout](ctx, s, "rollout", `SELECT data FROM rollouts ORDER BY id DESC`)
	if err != nil {
		return nil, fmt.Errorf("list rollouts: %w", err)
	}
	return out, nil
}

// Rollout returns one rollout and its machines in plan order.
func (s *DB) Rollout(ctx context.Context, id int64) (*Rollout, []RolloutMachine, error) {
	var data string
	err := s.QueryRowContext(ctx, `SELECT data FROM rollouts WHERE id = ?`, id).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, fmt.Errorf("rollout %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("rollout %d: %w", id, err)
	}
	var r Rollout
	if err := json.Unmarshal([]byte(data), &r); err != nil {
		return nil, nil, fmt.Errorf("decode rollout %d: %w", id, err)
	}
	ms, err := jsonRows[RolloutMachine](ctx, s, "rollout machine", `SELECT data FROM rollout_machines WHERE rollout_id = ? ORDER BY seq`, id)
	if err != nil {
		return nil, nil, fmt.Errorf("rollout %d machines: %w", id, err)
	}
	return &r, ms, nil
}

// PendingCommit is a followed git commit and what became of it.
type PendingCommit struct {
	Commit   string    `json:"commit"`
	Author   string    `json:"author"`
	Message  string    `json:"message"`
	When     time.Time `json:"when"`
	Seen     time.Time `json:"seen"`
	Dir      string    `json:"dir"`    // its checkout, which templates are rendered from
	Status   string    `json:"status"` // pending, invalid, applied, superseded
	Problems []string  `json:"problems,omitempty"`
	// Zones waiting for approval, and the plan their approval would apply.
	Waiting  []string   `json:"waiting,omitempty"`
	Plan     *zone.Plan `json:"plan,omitempty"`
	Applied  []int64    `json:"revisions,omitempty"` // revisions it was applied in
	Approver string     `json:"approver,omitempty"`
}

// Commit statuses.
const (
	CommitPending    = "pending"    // some zones wait for `drover approve`
	CommitInvalid    = "invalid"    // never applied: Problems say why
	CommitApplied    = "applied"    // every zone it changes is applied
	CommitSuperseded = "superseded" // a newer commit was approved or applied instead
)

// PutCommit records a followed commit (insert or update).
func (s *DB) PutCommit(ctx context.Context, c *PendingCommit) error {
	_, err := s.ExecContext(ctx, `INSERT INTO commits (hash, seen, status, data) VALUES (?,?,?,?)
		ON CONFLICT(hash) DO UPDATE SET status = excluded.status, data = excluded.data`, c.Commit, c.Seen.UnixNano(), c.Status, mustJSON(c))
	if err != nil {
		return fmt.Errorf("record commit %s: %w", c.Commit, err)
	}
	return nil
}

// Commits lists followed commits, newest first.
func (s *DB) Commits(ctx context.Context) ([]PendingCommit, error) {
	out, err := jsonRows[PendingCommit](ctx, s, "commit", `SELECT data FROM commits ORDER BY seen DESC, rowid DESC`)
	if err != nil {
		return nil, fmt.Errorf("list commits: %w", err)
	}
	return out, nil
}

// jsonRows runs a query whose one column is a JSON document and decodes
// every row into a T (what names T in errors).
func jsonRows[T any](ctx context.Context, q querier, what, query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		var data string
		if err := rows.Scan(&data); err != nil {
			return nil, err
		}
		var v T
		if err := json.Unmarshal([]byte(data), &v); err != nil {
			return nil, fmt.Errorf("decode %s: %w", what, err)
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
