// Package pgtest starts a real PostgreSQL server for tests, from Debian's
// packages: initdb and pg_ctl in a temporary directory, listening on a free
// loopback port. With CI=true a missing PostgreSQL fails the test; otherwise
// the test is skipped.
package pgtest

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
)

// Server is a PostgreSQL server started by a test.
type Server struct {
	Dir  string // data directory and socket directory
	Port int
	bin  string
	as   *user.User // who runs the server when the test runs as root (initdb refuses root)
	dbs  atomic.Int64
}

// bin finds PostgreSQL's server programs, preferring version 15.
func bin() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return strings.Contains(dirs[i], "/15/") && !strings.Contains(dirs[j], "/15/") })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("PostgreSQL server programs not found under /usr/lib/postgresql/*/bin (apt-get install postgresql-15; `make test` installs it)")
}

// Start starts a server that lives until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := New()
	if err != nil {
		Missing(t, err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Missing ends a test that needs PostgreSQL and could not start it: a
// failure with CI=true, a skip otherwise.
func Missing(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(err)
	}
	t.Skip(err)
}

// New starts a server; the caller stops it.
func New() (*Server, error) {
	b, err := bin()
	if err != nil {
		return nil, err
	}
	s := &Server{bin: b}
	if os.Geteuid() == 0 {
		if s.as, err = user.Lookup("postgres"); err != nil {
			return nil, fmt.Errorf("running as root, PostgreSQL needs its own user: %w (apt-get install postgresql-15 creates it)", err)
		}
	}
	if s.Dir, err = os.MkdirTemp("", "drover-pg-"); err != nil {
		return nil, err
	}
	if s.as != nil {
		uid, _ := strconv.Atoi(s.as.Uid)
		gid, _ := strconv.Atoi(s.as.Gid)
		if err := os.Chown(s.Dir, uid, gid); err != nil {
			return nil, err
		}
	}
	data := filepath.Join(s.Dir, "data")
	if out, err := s.run("initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"); err != nil {
		s.remove()
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	for try := 0; ; try++ {
		s.Port = freePort()
		opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -c unix_socket_directories=%s -c fsync=off -c max_connections=200", s.Port, s.Dir)
		out, err := s.run("pg_ctl", "-D", data, "-o", opts, "-l", filepath.Join(s.Dir, "log"), "-w", "-t", "60", "start")
		if err == nil {
			break
		}
		if try == 2 {
			log, _ := os.ReadFile(filepath.Join(s.Dir, "log"))
			s.remove()
			return nil, fmt.Errorf("pg_ctl start: %v: %s %s", err, out, log)
		}
	}
	return s, nil
}

func (s *Server) run(prog string, args ...string) ([]byte, error) {
	cmd := exec.Command(filepath.Join(s.bin, prog), args...)
	cmd.Dir = s.Dir
	if s.as != nil {
		uid, _ := strconv.Atoi(s.as.Uid)
		gid, _ := strconv.Atoi(s.as.Gid)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		cmd.Env = append(os.Environ(), "HOME="+s.Dir)
	}
	return cmd.CombinedOutput()
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 54329
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// URL is the address of a database on the server.
func (s *Server) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.Port, db)
}

// SocketURL is the address of a database through the server's Unix socket,
// which reaches it from inside a network namespace too.
func (s *Server) SocketURL(db string) string {
	return fmt.Sprintf("postgres://postgres@/%s?host=%s&port=%d&sslmode=disable", db, s.Dir, s.Port)
}

// NewDB creates an empty database and returns its URL.
func (s *Server) NewDB(t testing.TB) string {
	t.Helper()
	return s.URL(s.NewDatabase(t))
}

// NewDatabase creates an empty database and returns its name.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t%d", s.dbs.Add(1))
	db, err := sql.Open("pgx", s.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	return name
}

// Stop stops the server at once and removes its files.
func (s *Server) Stop() {
	s.run("pg_ctl", "-D", filepath.Join(s.Dir, "data"), "-m", "immediate", "-w", "stop")
	s.remove()
}

func (s *Server) remove() { os.RemoveAll(s.Dir) }
