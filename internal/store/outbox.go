package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/drover/drover/internal/machine"
)

// Transition is one state change of a machine from its timeline, with the
// machine as it is now, for consumers outside drover (webhooks, Alertmanager).
type Transition struct {
	ID      int64           `json:"id"`
	At      time.Time       `json:"at"`
	Actor   string          `json:"actor"`
	From    machine.State   `json:"from"`
	To      machine.State   `json:"to"`
	Reason  string          `json:"reason,omitempty"`
	Machine machine.Machine `json:"-"`
}

// transitionsQuery writes the kind out, not as a parameter: only then may
// the planner use the partial index events_transitions.
const transitionsQuery = `SELECT id, machine_id, at, actor, from_state, to_state, reason FROM events
	WHERE kind = '` + string(machine.KindTransition) + `' AND id > ? ORDER BY id LIMIT ?`

// Transitions are the timeline's state changes after afterID, oldest first.
// The timeline is written in the same transaction as the machine's new
// state, so it is a durable outbox: a consumer that keeps its cursor
// (EventCursor) gets every transition at least once, in order.
func (s *DB) Transitions(ctx context.Context, afterID int64, limit int) ([]Transition, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.QueryContext(ctx, transitionsQuery, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("transitions: %w", err)
	}
	out := []Transition{}
	var ids []int64
	for rows.Next() {
		var t Transition
		var at, mid int64
		var from, to string
		if err := rows.Scan(&t.ID, &mid, &at, &t.Actor, &from, &to, &t.Reason); err != nil {
			rows.Close()
			return nil, fmt.Errorf("transitions: %w", err)
		}
		t.At, t.From, t.To = time.Unix(0, at).UTC(), machine.State(from), machine.State(to)
		out = append(out, t)
		ids = append(ids, mid)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("transitions: %w", err)
	}
	machines := map[int64]*machine.Machine{}
	for i := range out {
		m, ok := machines[ids[i]]
		if !ok {
			if m, err = machineBy(ctx, s, "id = ?", ids[i]); err != nil {
				return nil, fmt.Errorf("transitions: machine %d: %w", ids[i], err)
			}
			machines[ids[i]] = m
		}
		out[i].Machine = *m
	}
	return out, nil
}

// EventCursor is the last timeline id a consumer has delivered. A consumer
// seen for the first time starts at the newest entry: it gets what happens
// from now on, not the whole history. The first cursor is read and written
// in one statement: two callers that each found none (two servers, or a
// check beside the consumer) would otherwise each read the newest id, one
// before and one after a write, and the later one would skip that write's
// transitions.
func (s *DB) EventCursor(ctx context.Context, name string) (int64, error) {
	id, err := s.eventCursor(ctx, name)
	if !errors.Is(err, sql.ErrNoRows) {
		return id, err
	}
	if _, err := s.ExecContext(ctx, `INSERT INTO event_cursors(name, after_id, updated, last_error)
		SELECT ?, COALESCE(MAX(id), 0), ?, '' FROM events WHERE true ON CONFLICT(name) DO NOTHING`,
		name, s.now().UnixNano()); err != nil {
		return 0, fmt.Errorf("event cursor %s: %w", name, err)
	}
	return s.eventCursor(ctx, name)
}

func (s *DB) eventCursor(ctx context.Context, name string) (int64, error) {
	var id int64
	err := s.QueryRowContext(ctx, `SELECT after_id FROM event_cursors WHERE name = ?`, name).Scan(&id)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("event cursor %s: %w", name, err)
	}
	return id, err
}

// SetEventCursor records how far a consumer got, and its last error ("" when it delivered).
func (s *DB) SetEventCursor(ctx context.Context, name string, afterID int64, lastError string) error {
	_, err := s.ExecContext(ctx, `INSERT INTO event_cursors(name, after_id, updated, last_error) VALUES (?, ?, ?, ?)
		ON CONFLICT(name) DO UPDATE SET after_id = excluded.after_id, updated = excluded.updated, last_error = excluded.last_error`,
		name, afterID, s.now().UnixNano(), lastError)
	if err != nil {
		return fmt.Errorf("event cursor %s: %w", name, err)
	}
	return nil
}
