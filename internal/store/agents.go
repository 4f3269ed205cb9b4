package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/drover/drover/internal/machine"
)

// A pod agent (`drover agent`) serves one pod from a box inside it. While it
// is attached it owns the pod like a server does (pod_owners), so no server
// answers for or writes the pod's machines; the agent decides for them from
// its own database and sends its rows and timeline up, and the controller
// writes them here in the agent's name, fenced by the agent's epoch. An
// agent's ownership does not expire: a pod whose agent cannot reach the
// controller is still the agent's, which keeps booting it.

// AgentPrefix starts the owner name of a pod held by its agent.
const AgentPrefix = "agent:"

// AgentOwner is the owner name of pod's agent.
func AgentOwner(pod string) string { return AgentPrefix + pod }

// IsAgent reports whether an owner name is a pod agent's.
func IsAgent(owner string) bool { return strings.HasPrefix(owner, AgentPrefix) }

// neverExpires is the expiry of an agent's ownership (year 9999, in ms).
const neverExpires = 253402300799000

// AssignPod makes owner the pod's owner whoever held it, with a new epoch
// that fences the previous owner's writes, and no expiry.
func (s *DB) AssignPod(ctx context.Context, pod, owner string) (epoch int64, err error) {
	err = s.QueryRowContext(ctx, `INSERT INTO pod_owners (pod, owner, epoch, expires) VALUES (?, ?, 1, ?)
		ON CONFLICT (pod) DO UPDATE SET owner = excluded.owner, epoch = pod_owners.epoch + 1, expires = excluded.expires
		RETURNING epoch`, pod, owner, int64(neverExpires)).Scan(&epoch)
	if err != nil {
		return 0, fmt.Errorf("assign pod %q to %s: %w", pod, owner, err)
	}
	return epoch, nil
}

// Entries lists timeline entries of every machine after an id, oldest first.
func (s *DB) Entries(ctx context.Context, afterID int64, limit int) ([]machine.Entry, error) {
	return s.entries(ctx, `id > ?`, afterID, limit)
}

// Mirror is what a pod's agent decided since it last reported: its machine
// rows and leases as they are now, leases it let go, and its timeline
// entries (their IDs are the agent's own, increasing).
type Mirror struct {
	Pod      string
	Epoch    int64
	Machines []*machine.Machine
	Leases   []Lease
	Gone     []netip.Addr
	Entries  []machine.Entry
	// Revision is the design revision (of this database) the agent's rows reflect.
	Revision int64
}

// MirrorPod writes an agent's report in one transaction, fenced by the
// agent's epoch, and returns the agent's last timeline id it holds. Entries
// up to the one recorded before are skipped, so a report sent twice (its
// answer lost) adds nothing twice.
func (s *DB) MirrorPod(ctx context.Context, m *Mirror) (acked int64, err error) {
	owner := AgentOwner(m.Pod)
	cursor := owner
	err = s.inTx(ctx, func(tx *sqlTx) error {
		if err := tx.Fence(ctx, owner, map[string]int64{m.Pod: m.Epoch}); err != nil {
			return err
		}
		err := tx.QueryRowContext(ctx, `SELECT after_id FROM event_cursors WHERE name = ?`, cursor).Scan(&acked)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		for _, mc := range m.Machines {
			if mc.ID == 0 {
				return fmt.Errorf("machine %s has no id", mc.Label())
			}
			if err := tx.PutMachine(ctx, mc); err != nil {
				return err
			}
		}
		if err := tx.DeleteLeases(ctx, m.Gone...); err != nil {
			return err
		}
		if err := tx.PutLeases(ctx, m.Leases...); err != nil {
			return err
		}
		last := acked
		for i := range m.Entries {
			e := m.Entries[i]
			if e.ID <= last {
				continue
			}
			last = e.ID
			e.ID = 0
			if err := tx.AddEntries(ctx, &e); err != nil {
				return err
			}
		}
		if last != acked {
			if _, err := tx.ExecContext(ctx, `INSERT INTO event_cursors(name, after_id, updated, last_error) VALUES (?, ?, ?, '')
				ON CONFLICT(name) DO UPDATE SET after_id = excluded.after_id, updated = excluded.updated`, cursor, last, s.now().UnixNano()); err != nil {
				return err
			}
			acked = last
		}
		if m.Revision > 0 {
			return tx.SetPodRevision(ctx, m.Pod, m.Revision)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("write the report of the agent of %s: %w", m.Pod, err)
	}
	return acked, nil
}

// AgentCursor is the agent's last timeline id this database holds (0: none yet).
func (s *DB) AgentCursor(ctx context.Context, pod string) (int64, error) {
	var id int64
	err := s.QueryRowContext(ctx, `SELECT after_id FROM event_cursors WHERE name = ?`, AgentOwner(pod)).Scan(&id)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("agent cursor of %s: %w", pod, err)
	}
	return id, nil
}
