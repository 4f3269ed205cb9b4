package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"time"
)

// Several servers on one PostgreSQL database divide its pods: each pod has
// one owner at a time, the only server that answers for the pod's machines
// and writes their rows. Ownership is a lease in pod_owners that its owner
// renews; it expires by the database's clock, so a dead server's pods pass
// to the others without anyone trusting another host's clock. Every claim
// raises the pod's epoch, and every write of machines checks the epochs it
// was decided under (Fence): a server that lost a pod while it was paused
// cannot write over the pod's new owner.

// ErrNotOwner is returned by Fence when the server no longer owns a pod it
// is writing for.
var ErrNotOwner = errors.New("this server no longer owns the pod")

// PodOwner is a pod's ownership lease.
type PodOwner struct {
	Pod      string    `json:"pod"`
	Owner    string    `json:"owner"` // empty: released
	Epoch    int64     `json:"epoch"`
	Expires  time.Time `json:"expires"`
	Live     bool      `json:"live"`     // unexpired by the database's clock
	Revision int64     `json:"revision"` // machine rows of the pod reflect revisions up to this one
}

// Controller is a server that shares the database with others.
type Controller struct {
	Name string    `json:"name"`
	API  string    `json:"api,omitempty"` // its operator API, for operators and other servers
	Seen time.Time `json:"seen"`
}

func (s *DB) clock() string { return s.dialect.nowMillis }

