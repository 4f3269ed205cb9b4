package fleet

import (
	"context"
	"fmt"
	"maps"
	"strings"

	"github.com/drover/drover/internal/machine"
	"github.com/drover/drover/internal/store"
	"github.com/drover/drover/internal/zone"
)

// Servers sharing one database divide its pods (store/pods.go). A fleet with
// an Owner name holds in memory, answers for and writes only the machines
// and leases of the pods it owns; the rest belong to other servers. Each
// change it queues carries the epochs of the pods it owned when the change
// was decided, and the writer fences the transaction with them: a server
// that lost a pod while paused gets ErrNotOwner instead of writing over the
// pod's new owner.

// LeaderPod is the pseudo-pod of what belongs to no pod: machines seen
// where the design has no switch, and the zone-wide work (rollouts, the git
// follower, events). Its owner is the leader.
const LeaderPod = ""

// PodOf is the pod a DHCP identity belongs to: its slot's, its BMC host's,
// or its switch's; LeaderPod when it names no switch of the design.
func PodOf(ix *zone.Index, id zone.Identity) string {
	switch {
	case id.Slot != nil:
		return id.Slot.PodKey()
	case id.BMCOf != nil:
		return id.BMCOf.PodKey()
	}
	if p, ok := ix.SwitchPod(id.Switch); ok {
		return p
	}
	return LeaderPod
}

// MachinePod is the pod a stored machine belongs to: its slot's, or that of
// the switch it was last seen on.
func MachinePod(ix *zone.Index, m *machine.Machine) string {
	if m.SlotKey != "" {
		if s := ix.Slot(m.SlotKey); s != nil {
			return s.PodKey()
		}
	}
	if sw, _, ok := strings.Cut(m.Location, "/"); ok {
		if p, ok := ix.SwitchPod(sw); ok {
			return p
		}
	}
	return LeaderPod
}

// LeasePod is the pod of a lease: its holder's, or its slot's.
func LeasePod(ix *zone.Index, l *store.Lease, macPod map[string]string) string {
	if p, ok := macPod[l.MAC]; ok {
		return p
	}
	if s := ix.Slot(strings.TrimPrefix(l.SlotKey, bmcSlotPrefix)); s != nil {
		return s.PodKey()
	}
	return LeaderPod
}

// Shared reports whether the fleet divides the database's pods with other servers.
func (f *Fleet) Shared() bool { return f.owner != "" }

// owns reports whether the fleet answers for pod. Called with f.mu held.
func (f *Fleet) owns(pod string) bool {
	if f.owner == "" {
		return true
	}
	_, ok := f.owned[pod]
	return ok
}

// Owned returns the pods the fleet owns, with their epochs (nil when the
// fleet does not share its database).
func (f *Fleet) Owned() map[string]int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.owner == "" {
		return nil
	}
	return maps.Clone(f.owned)
}

// Knows reports whether the fleet holds a machine with this MAC.
func (f *Fleet) Knows(mac string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.byMAC[mac] != nil
}

// Owns reports whether this fleet answers for a pod.
func (f *Fleet) Owns(pod string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.owns(pod)
}

// setOwned replaces the owned set and the fence later changes carry.
// Called with f.mu held.
func (f *Fleet) setOwned(owned map[string]int64) {
	f.owned = owned
	f.fence = &fence{epochs: maps.Clone(owned)}
}

// fence is the set of pods, with their epochs, a change was decided under.
// Changes decided under the same set share one fence, so a group commit
// checks it once.
type fence struct{ epochs map[string]int64 }

// submit queues a change with the fence it was decided under. Called with f.mu held.
func (f *Fleet) submit(b *batch) <-chan error {
	b.fence = f.fence
	return f.w.submit(b)
}

// post queues a change nobody waits for (a failure is logged, and told to
// b.onFail when set). Called with f.mu held.
func (f *Fleet) post(b *batch) {
	b.unawaited = true
	f.submit(b)
}

