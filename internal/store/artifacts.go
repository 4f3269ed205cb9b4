package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"time"
)

// Artifact is one version of a named, checksummed file in the catalogue
// (an OS image), and the channels that point at it.
type Artifact struct {
	Name     string    `json:"name"`
	Version  string    `json:"version"`
	SHA256   string    `json:"sha256"`
	Size     int64     `json:"size"`
	Format   string    `json:"format"`
	Disk     int64     `json:"disk_bytes"` // what it covers on disk once written
	Added    time.Time `json:"added"`
	AddedBy  string    `json:"added_by"`
	Channels []string  `json:"channels,omitempty"`
}

// AddArtifact records a version (the same content again is a no-op) and,
// if channel is set, points the channel at it, in one transaction.
func (s *DB) AddArtifact(ctx context.Context, a Artifact, channel string) error {
	return s.inTx(ctx, func(tx *sqlTx) error {
		var sum string
		err := tx.QueryRowContext(ctx, `SELECT sha256 FROM artifacts WHERE name = ? AND version = ?`, a.Name, a.Version).Scan(&sum)
		switch {
		case err == nil && sum != a.SHA256:
			return fmt.Errorf("%w: %s %s is sha256 %s; give the new content a new version", ErrExists, a.Name, a.Version, sum)
		case errors.Is(err, sql.ErrNoRows):
			if _, err := tx.ExecContext(ctx, `INSERT INTO artifacts (name, version, sha256, size, format, disk, added, added_by) VALUES (?,?,?,?,?,?,?,?)`,
				a.Name, a.Version, a.SHA256, a.Size, a.Format, a.Disk, a.Added.UnixNano(), a.AddedBy); err != nil {
				return err
			}
		case err != nil:
			return err
		}
		if channel == "" {
			return nil
		}
		return setChannel(ctx, tx, a.Name, a.Version, channel, s.now())
	})
}

func setChannel(ctx context.Context, tx *sqlTx, name, version, channel string, now time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO artifact_channels (name, channel, version, updated) VALUES (?,?,?,?)
		ON CONFLICT(name, channel) DO UPDATE SET version = excluded.version, updated = excluded.updated`, name, channel, version, now.UnixNano())
	return err
}

// Promote points a channel at a version the catalogue has.
func (s *DB) Promote(ctx context.Context, name, version, channel string) error {
	return s.inTx(ctx, func(tx *sqlTx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM artifacts WHERE name = ? AND version = ?`, name, version).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("%w: artifact %s version %s (see drover artifacts list)", ErrNotFound, name, version)
		}
		return setChannel(ctx, tx, name, version, channel, s.now())
	})
}

// Artifacts lists the catalogue, by name then newest first.
func (s *DB) Artifacts(ctx context.Context) ([]Artifact, error) {
	rows, err := s.QueryContext(ctx, `SELECT name, version, sha256, size, format, disk, added, added_by FROM artifacts`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Artifact
	for rows.Next() {
		var a Artifact
		var added int64
		if err := rows.Scan(&a.Name, &a.Version, &a.SHA256, &a.Size, &a.Format, &a.Disk, &added, &a.AddedBy); err != nil {
			return nil, err
		}
		a.Added = time.Unix(0, added).UTC()
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	ch, err := s.QueryContext(ctx, `SELECT name, channel, version FROM artifact_channels ORDER BY channel`)
	if err != nil {
		return nil, err
	}
	defer ch.Close()
	for ch.Next() {
		var name, channel, version string
		if err := ch.Scan(&name, &channel, &version); err != nil {
			return nil, err
		}
		for i := range out {
			if out[i].Name == name && out[i].Version == version {
				out[i].Channels = append(out[i].Channels, channel)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Added.After(out[j].Added)
	})
	return out, ch.Err()
}

// ResolveArtifact is the version a channel points at.
func (s *DB) ResolveArtifact(ctx context.Context, name, channel string) (Artifact, error) {
	var a Artifact
	var added int64
	err := s.QueryRowContext(ctx, `SELECT a.name, a.version, a.sha256, a.size, a.format, a.disk, a.added, a.added_by
		FROM artifact_channels c JOIN artifacts a ON a.name = c.name AND a.version = c.version WHERE c.name = ? AND c.channel = ?`, name, channel).
		Scan(&a.Name, &a.Version, &a.SHA256, &a.Size, &a.Format, &a.Disk, &added, &a.AddedBy)
	if errors.Is(err, sql.ErrNoRows) {
		return Artifact{}, fmt.Errorf("%w: no version of artifact %s is on channel %s (drover artifacts add|promote)", ErrNotFound, name, channel)
	}
	a.Added = time.Unix(0, added).UTC()
	return a, err
}

// GCArtifacts removes the versions no channel points at and returns them,
// with the checksums no remaining version has (their files can go).
func (s *DB) GCArtifacts(ctx context.Context) (removed []Artifact, orphans []string, err error) {
	err = s.inTx(ctx, func(tx *sqlTx) error {
		rows, err := tx.QueryContext(ctx, `SELECT name, version, sha256, size FROM artifacts a WHERE NOT EXISTS
			(SELECT 1 FROM artifact_channels c WHERE c.name = a.name AND c.version = a.version)`)
		if err != nil {
			return err
		}
		for rows.Next() {
			var a Artifact
			if err := rows.Scan(&a.Name, &a.Version, &a.SHA256, &a.Size); err != nil {
				rows.Close()
				return err
			}
			removed = append(removed, a)
		}
		rows.Close()
		for _, a := range removed {
			if _, err := tx.ExecContext(ctx, `DELETE FROM artifacts WHERE name = ? AND version = ?`, a.Name, a.Version); err != nil {
				return err
			}
		}
		seen := map[string]bool{}
		for _, a := range removed {
			if seen[a.SHA256] {
				continue
			}
			seen[a.SHA256] = true
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM artifacts WHERE sha256 = ?`, a.SHA256).Scan(&n); err != nil {
				return err
			}
			if n == 0 {
				orphans = append(orphans, a.SHA256)
			}
		}
		return nil
	})
	return removed, orphans, err
}
