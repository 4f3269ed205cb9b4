package store

import (
	"context"
	"path/filepath"
	"time"

	"github.com/drover/drover/internal/zone"
)

// ApplyRequest is who applies a design, from where, and how it is audited.
type ApplyRequest struct {
	Design *zone.Design
	Dir    string // where the design was read, for its git commit
	Commit string // the git commit, when the caller knows it (the git follower)
	Actor  string
	At     time.Time   // defaults to now
	Audit  *AuditEntry // when set, recorded with the revision (its Revision is filled in)
}

// Apply is the one way a design becomes current, for the CLI, `serve
// --design` and the API alike: it records the revision (content hash, git
// commit, who, sources under absolute paths so that a server started
// elsewhere finds the templates next to them) with its slots and effects.
func Apply(ctx context.Context, st Store, r ApplyRequest) (*Revision, *zone.Plan, error) {
	d := r.Design
	sources := make(map[string][]byte, len(d.Source))
	for name, b := range d.Source {
		if abs, err := filepath.Abs(name); err == nil {
			name = abs
		}
		sources[name] = b
	}
	at := r.At
	if at.IsZero() {
		at = time.Now()
	}
	commit := r.Commit
	if commit == "" && r.Dir != "" {
		commit = zone.GitCommit(ctx, r.Dir)
	}
	rev := &Revision{
		Hash: d.Hash, Commit: commit, AppliedBy: r.Actor,
		AppliedAt: at.UTC(), Summary: d.String(), Sources: sources,
	}
	plan, err := st.ApplyDesign(ctx, rev, d.Slots, r.Audit)
	if err != nil {
		return nil, nil, err
	}
	return rev, plan, nil
}
