package cluster

import (
	"slices"
	"testing"

	"github.com/drover/drover/internal/store"
)

func TestShare(t *testing.T) {
	pods := []string{"", "bgo/p1", "bgo/p2", "bgo/p3"}
	own := func(pairs ...string) []store.PodOwner {
		var out []store.PodOwner
		for i := 0; i < len(pairs); i += 2 {
			out = append(out, store.PodOwner{Pod: pairs[i], Owner: pairs[i+1], Live: true})
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		me      string
		owners  []store.PodOwner
		live    []string
		claim   []string
		release []string
	}{
		{"alone: claims everything", "a", nil, []string{"a"}, pods, nil},
		{"two starting together: different halves", "b", nil, []string{"a", "b"}, []string{"bgo/p2", "bgo/p3"}, nil},
		{"first of two starting together", "a", nil, []string{"a", "b"}, []string{"", "bgo/p1"}, nil},
		{"a second server joins: the first gives up the end of its share", "a", own("", "a", "bgo/p1", "a", "bgo/p2", "a", "bgo/p3", "a"), []string{"a", "b"}, nil, []string{"bgo/p2", "bgo/p3"}},
		{"the joiner takes what was released", "b", own("", "a", "bgo/p1", "a"), []string{"a", "b"}, []string{"bgo/p2", "bgo/p3"}, nil},
		{"a live lease is never taken", "b", own("", "a", "bgo/p1", "a", "bgo/p2", "a", "bgo/p3", "a"), []string{"a", "b"}, nil, nil},
		{"a dead server's expired pods are free", "b", []store.PodOwner{{Pod: "", Owner: "a"}, {Pod: "bgo/p1", Owner: "a"}, {Pod: "bgo/p2", Owner: "b", Live: true}, {Pod: "bgo/p3", Owner: "b", Live: true}}, []string{"b"}, []string{"", "bgo/p1"}, nil},
		{"more servers than pods", "c", own("", "a", "bgo/p1", "b"), []string{"a", "b", "c", "d", "e"}, []string{"bgo/p2"}, nil},
		{"holding the fair share: nothing to do", "a", own("", "a", "bgo/p1", "a"), []string{"a", "b"}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := Share(tc.me, pods, tc.owners, tc.live)
			if !slices.Equal(m.Claim, tc.claim) || !slices.Equal(m.Release, tc.release) {
				t.Fatalf("claim %q release %q, want claim %q release %q", m.Claim, m.Release, tc.claim, tc.release)
			}
		})
	}
}
