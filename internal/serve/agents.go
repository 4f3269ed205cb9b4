package serve

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/drover/drover/internal/api"
	"github.com/drover/drover/internal/cluster"
	"github.com/drover/drover/internal/fleet"
	"github.com/drover/drover/internal/store"
)

// agentStore is what the controller's side of pod agents needs of the database.
type agentStore interface {
	store.Store
	PodOwners(ctx context.Context) ([]store.PodOwner, error)
	MirrorPod(ctx context.Context, m *store.Mirror) (int64, error)
	AgentCursor(ctx context.Context, pod string) (int64, error)
	MachineOp(ctx context.Context, id int64) (*store.MachineOp, error)
	OpenMachineOps(ctx context.Context, pods []string) ([]store.MachineOp, error)
	FinishMachineOp(ctx context.Context, op *store.MachineOp) error
	Artifacts(ctx context.Context) ([]store.Artifact, error)
}

// agents is the controller's side of pod agents (api.Agents): it hands pods
// to their agents, gives them their pod, and writes what they report.
type agents struct {
	st     agentStore
	member *cluster.Cluster
	fl     *fleet.Fleet
}

func (a *agents) Attach(ctx context.Context, pod string) (int64, error) {
	return a.member.Attach(ctx, pod)
}

func (a *agents) Detach(ctx context.Context, pod string) error {
	if err := a.held(ctx, pod); err != nil {
		return fmt.Errorf("%w: no agent holds pod %s", fleet.ErrNotFound, pod)
	}
	return a.member.Detach(ctx, pod)
}

// Snapshot is the pod as the database has it: an agent starting from
// nothing (a new or replaced agent box) begins from it.
func (a *agents) Snapshot(ctx context.Context, pod string) (*api.AgentSnapshot, error) {
	if err := a.held(ctx, pod); err != nil {
		return nil, err
	}
	rev, err := a.st.CurrentRevision(ctx)
	if err != nil {
		return nil, err
	}
	ms, err := a.st.AllMachines(ctx)
	if err != nil {
		return nil, err
	}
	ls, err := a.st.Leases(ctx)
	if err != nil {
		return nil, err
	}
	ix := a.fl.Index()
	snap := &api.AgentSnapshot{Pod: pod, Design: api.AgentDesign{ID: rev.ID, Hash: rev.Hash, Sources: rev.Sources}, Machines: []api.AgentMachine{}, Leases: []store.Lease{}}
	macPod := map[string]string{}
	for _, m := range ms {
		p := fleet.MachinePod(ix, m)
		macPod[m.MAC] = p
		if p == pod {
			snap.Machines = append(snap.Machines, api.ToAgent(m))
		}
	}
	for _, l := range ls {
		if fleet.LeasePod(ix, &l, macPod) == pod {
			snap.Leases = append(snap.Leases, l)
		}
	}
	return snap, nil
}

// held fails unless pod's agent holds it.
func (a *agents) held(ctx context.Context, pod string) error {
	owners, err := a.st.PodOwners(ctx)
	if err != nil {
		return err
	}
	for _, o := range owners {
		if o.Pod == pod && o.Owner == store.AgentOwner(pod) {
			return nil
		}
	}
	return fmt.Errorf("%w: pod %s is not attached to its agent (the agent attaches first)", store.ErrNotOwner, pod)
}

