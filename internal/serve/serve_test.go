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