// Acquire makes the fleet the owner of pods (just claimed in the database,
// pod to epoch): it loads their machines and leases, in one read whatever
// their number, carries out the design revisions their machines do not
// reflect yet, and answers for them from then on.
func (f *Fleet) Acquire(ctx context.Context, pods map[string]int64) error {
	if len(pods) == 0 {
		return nil
	}
	f.syncMu.Lock()
	defer f.syncMu.Unlock()
	ms, err := f.st.AllMachines(ctx)
	if err != nil {
		return fmt.Errorf("acquire pods: %w", err)
	}
	ls, err := f.st.Leases(ctx)
	if err != nil {
		return fmt.Errorf("acquire pods: %w", err)
	}
	revs, err := f.st.PodRevisions(ctx)
	if err != nil {
		return err
	}
	global, err := f.st.MachinesRevision(ctx)
	if err != nil {
		return err
	}
	// base is, per pod, the revision its machine rows reflect.
	base, lowest := map[string]int64{}, int64(-1)
	for pod := range pods {
		base[pod] = max(revs[pod], global)
		if lowest < 0 || base[pod] < lowest {
			lowest = base[pod]
		}
	}
	pending, err := f.st.RevisionsAfter(ctx, lowest)
	if err != nil {
		return err
	}
	ix := f.Index()
	f.mu.Lock()
	macPod := make(map[string]string, len(ms))
	count := map[string]int{}
	for _, m := range ms {
		p := MachinePod(ix, m)
		macPod[m.MAC] = p
		if _, ok := pods[p]; ok && f.byID[m.ID] == nil {
			f.index(m)
			count[p]++
		}
	}
	for i := range ls {
		l := ls[i]
		if _, ok := pods[LeasePod(ix, &l, macPod)]; !ok {
			continue
		}
		f.leases[l.Addr] = &l
		if l.State != LeaseDeclined {
			f.leaseOf[l.MAC] = l.Addr
		}
	}
	owned := maps.Clone(f.owned)
	maps.Copy(owned, pods)
	f.setOwned(owned)
	b := newBatch()
	served := f.served.Load()
	for _, rev := range pending {
		if rev.ID > served {
			break
		}
		for _, e := range rev.Effects {
			pod := f.effectPod(ix, e)
			if from, ok := base[pod]; ok && rev.ID > from {
				f.carryOut(rev, e, b)
			}
		}
	}
	b.podRevisions = map[string]int64{}
	for pod := range pods {
		b.podRevisions[pod] = served
		f.podRev[pod] = served
	}
	done := f.submit(b)
	f.mu.Unlock()
	if err := wait(ctx, done); err != nil {
		return fmt.Errorf("acquire pods: %w", err)
	}
	for pod, epoch := range pods {
		f.log.Info("serving pod", "pod", podName(pod), "epoch", epoch, "machines", count[pod])
	}
	return nil
}

// Drop stops answering for pod and forgets its machines, leases, tickets
// and tokens. With drain set (a pod given up on purpose) it returns once
// every change queued for the pod is written, so that the pod's next owner
// reads all of it; a pod lost to another server is dropped without waiting.
func (f *Fleet) Drop(ctx context.Context, pod string, drain bool) error {
	ix := f.Index()
	f.mu.Lock()
	owned := maps.Clone(f.owned)
	delete(owned, pod)
	f.setOwned(owned)
	macs := map[string]bool{}
	for id, m := range f.byID {
		if MachinePod(ix, m) != pod {
			continue
		}
		macs[m.MAC] = true
		delete(f.byID, id)
		delete(f.byMAC, m.MAC)
		if f.bySlot[m.SlotKey] == m {
			delete(f.bySlot, m.SlotKey)
		}
		for _, h := range []string{m.InstallTokenHash, m.BootTokenHash} {
			delete(f.tokens, h)
		}
	}
	macPod := map[string]string{}
	for mac := range macs {
		macPod[mac] = pod
	}
	for addr, l := range f.leases {
		if macs[l.MAC] || LeasePod(ix, l, macPod) == pod {
			delete(f.leases, addr)
			if f.leaseOf[l.MAC] == addr {
				delete(f.leaseOf, l.MAC)
			}
		}
	}
	for t, tk := range f.tickets {
		if macs[tk.mac] {
			delete(f.tickets, t)
			delete(f.ticket, tk.mac)
		}
	}
	b := newBatch()
	b.barrier = true
	done := f.w.submit(b)
	f.mu.Unlock()
	f.log.Info("no longer serving pod", "pod", podName(pod), "handed_over", drain)
	if !drain {
		return nil
	}
	return wait(ctx, done)
}

// effectPod is the pod whose owner carries out a revision's effect.
func (f *Fleet) effectPod(ix *zone.Index, e store.SlotEffect) string {
	if e.Pod != "" {
		return e.Pod
	}
	if m := f.bySlot[e.Slot]; m != nil {
		return MachinePod(ix, m)
	}
	if s := ix.Slot(e.Slot); s != nil {
		return s.PodKey()
	}
	return LeaderPod
}

// podName shows a pod in logs; the leader's pseudo-pod has no name of its own.
func podName(pod string) string {
	if pod == LeaderPod {
		return "(zone-wide)"
	}
	return pod
}
