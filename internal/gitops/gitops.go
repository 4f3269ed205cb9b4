// Package gitops follows the git repository a design lives in: every new
// commit of the followed branch is checked out, validated and planned; zones
// marked auto_apply take it at once (with a rollout when machines need a
// reinstall), the others wait for an admin's approval. An invalid commit is
// recorded with its problems and never applied.
package gitops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/drover/drover/internal/api"
	"github.com/drover/drover/internal/rollout"
	"github.com/drover/drover/internal/store"
	"github.com/drover/drover/internal/zone"
)

// Commits is where followed commits are recorded.
type Commits interface {
	PutCommit(ctx context.Context, c *store.PendingCommit) error
	Commits(ctx context.Context) ([]store.PendingCommit, error)
}

// Starter starts rollouts.
type Starter interface {
	Start(ctx context.Context, q rollout.Request, actor string, audit store.AuditEntry) (*store.Rollout, rollout.Schedule, error)
}

// Config configures a Follower.
type Config struct {
	Repo     string // a local path or a URL git understands
	Branch   string // default main
	Path     string // the design's directory inside the repository; default its root
	Dir      string // where the clone and the checkouts are kept
	Interval time.Duration
	Commits  Commits
	// Applied is the design being served, or nil before the first apply.
	Applied func() *zone.Design
	// Apply makes a design current (recorded with the commit and the audit
	// entry) and returns once it is served.
	Apply func(ctx context.Context, d *zone.Design, commit string, audit *store.AuditEntry) (*store.Revision, *zone.Plan, error)
	// Check is what this server needs of a design beyond validity (BMC credentials).
	Check    func(*zone.Design) error
	Rollouts Starter // nil: no rollouts are started (before the server runs)
	Log      *slog.Logger
	Now      func() time.Time
}

// Follower follows one branch of one repository.
type Follower struct {
	cfg  Config
	mu   sync.Mutex // one sync or approval at a time
	repo *git.Repository
}

