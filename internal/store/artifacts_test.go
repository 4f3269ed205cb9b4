package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

func testArtifactChannels(t *testing.T, b backend) {
	ctx := context.Background()
	s := b.open(t)
	v1 := Artifact{Name: "debian-12", Version: "1", SHA256: "aa", Size: 10, Format: "raw", Disk: 10, Added: time.Unix(1, 0), AddedBy: "test"}
	v2 := v1
	v2.Version, v2.SHA256, v2.Added = "2", "bb", time.Unix(2, 0)
	steps := []struct {
		name string
		do   func() error
		test string // version the test channel resolves to
		prod string
		err  error
	}{
		{"add v1 to test", func() error { return s.AddArtifact(ctx, v1, "test") }, "1", "", nil},
		{"promote v1 to prod", func() error { return s.Promote(ctx, "debian-12", "1", "prod") }, "1", "1", nil},
		{"add v2 to test", func() error { return s.AddArtifact(ctx, v2, "test") }, "2", "1", nil},
		{"same version, other content", func() error { w := v2; w.SHA256 = "cc"; return s.AddArtifact(ctx, w, "") }, "2", "1", ErrExists},
		{"promote an unknown version", func() error { return s.Promote(ctx, "debian-12", "9", "prod") }, "2", "1", ErrNotFound},
		{"promote v2 to prod", func() error { return s.Promote(ctx, "debian-12", "2", "prod") }, "2", "2", nil},
	}
	for _, st := range steps {
		if err := st.do(); !errors.Is(err, st.err) {
			t.Fatalf("%s: err %v, want %v", st.name, err, st.err)
		}
		for ch, want := range map[string]string{"test": st.test, "prod": st.prod} {
			a, err := s.ResolveArtifact(ctx, "debian-12", ch)
			if want == "" {
				if !errors.Is(err, ErrNotFound) {
					t.Errorf("%s: %s resolves to %+v, %v; want none", st.name, ch, a, err)
				}
				continue
			}
			if err != nil || a.Version != want {
				t.Errorf("%s: %s resolves to %q, %v; want %s", st.name, ch, a.Version, err, want)
			}
		}
	}
	removed, orphans, err := s.GCArtifacts(ctx)
	if err != nil || len(removed) != 1 || removed[0].Version != "1" || len(orphans) != 1 || orphans[0] != "aa" {
		t.Fatalf("gc: removed %+v orphans %v err %v; want version 1 and its file", removed, orphans, err)
	}
	list, err := s.Artifacts(ctx)
	if err != nil || len(list) != 1 || len(list[0].Channels) != 2 {
		t.Fatalf("list after gc: %+v %v", list, err)
	}
}
