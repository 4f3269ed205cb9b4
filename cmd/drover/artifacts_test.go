package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The catalogue through the CLI: add to test, promote to prod, a conflicting
// version refused without leaving its file, gc removes what no channel uses.
func TestArtifactsCommands(t *testing.T) {
	dir := t.TempDir()
	db, arts := filepath.Join(dir, "drover.db"), filepath.Join(dir, "artifacts")
	img1, img2 := filepath.Join(dir, "one.raw"), filepath.Join(dir, "two.raw")
	os.WriteFile(img1, []byte(strings.Repeat("one", 1000)), 0o644)
	os.WriteFile(img2, []byte(strings.Repeat("two", 1000)), 0o644)
	steps := []struct {
		args  []string
		code  int
		want  string
		files int // files under artifacts/sha256 afterwards
	}{
		{[]string{"add", "debian-12", "1", img1, "--channel", "test"}, 0, "on channel test", 1},
		{[]string{"promote", "debian-12", "1", "--channel", "prod"}, 0, "channel prod of debian-12 is now version 1", 1},
		{[]string{"add", "debian-12", "1", img2}, 1, "give the new content a new version", 1},
		{[]string{"add", "debian-12", "2", img2}, 0, "debian-12 2: sha256", 2},
		{[]string{"promote", "debian-12", "9", "--channel", "prod"}, 1, "drover artifacts list", 2},
		{[]string{"list"}, 0, "[prod test]", 2},
		{[]string{"gc"}, 0, "removed debian-12 2", 1},
	}
	for _, st := range steps {
		r := drover(t, "", append(append([]string{"--db", db, "artifacts"}, st.args...), "--artifacts", arts)...)
		if r.code != st.code || !strings.Contains(r.stdout+r.stderr, st.want) {
			t.Fatalf("artifacts %v: exit %d, want %d with %q:\n%s%s", st.args, r.code, st.code, st.want, r.stdout, r.stderr)
		}
		if files, _ := filepath.Glob(filepath.Join(arts, "sha256", "*")); len(files) != st.files {
			t.Errorf("after artifacts %v: %d files, want %d", st.args, len(files), st.files)
		}
	}
}