// New makes a follower.
func New(cfg Config) *Follower {
	if cfg.Branch == "" {
		cfg.Branch = "main"
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 30 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Path = strings.Trim(path.Clean("/"+filepath.ToSlash(cfg.Path)), "/")
	return &Follower{cfg: cfg}
}

// Run fetches every Interval until ctx ends; failures are logged and retried.
func (f *Follower) Run(ctx context.Context) error {
	t := time.NewTicker(f.cfg.Interval)
	defer t.Stop()
	var last string
	for {
		if err := f.Sync(ctx); err != nil && ctx.Err() == nil {
			if err.Error() != last {
				f.cfg.Log.Error("design repository not followed; still serving the last good revision", "repo", f.cfg.Repo, "err", err)
			}
			last = err.Error()
		} else {
			last = ""
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (f *Follower) open(ctx context.Context) error {
	if f.repo != nil {
		return nil
	}
	dir := filepath.Join(f.cfg.Dir, "repo.git")
	ref := plumbing.NewBranchReferenceName(f.cfg.Branch)
	r, err := git.PlainOpen(dir)
	if errors.Is(err, git.ErrRepositoryNotExists) {
		r, err = git.PlainCloneContext(ctx, dir, true, &git.CloneOptions{URL: f.cfg.Repo, ReferenceName: ref, SingleBranch: true})
	}
	if err != nil {
		return fmt.Errorf("clone %s (branch %s): %w", f.cfg.Repo, f.cfg.Branch, err)
	}
	f.repo = r
	return nil
}

// Sync fetches the branch once and handles its head commit if it is new.
func (f *Follower) Sync(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.open(ctx); err != nil {
		return err
	}
	spec := config.RefSpec(fmt.Sprintf("+refs/heads/%s:refs/heads/%s", f.cfg.Branch, f.cfg.Branch))
	err := f.repo.FetchContext(ctx, &git.FetchOptions{RemoteURL: f.cfg.Repo, RefSpecs: []config.RefSpec{spec}, Force: true})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return fmt.Errorf("fetch %s: %w", f.cfg.Repo, err)
	}
	ref, err := f.repo.Reference(plumbing.NewBranchReferenceName(f.cfg.Branch), true)
	if err != nil {
		return fmt.Errorf("branch %s of %s: %w", f.cfg.Branch, f.cfg.Repo, err)
	}
	head := ref.Hash().String()
	seen, err := f.cfg.Commits.Commits(ctx)
	if err != nil {
		return err
	}
	if len(seen) > 0 && seen[0].Commit == head {
		return nil
	}
	return f.handle(ctx, head, seen)
}

// handle checks out a new head commit, validates it and applies what may be applied.
func (f *Follower) handle(ctx context.Context, head string, seen []store.PendingCommit) error {
	c, err := f.repo.CommitObject(plumbing.NewHash(head))
	if err != nil {
		return err
	}
	pc := &store.PendingCommit{Commit: head, Author: fmt.Sprintf("%s <%s>", c.Author.Name, c.Author.Email),
		Message: firstLine(c.Message), When: c.Author.When.UTC(), Seen: f.cfg.Now().UTC()}
	pc.Dir, err = f.checkout(c)
	if err != nil {
		return err
	}
	// A newer commit carries everything an older pending one had.
	for _, old := range seen {
		if old.Status == store.CommitPending {
			old.Status = store.CommitSuperseded
			if err := f.cfg.Commits.PutCommit(ctx, &old); err != nil {
				return err
			}
		}
	}
	d, err := zone.Load(pc.Dir)
	if err == nil && f.cfg.Check != nil {
		err = f.cfg.Check(d)
	}
	if err != nil {
		pc.Status, pc.Problems = store.CommitInvalid, problems(err, pc.Dir)
		f.cfg.Log.Error("design commit is invalid and is not applied", "commit", short(head), "author", pc.Author, "problems", len(pc.Problems), "first", pc.Problems[0])
		return f.cfg.Commits.PutCommit(ctx, pc)
	}
	applied := f.cfg.Applied()
	auto := func(name string) bool { return applied == nil || autoApply(applied, d, name) }
	if err := f.applyZones(ctx, pc, d, auto, "gitops", ""); err != nil {
		return err
	}
	return f.cfg.Commits.PutCommit(ctx, pc)
}

// autoApply: a zone's auto_apply is read from the applied design when the
// zone is there, so that a commit cannot approve itself by setting it.
func autoApply(applied, next *zone.Design, name string) bool {
	if z := applied.Zone(name); z != nil {
		return z.Rollout.AutoApply
	}
	if z := next.Zone(name); z != nil {
		return z.Rollout.AutoApply
	}
	return false
}

// applyZones applies the zones take says of commit d (the others stay as
// applied), starts a rollout for their reinstalls, and records on pc what
// still waits for approval.
func (f *Follower) applyZones(ctx context.Context, pc *store.PendingCommit, d *zone.Design, take func(string) bool, actor, approver string) error {
	applied := f.cfg.Applied()
	composite, taken, err := compose(applied, d, take)
	if err != nil {
		pc.Status, pc.Problems = store.CommitInvalid, problems(err, pc.Dir)
		return nil
	}
	if applied == nil || composite.Hash != applied.Hash {
		detail := fmt.Sprintf("commit %s by %s: %s; zones %s", short(pc.Commit), pc.Author, pc.Message, strings.Join(taken, ", "))
		if approver != "" {
			detail += "; approved by " + approver
		}
		audit := &store.AuditEntry{At: f.cfg.Now(), Actor: actor, Action: "design-apply", Target: short(pc.Commit), Outcome: "ok", Detail: detail}
		rev, plan, err := f.cfg.Apply(ctx, composite, pc.Commit, audit)
		if err != nil {
			return fmt.Errorf("apply commit %s: %w", short(pc.Commit), err)
		}
		pc.Applied = append(pc.Applied, rev.ID)
		f.cfg.Log.Info("design commit applied", "commit", short(pc.Commit), "author", pc.Author, "zones", taken, "revision", rev.ID, "approver", approver)
		if reinstalls(plan) > 0 && f.cfg.Rollouts != nil {
			q := rollout.Request{FromPlan: true, Zones: taken, Source: "commit " + short(pc.Commit) + " (" + pc.Message + ")", Reason: detail}
			ro, _, err := f.cfg.Rollouts.Start(ctx, q, actor, store.AuditEntry{Detail: detail})
			switch {
			case errors.Is(err, rollout.ErrNothing):
			case err != nil:
				return fmt.Errorf("commit %s applied, but its rollout did not start: %w", short(pc.Commit), err)
			default:
				f.cfg.Log.Info("rollout started for the commit", "commit", short(pc.Commit), "rollout", ro.ID)
			}
		}
	}
	// What the full commit would still change is waiting for approval.
	now := f.cfg.Applied()
	if now == nil {
		now = composite
	}
	rest := zone.Diff(now.Slots, d.Slots)
	pc.Waiting = pc.Waiting[:0]
	for _, z := range d.Zones {
		if !take(z.Name) && !sameZone(now, d, z.Name) {
			pc.Waiting = append(pc.Waiting, z.Name)
		}
	}
	for _, z := range now.Zones {
		if d.Zone(z.Name) == nil && !take(z.Name) {
			pc.Waiting = append(pc.Waiting, z.Name)
		}
	}
	pc.Plan = nil
	pc.Status = store.CommitApplied
	if len(pc.Waiting) > 0 {
		pc.Status, pc.Plan = store.CommitPending, rest
		f.cfg.Log.Info("design commit waits for approval", "commit", short(pc.Commit), "zones", pc.Waiting)
	}
	return nil
}

// compose builds the design made of d's zones that take says, and the
// applied design's other zones.
func compose(applied, d *zone.Design, take func(string) bool) (*zone.Design, []string, error) {
	src := map[string][]byte{}
	var taken []string
	for _, z := range d.Zones {
		if take(z.Name) {
			src[z.Meta.At.File] = d.Source[z.Meta.At.File]
			taken = append(taken, z.Name)
		}
	}
	if applied != nil {
		for _, z := range applied.Zones {
			if !take(z.Name) {
				src[z.Meta.At.File] = applied.Source[z.Meta.At.File]
			}
		}
	}
	if len(src) == 0 {
		return nil, nil, errors.New("the commit leaves no zone to apply")
	}
	c, err := zone.Parse(src)
	return c, taken, err
}

// sameZone reports whether a zone's file reads the same in both designs.
func sameZone(a, b *zone.Design, name string) bool {
	za, zb := a.Zone(name), b.Zone(name)
	if za == nil || zb == nil {
		return za == zb
	}
	return string(a.Source[za.Meta.At.File]) == string(b.Source[zb.Meta.At.File]) &&
		slices.EqualFunc(slotsOf(a, name), slotsOf(b, name), func(x, y *zone.Slot) bool { return x.ProfileDigest == y.ProfileDigest })
}

func slotsOf(d *zone.Design, name string) []*zone.Slot {
	var out []*zone.Slot
	for _, s := range d.Slots {
		if s.Zone == name {
			out = append(out, s)
		}
	}
	return out
}

func reinstalls(p *zone.Plan) int {
	n := 0
	for _, c := range p.Changed {
		if c.Reinstall {
			n++
		}
	}
	return n
}

// Approve applies a pending commit's waiting zones (auto_apply zones keep
// what they follow), with the approver in the audit, and starts their rollout.
func (f *Follower) Approve(ctx context.Context, commit, approver, requestID string) (*store.PendingCommit, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cs, err := f.cfg.Commits.Commits(ctx)
	if err != nil {
		return nil, err
	}
	var pc *store.PendingCommit
	for i := range cs {
		if len(commit) >= 7 && strings.HasPrefix(cs[i].Commit, commit) {
			pc = &cs[i]
			break
		}
	}
	if pc == nil {
		return nil, fmt.Errorf("commit %q: %w (give at least 7 characters of a commit the follower saw)", commit, store.ErrNotFound)
	}
	if pc.Status != store.CommitPending {
		return nil, fmt.Errorf("commit %s is %s: %w", short(pc.Commit), pc.Status, api.ErrNotPending)
	}
	d, err := zone.Load(pc.Dir)
	if err == nil && f.cfg.Check != nil {
		err = f.cfg.Check(d)
	}
	if err != nil {
		return nil, fmt.Errorf("commit %s no longer loads from %s: %w", short(pc.Commit), pc.Dir, err)
	}
	waiting := slices.Clone(pc.Waiting)
	take := func(name string) bool { return slices.Contains(waiting, name) }
	if err := f.applyZones(ctx, pc, d, take, approver, approver); err != nil {
		return nil, err
	}
	pc.Approver = approver
	if err := f.cfg.Commits.PutCommit(ctx, pc); err != nil {
		return nil, err
	}
	return pc, nil
}

// checkout writes the commit's design directory to Dir/checkouts/COMMIT
// (kept: templates are rendered from there while its revision is served).
func (f *Follower) checkout(c *object.Commit) (string, error) {
	dir := filepath.Join(f.cfg.Dir, "checkouts", c.Hash.String())
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	tree, err := c.Tree()
	if err != nil {
		return "", err
	}
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	prefix := ""
	if f.cfg.Path != "" {
		prefix = f.cfg.Path + "/"
	}
	n := 0
	err = tree.Files().ForEach(func(file *object.File) error {
		rel, ok := strings.CutPrefix(file.Name, prefix)
		if !ok || !file.Mode.IsFile() {
			return nil
		}
		dst := filepath.Join(tmp, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		r, err := file.Reader()
		if err != nil {
			return err
		}
		defer r.Close()
		out, err := os.Create(dst)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, r); err != nil {
			out.Close()
			return err
		}
		n++
		return out.Close()
	})
	if err != nil {
		return "", fmt.Errorf("check out %s: %w", short(c.Hash.String()), err)
	}
	if n == 0 {
		os.MkdirAll(tmp, 0o755)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", err
	}
	return dir, nil
}

// problems lists a design's problems with file names relative to the
// repository's design directory, as its authors know them.
func problems(err error, dir string) []string {
	rel := func(s string) string { return strings.ReplaceAll(s, dir+string(filepath.Separator), "") }
	var ps zone.Problems
	if errors.As(err, &ps) {
		out := make([]string, len(ps))
		for i, p := range ps {
			out[i] = rel(p.Error())
		}
		return out
	}
	return []string{rel(err.Error())}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
