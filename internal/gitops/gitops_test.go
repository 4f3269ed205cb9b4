package gitops

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/drover/drover/internal/rollout"
	"github.com/drover/drover/internal/store"
	"github.com/drover/drover/internal/zone"
)

type repo struct {
	t   *testing.T
	dir string
}

func (r repo) git(args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", append([]string{"-C", r.dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=Ada", "GIT_AUTHOR_EMAIL=ada@example.org", "GIT_COMMITTER_NAME=Ada", "GIT_COMMITTER_EMAIL=ada@example.org")
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %v: %v %s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func (r repo) write(name, content string) {
	r.t.Helper()
	if err := os.WriteFile(filepath.Join(r.dir, "design", name), []byte(content), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

func (r repo) commit(msg string) string {
	r.git("add", "-A")
	r.git("commit", "-qm", msg)
	return r.git("rev-parse", "HEAD")
}

type applied struct {
	d       *zone.Design
	audits  []*store.AuditEntry
	starts  []rollout.Request
	commits []string
}

func (a *applied) Start(_ context.Context, q rollout.Request, _ string, _ store.AuditEntry) (*store.Rollout, rollout.Schedule, error) {
	a.starts = append(a.starts, q)
	return &store.Rollout{ID: int64(len(a.starts))}, rollout.Schedule{}, nil
}

func TestFollowerAppliesAutoZonesAndWaitsForApproval(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	r := repo{t: t, dir: t.TempDir()}
	r.git("init", "-q", "-b", "main")
	os.MkdirAll(filepath.Join(r.dir, "design"), 0o755)
	stage, _ := os.ReadFile("../rollout/testdata/stage.yaml")
	live, _ := os.ReadFile("../rollout/testdata/live.yaml")
	r.write("stage.yaml", string(stage))
	r.write("live.yaml", string(live))
	first := r.commit("two zones")

	st, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "drover.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a := &applied{}
	f := New(Config{Repo: r.dir, Path: "design", Dir: t.TempDir(), Commits: st, Rollouts: a,
		Applied: func() *zone.Design { return a.d },
		Apply: func(_ context.Context, d *zone.Design, commit string, audit *store.AuditEntry) (*store.Revision, *zone.Plan, error) {
			var cur []*zone.Slot
			if a.d != nil {
				cur = a.d.Slots
			}
			p := zone.Diff(cur, d.Slots)
			a.d, a.audits, a.commits = d, append(a.audits, audit), append(a.commits, commit)
			return &store.Revision{ID: int64(len(a.audits))}, p, nil
		}})
	ctx := context.Background()
	status := func() store.PendingCommit {
		cs, err := st.Commits(ctx)
		if err != nil || len(cs) == 0 {
			t.Fatalf("commits %v %v", cs, err)
		}
		return cs[0]
	}

	// Nothing applied yet: the first commit is applied whole.
	if err := f.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if c := status(); c.Commit != first || c.Status != store.CommitApplied || a.commits[0] != first || len(a.d.Zones) != 2 {
		t.Fatalf("first commit: %+v", c)
	}

	// A profile change in both zones: stage (auto_apply) takes it, live waits.
	for _, name := range []string{"stage.yaml", "live.yaml"} {
		b, _ := os.ReadFile(filepath.Join(r.dir, "design", name))
		r.write(name, strings.Replace(string(b), "p: {kernel: k}", "p: {kernel: k, args: image=2}", 1))
	}
	second := r.commit("new image")
	if err := f.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	c := status()
	if c.Commit != second || c.Status != store.CommitPending || !slices.Equal(c.Waiting, []string{"live"}) || c.Author != "Ada <ada@example.org>" {
		t.Fatalf("second commit: %+v", c)
	}
	if len(a.starts) != 1 || !slices.Equal(a.starts[0].Zones, []string{"stage"}) || !a.starts[0].FromPlan {
		t.Fatalf("rollouts %+v", a.starts)
	}
	if a.d.Zone("live").Profile("p").Args != "" || a.d.Zone("stage").Profile("p").Args != "image=2" {
		t.Fatal("the applied design does not hold stage's change alone")
	}
	if c.Plan == nil || len(c.Plan.Changed) != 7 {
		t.Errorf("the waiting plan %+v", c.Plan)
	}

	// An invalid commit is recorded with its problems and never applied.
	r.write("live.yaml", strings.Replace(string(live), "environment: prod", "environment: production", 1))
	r.commit("typo")
	if err := f.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if c := status(); c.Status != store.CommitInvalid || len(c.Problems) == 0 || !strings.HasPrefix(c.Problems[0], "live.yaml:2:14: environment") {
		t.Fatalf("invalid commit: %+v", c)
	}
	if len(a.audits) != 2 {
		t.Fatalf("the invalid commit was applied: %d applies", len(a.audits))
	}
	if _, err := f.Approve(ctx, second[:8], "bob", ""); err == nil || !strings.Contains(err.Error(), "superseded") {
		t.Fatalf("approving a superseded commit: %v", err)
	}

	// Fixed again: live waits; its approval applies it and starts its rollout.
	r.write("live.yaml", strings.Replace(string(live), "p: {kernel: k}", "p: {kernel: k, args: image=2}", 1))
	fixed := r.commit("fixed")
	if err := f.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if c := status(); c.Status != store.CommitPending {
		t.Fatalf("fixed commit: %+v", c)
	}
	pc, err := f.Approve(ctx, fixed[:10], "bob", "")
	if err != nil {
		t.Fatal(err)
	}
	if pc.Status != store.CommitApplied || pc.Approver != "bob" || a.d.Zone("live").Profile("p").Args != "image=2" {
		t.Fatalf("approved: %+v", pc)
	}
	last := a.audits[len(a.audits)-1]
	if last.Actor != "bob" || !strings.Contains(last.Detail, "approved by bob") || !strings.Contains(last.Detail, "Ada") || a.commits[len(a.commits)-1] != fixed {
		t.Errorf("audit %+v", last)
	}
	if len(a.starts) != 2 || !slices.Equal(a.starts[1].Zones, []string{"live"}) {
		t.Errorf("rollouts %+v", a.starts)
	}
}