// Heartbeat records that controller c is alive and returns the controllers
// seen within ttl (c included), by name. Controllers not seen for an hour are
// forgotten.
func (s *DB) Heartbeat(ctx context.Context, c Controller, ttl time.Duration) ([]Controller, error) {
	var live []Controller
	err := s.inTx(ctx, func(tx *sqlTx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO controllers (name, api, seen) VALUES (?, ?, `+s.clock()+`)
			ON CONFLICT (name) DO UPDATE SET api = excluded.api, seen = excluded.seen`, c.Name, c.API); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM controllers WHERE seen < `+s.clock()+` - ?`, time.Hour.Milliseconds()); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT name, api, seen FROM controllers WHERE seen >= `+s.clock()+` - ? ORDER BY name`, ttl.Milliseconds())
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var c Controller
			var seen int64
			if err := rows.Scan(&c.Name, &c.API, &seen); err != nil {
				return err
			}
			c.Seen = time.UnixMilli(seen).UTC()
			live = append(live, c)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("heartbeat of %s: %w", c.Name, err)
	}
	return live, nil
}

// PodOwners lists every pod's ownership lease, by pod.
func (s *DB) PodOwners(ctx context.Context) ([]PodOwner, error) {
	rows, err := s.QueryContext(ctx, `SELECT pod, owner, epoch, expires, expires > `+s.clock()+`, revision FROM pod_owners ORDER BY pod`)
	if err != nil {
		return nil, fmt.Errorf("list pod owners: %w", err)
	}
	defer rows.Close()
	var out []PodOwner
	for rows.Next() {
		var o PodOwner
		var exp int64
		if err := rows.Scan(&o.Pod, &o.Owner, &o.Epoch, &exp, &o.Live, &o.Revision); err != nil {
			return nil, err
		}
		o.Expires = time.UnixMilli(exp).UTC()
		if o.Owner == "" {
			o.Live = false
		}
		out = append(out, o)
	}
	return out, rows.Err()
}

// ClaimPod makes owner the owner of pod for ttl when nobody owns it (never
// owned, released, or expired) and returns the new epoch; ok is false when
// another server's lease is still live.
func (s *DB) ClaimPod(ctx context.Context, pod, owner string, ttl time.Duration) (epoch int64, ok bool, err error) {
	err = s.QueryRowContext(ctx, `INSERT INTO pod_owners (pod, owner, epoch, expires) VALUES (?, ?, 1, `+s.clock()+` + ?)
		ON CONFLICT (pod) DO UPDATE SET owner = excluded.owner, epoch = pod_owners.epoch + 1, expires = excluded.expires
		WHERE pod_owners.owner = '' OR pod_owners.expires <= `+s.clock()+`
		RETURNING epoch`, pod, owner, ttl.Milliseconds()).Scan(&epoch)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("claim pod %q for %s: %w", pod, owner, err)
	}
	return epoch, true, nil
}

// RenewPods extends every live lease owner holds by ttl and returns them,
// pod to epoch. A lease that expired is not renewed: another server may
// have claimed the pod, and the owner must claim it again, with a new epoch.
func (s *DB) RenewPods(ctx context.Context, owner string, ttl time.Duration) (map[string]int64, error) {
	rows, err := s.QueryContext(ctx, `UPDATE pod_owners SET expires = `+s.clock()+` + ?
		WHERE owner = ? AND expires > `+s.clock()+` RETURNING pod, epoch`, ttl.Milliseconds(), owner)
	if err != nil {
		return nil, fmt.Errorf("renew the pods of %s: %w", owner, err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var pod string
		var epoch int64
		if err := rows.Scan(&pod, &epoch); err != nil {
			return nil, err
		}
		out[pod] = epoch
	}
	return out, rows.Err()
}

// ReleasePod gives up owner's lease on pod, so another server can claim it at once.
func (s *DB) ReleasePod(ctx context.Context, pod, owner string) error {
	if _, err := s.ExecContext(ctx, `UPDATE pod_owners SET owner = '', expires = 0 WHERE pod = ? AND owner = ?`, pod, owner); err != nil {
		return fmt.Errorf("release pod %q: %w", pod, err)
	}
	return nil
}

// Fence fails with ErrNotOwner unless owner still holds every pod in epochs
// with that epoch, unexpired. On PostgreSQL the rows stay locked until the
// transaction ends, so no claim can take a pod between the check and the
// commit of the writes it guards.
func (t *sqlTx) Fence(ctx context.Context, owner string, epochs map[string]int64) error {
	if len(epochs) == 0 {
		return nil
	}
	rows, err := t.QueryContext(ctx, `SELECT pod, epoch FROM pod_owners WHERE owner = ? AND expires > `+t.s.clock()+t.s.dialect.forShare, owner)
	if err != nil {
		return fmt.Errorf("check pod ownership: %w", err)
	}
	defer rows.Close()
	held := map[string]int64{}
	for rows.Next() {
		var pod string
		var epoch int64
		if err := rows.Scan(&pod, &epoch); err != nil {
			return err
		}
		held[pod] = epoch
	}
	if err := rows.Err(); err != nil {
		return err
	}
	var lost []string
	for pod, epoch := range epochs {
		if held[pod] != epoch {
			lost = append(lost, fmt.Sprintf("%q", pod))
		}
	}
	if len(lost) > 0 {
		sort.Strings(lost)
		return fmt.Errorf("%w: %s lost %v", ErrNotOwner, owner, lost)
	}
	return nil
}

// SetPodRevision records that the machine rows of pod reflect the effects of
// every revision up to id. The database-wide record (MachinesRevision) follows
// the pod of the design that is furthest behind.
func (t *sqlTx) SetPodRevision(ctx context.Context, pod string, id int64) error {
	if _, err := t.ExecContext(ctx, `INSERT INTO pod_owners (pod, revision) VALUES (?, ?)
		ON CONFLICT (pod) DO UPDATE SET revision = excluded.revision WHERE pod_owners.revision < excluded.revision`, pod, id); err != nil {
		return fmt.Errorf("record revision %d of pod %q: %w", id, pod, err)
	}
	var lowest int64
	err := t.QueryRowContext(ctx, `SELECT COALESCE(MIN(COALESCE(o.revision, 0)), ?) FROM (SELECT DISTINCT zone || '/' || pod AS pod FROM slots) s
		LEFT JOIN pod_owners o ON o.pod = s.pod`, id).Scan(&lowest)
	if err != nil {
		return fmt.Errorf("record revision %d of pod %q: %w", id, pod, err)
	}
	return t.SetMachinesRevision(ctx, lowest)
}

// PodRevisions is, per pod, the revision its machine rows reflect (pods
// written by several servers; absent pods follow MachinesRevision).
func (s *DB) PodRevisions(ctx context.Context) (map[string]int64, error) {
	rows, err := s.QueryContext(ctx, `SELECT pod, revision FROM pod_owners`)
	if err != nil {
		return nil, fmt.Errorf("pod revisions: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var pod string
		var rev int64
		if err := rows.Scan(&pod, &rev); err != nil {
			return nil, err
		}
		out[pod] = rev
	}
	return out, rows.Err()
}

// RevisionsAfter returns the revisions after id, oldest first, without sources.
func (s *DB) RevisionsAfter(ctx context.Context, id int64) ([]Revision, error) {
	return s.queryRevisions(ctx, `SELECT id, hash, git_commit, applied_by, applied_at, summary, '', effects FROM revisions
		WHERE id > ? ORDER BY id`, id)
}

// MachineOp is an action on a machine that a server asks of the server
// owning the machine's pod, through the database: operator calls and
// rollouts reach every pod whichever server they land on.
type MachineOp struct {
	ID        int64
	Pod       string
	Kind      string // what Request holds: "operate", "power", "record"
	Request   string // JSON
	Created   time.Time
	Done      bool
	Result    string // JSON
	ErrorKind string // how the error maps back ("not-found", "conflict", ...)
	Error     string
}

// AddMachineOp queues an op for its pod's owner and sets its ID.
func (s *DB) AddMachineOp(ctx context.Context, op *MachineOp) error {
	id, err := insertID(ctx, s, `INSERT INTO machine_ops (pod, kind, request, created) VALUES (?, ?, ?, ?)`,
		op.Pod, op.Kind, op.Request, op.Created.UnixNano())
	if err != nil {
		return fmt.Errorf("queue %s for pod %q: %w", op.Kind, op.Pod, err)
	}
	op.ID = id
	return nil
}

// MachineOp reads an op, to see whether it is done.
func (s *DB) MachineOp(ctx context.Context, id int64) (*MachineOp, error) {
	ops, err := s.machineOps(ctx, `id = ?`, id)
	if err != nil {
		return nil, err
	}
	if len(ops) == 0 {
		return nil, fmt.Errorf("machine op %d: %w", id, ErrNotFound)
	}
	return &ops[0], nil
}

// OpenMachineOps lists the ops not done yet for a set of pods, oldest first.
func (s *DB) OpenMachineOps(ctx context.Context, pods []string) ([]MachineOp, error) {
	var out []MachineOp
	for _, pod := range pods {
		ops, err := s.machineOps(ctx, `pod = ? AND NOT done`, pod)
		if err != nil {
			return nil, err
		}
		out = append(out, ops...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (s *DB) machineOps(ctx context.Context, where string, arg any) ([]MachineOp, error) {
	rows, err := s.QueryContext(ctx, `SELECT id, pod, kind, request, created, done, result, error_kind, error FROM machine_ops WHERE `+where+` ORDER BY id`, arg)
	if err != nil {
		return nil, fmt.Errorf("read machine ops: %w", err)
	}
	defer rows.Close()
	var out []MachineOp
	for rows.Next() {
		var op MachineOp
		var created int64
		if err := rows.Scan(&op.ID, &op.Pod, &op.Kind, &op.Request, &created, &op.Done, &op.Result, &op.ErrorKind, &op.Error); err != nil {
			return nil, err
		}
		op.Created = time.Unix(0, created).UTC()
		out = append(out, op)
	}
	return out, rows.Err()
}

// FinishMachineOp records an op's outcome; in the transaction of the change
// it made, so that an op is carried out once even when its server dies.
func (t *sqlTx) FinishMachineOp(ctx context.Context, op *MachineOp) error {
	return finishMachineOp(ctx, t, op)
}

// FinishMachineOp records the outcome of an op that changed nothing.
func (s *DB) FinishMachineOp(ctx context.Context, op *MachineOp) error {
	return finishMachineOp(ctx, s, op)
}

func finishMachineOp(ctx context.Context, q querier, op *MachineOp) error {
	if _, err := q.ExecContext(ctx, `UPDATE machine_ops SET done = TRUE, result = ?, error_kind = ?, error = ? WHERE id = ?`,
		op.Result, op.ErrorKind, op.Error, op.ID); err != nil {
		return fmt.Errorf("finish machine op %d: %w", op.ID, err)
	}
	return nil
}

// DeleteMachineOps forgets finished ops older than before.
func (s *DB) DeleteMachineOps(ctx context.Context, before time.Time) error {
	_, err := s.ExecContext(ctx, `DELETE FROM machine_ops WHERE done AND created < ?`, before.UnixNano())
	return err
}
