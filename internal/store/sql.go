package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/drover/drover/internal/machine"
	"github.com/drover/drover/internal/zone"
)

// dialect is what differs between the databases drover runs on.
type dialect struct {
	name string
	// positional turns "?" placeholders into "$1", "$2"... (PostgreSQL).
	positional bool
	// rewritesSetIndexes: an UPDATE rewrites the index entries of every
	// column it sets, changed or not (SQLite; PostgreSQL compares the values).
	rewritesSetIndexes bool
	migrations         []string
	// createMigrations creates the table that records applied migrations.
	createMigrations string
	// permanentName extracts a slot's permanent name from its JSON data.
	permanentName string
	// lockMigrations, when set, runs first in a migration's transaction so
	// that two servers starting together migrate one after the other.
	lockMigrations string
	// lockApply, when set, runs first in ApplyDesign's transaction: two
	// applies diff against the slots one after the other.
	lockApply string
	// nowMillis is the database's clock in Unix milliseconds: pod ownership
	// expires by one clock, whichever server reads it.
	nowMillis string
	// forShare, appended to a SELECT, locks the rows read against updates
	// until the transaction ends (PostgreSQL); SQLite's one writer needs none.
	forShare string
}

// DB is drover's store on a SQL database: SQLite (embedded, the default) or
// PostgreSQL (an active server and its standbys). Both run the same statements,
// written with "?" placeholders; the dialect says what differs.
type DB struct {
	db      *sql.DB
	dialect *dialect
	path    string // the SQLite file, for its writer lock
	now     func() time.Time
	bound   sync.Map                      // query -> query with the dialect's placeholders
	lost    atomic.Pointer[chan struct{}] // see WriterLost
	// prepared holds statements prepared once for the whole pool (query ->
	// *sql.Stmt), which a transaction takes over on its own connection; at
	// most maxPrepared of them.
	prepared  sync.Map
	nPrepared atomic.Int32
	ckpt      *checkpointer // SQLite's; nil for PostgreSQL
}

var _ Store = (*DB)(nil)

// Close closes the database.
func (s *DB) Close() error {
	if s.ckpt != nil {
		s.ckpt.close()
	}
	s.prepared.Range(func(_, st any) bool {
		st.(*sql.Stmt).Close()
		return true
	})
	return s.db.Close()
}

// maxPrepared bounds the statements kept prepared: the writer's are a few
// dozen; a query built from varying parts past the bound is prepared per
// transaction instead.
const maxPrepared = 256

// share prepares queries (bound) for the pool, so that later transactions
// find them prepared. It runs between transactions, never in one: preparing
// takes a connection from the pool, and a transaction waiting for one while
// it holds SQLite's write lock would wait for connections that wait for it.
// A query that fails to prepare is left to each transaction (where its error
// shows).
func (s *DB) share(ctx context.Context, queries []string) {
	for _, q := range queries {
		if _, ok := s.prepared.Load(q); ok || s.nPrepared.Load() >= maxPrepared {
			continue
		}
		st, err := s.db.PrepareContext(ctx, q)
		if err != nil {
			continue
		}
		if _, loaded := s.prepared.LoadOrStore(q, st); loaded {
			st.Close()
			continue
		}
		s.nPrepared.Add(1)
	}
}

// bind rewrites a query's "?" placeholders for the dialect; the statements
// contain no "?" inside literals.
func (s *DB) bind(q string) string {
	if !s.dialect.positional {
		return q
	}
	if b, ok := s.bound.Load(q); ok {
		return b.(string)
	}
	var sb strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			sb.WriteString("$" + strconv.Itoa(n))
			continue
		}
		sb.WriteRune(r)
	}
	s.bound.Store(q, sb.String())
	return sb.String()
}

// QueryContext, QueryRowContext and ExecContext run a statement written
// with "?" placeholders outside any transaction.
func (s *DB) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	defer s.written()
	return s.db.QueryContext(ctx, s.bind(q), args...)
}

func (s *DB) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	defer s.written()
	return s.db.QueryRowContext(ctx, s.bind(q), args...)
}

func (s *DB) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	defer s.written()
	return s.db.ExecContext(ctx, s.bind(q), args...)
}

// written tells SQLite's checkpointer that a statement may have written
// (some queries are INSERT ... RETURNING). It never blocks.
func (s *DB) written() {
	if s.ckpt != nil {
		s.ckpt.committed()
	}
}