// Report checks that everything an agent reports is of its own pod, writes
// it in the agent's name, and answers with the pod's queued actions.
func (a *agents) Report(ctx context.Context, pod string, r *api.AgentReport) (*api.AgentReply, error) {
	ix := a.fl.Index()
	m := &store.Mirror{Pod: pod, Epoch: r.Epoch, Revision: r.Revision, Gone: r.Gone, Leases: r.Leases, Entries: r.Entries}
	ids := map[int64]bool{}
	macPod := map[string]string{}
	for _, am := range r.Machines {
		row := am.Row()
		if p := fleet.MachinePod(ix, row); p != pod {
			return nil, fmt.Errorf("%w: machine %s is of pod %q", api.ErrForeign, row.Label(), p)
		}
		// A machine id the database has must be of this pod too: an agent
		// cannot take over another pod's machine by naming its id.
		if old, err := a.st.Machine(ctx, fmt.Sprint(row.ID)); err == nil && fleet.MachinePod(ix, old) != pod {
			return nil, fmt.Errorf("%w: machine %d is of pod %q", api.ErrForeign, row.ID, fleet.MachinePod(ix, old))
		}
		ids[row.ID] = true
		macPod[row.MAC] = pod
		m.Machines = append(m.Machines, row)
	}
	for _, e := range r.Entries {
		if ids[e.MachineID] {
			continue
		}
		old, err := a.st.Machine(ctx, fmt.Sprint(e.MachineID))
		if err != nil || fleet.MachinePod(ix, old) != pod {
			return nil, fmt.Errorf("%w: timeline entry for machine %d", api.ErrForeign, e.MachineID)
		}
		ids[e.MachineID] = true
	}
	for _, l := range r.Leases {
		if _, ok := macPod[l.MAC]; !ok {
			if old, err := a.st.Machine(ctx, l.MAC); err == nil {
				macPod[l.MAC] = fleet.MachinePod(ix, old)
			}
		}
		if p := fleet.LeasePod(ix, &l, macPod); p != pod {
			return nil, fmt.Errorf("%w: lease of %s is of pod %q", api.ErrForeign, l.Addr, p)
		}
	}
	acked, err := a.st.MirrorPod(ctx, m)
	if err != nil {
		return nil, err
	}
	latest, err := a.st.LatestRevisionID(ctx)
	if err != nil {
		return nil, err
	}
	ops, err := a.st.OpenMachineOps(ctx, []string{pod})
	if err != nil {
		return nil, err
	}
	if ops == nil {
		ops = []store.MachineOp{}
	}
	_, catalogue, err := a.Catalogue(ctx)
	if err != nil {
		return nil, err
	}
	return &api.AgentReply{Acked: acked, Revision: latest, Ops: ops, Catalogue: catalogue}, nil
}

// Catalogue is the artifact catalogue with a hash of its versions and channels.
func (a *agents) Catalogue(ctx context.Context) ([]store.Artifact, string, error) {
	list, err := a.st.Artifacts(ctx)
	if err != nil {
		return nil, "", err
	}
	h := sha256.New()
	for _, x := range list {
		fmt.Fprintf(h, "%s %s %s %v\n", x.Name, x.Version, x.SHA256, x.Channels)
	}
	return list, hex.EncodeToString(h.Sum(nil)), nil
}

// FinishOp records the outcome of an action the agent carried out.
func (a *agents) FinishOp(ctx context.Context, pod string, r *api.AgentOpResult) error {
	op, err := a.st.MachineOp(ctx, r.ID)
	if err != nil {
		return fmt.Errorf("%w: machine op %d", fleet.ErrNotFound, r.ID)
	}
	if op.Pod != pod {
		return fmt.Errorf("%w: machine op %d", api.ErrForeign, r.ID)
	}
	op.Result, op.ErrorKind, op.Error = r.Result, r.ErrorKind, r.Error
	return a.st.FinishMachineOp(ctx, op)
}

// List shows the pods held by their agents.
func (a *agents) List(ctx context.Context) ([]api.AgentInfo, error) {
	owners, err := a.st.PodOwners(ctx)
	if err != nil {
		return nil, err
	}
	out := []api.AgentInfo{}
	for _, o := range owners {
		if !store.IsAgent(o.Owner) {
			continue
		}
		acked, err := a.st.AgentCursor(ctx, o.Pod)
		if err != nil {
			return nil, err
		}
		out = append(out, api.AgentInfo{Pod: o.Pod, Epoch: o.Epoch, Revision: o.Revision, Acked: acked})
	}
	return out, nil
}
