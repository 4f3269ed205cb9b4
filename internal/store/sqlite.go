package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" driver
)

// migrations are applied in order, each once, each in its own transaction.
// Never edit a released migration; add a new one.
var sqliteMigrations = []string{
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
	// Machine ids come from the database in blocks, so that several servers
	// on one database never hand out the same one.
	8: `
CREATE TABLE id_blocks (
	name TEXT PRIMARY KEY,
	next INTEGER NOT NULL
);
INSERT INTO id_blocks (name, next) SELECT 'machines', COALESCE(MAX(id), 0) + 1 FROM machines;
`,
	// Several servers on one database divide its pods (see pods.go).
	9: `
CREATE TABLE pod_owners (
	pod      TEXT PRIMARY KEY,
	owner    TEXT NOT NULL DEFAULT '',
	epoch    INTEGER NOT NULL DEFAULT 0,
	expires  INTEGER NOT NULL DEFAULT 0,
	revision INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE controllers (
	name TEXT PRIMARY KEY,
	api  TEXT NOT NULL DEFAULT '',
	seen INTEGER NOT NULL
);
CREATE TABLE machine_ops (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	pod        TEXT NOT NULL,
	kind       TEXT NOT NULL,
	request    TEXT NOT NULL,
	created    INTEGER NOT NULL,
	done       BOOLEAN NOT NULL DEFAULT FALSE,
	result     TEXT NOT NULL DEFAULT '',
	error_kind TEXT NOT NULL DEFAULT '',
	error      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX machine_ops_open ON machine_ops(pod) WHERE NOT done;
`,
	// Pod agents: an agent token serves one pod (see agents.go).
	10: `
ALTER TABLE tokens ADD COLUMN pod TEXT NOT NULL DEFAULT '';
`,
	// Only the outbox's reader looks events up by kind, and only for
	// transitions: a partial index is not written for the other entries
	// (six of the eight a machine writes while it deploys).
	11: `
DROP INDEX events_kind;
CREATE INDEX events_transitions ON events(id) WHERE kind = 'transition';
`,
	// A machine is written several times while it deploys (its slot, its
	// install token, its phone-home), and SQLite rewrote its entry in an
	// index on state at every write, changed or not: 40 % of a machine's
	// write (BenchmarkPutMachine: 28 us with it, 17 us without). Listing
	// machines by state reads the table instead: a few states share every
	// machine, so the index saved little.
	12: `
DROP INDEX IF EXISTS machines_state;
`,
}

var sqliteDialect = &dialect{
	name:               "sqlite",
	rewritesSetIndexes: true,
	migrations:         sqliteMigrations,
	createMigrations:   `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`,
	permanentName:      `json_extract(data, '$.permanent_name')`,
	nowMillis:          `CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)`,
}

// OpenSQLite opens (creating if needed) a database file and migrates it to the
// current schema.
func OpenSQLite(ctx context.Context, path string) (*DB, error) {
	// temp_store(MEMORY): a statement that writes many rows (a group of
	// timeline entries) keeps its statement journal, which only undoes that
	// statement within its transaction, in memory rather than in a temporary
	// file written page by page (4 % of the samples of a saturated DHCP
	// profile were those writes). Crash recovery is the WAL's, unchanged.
	// wal_autocheckpoint(0): the checkpointer copies the WAL, off the
	// writer's path.
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_pragma=temp_store(MEMORY)&_pragma=wal_autocheckpoint(0)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	// One writer at a time is SQLite's model; a small pool serves concurrent readers in WAL mode.
	db.SetMaxOpenConns(4)
	s := &DB{db: db, dialect: sqliteDialect, path: path, now: time.Now}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	s.ckpt = startCheckpointer(db, checkpointEvery, walResetFrames)
	s.ckpt.committed() // what migrating wrote
	return s, nil
}

// lockFile is SQLite's writer lock: a lock file next to it, held
// with flock(2) so that the kernel releases it when the holder dies, kill -9
// included. The file says who holds it, for the next one's error message.
func (s *DB) lockFile(holder string) (func(), error) {
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