func (s *DB) migrate(ctx context.Context) error {
	migrations := s.dialect.migrations
	// One migration per transaction, each under the migration lock, which
	// also covers creating the table of versions: two servers doing that at
	// once collide in PostgreSQL's catalogue.
	for done := false; !done; {
		err := s.inTx(ctx, func(tx *sqlTx) error {
			// Unprepared: the lock's statement comes first, a migration is several statements.
			for _, q := range []string{s.dialect.lockMigrations, s.dialect.createMigrations} {
				if q == "" {
					continue
				}
				if _, err := tx.tx.ExecContext(ctx, q); err != nil {
					return fmt.Errorf("prepare migrations: %w", err)
				}
			}
			var have int
			if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
				return fmt.Errorf("read schema version: %w", err)
			}
			if have > len(migrations)-1 {
				return fmt.Errorf("database schema version %d is newer than this drover knows (%d): upgrade drover", have, len(migrations)-1)
			}
			v := have + 1
			if v == len(migrations) {
				done = true
				return nil
			}
			if _, err := tx.tx.ExecContext(ctx, migrations[v]); err != nil {
				return fmt.Errorf("migrate to schema %d: %w", v, err)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations(version, applied_at) VALUES (?, ?)`, v, s.now().UnixNano()); err != nil {
				return fmt.Errorf("migrate to schema %d: %w", v, err)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *DB) inTx(ctx context.Context, fn func(*sqlTx) error) error {
	if s.ckpt != nil {
		s.ckpt.resetIfOverdue(ctx)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	t := &sqlTx{tx: tx, s: s, stmts: map[string]*sql.Stmt{}}
	defer func() { s.share(ctx, t.unshared) }()
	if err := fn(t); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	s.written()
	return nil
}

// Update runs fn in one transaction.
func (s *DB) Update(ctx context.Context, fn func(Tx) error) error {
	return s.inTx(ctx, func(tx *sqlTx) error { return fn(tx) })
}

// querier is what both a DB and a transaction offer.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// insertID runs an INSERT and returns the id the database gave the new row.
func insertID(ctx context.Context, q querier, query string, args ...any) (int64, error) {
	var id int64
	err := q.QueryRowContext(ctx, query+` RETURNING id`, args...).Scan(&id)
	return id, err
}

// sqlTx runs statements prepared once for the database (share) on its
// connection: a group-commit batch runs the same few statements thousands of
// times, and SQLite's parser was the largest cost in a CPU profile of drover
// under DHCP load. Prepared per transaction, as before, parsing still took a
// fifth of the CPU of a fleet's first boots (many small transactions).
type sqlTx struct {
	tx       *sql.Tx
	s        *DB
	stmts    map[string]*sql.Stmt
	unshared []string // prepared here alone: to share once the transaction ends
}

func (t *sqlTx) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	st := t.stmts[query]
	if st == nil {
		bound := t.s.bind(query)
		if shared, ok := t.s.prepared.Load(bound); ok {
			// Prepared again only on a connection it was not yet prepared on.
			st = t.tx.StmtContext(ctx, shared.(*sql.Stmt))
		} else {
			var err error
			if st, err = t.tx.PrepareContext(ctx, bound); err != nil {
				return nil, err
			}
			t.unshared = append(t.unshared, bound)
		}
		t.stmts[query] = st
	}
	return st, nil
}

func (t *sqlTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, err := t.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

func (t *sqlTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return t.tx.QueryContext(ctx, t.s.bind(query), args...)
}

func (t *sqlTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := t.stmt(ctx, query)
	if err != nil {
		// A failed prepare shows as the row's error.
		return t.tx.QueryRowContext(ctx, t.s.bind(query), args...)
	}
	return st.QueryRowContext(ctx, args...)
}

const machineCols = `id, mac, slot_key, name, state, state_since, deadline, maintenance, needs_reinstall, location, facts, created, install_token, boot_token`

func scanMachine(row interface{ Scan(...any) error }) (*machine.Machine, error) {
	var (
		m                        machine.Machine
		slot                     sql.NullString
		since, deadline, created int64
		maint, facts, state      string
		needs                    bool
	)
	if err := row.Scan(&m.ID, &m.MAC, &slot, &m.Name, &state, &since, &deadline, &maint, &needs, &m.Location, &facts, &created, &m.InstallTokenHash, &m.BootTokenHash); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	m.SlotKey, m.State, m.NeedsReinstall = slot.String, machine.State(state), needs
	m.StateSince, m.Created = time.Unix(0, since).UTC(), time.Unix(0, created).UTC()
	if deadline != 0 {
		m.Deadline = time.Unix(0, deadline).UTC()
	}
	if maint != "" {
		m.Maintenance = &machine.MaintenanceInfo{}
		if err := json.Unmarshal([]byte(maint), m.Maintenance); err != nil {
			return nil, fmt.Errorf("machine %d maintenance: %w", m.ID, err)
		}
	}
	if facts != "" {
		if err := json.Unmarshal([]byte(facts), &m.Facts); err != nil {
			return nil, fmt.Errorf("machine %d facts: %w", m.ID, err)
		}
	}
	return &m, nil
}

func machineBy(ctx context.Context, q querier, where string, arg any) (*machine.Machine, error) {
	return scanMachine(q.QueryRowContext(ctx, `SELECT `+machineCols+` FROM machines WHERE `+where, arg))
}

func (t *sqlTx) MachineByID(ctx context.Context, id int64) (*machine.Machine, error) {
	return machineBy(ctx, t, "id = ?", id)
}

func (t *sqlTx) MachineByMAC(ctx context.Context, mac string) (*machine.Machine, error) {
	return machineBy(ctx, t, "mac = ?", mac)
}

func (t *sqlTx) MachineBySlot(ctx context.Context, key string) (*machine.Machine, error) {
	return machineBy(ctx, t, "slot_key = ?", key)
}

func (t *sqlTx) PutMachine(ctx context.Context, m *machine.Machine) error {
	return putMachine(ctx, t, m, t.s.dialect.rewritesSetIndexes)
}

// insertMachine inserts a whole machine row.
const insertMachine = `INSERT INTO machines (id, mac, slot_key, name, state, state_since, deadline, maintenance, needs_reinstall, location, facts, created, install_token, boot_token) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)`

// putMachine inserts or updates a machine. With separateIdentity (SQLite),
// an existing machine is updated without the indexed identity columns (mac,
// slot_key, name), which seldom change and are set by a second statement
// only when they differ: SQLite rewrites the index entries of every column
// an UPDATE sets, and those indexes are in random order, so each write of a
// machine dirtied a page in each of them (measured on a table of 100,000
// machines: 100,000 updates, 500 a transaction, grew the WAL by 1.18 GB and
// took 6.7 s; without the identity columns, 114 MB and 2.7 s). It is
// updated first and inserted only when no row was there: an upsert tries
// the insert first, building and probing for a row that is nearly always
// there (BenchmarkPutMachine: 29 us a machine with the upsert, 27-28 us
// updated first).
func putMachine(ctx context.Context, q querier, m *machine.Machine, separateIdentity bool) error {
	var maint, facts string
	if m.Maintenance != nil {
		b, _ := json.Marshal(m.Maintenance)
		maint = string(b)
	}
	if m.Facts != nil {
		b, err := json.Marshal(m.Facts)
		if err != nil {
			return fmt.Errorf("machine %s facts: %w", m.Label(), err)
		}
		facts = string(b)
	}
	var slot any
	if m.SlotKey != "" {
		slot = m.SlotKey
	}
	var deadline int64
	if !m.Deadline.IsZero() {
		deadline = m.Deadline.UnixNano()
	}
	if m.Created.IsZero() {
		m.Created = time.Now().UTC()
	}
	if m.ID == 0 {
		id, err := reserveIDs(ctx, q, "machines", 1)
		if err != nil {
			return fmt.Errorf("insert machine %s: %w", m.Label(), err)
		}
		m.ID = id
	}
	row := func() []any {
		return []any{m.ID, m.MAC, slot, m.Name, string(m.State), m.StateSince.UnixNano(), deadline, maint, m.NeedsReinstall, m.Location, facts, m.Created.UnixNano(), m.InstallTokenHash, m.BootTokenHash}
	}
	if !separateIdentity {
		// The ID comes from the database's id blocks (ReserveIDs): inserted or updated.
		_, err := q.ExecContext(ctx, insertMachine+`
			ON CONFLICT(id) DO UPDATE SET mac=excluded.mac, slot_key=excluded.slot_key, name=excluded.name, state=excluded.state, state_since=excluded.state_since,
			deadline=excluded.deadline, maintenance=excluded.maintenance, needs_reinstall=excluded.needs_reinstall, location=excluded.location, facts=excluded.facts, install_token=excluded.install_token, boot_token=excluded.boot_token`, row()...)
		if err != nil {
			return fmt.Errorf("write machine %s: %w", m.Label(), err)
		}
		return nil
	}
	res, err := q.ExecContext(ctx, `UPDATE machines SET state = ?, state_since = ?, deadline = ?, maintenance = ?, needs_reinstall = ?, location = ?, facts = ?, install_token = ?, boot_token = ? WHERE id = ?`,
		string(m.State), m.StateSince.UnixNano(), deadline, maint, m.NeedsReinstall, m.Location, facts, m.InstallTokenHash, m.BootTokenHash, m.ID)
	var n int64
	if err == nil {
		n, err = res.RowsAffected()
	}
	if err == nil && n == 0 {
		_, err = q.ExecContext(ctx, insertMachine, row()...)
	} else if err == nil {
		_, err = q.ExecContext(ctx, `UPDATE machines SET mac = ?, slot_key = ?, name = ?
			WHERE id = ? AND (mac IS DISTINCT FROM ? OR slot_key IS DISTINCT FROM ? OR name IS DISTINCT FROM ?)`,
			m.MAC, slot, m.Name, m.ID, m.MAC, slot, m.Name)
	}
	if err != nil {
		return fmt.Errorf("write machine %s: %w", m.Label(), err)
	}
	return nil
}

func (t *sqlTx) PutLeases(ctx context.Context, leases ...Lease) error {
	return putLeases(ctx, t, t.s.now(), leases)
}

func (t *sqlTx) DeleteLeases(ctx context.Context, addrs ...netip.Addr) error {
	return deleteLeases(ctx, t, addrs)
}

func (t *sqlTx) AddAudit(ctx context.Context, entries ...*AuditEntry) error {
	return addAudit(ctx, t, entries...)
}

func (t *sqlTx) AddEntries(ctx context.Context, entries ...*machine.Entry) error {
	return addEntries(ctx, t, entries...)
}

// entriesPerStatement bounds a multi-row insert (7 parameters a row: well
// under SQLite's and PostgreSQL's limits).
const entriesPerStatement = 128

// AppendEntries inserts entries in multi-row statements of a power of two
// rows each (100 entries: 64, 32, 4), so that the few statements there are
// stay prepared across transactions.
func (t *sqlTx) AppendEntries(ctx context.Context, entries []machine.Entry) error {
	for len(entries) > 0 {
		n := 1 << (bits.Len(uint(min(len(entries), entriesPerStatement))) - 1)
		var q strings.Builder
		q.WriteString(`INSERT INTO events (machine_id, at, actor, kind, from_state, to_state, reason) VALUES `)
		args := make([]any, 0, 7*n)
		for i, e := range entries[:n] {
			if e.MachineID == 0 {
				return fmt.Errorf("timeline entry %q has no machine", e.Kind)
			}
			if i > 0 {
				q.WriteString(",")
			}
			// Rows of one VALUES list are inserted, and numbered, in order.
			q.WriteString("(?,?,?,?,?,?,?)")
			args = append(args, e.MachineID, e.At.UnixNano(), e.Actor, e.Kind, string(e.From), string(e.To), e.Reason)
		}
		if _, err := t.ExecContext(ctx, q.String(), args...); err != nil {
			return fmt.Errorf("add %d timeline entries: %w", n, err)
		}
		entries = entries[n:]
	}
	return nil
}

func addEntries(ctx context.Context, q querier, entries ...*machine.Entry) error {
	for _, e := range entries {
		if e.MachineID == 0 {
			return fmt.Errorf("timeline entry %q has no machine", e.Kind)
		}
		id, err := insertID(ctx, q, `INSERT INTO events (machine_id, at, actor, kind, from_state, to_state, reason) VALUES (?,?,?,?,?,?,?)`,
			e.MachineID, e.At.UnixNano(), e.Actor, e.Kind, string(e.From), string(e.To), e.Reason)
		if err != nil {
			return fmt.Errorf("add timeline entry: %w", err)
		}
		e.ID = id
	}
	return nil
}

// CurrentRevision returns the last applied design, or ErrNotFound.
func (s *DB) CurrentRevision(ctx context.Context) (*Revision, error) {
	revs, err := s.revisions(ctx, true)
	if err != nil {
		return nil, err
	}
	if len(revs) == 0 {
		return nil, ErrNotFound
	}
	return &revs[0], nil
}

// LatestRevisionID is the id of the applied design, 0 when none.
func (s *DB) LatestRevisionID(ctx context.Context) (int64, error) {
	var id int64
	if err := s.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM revisions`).Scan(&id); err != nil {
		return 0, fmt.Errorf("latest revision: %w", err)
	}
	return id, nil
}

// Revisions lists applied designs, newest first, without their sources.
func (s *DB) Revisions(ctx context.Context) ([]Revision, error) { return s.revisions(ctx, false) }

func (s *DB) revisions(ctx context.Context, latestWithSources bool) ([]Revision, error) {
	q := `SELECT id, hash, git_commit, applied_by, applied_at, summary, '', '[]' FROM revisions ORDER BY id DESC`
	if latestWithSources {
		q = `SELECT id, hash, git_commit, applied_by, applied_at, summary, sources, '[]' FROM revisions ORDER BY id DESC LIMIT 1`
	}
	return s.queryRevisions(ctx, q)
}

// queryRevisions runs a query for id, hash, git_commit, applied_by,
// applied_at, summary, sources (” to skip) and effects.
func (s *DB) queryRevisions(ctx context.Context, q string, args ...any) ([]Revision, error) {
	rows, err := s.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list revisions: %w", err)
	}
	defer rows.Close()
	out := []Revision{}
	for rows.Next() {
		var r Revision
		var at int64
		var sources, effects string
		if err := rows.Scan(&r.ID, &r.Hash, &r.Commit, &r.AppliedBy, &at, &r.Summary, &sources, &effects); err != nil {
			return nil, fmt.Errorf("list revisions: %w", err)
		}
		r.AppliedAt = time.Unix(0, at).UTC()
		if sources != "" {
			if err := json.Unmarshal([]byte(sources), &r.Sources); err != nil {
				return nil, fmt.Errorf("revision %d sources: %w", r.ID, err)
			}
		}
		if err := json.Unmarshal([]byte(effects), &r.Effects); err != nil {
			return nil, fmt.Errorf("revision %d effects: %w", r.ID, err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// ApplyDesign makes slots the current design, in one transaction. It writes
// slots and the revision with its effects on machines; it never writes a
// machine row (the fleet carries the effects out).
func (s *DB) ApplyDesign(ctx context.Context, rev *Revision, slots []*zone.Slot, audit *AuditEntry) (*zone.Plan, error) {
	var plan *zone.Plan
	err := s.inTx(ctx, func(tx *sqlTx) error {
		if s.dialect.lockApply != "" {
			if _, err := tx.ExecContext(ctx, s.dialect.lockApply); err != nil {
				return err
			}
		}
		current, err := listSlots(ctx, tx, SlotFilter{})
		if err != nil {
			return err
		}
		plan = zone.Diff(current, slots)
		// Removals first, then changes, then additions, so a name moving between
		// slots never collides with itself on the UNIQUE constraint.
		for _, sl := range plan.Removed {
			if _, err := tx.ExecContext(ctx, `DELETE FROM slots WHERE key = ?`, sl.Key); err != nil {
				return fmt.Errorf("remove slot %s: %w", sl.Key, err)
			}
		}
		for _, ch := range plan.Changed {
			if _, err := tx.ExecContext(ctx, `UPDATE slots SET name = ? WHERE key = ?`, "\x01"+ch.Key, ch.Key); err != nil {
				return fmt.Errorf("change slot %s: %w", ch.Key, err)
			}
		}
		for _, ch := range plan.Changed {
			if err := putSlot(ctx, tx, ch.After); err != nil {
				return err
			}
		}
		for _, sl := range plan.Added {
			if err := putSlot(ctx, tx, sl); err != nil {
				return err
			}
		}
		src, err := json.Marshal(rev.Sources)
		if err != nil {
			return err
		}
		rev.Effects = effectsOf(plan)
		effects, err := json.Marshal(rev.Effects)
		if err != nil {
			return err
		}
		id, err := insertID(ctx, tx, `INSERT INTO revisions (hash, git_commit, applied_by, applied_at, summary, sources, effects) VALUES (?,?,?,?,?,?,?)`,
			rev.Hash, rev.Commit, rev.AppliedBy, rev.AppliedAt.UnixNano(), rev.Summary, string(src), string(effects))
		if err != nil {
			return fmt.Errorf("record revision: %w", err)
		}
		rev.ID = id
		if audit != nil {
			audit.Revision = rev.ID
			return addAudit(ctx, tx, audit)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("apply design: %w", err)
	}
	return plan, nil
}

func putSlot(ctx context.Context, q querier, sl *zone.Slot) error {
	data, err := json.Marshal(sl)
	if err != nil {
		return err
	}
	_, err = q.ExecContext(ctx, `INSERT INTO slots (key, zone, pod, role, variant, name, data) VALUES (?,?,?,?,?,?,?)
		ON CONFLICT(key) DO UPDATE SET zone=excluded.zone, pod=excluded.pod, role=excluded.role, variant=excluded.variant, name=excluded.name, data=excluded.data`,
		sl.Key, sl.Zone, sl.Pod, sl.Role, sl.Variant, sl.Name, string(data))
	if err != nil {
		return fmt.Errorf("write slot %s: %w", sl.Key, err)
	}
	return nil
}

// PendingRevisions returns the revisions whose effects on machines the fleet
// has not carried out yet, oldest first.
func (s *DB) PendingRevisions(ctx context.Context) ([]Revision, error) {
	return s.queryRevisions(ctx, `SELECT id, hash, git_commit, applied_by, applied_at, summary, '', effects FROM revisions
		WHERE id > (SELECT revision FROM fleet_state WHERE id = 1) ORDER BY id`)
}

// MachinesRevision is the revision whose effects the machine rows reflect.
func (s *DB) MachinesRevision(ctx context.Context) (int64, error) {
	var id int64
	if err := s.QueryRowContext(ctx, `SELECT revision FROM fleet_state WHERE id = 1`).Scan(&id); err != nil {
		return 0, fmt.Errorf("machines revision: %w", err)
	}
	return id, nil
}

func (t *sqlTx) SetMachinesRevision(ctx context.Context, id int64) error {
	if _, err := t.ExecContext(ctx, `UPDATE fleet_state SET revision = ? WHERE id = 1 AND revision < ?`, id, id); err != nil {
		return fmt.Errorf("record machines revision %d: %w", id, err)
	}
	return nil
}

// LockWriter takes the database's writer lock, held by the one fleet that
// writes machines: a lock file for SQLite, an advisory lock for PostgreSQL.
func (s *DB) LockWriter(holder string) (func(), error) {
	if s.dialect.positional {
		return s.lockAdvisory(holder, false)
	}
	return s.lockFile(holder)
}

// LockShared takes the writer lock for one of several servers that divide
// the database's pods (PostgreSQL only): they hold it together, and it
// keeps out a server or a CLI that would write machines alone.
func (s *DB) LockShared(holder string) (func(), error) {
	if !s.dialect.positional {
		return nil, errors.New("several servers can share a PostgreSQL database only, not a SQLite file")
	}
	return s.lockAdvisory(holder, true)
}

// Slots lists applied slots.
func (s *DB) Slots(ctx context.Context, f SlotFilter) ([]*zone.Slot, error) {
	return listSlots(ctx, s, f)
}

func listSlots(ctx context.Context, q querier, f SlotFilter) ([]*zone.Slot, error) {
	where, args := filterSQL(map[string]string{"zone": f.Zone, "pod": f.Pod, "role": f.Role, "variant": f.Variant}, "")
	rows, err := q.QueryContext(ctx, `SELECT data FROM slots`+where, args...)
	if err != nil {
		return nil, fmt.Errorf("list slots: %w", err)
	}
	defer rows.Close()
	out := []*zone.Slot{}
	for rows.Next() {
		var data string
		if err := rows.Scan(&data); err != nil {
			return nil, fmt.Errorf("list slots: %w", err)
		}
		sl := &zone.Slot{}
		if err := json.Unmarshal([]byte(data), sl); err != nil {
			return nil, fmt.Errorf("list slots: %w", err)
		}
		out = append(out, sl)
	}
	sort.Slice(out, func(i, j int) bool { return zone.SlotLess(out[i], out[j]) })
	return out, rows.Err()
}

// Slot finds an applied slot by its name, permanent name or key.
func (s *DB) Slot(ctx context.Context, ref string) (*zone.Slot, error) {
	var data string
	// A variant's slot is also known by its permanent name, kept in the slot's data.
	err := s.QueryRowContext(ctx, `SELECT data FROM slots WHERE name = ? OR key = ? OR `+s.dialect.permanentName+` = ? LIMIT 1`, ref, ref, ref).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("slot %s: %w", ref, err)
	}
	sl := &zone.Slot{}
	if err := json.Unmarshal([]byte(data), sl); err != nil {
		return nil, fmt.Errorf("slot %s: %w", ref, err)
	}
	return sl, nil
}

// filterSQL builds "WHERE a = ? AND b = ?" from the non-empty values, in a stable order.
func filterSQL(values map[string]string, prefix string) (string, []any) {
	var conds []string
	var args []any
	for _, col := range []string{"zone", "pod", "role", "variant", "state"} {
		if v := values[col]; v != "" {
			conds = append(conds, prefix+col+" = ?")
			args = append(args, v)
		}
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// machineFilterSQL is a machine listing's join and WHERE clause: zone, pod,
// role and variant filter on the slot a machine is in.
func machineFilterSQL(f MachineFilter) (string, []any) {
	where, args := filterSQL(map[string]string{"zone": f.Zone, "pod": f.Pod, "role": f.Role, "variant": f.Variant}, "s.")
	join := ""
	if where != "" {
		// Only a filter on the slot needs it; without one, no row looks its slot up.
		join = " JOIN slots s ON s.key = m.slot_key"
	}
	if f.State != "" {
		if where == "" {
			where = " WHERE "
		} else {
			where += " AND "
		}
		where += "m.state = ?"
		args = append(args, string(f.State))
	}
	return join + where, args
}

// Machines lists machines; zone, pod, role and variant filter on the slot they are in.
func (s *DB) Machines(ctx context.Context, f MachineFilter) ([]*machine.Machine, error) {
	filter, args := machineFilterSQL(f)
	cols := "m." + strings.ReplaceAll(machineCols, ", ", ", m.")
	out, err := queryMachines(ctx, s, `SELECT `+cols+` FROM machines m`+filter, args...)
	if err != nil {
		return nil, fmt.Errorf("list machines: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return machineLess(sortKeyOf(out[i]), sortKeyOf(out[j])) })
	return out, nil
}

// pageChunk is how many machines one query of a page reads by id: a fixed
// number of placeholders, so that the statement is the same for every page.
const pageChunk = 100

// MachinesPage is one page of Machines: at most limit machines from offset,
// in Machines' order, and how many match in all. Every match's sort columns
// are read and sorted; whole rows are read only for the page's machines
// (BenchmarkMachineListing, a page from 100,000: 0.14 s, against 0.42 s for
// reading and decoding every row).
func (s *DB) MachinesPage(ctx context.Context, f MachineFilter, offset, limit int) ([]*machine.Machine, int, error) {
	keys, err := s.machineSortKeys(ctx, f)
	if err != nil {
		return nil, 0, fmt.Errorf("list machines: %w", err)
	}
	sort.Slice(keys, func(i, j int) bool { return machineLess(keys[i], keys[j]) })
	start := min(max(offset, 0), len(keys))
	page := keys[start : start+min(max(limit, 0), len(keys)-start)]
	byID := make(map[int64]*machine.Machine, len(page))
	q := `SELECT ` + machineCols + ` FROM machines WHERE id IN (?` + strings.Repeat(", ?", pageChunk-1) + `)`
	ids := make([]any, pageChunk)
	for start := 0; start < len(page); start += pageChunk {
		for i := range ids {
			ids[i] = int64(0) // no machine has id 0
			if start+i < len(page) {
				ids[i] = page[start+i].id
			}
		}
		ms, err := queryMachines(ctx, s, q, ids...)
		if err != nil {
			return nil, 0, fmt.Errorf("list machines: %w", err)
		}
		for _, m := range ms {
			byID[m.ID] = m
		}
	}
	out := make([]*machine.Machine, 0, len(page))
	for _, k := range page {
		// Machines are never deleted; one missing was written after the
		// sort columns were read, and is left to the next listing.
		if m := byID[k.id]; m != nil {
			out = append(out, m)
		}
	}
	return out, len(keys), nil
}

// machineSortKeys reads the sort columns of every machine that matches.
func (s *DB) machineSortKeys(ctx context.Context, f MachineFilter) ([]machineSortKey, error) {
	filter, args := machineFilterSQL(f)
	rows, err := s.QueryContext(ctx, `SELECT m.id, m.name, m.location, m.mac FROM machines m`+filter, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var keys []machineSortKey
	for rows.Next() {
		var k machineSortKey
		if err := rows.Scan(&k.id, &k.name, &k.location, &k.mac); err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, rows.Err()
}

// machineSortKey is what orders a machine listing.
type machineSortKey struct {
	id                  int64
	name, location, mac string
}

func sortKeyOf(m *machine.Machine) machineSortKey {
	return machineSortKey{id: m.ID, name: m.Name, location: m.Location, mac: m.MAC}
}

// machineLess lists named machines by name, then the rest by where they were
// seen, numbers by value (lab-compute-2 before lab-compute-10, swp2 before swp10).
func machineLess(a, b machineSortKey) bool {
	if (a.name == "") != (b.name == "") {
		return a.name != ""
	}
	if a.name != b.name {
		return zone.NaturalLess(a.name, b.name)
	}
	if a.location != b.location {
		return zone.NaturalLess(a.location, b.location)
	}
	if a.mac != b.mac {
		return a.mac < b.mac
	}
	return a.id < b.id
}

// Machine finds a machine by name (the one currently holding it), MAC or id.
func (s *DB) Machine(ctx context.Context, ref string) (*machine.Machine, error) {
	m, err := scanMachine(s.QueryRowContext(ctx, `SELECT `+machineCols+` FROM machines WHERE name = ? OR mac = ? ORDER BY slot_key IS NULL, id DESC LIMIT 1`, ref, strings.ToLower(ref)))
	if errors.Is(err, ErrNotFound) {
		if id, perr := strconv.ParseInt(ref, 10, 64); perr == nil {
			return machineBy(ctx, s, "id = ?", id)
		}
	}
	return m, err
}

// MachineInSlot is the machine standing in a slot.
func (s *DB) MachineInSlot(ctx context.Context, slotKey string) (*machine.Machine, error) {
	return machineBy(ctx, s, "slot_key = ?", slotKey)
}

// Timeline returns a machine's entries after afterID, oldest first.
func (s *DB) Timeline(ctx context.Context, machineID, afterID int64, limit int) ([]machine.Entry, error) {
	if limit <= 0 {
		limit = 1000
	}
	return s.entries(ctx, `machine_id = ? AND id > ?`, machineID, afterID, limit)
}

// entries lists timeline entries matching where (its arguments first, then
// the limit), oldest first.
func (s *DB) entries(ctx context.Context, where string, args ...any) ([]machine.Entry, error) {
	rows, err := s.QueryContext(ctx, `SELECT id, machine_id, at, actor, kind, from_state, to_state, reason FROM events WHERE `+where+` ORDER BY id LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("timeline: %w", err)
	}
	defer rows.Close()
	out := []machine.Entry{}
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// scanEntry reads a timeline row: id, machine_id, at, actor, kind, from_state, to_state, reason.
func scanEntry(rows *sql.Rows) (machine.Entry, error) {
	var e machine.Entry
	var at int64
	var from, to string
	if err := rows.Scan(&e.ID, &e.MachineID, &at, &e.Actor, &e.Kind, &from, &to, &e.Reason); err != nil {
		return e, fmt.Errorf("timeline: %w", err)
	}
	e.At, e.From, e.To = time.Unix(0, at).UTC(), machine.State(from), machine.State(to)
	return e, nil
}

// Leases lists every stored lease.
func (s *DB) Leases(ctx context.Context) ([]Lease, error) {
	rows, err := s.QueryContext(ctx, `SELECT addr, mac, slot_key, expires, state FROM leases ORDER BY addr`)
	if err != nil {
		return nil, fmt.Errorf("list leases: %w", err)
	}
	defer rows.Close()
	out := []Lease{}
	for rows.Next() {
		var l Lease
		var addr string
		var exp int64
		if err := rows.Scan(&addr, &l.MAC, &l.SlotKey, &exp, &l.State); err != nil {
			return nil, fmt.Errorf("list leases: %w", err)
		}
		if l.Addr, err = netip.ParseAddr(addr); err != nil {
			return nil, fmt.Errorf("lease %q: %w", addr, err)
		}
		l.Expires = time.Unix(0, exp).UTC()
		out = append(out, l)
	}
	return out, rows.Err()
}

// PutLeases writes a batch of leases in one transaction.
func (s *DB) PutLeases(ctx context.Context, leases []Lease) error {
	if len(leases) == 0 {
		return nil
	}
	return s.inTx(ctx, func(tx *sqlTx) error { return putLeases(ctx, tx, s.now(), leases) })
}

// putLeases writes leases; the database, not a server's memory, keeps an
// address to one holder: a lease held by another MAC is replaced only when it
// has expired or when both belong to the same slot (the slot's address passes
// to the machine now standing in it). Anything else is ErrAddressTaken, and
// the transaction writes nothing.
func putLeases(ctx context.Context, q querier, now time.Time, leases []Lease) error {
	for _, l := range leases {
		at := now
		if !l.At.IsZero() {
			at = l.At
		}
		res, err := q.ExecContext(ctx, `INSERT INTO leases (addr, mac, slot_key, expires, state) VALUES (?,?,?,?,?)
			ON CONFLICT(addr) DO UPDATE SET mac=excluded.mac, slot_key=excluded.slot_key, expires=excluded.expires, state=excluded.state
			WHERE leases.mac = excluded.mac OR leases.expires < ? OR (leases.slot_key <> '' AND leases.slot_key = excluded.slot_key)`,
			l.Addr.String(), l.MAC, l.SlotKey, l.Expires.UnixNano(), l.State, at.UnixNano())
		if err != nil {
			return fmt.Errorf("write lease %s: %w", l.Addr, err)
		}
		if n, err := res.RowsAffected(); err == nil && n == 0 {
			var holder string
			q.QueryRowContext(ctx, `SELECT mac FROM leases WHERE addr = ?`, l.Addr.String()).Scan(&holder)
			return &AddressTakenError{Addr: l.Addr, MAC: l.MAC, Holder: holder}
		}
	}
	return nil
}

// ErrAddressTaken is wrapped by the error of a lease write for an address
// another client holds.
var ErrAddressTaken = errors.New("address is leased to another client")

// AddressTakenError says which address and who holds it.
type AddressTakenError struct {
	Addr        netip.Addr
	MAC, Holder string
}

func (e *AddressTakenError) Error() string {
	return fmt.Sprintf("lease %s for %s: %v (%s)", e.Addr, e.MAC, ErrAddressTaken, e.Holder)
}

func (e *AddressTakenError) Unwrap() error { return ErrAddressTaken }

// ReserveIDs takes n consecutive ids of a kind ("machines") from the
// database and returns the first: a server hands them out from memory, and
// no two servers on one database get the same.
func (s *DB) ReserveIDs(ctx context.Context, kind string, n int) (int64, error) {
	var first int64
	err := s.inTx(ctx, func(tx *sqlTx) error {
		var err error
		first, err = reserveIDs(ctx, tx, kind, n)
		return err
	})
	return first, err
}

func reserveIDs(ctx context.Context, q querier, kind string, n int) (int64, error) {
	if n < 1 {
		return 0, fmt.Errorf("reserve %d %s ids", n, kind)
	}
	var next int64
	if err := q.QueryRowContext(ctx, `UPDATE id_blocks SET next = next + ? WHERE name = ? RETURNING next`, n, kind).Scan(&next); err != nil {
		return 0, fmt.Errorf("reserve %s ids: %w", kind, err)
	}
	return next - int64(n), nil
}

// DeleteLeases removes leases in one transaction.
func (s *DB) DeleteLeases(ctx context.Context, addrs []netip.Addr) error {
	if len(addrs) == 0 {
		return nil
	}
	return s.inTx(ctx, func(tx *sqlTx) error { return deleteLeases(ctx, tx, addrs) })
}

func deleteLeases(ctx context.Context, q querier, addrs []netip.Addr) error {
	for _, a := range addrs {
		if _, err := q.ExecContext(ctx, `DELETE FROM leases WHERE addr = ?`, a.String()); err != nil {
			return fmt.Errorf("delete lease %s: %w", a, err)
		}
	}
	return nil
}

// AllMachines returns every machine.
func (s *DB) AllMachines(ctx context.Context) ([]*machine.Machine, error) {
	out, err := queryMachines(ctx, s, `SELECT `+machineCols+` FROM machines ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("load machines: %w", err)
	}
	return out, nil
}

// queryMachines runs a query of machineCols and reads every row it returns.
func queryMachines(ctx context.Context, q querier, query string, args ...any) ([]*machine.Machine, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []*machine.Machine{}
	for rows.Next() {
		m, err := scanMachine(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

func addAudit(ctx context.Context, q querier, entries ...*AuditEntry) error {
	for _, e := range entries {
		id, err := insertID(ctx, q, `INSERT INTO audit (at, actor, action, target, outcome, request_id, revision, detail) VALUES (?,?,?,?,?,?,?,?)`,
			e.At.UnixNano(), e.Actor, e.Action, e.Target, e.Outcome, e.RequestID, e.Revision, e.Detail)
		if err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		e.ID = id
	}
	return nil
}

// AddAudit records one audit entry on its own.
func (s *DB) AddAudit(ctx context.Context, e *AuditEntry) error {
	return s.inTx(ctx, func(tx *sqlTx) error { return addAudit(ctx, tx, e) })
}

// Audit lists audit entries, oldest first.
func (s *DB) Audit(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	var conds []string
	var args []any
	for col, v := range map[string]string{"actor": f.Actor, "action": f.Action, "target": f.Target, "outcome": f.Outcome} {
		if v != "" {
			conds = append(conds, col+" = ?")
			args = append(args, v)
		}
	}
	if !f.Since.IsZero() {
		conds = append(conds, "at >= ?")
		args = append(args, f.Since.UnixNano())
	}
	if f.AfterID > 0 {
		conds = append(conds, "id > ?")
		args = append(args, f.AfterID)
	}
	where := ""
	if len(conds) > 0 {
		where = " WHERE " + strings.Join(conds, " AND ")
	}
	limit := f.Limit
	if limit <= 0 || limit > 10000 {
		limit = 1000
	}
	rows, err := s.QueryContext(ctx, `SELECT id, at, actor, action, target, outcome, request_id, revision, detail FROM audit`+where+` ORDER BY id LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	defer rows.Close()
	out := []AuditEntry{}
	for rows.Next() {
		var e AuditEntry
		var at int64
		if err := rows.Scan(&e.ID, &at, &e.Actor, &e.Action, &e.Target, &e.Outcome, &e.RequestID, &e.Revision, &e.Detail); err != nil {
			return nil, fmt.Errorf("audit: %w", err)
		}
		e.At = time.Unix(0, at).UTC()
		out = append(out, e)
	}
	return out, rows.Err()
}

// ErrExists is returned when a unique name is taken.
var ErrExists = errors.New("already exists")

// CreateToken stores a token (its hash) and its audit entry.
func (s *DB) CreateToken(ctx context.Context, t *Token, audit *AuditEntry) error {
	return s.inTx(ctx, func(tx *sqlTx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM tokens WHERE name = ?`, t.Name).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("token %q: %w", t.Name, ErrExists)
		}
		var exp int64
		if !t.Expires.IsZero() {
			exp = t.Expires.UnixNano()
		}
		id, err := insertID(ctx, tx, `INSERT INTO tokens (name, role, hash, created, expires, pod) VALUES (?,?,?,?,?,?)`, t.Name, t.Role, t.Hash, t.Created.UnixNano(), exp, t.Pod)
		if err != nil {
			return fmt.Errorf("create token: %w", err)
		}
		t.ID = id
		if audit != nil {
			return addAudit(ctx, tx, audit)
		}
		return nil
	})
}

// RevokeToken marks a token revoked, with its audit entry.
func (s *DB) RevokeToken(ctx context.Context, name string, audit *AuditEntry) error {
	return s.inTx(ctx, func(tx *sqlTx) error {
		res, err := tx.ExecContext(ctx, `UPDATE tokens SET revoked = ? WHERE name = ? AND revoked = ?`, true, name, false)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("token %q: %w", name, ErrNotFound)
		}
		if audit != nil {
			return addAudit(ctx, tx, audit)
		}
		return nil
	})
}

func scanToken(row interface{ Scan(...any) error }) (*Token, error) {
	var t Token
	var created, exp int64
	if err := row.Scan(&t.ID, &t.Name, &t.Role, &t.Hash, &created, &exp, &t.Revoked, &t.Pod); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	t.Created = time.Unix(0, created).UTC()
	if exp != 0 {
		t.Expires = time.Unix(0, exp).UTC()
	}
	return &t, nil
}

// TokenByHash finds a token by the hash of its secret.
func (s *DB) TokenByHash(ctx context.Context, hash string) (*Token, error) {
	return scanToken(s.QueryRowContext(ctx, `SELECT id, name, role, hash, created, expires, revoked, pod FROM tokens WHERE hash = ?`, hash))
}

// Tokens lists every token (without secrets).
func (s *DB) Tokens(ctx context.Context) ([]Token, error) {
	rows, err := s.QueryContext(ctx, `SELECT id, name, role, hash, created, expires, revoked, pod FROM tokens ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("tokens: %w", err)
	}
	defer rows.Close()
	out := []Token{}
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *t)
	}
	return out, rows.Err()
}
