// Package catalogue keeps the artifact files behind the store's catalogue:
// each version's file is stored once under DIR/sha256/HEX, so every URL a
// machine is given names the exact content it must verify.
package catalogue

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/drover/drover/internal/install"
	"github.com/drover/drover/internal/store"
)

// Store is the catalogue's table.
type Store interface {
	AddArtifact(ctx context.Context, a store.Artifact, channel string) error
	GCArtifacts(ctx context.Context) (removed []store.Artifact, orphans []string, err error)
}

var labelRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$`)

// Path is where the file with that checksum lives under dir.
func Path(dir, sum string) string { return filepath.Join(dir, "sha256", sum) }

// Add copies r into dir by its checksum, works out its format (raw, or
// gzip-compressed raw) and the disk bytes it covers, and records the
// version, on channel if given.
func Add(ctx context.Context, st Store, dir, name, version, channel, actor string, r io.Reader) (store.Artifact, error) {
	for what, v := range map[string]string{"name": name, "version": version} {
		if !labelRE.MatchString(v) {
			return store.Artifact{}, fmt.Errorf("artifact %s %q: use lower-case letters, digits, dots and dashes", what, v)
		}
	}
	if channel != "" && !labelRE.MatchString(channel) {
		return store.Artifact{}, fmt.Errorf("channel %q: use lower-case letters, digits, dots and dashes", channel)
	}
	if err := os.MkdirAll(filepath.Join(dir, "sha256"), 0o755); err != nil {
		return store.Artifact{}, err
	}
	tmp, err := os.CreateTemp(filepath.Join(dir, "sha256"), ".add-*")
	if err != nil {
		return store.Artifact{}, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), r)
	if err != nil {
		return store.Artifact{}, fmt.Errorf("copy %s %s: %w", name, version, err)
	}
	if err := tmp.Sync(); err != nil {
		return store.Artifact{}, err
	}
	a := store.Artifact{Name: name, Version: version, SHA256: hex.EncodeToString(h.Sum(nil)), Size: n,
		Format: install.FormatRaw, Disk: n, Added: time.Now().UTC(), AddedBy: actor}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return store.Artifact{}, err
	}
	br := bufio.NewReader(tmp)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return store.Artifact{}, fmt.Errorf("%s %s looks gzip-compressed but is not: %w", name, version, err)
		}
		if a.Disk, err = io.Copy(io.Discard, zr); err != nil {
			return store.Artifact{}, fmt.Errorf("%s %s: a broken gzip stream: %w", name, version, err)
		}
		a.Format = install.FormatGzip
	}
	_, statErr := os.Stat(Path(dir, a.SHA256))
	if err := os.Rename(tmp.Name(), Path(dir, a.SHA256)); err != nil {
		return store.Artifact{}, err
	}
	os.Chmod(Path(dir, a.SHA256), 0o644)
	if err := st.AddArtifact(ctx, a, channel); err != nil {
		if errors.Is(statErr, os.ErrNotExist) {
			os.Remove(Path(dir, a.SHA256)) // no version refers to it
		}
		return store.Artifact{}, err
	}
	return a, nil
}

// GC forgets the versions no channel points at and deletes the files no
// remaining version has.
func GC(ctx context.Context, st Store, dir string) ([]store.Artifact, error) {
	removed, orphans, err := st.GCArtifacts(ctx)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, sum := range orphans {
		if err := os.Remove(Path(dir, sum)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return removed, errors.Join(errs...)
}
