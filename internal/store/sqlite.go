package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" driver

	"github.com/drover/drover/internal/machine"
	"github.com/drover/drover/internal/zone"
)

// migrations are applied in order, each once, each in its own transaction.
// Never edit a released migration; add a new one.
var migrations = []string{
	1: `
CREATE TABLE revisions (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	hash       TEXT NOT NULL,
	git_commit TEXT NOT NULL DEFAULT '',
	applied_by TEXT NOT NULL,
	applied_at INTEGER NOT NULL,
	summary    TEXT NOT NULL,
	sources    TEXT NOT NULL
);
CREATE TABLE slots (
	key     TEXT PRIMARY KEY,
	zone    TEXT NOT NULL,
	pod     TEXT NOT NULL,
	role    TEXT NOT NULL,
	variant TEXT NOT NULL,
	name    TEXT NOT NULL UNIQUE,
	data    TEXT NOT NULL
);
CREATE INDEX slots_zone_pod ON slots(zone, pod);
CREATE TABLE machines (
	id              INTEGER PRIMARY KEY AUTOINCREMENT,
	mac             TEXT NOT NULL UNIQUE,
	slot_key        TEXT UNIQUE,
	name            TEXT NOT NULL DEFAULT '',
	state           TEXT NOT NULL,
	state_since     INTEGER NOT NULL,
	deadline        INTEGER NOT NULL DEFAULT 0,
	maintenance     TEXT NOT NULL DEFAULT '',
	needs_reinstall INTEGER NOT NULL DEFAULT 0,
	location        TEXT NOT NULL DEFAULT '',
	facts           TEXT NOT NULL DEFAULT '',
	created         INTEGER NOT NULL
);
CREATE INDEX machines_name ON machines(name);
CREATE INDEX machines_state ON machines(state);
CREATE TABLE events (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	machine_id INTEGER NOT NULL REFERENCES machines(id),
	at         INTEGER NOT NULL,
	actor      TEXT NOT NULL,
	kind       TEXT NOT NULL,
	from_state TEXT NOT NULL DEFAULT '',
	to_state   TEXT NOT NULL DEFAULT '',
	reason     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX events_machine ON events(machine_id, id);
CREATE TABLE leases (
	addr     TEXT PRIMARY KEY,
	mac      TEXT NOT NULL,
	slot_key TEXT NOT NULL DEFAULT '',
	expires  INTEGER NOT NULL,
	state    TEXT NOT NULL
);
`,
	2: `
ALTER TABLE machines ADD COLUMN install_token TEXT NOT NULL DEFAULT '';
`,
	3: `
CREATE TABLE tokens (
	id      INTEGER PRIMARY KEY AUTOINCREMENT,
	name    TEXT NOT NULL UNIQUE,
	role    TEXT NOT NULL,
	hash    TEXT NOT NULL UNIQUE,
	created INTEGER NOT NULL,
	expires INTEGER NOT NULL DEFAULT 0,
	revoked INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE audit (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	at         INTEGER NOT NULL,
	actor      TEXT NOT NULL,
	action     TEXT NOT NULL,
	target     TEXT NOT NULL DEFAULT '',
	outcome    TEXT NOT NULL,
	request_id TEXT NOT NULL DEFAULT '',
	revision   INTEGER NOT NULL DEFAULT 0,
	detail     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_at ON audit(at);
`,
	// The fleet is the one writer of machines: a revision records what it does
	// to machines (effects) and the fleet carries that out, recording in
	// fleet_state which revision the machine rows reflect. Databases from before
	// this migration had their machines updated by the apply itself.
	4: `
ALTER TABLE revisions ADD COLUMN effects TEXT NOT NULL DEFAULT '[]';
CREATE TABLE fleet_state (
	id       INTEGER PRIMARY KEY CHECK (id = 1),
	revision INTEGER NOT NULL
);
INSERT INTO fleet_state (id, revision) SELECT 1, COALESCE(MAX(id), 0) FROM revisions;
`,
	// Rollouts (written by the rollout runner) and the commits a git follower saw.
	5: `
CREATE TABLE rollouts (
	id      INTEGER PRIMARY KEY AUTOINCREMENT,
	created INTEGER NOT NULL,
	state   TEXT NOT NULL,
	data    TEXT NOT NULL
);
CREATE INDEX rollouts_state ON rollouts(state);
CREATE TABLE rollout_machines (
	rollout_id INTEGER NOT NULL REFERENCES rollouts(id),
	slot_key   TEXT NOT NULL,
	seq        INTEGER NOT NULL,
	phase      TEXT NOT NULL,
	data       TEXT NOT NULL,
	PRIMARY KEY (rollout_id, slot_key)
);
CREATE TABLE commits (
	hash   TEXT PRIMARY KEY,
	seen   INTEGER NOT NULL,
	status TEXT NOT NULL,
	data   TEXT NOT NULL
);
`,
	// Real installs: the token an installed system phones home booted with,
	// and the artifact catalogue (versions by checksum, channels pointing at them).
	6: `
ALTER TABLE machines ADD COLUMN boot_token TEXT NOT NULL DEFAULT '';
CREATE TABLE artifacts (
	name     TEXT NOT NULL,
	version  TEXT NOT NULL,
	sha256   TEXT NOT NULL,
	size     INTEGER NOT NULL,
	format   TEXT NOT NULL,
	disk     INTEGER NOT NULL,
	added    INTEGER NOT NULL,
	added_by TEXT NOT NULL,
	PRIMARY KEY (name, version)
);
CREATE TABLE artifact_channels (
	name    TEXT NOT NULL,
	channel TEXT NOT NULL,
	version TEXT NOT NULL,
	updated INTEGER NOT NULL,
	PRIMARY KEY (name, channel),
	FOREIGN KEY (name, version) REFERENCES artifacts(name, version)
);
`,
	// How far each event consumer (webhook, Alertmanager) has delivered the
	// timeline's transitions: the timeline is the outbox, written in the
	// transition's own transaction.
	7: `
CREATE TABLE event_cursors (
	name       TEXT PRIMARY KEY,
	after_id   INTEGER NOT NULL,
	updated    INTEGER NOT NULL,
	last_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX events_kind ON events(kind, id);
`,
}

