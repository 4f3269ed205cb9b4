package serve

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drover/drover/internal/api"
	"github.com/drover/drover/internal/secret"
	"github.com/drover/drover/internal/store"
)

func TestFirstAdminToken(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.OpenSQLite(ctx, filepath.Join(dir, "d.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var logs strings.Builder
	log := slog.New(slog.NewTextHandler(&logs, nil))
	path := filepath.Join(dir, "admin.token")
	if err := firstAdminToken(ctx, st, path, log); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file %v mode %v", err, fi.Mode())
	}
	b, _ := os.ReadFile(path)
	token := strings.TrimSpace(string(b))
	tok, err := st.TokenByHash(ctx, secret.Hash(token))
	if err != nil || tok.Role != api.RoleAdmin {
		t.Fatalf("token %+v %v", tok, err)
	}
	if strings.Contains(logs.String(), token) || !strings.Contains(logs.String(), path) {
		t.Errorf("log %q: must say where, never the secret", logs.String())
	}
	if err := firstAdminToken(ctx, st, path+".2", log); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + ".2"); err == nil {
		t.Error("a second admin token was made with tokens present")
	}
	if es, _ := st.Audit(ctx, store.AuditFilter{Action: "token-create"}); len(es) != 1 {
		t.Errorf("audit %+v", es)
	}
}

// Servers sharing a new database may start together with one state
// directory: one token is created, and the file holds that one.
func TestFirstAdminTokenStartingTogether(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var stores []*store.DB
	for range 2 {
		st, err := store.OpenSQLite(ctx, filepath.Join(dir, "d.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		stores = append(stores, st)
	}
	path := filepath.Join(dir, "admin.token")
	errs := make(chan error, len(stores))
	for _, st := range stores {
		go func() { errs <- firstAdminToken(ctx, st, path, slog.New(slog.DiscardHandler)) }()
	}
	for range stores {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := stores[0].Tokens(ctx)
	if err != nil || len(ts) != 1 || ts[0].Hash != secret.Hash(strings.TrimSpace(string(b))) {
		t.Fatalf("tokens %+v %v; the file does not hold the created one", ts, err)
	}
	if left, _ := filepath.Glob(path + ".*"); len(left) != 0 {
		t.Fatalf("left behind: %v", left)
	}
}
