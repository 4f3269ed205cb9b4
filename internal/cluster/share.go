// Package cluster lets several drover servers on one PostgreSQL database
// divide the zone's pods: each server owns a fair share, renews its
// ownership, takes over the pods of a server that stops renewing, and
// carries out, for its pods, the machine actions other servers ask for.
// The owner of the zone-wide pseudo-pod (fleet.LeaderPod) is the leader:
// it runs the work that must run once (rollouts, the git follower, events).
package cluster

import (
	"sort"

	"github.com/drover/drover/internal/store"
)

// Moves is what one server does in one round: pods to claim (free ones,
// in the order to try) and pods to give up (more than its share).
type Moves struct {
	Claim   []string
	Release []string
}

// Share decides one server's moves: with n pods and k live servers each
// holds at most ceil(n/k). A pod is free when nobody holds a live lease on
// it; a live lease is never taken, only waited out. Servers start their
// search for free pods at different places (by their rank among the live
// ones) so that servers starting together do not race for the same pods.
func Share(me string, pods []string, owners []store.PodOwner, live []string) Moves {
	if len(pods) == 0 {
		return Moves{}
	}
	servers := map[string]bool{me: true}
	for _, s := range live {
		servers[s] = true
	}
	names := make([]string, 0, len(servers))
	for s := range servers {
		names = append(names, s)
	}
	sort.Strings(names)
	rank := sort.SearchStrings(names, me)
	quota := (len(pods) + len(names) - 1) / len(names)

	held := map[string]string{}
	for _, o := range owners {
		if o.Live && o.Owner != "" {
			held[o.Pod] = o.Owner
		}
	}
	sorted := append([]string(nil), pods...)
	sort.Strings(sorted)
	var mine, free []string
	for _, p := range sorted {
		switch held[p] {
		case me:
			mine = append(mine, p)
		case "":
			free = append(free, p)
		}
	}
	var m Moves
	if extra := len(mine) - quota; extra > 0 {
		// Give up from the end, keeping the zone-wide pod ("" sorts first) where it is.
		m.Release = append(m.Release, mine[len(mine)-extra:]...)
		return m
	}
	want := quota - len(mine)
	if want <= 0 || len(free) == 0 {
		return m
	}
	start := (rank * quota) % len(free)
	for i := 0; i < len(free) && len(m.Claim) < want; i++ {
		m.Claim = append(m.Claim, free[(start+i)%len(free)])
	}
	return m
}