// SQLite is the embedded store.
type SQLite struct {
	db   *sql.DB
	path string
	now  func() time.Time
}

var _ Store = (*SQLite)(nil)

// OpenSQLite opens (creating if needed) a database file and migrates it to the
// current schema.
func OpenSQLite(ctx context.Context, path string) (*SQLite, error) {
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	// One writer at a time is SQLite's model; a small pool serves concurrent readers in WAL mode.
	db.SetMaxOpenConns(4)
	s := &SQLite{db: db, path: path, now: time.Now}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return s, nil
}

// Close closes the database.
func (s *SQLite) Close() error { return s.db.Close() }

func (s *SQLite) migrate(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var have int
	if err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if have > len(migrations)-1 {
		return fmt.Errorf("database schema version %d is newer than this drover knows (%d): upgrade drover", have, len(migrations)-1)
	}
	for v := have + 1; v < len(migrations); v++ {
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations(version, applied_at) VALUES (?, ?)`, v, s.now().UnixNano())
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate to schema %d: %w", v, err)
		}
	}
	return nil
}

func (s *SQLite) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// Update runs fn in one transaction.
func (s *SQLite) Update(ctx context.Context, fn func(Tx) error) error {
	return s.inTx(ctx, func(tx *sql.Tx) error { return fn(&sqliteTx{tx: tx, stmts: map[string]*sql.Stmt{}}) })
}

// querier is what both *sql.DB and *sql.Tx offer.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// sqliteTx prepares each statement once per transaction: a group-commit batch
// runs the same few statements thousands of times, and SQLite's parser was the
// largest cost in a CPU profile of drover under DHCP load.
type sqliteTx struct {
	tx    *sql.Tx
	stmts map[string]*sql.Stmt
}

func (t *sqliteTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st := t.stmts[query]
	if st == nil {
		var err error
		if st, err = t.tx.PrepareContext(ctx, query); err != nil {
			return nil, err
		}
		t.stmts[query] = st
	}
	return st.ExecContext(ctx, args...)
}

func (t *sqliteTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return t.tx.QueryContext(ctx, query, args...)
}

func (t *sqliteTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return t.tx.QueryRowContext(ctx, query, args...)
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

func (t *sqliteTx) MachineByID(ctx context.Context, id int64) (*machine.Machine, error) {
	return machineBy(ctx, t, "id = ?", id)
}

func (t *sqliteTx) MachineByMAC(ctx context.Context, mac string) (*machine.Machine, error) {
	return machineBy(ctx, t, "mac = ?", mac)
}

func (t *sqliteTx) MachineBySlot(ctx context.Context, key string) (*machine.Machine, error) {
	return machineBy(ctx, t, "slot_key = ?", key)
}

func (t *sqliteTx) PutMachine(ctx context.Context, m *machine.Machine) error {
	return putMachine(ctx, t, m)
}

func putMachine(ctx context.Context, q querier, m *machine.Machine) error {
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
	args := []any{m.MAC, slot, m.Name, string(m.State), m.StateSince.UnixNano(), deadline, maint, m.NeedsReinstall, m.Location, facts, m.Created.UnixNano(), m.InstallTokenHash, m.BootTokenHash}
	if m.ID == 0 {
		res, err := q.ExecContext(ctx, `INSERT INTO machines (mac, slot_key, name, state, state_since, deadline, maintenance, needs_reinstall, location, facts, created, install_token, boot_token) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)`, args...)
		if err != nil {
			return fmt.Errorf("insert machine %s: %w", m.Label(), err)
		}
		m.ID, err = res.LastInsertId()
		return err
	}
	// An ID chosen by the caller (the server allocates IDs in memory) is inserted or updated.
	_, err := q.ExecContext(ctx, `INSERT INTO machines (id, mac, slot_key, name, state, state_since, deadline, maintenance, needs_reinstall, location, facts, created, install_token, boot_token) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)
		ON CONFLICT(id) DO UPDATE SET mac=excluded.mac, slot_key=excluded.slot_key, name=excluded.name, state=excluded.state, state_since=excluded.state_since,
		deadline=excluded.deadline, maintenance=excluded.maintenance, needs_reinstall=excluded.needs_reinstall, location=excluded.location, facts=excluded.facts, install_token=excluded.install_token, boot_token=excluded.boot_token`, append([]any{m.ID}, args...)...)
	if err != nil {
		return fmt.Errorf("write machine %s: %w", m.Label(), err)
	}
	return nil
}

func (t *sqliteTx) PutLeases(ctx context.Context, leases ...Lease) error {
	return putLeases(ctx, t, leases)
}

func (t *sqliteTx) DeleteLeases(ctx context.Context, addrs ...netip.Addr) error {
	return deleteLeases(ctx, t, addrs)
}

func (t *sqliteTx) AddAudit(ctx context.Context, entries ...*AuditEntry) error {
	return addAudit(ctx, t, entries...)
}

func (t *sqliteTx) AddEntries(ctx context.Context, entries ...*machine.Entry) error {
	return addEntries(ctx, t, entries...)
}

func addEntries(ctx context.Context, q querier, entries ...*machine.Entry) error {
	for _, e := range entries {
		if e.MachineID == 0 {
			return fmt.Errorf("timeline entry %q has no machine", e.Kind)
		}
		res, err := q.ExecContext(ctx, `INSERT INTO events (machine_id, at, actor, kind, from_state, to_state, reason) VALUES (?,?,?,?,?,?,?)`,
			e.MachineID, e.At.UnixNano(), e.Actor, e.Kind, string(e.From), string(e.To), e.Reason)
		if err != nil {
			return fmt.Errorf("add timeline entry: %w", err)
		}
		if e.ID, err = res.LastInsertId(); err != nil {
			return err
		}
	}
	return nil
}

// CurrentRevision returns the last applied design, or ErrNotFound.
func (s *SQLite) CurrentRevision(ctx context.Context) (*Revision, error) {
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
func (s *SQLite) LatestRevisionID(ctx context.Context) (int64, error) {
	var id int64
	if err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM revisions`).Scan(&id); err != nil {
		return 0, fmt.Errorf("latest revision: %w", err)
	}
	return id, nil
}

// Revisions lists applied designs, newest first, without their sources.
func (s *SQLite) Revisions(ctx context.Context) ([]Revision, error) { return s.revisions(ctx, false) }

func (s *SQLite) revisions(ctx context.Context, latestWithSources bool) ([]Revision, error) {
	q := `SELECT id, hash, git_commit, applied_by, applied_at, summary, '', '[]' FROM revisions ORDER BY id DESC`
	if latestWithSources {
		q = `SELECT id, hash, git_commit, applied_by, applied_at, summary, sources, '[]' FROM revisions ORDER BY id DESC LIMIT 1`
	}
	return s.queryRevisions(ctx, q)
}

// queryRevisions runs a query for id, hash, git_commit, applied_by,
// applied_at, summary, sources (” to skip) and effects.
func (s *SQLite) queryRevisions(ctx context.Context, q string) ([]Revision, error) {
	rows, err := s.db.QueryContext(ctx, q)
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
func (s *SQLite) ApplyDesign(ctx context.Context, rev *Revision, slots []*zone.Slot, audit *AuditEntry) (*zone.Plan, error) {
	var plan *zone.Plan
	err := s.inTx(ctx, func(tx *sql.Tx) error {
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
			if _, err := tx.ExecContext(ctx, `UPDATE slots SET name = ? WHERE key = ?`, "\x00"+ch.Key, ch.Key); err != nil {
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
		res, err := tx.ExecContext(ctx, `INSERT INTO revisions (hash, git_commit, applied_by, applied_at, summary, sources, effects) VALUES (?,?,?,?,?,?,?)`,
			rev.Hash, rev.Commit, rev.AppliedBy, rev.AppliedAt.UnixNano(), rev.Summary, string(src), string(effects))
		if err != nil {
			return fmt.Errorf("record revision: %w", err)
		}
		if rev.ID, err = res.LastInsertId(); err != nil {
			return err
		}
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
func (s *SQLite) PendingRevisions(ctx context.Context) ([]Revision, error) {
	return s.queryRevisions(ctx, `SELECT id, hash, git_commit, applied_by, applied_at, summary, '', effects FROM revisions
		WHERE id > (SELECT revision FROM fleet_state WHERE id = 1) ORDER BY id`)
}

// MachinesRevision is the revision whose effects the machine rows reflect.
func (s *SQLite) MachinesRevision(ctx context.Context) (int64, error) {
	var id int64
	if err := s.db.QueryRowContext(ctx, `SELECT revision FROM fleet_state WHERE id = 1`).Scan(&id); err != nil {
		return 0, fmt.Errorf("machines revision: %w", err)
	}
	return id, nil
}

func (t *sqliteTx) SetMachinesRevision(ctx context.Context, id int64) error {
	if _, err := t.ExecContext(ctx, `UPDATE fleet_state SET revision = ? WHERE id = 1 AND revision < ?`, id, id); err != nil {
		return fmt.Errorf("record machines revision %d: %w", id, err)
	}
	return nil
}

// LockWriter takes the database's writer lock: a lock file next to it, held
// with flock(2) so that the kernel releases it when the holder dies, kill -9
// included. The file says who holds it, for the next one's error message.
func (s *SQLite) LockWriter(holder string) (func(), error) {
	path := s.path + ".lock"
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("writer lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			who, _ := os.ReadFile(path)
			return nil, &WriterBusyError{Lock: path, Holder: strings.TrimSpace(string(who))}
		}
		return nil, fmt.Errorf("writer lock %s: %w", path, err)
	}
	f.Truncate(0)
	fmt.Fprintf(f, "%s (pid %d)\n", holder, os.Getpid())
	return func() { f.Close() }, nil
}

// Slots lists applied slots.
func (s *SQLite) Slots(ctx context.Context, f SlotFilter) ([]*zone.Slot, error) {
	return listSlots(ctx, s.db, f)
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
func (s *SQLite) Slot(ctx context.Context, ref string) (*zone.Slot, error) {
	var data string
	// A variant's slot is also known by its permanent name, kept in the slot's data.
	err := s.db.QueryRowContext(ctx, `SELECT data FROM slots WHERE name = ? OR key = ? OR json_extract(data, '$.permanent_name') = ? LIMIT 1`, ref, ref, ref).Scan(&data)
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

// Machines lists machines; zone, pod, role and variant filter on the slot they are in.
func (s *SQLite) Machines(ctx context.Context, f MachineFilter) ([]*machine.Machine, error) {
	where, args := filterSQL(map[string]string{"zone": f.Zone, "pod": f.Pod, "role": f.Role, "variant": f.Variant}, "s.")
	if f.State != "" {
		if where == "" {
			where = " WHERE "
		} else {
			where += " AND "
		}
		where += "m.state = ?"
		args = append(args, string(f.State))
	}
	join := " LEFT JOIN slots s ON s.key = m.slot_key"
	cols := "m." + strings.ReplaceAll(machineCols, ", ", ", m.")
	rows, err := s.db.QueryContext(ctx, `SELECT `+cols+` FROM machines m`+join+where, args...)
	if err != nil {
		return nil, fmt.Errorf("list machines: %w", err)
	}
	defer rows.Close()
	out := []*machine.Machine{}
	for rows.Next() {
		m, err := scanMachine(rows)
		if err != nil {
			return nil, fmt.Errorf("list machines: %w", err)
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return machineLess(out[i], out[j]) })
	return out, rows.Err()
}

// machineLess lists named machines by name, then the rest by where they were
// seen, numbers by value (lab-compute-2 before lab-compute-10, swp2 before swp10).
func machineLess(a, b *machine.Machine) bool {
	if (a.Name == "") != (b.Name == "") {
		return a.Name != ""
	}
	if a.Name != b.Name {
		return zone.NaturalLess(a.Name, b.Name)
	}
	if a.Location != b.Location {
		return zone.NaturalLess(a.Location, b.Location)
	}
	return a.MAC < b.MAC
}

// Machine finds a machine by name (the one currently holding it), MAC or id.
func (s *SQLite) Machine(ctx context.Context, ref string) (*machine.Machine, error) {
	m, err := scanMachine(s.db.QueryRowContext(ctx, `SELECT `+machineCols+` FROM machines WHERE name = ? OR mac = ? ORDER BY slot_key IS NULL, id DESC LIMIT 1`, ref, strings.ToLower(ref)))
	if errors.Is(err, ErrNotFound) {
		if id, perr := strconv.ParseInt(ref, 10, 64); perr == nil {
			return machineBy(ctx, s.db, "id = ?", id)
		}
	}
	return m, err
}

// MachineInSlot is the machine standing in a slot.
func (s *SQLite) MachineInSlot(ctx context.Context, slotKey string) (*machine.Machine, error) {
	return machineBy(ctx, s.db, "slot_key = ?", slotKey)
}

// Timeline returns a machine's entries after afterID, oldest first.
func (s *SQLite) Timeline(ctx context.Context, machineID, afterID int64, limit int) ([]machine.Entry, error) {
	if limit <= 0 {
		limit = 1000
	}
	rows, err := s.db.QueryContext(ctx, `SELECT id, machine_id, at, actor, kind, from_state, to_state, reason FROM events WHERE machine_id = ? AND id > ? ORDER BY id LIMIT ?`, machineID, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("timeline: %w", err)
	}
	defer rows.Close()
	out := []machine.Entry{}
	for rows.Next() {
		var e machine.Entry
		var at int64
		var from, to string
		if err := rows.Scan(&e.ID, &e.MachineID, &at, &e.Actor, &e.Kind, &from, &to, &e.Reason); err != nil {
			return nil, fmt.Errorf("timeline: %w", err)
		}
		e.At, e.From, e.To = time.Unix(0, at).UTC(), machine.State(from), machine.State(to)
		out = append(out, e)
	}
	return out, rows.Err()
}

// Leases lists every stored lease.
func (s *SQLite) Leases(ctx context.Context) ([]Lease, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT addr, mac, slot_key, expires, state FROM leases ORDER BY addr`)
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
func (s *SQLite) PutLeases(ctx context.Context, leases []Lease) error {
	if len(leases) == 0 {
		return nil
	}
	return s.inTx(ctx, func(tx *sql.Tx) error { return putLeases(ctx, tx, leases) })
}

func putLeases(ctx context.Context, q querier, leases []Lease) error {
	for _, l := range leases {
		_, err := q.ExecContext(ctx, `INSERT INTO leases (addr, mac, slot_key, expires, state) VALUES (?,?,?,?,?)
			ON CONFLICT(addr) DO UPDATE SET mac=excluded.mac, slot_key=excluded.slot_key, expires=excluded.expires, state=excluded.state`,
			l.Addr.String(), l.MAC, l.SlotKey, l.Expires.UnixNano(), l.State)
		if err != nil {
			return fmt.Errorf("write lease %s: %w", l.Addr, err)
		}
	}
	return nil
}

// DeleteLeases removes leases in one transaction.
func (s *SQLite) DeleteLeases(ctx context.Context, addrs []netip.Addr) error {
	if len(addrs) == 0 {
		return nil
	}
	return s.inTx(ctx, func(tx *sql.Tx) error { return deleteLeases(ctx, tx, addrs) })
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
func (s *SQLite) AllMachines(ctx context.Context) ([]*machine.Machine, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+machineCols+` FROM machines ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("load machines: %w", err)
	}
	defer rows.Close()
	out := []*machine.Machine{}
	for rows.Next() {
		m, err := scanMachine(rows)
		if err != nil {
			return nil, fmt.Errorf("load machines: %w", err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

func addAudit(ctx context.Context, q querier, entries ...*AuditEntry) error {
	for _, e := range entries {
		res, err := q.ExecContext(ctx, `INSERT INTO audit (at, actor, action, target, outcome, request_id, revision, detail) VALUES (?,?,?,?,?,?,?,?)`,
			e.At.UnixNano(), e.Actor, e.Action, e.Target, e.Outcome, e.RequestID, e.Revision, e.Detail)
		if err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		if e.ID, err = res.LastInsertId(); err != nil {
			return err
		}
	}
	return nil
}

// AddAudit records one audit entry on its own.
func (s *SQLite) AddAudit(ctx context.Context, e *AuditEntry) error {
	return s.inTx(ctx, func(tx *sql.Tx) error { return addAudit(ctx, tx, e) })
}

// Audit lists audit entries, oldest first.
func (s *SQLite) Audit(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
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
	rows, err := s.db.QueryContext(ctx, `SELECT id, at, actor, action, target, outcome, request_id, revision, detail FROM audit`+where+` ORDER BY id LIMIT ?`, append(args, limit)...)
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
func (s *SQLite) CreateToken(ctx context.Context, t *Token, audit *AuditEntry) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
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
		res, err := tx.ExecContext(ctx, `INSERT INTO tokens (name, role, hash, created, expires) VALUES (?,?,?,?,?)`, t.Name, t.Role, t.Hash, t.Created.UnixNano(), exp)
		if err != nil {
			return fmt.Errorf("create token: %w", err)
		}
		if t.ID, err = res.LastInsertId(); err != nil {
			return err
		}
		if audit != nil {
			return addAudit(ctx, tx, audit)
		}
		return nil
	})
}

// RevokeToken marks a token revoked, with its audit entry.
func (s *SQLite) RevokeToken(ctx context.Context, name string, audit *AuditEntry) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE tokens SET revoked = 1 WHERE name = ? AND revoked = 0`, name)
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
	if err := row.Scan(&t.ID, &t.Name, &t.Role, &t.Hash, &created, &exp, &t.Revoked); err != nil {
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
func (s *SQLite) TokenByHash(ctx context.Context, hash string) (*Token, error) {
	return scanToken(s.db.QueryRowContext(ctx, `SELECT id, name, role, hash, created, expires, revoked FROM tokens WHERE hash = ?`, hash))
}

// Tokens lists every token (without secrets).
func (s *SQLite) Tokens(ctx context.Context) ([]Token, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, name, role, hash, created, expires, revoked FROM tokens ORDER BY id`)
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
