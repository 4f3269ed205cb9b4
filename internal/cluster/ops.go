package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/drover/drover/internal/fleet"
	"github.com/drover/drover/internal/machine"
	"github.com/drover/drover/internal/store"
	"github.com/drover/drover/internal/zone"
)

// Operator calls and rollouts act on machines of every pod, whichever server
// they reach: an action on a pod this server owns goes to its own fleet; one
// on another server's pod is queued in the database (machine_ops) for the
// pod's owner, which carries it out like its own and records the outcome.
// Cluster is the fleet the API, the UI and the rollout runner use.

// Op kinds in the queue.
const (
	opOperate = "operate"
	opPower   = "power"
	opRecord  = "record"
)

// Error kinds, so that a queued action's error means on this server what it meant on the owner's.
var errorKinds = []struct {
	kind string
	err  error
}{
	{"not-found", fleet.ErrNotFound},
	{"illegal", machine.ErrIllegal},
	{"no-power", fleet.ErrNoPower},
}

// remoteError is an error another server returned for a queued action.
type remoteError struct {
	msg   string
	cause error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.cause }

func errorOf(op *store.MachineOp) error {
	if op.Error == "" {
		return nil
	}
	for _, k := range errorKinds {
		if k.kind == op.ErrorKind {
			return &remoteError{op.Error, k.err}
		}
	}
	return errors.New(op.Error)
}

func recordError(op *store.MachineOp, err error) {
	op.Error = err.Error()
	for _, k := range errorKinds {
		if errors.Is(err, k.err) {
			op.ErrorKind = k.kind
		}
	}
}

// Index is the design being served.
func (c *Cluster) Index() *zone.Index { return c.cfg.Fleet.Index() }

// podOf finds the pod of a machine reference in the database.
func (c *Cluster) podOf(ctx context.Context, ref string) (string, error) {
	m, err := c.cfg.Store.Machine(ctx, ref)
	if errors.Is(err, store.ErrNotFound) {
		return "", fmt.Errorf("%w: %q", fleet.ErrNotFound, ref)
	}
	if err != nil {
		return "", err
	}
	return fleet.MachinePod(c.Index(), m), nil
}

// Operate performs an operator action on a machine of any pod.
func (c *Cluster) Operate(ctx context.Context, op fleet.Op) (machine.Machine, error) {
	pod, err := c.podOf(ctx, op.Ref)
	if err != nil {
		return machine.Machine{}, err
	}
	if c.cfg.Fleet.Owns(pod) {
		return c.cfg.Fleet.Operate(ctx, op)
	}
	var m machine.Machine
	err = c.remote(ctx, pod, opOperate, op, &m)
	return m, err
}

// PowerAction runs a power action on a machine of any pod.
func (c *Cluster) PowerAction(ctx context.Context, op fleet.PowerOp) (fleet.PowerResult, error) {
	pod, err := c.podOf(ctx, op.Ref)
	if err != nil {
		return fleet.PowerResult{}, err
	}
	if c.cfg.Fleet.Owns(pod) {
		return c.cfg.Fleet.PowerAction(ctx, op)
	}
	if c.agentHolds(ctx, pod) {
		return c.powerForAgent(ctx, pod, op)
	}
	var res fleet.PowerResult
	err = c.remote(ctx, pod, opPower, op, &res)
	return res, err
}

// agentHolds reports whether pod is held by its pod agent.
func (c *Cluster) agentHolds(ctx context.Context, pod string) bool {
	owners, err := c.cfg.Store.PodOwners(ctx)
	if err != nil {
		return false
	}
	for _, o := range owners {
		if o.Pod == pod {
			return store.IsAgent(o.Owner)
		}
	}
	return false
}

// powerForAgent drives the BMC of a machine whose pod an agent holds from
// here: BMC credentials never leave the servers. The audit entry is written
// here; the timeline entry is queued for the agent, which writes it like its
// own (at once, or when it next reaches the controller).
func (c *Cluster) powerForAgent(ctx context.Context, pod string, op fleet.PowerOp) (fleet.PowerResult, error) {
	m, err := c.cfg.Store.Machine(ctx, op.Ref)
	if err != nil {
		return fleet.PowerResult{}, fmt.Errorf("%w: %q", fleet.ErrNotFound, op.Ref)
	}
	res, e, audit, perr := c.cfg.Fleet.PowerOf(ctx, m, op)
	if e == nil {
		return res, perr
	}
	body, err := json.Marshal(e)
	if err != nil {
		return res, err
	}
	if err := c.cfg.Store.AddMachineOp(ctx, &store.MachineOp{Pod: pod, Kind: opRecord, Request: string(body), Created: time.Now()}); err != nil {
		return res, fmt.Errorf("queue the power entry of %s for its pod's agent: %w", m.Label(), err)
	}
	if err := c.cfg.Store.AddAudit(ctx, audit); err != nil {
		return res, err
	}
	res.Entry = e
	return res, perr
}

// Record adds a timeline entry to a machine of any pod.
func (c *Cluster) Record(ctx context.Context, e machine.Entry) error {
	pod, err := c.podOf(ctx, fmt.Sprint(e.MachineID))
	if err != nil {
		return err
	}
	if c.cfg.Fleet.Owns(pod) {
		return c.cfg.Fleet.Record(ctx, e)
	}
	return c.remote(ctx, pod, opRecord, e, nil)
}

// InSlot returns the machine standing in a slot, from the fleet for this
// server's pods and from the database for the others'.
func (c *Cluster) InSlot(key string) (machine.Machine, bool) {
	s := c.Index().Slot(key)
	if s == nil || c.cfg.Fleet.Owns(s.PodKey()) {
		return c.cfg.Fleet.InSlot(key)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := c.cfg.Store.MachineInSlot(ctx, key)
	if err != nil {
		return machine.Machine{}, false
	}
	return *m, true
}

// remote queues an action for pod's owner and waits for its outcome.
func (c *Cluster) remote(ctx context.Context, pod, kind string, req, result any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	op := &store.MachineOp{Pod: pod, Kind: kind, Request: string(body), Created: time.Now()}
	if err := c.cfg.Store.AddMachineOp(ctx, op); err != nil {
		return err
	}
	deadline := time.NewTimer(c.cfg.OpWait)
	defer deadline.Stop()
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s on pod %s: %w (it stays queued for the pod's server)", kind, pod, ctx.Err())
		case <-deadline.C:
			return fmt.Errorf("%s on pod %s: no server answered for the pod within %s (it stays queued for the pod's server)", kind, pod, c.cfg.OpWait)
		case <-poll.C:
		}
		got, err := c.cfg.Store.MachineOp(ctx, op.ID)
		if err != nil || !got.Done {
			continue
		}
		if result != nil && got.Result != "" {
			if err := json.Unmarshal([]byte(got.Result), result); err != nil {
				return fmt.Errorf("%s on pod %s: its server's answer: %w", kind, pod, err)
			}
		}
		return errorOf(got)
	}
}

// carryOutOps runs the actions other servers queued for this server's pods,
// each at most once at a time here; power actions run side by side.
func (c *Cluster) carryOutOps(ctx context.Context) {
	owned := c.cfg.Fleet.Owned()
	if len(owned) == 0 {
		return
	}
	pods := make([]string, 0, len(owned))
	for p := range owned {
		pods = append(pods, p)
	}
	ops, err := c.cfg.Store.OpenMachineOps(ctx, pods)
	if err != nil {
		return
	}
	for i := range ops {
		op := ops[i]
		c.mu.Lock()
		busy := c.running[op.ID]
		c.running[op.ID] = true
		c.mu.Unlock()
		if busy {
			continue
		}
		go func() {
			defer func() {
				c.mu.Lock()
				delete(c.running, op.ID)
				c.mu.Unlock()
			}()
			c.carryOut(ctx, &op)
		}()
	}
}

// carryOut runs one queued action. An operator action records its outcome
// in the transaction of its change; the others (a power action, a timeline
// entry) record it afterwards, so a crash in between repeats them on the
// pod's next owner.
func (c *Cluster) carryOut(ctx context.Context, op *store.MachineOp) {
	written, err := Execute(ctx, c.cfg.Fleet, op, true)
	if written {
		return
	}
	if errors.Is(err, store.ErrNotOwner) || errors.Is(err, fleet.ErrStopped) || ctx.Err() != nil {
		return // the pod's next owner carries it out
	}
	fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if ferr := c.cfg.Store.FinishMachineOp(fctx, op); ferr != nil {
		c.cfg.Log.Error("record the outcome of a machine op", "op", op.ID, "err", ferr)
	}
}

// Executor is the fleet a queued action is carried out on.
type Executor interface {
	Operate(ctx context.Context, op fleet.Op) (machine.Machine, error)
	PowerAction(ctx context.Context, op fleet.PowerOp) (fleet.PowerResult, error)
	Record(ctx context.Context, e machine.Entry) error
}

// Execute carries out a queued action on fl and fills in op's result and
// error for the caller to record. With finishInTx, an operator action that
// succeeds records its outcome in its change's own transaction (written is
// then true). The error returned is the action's.
func Execute(ctx context.Context, fl Executor, op *store.MachineOp, finishInTx bool) (written bool, err error) {
	switch op.Kind {
	case opOperate:
		var o fleet.Op
		if err = json.Unmarshal([]byte(op.Request), &o); err == nil {
			if finishInTx {
				o.Finish = op
			}
			var m machine.Machine
			if m, err = fl.Operate(ctx, o); err == nil {
				if finishInTx {
					return true, nil
				}
				if b, merr := json.Marshal(m); merr == nil {
					op.Result = string(b)
				}
			}
		}
	case opPower:
		var o fleet.PowerOp
		if err = json.Unmarshal([]byte(op.Request), &o); err == nil {
			var res fleet.PowerResult
			res, err = fl.PowerAction(ctx, o)
			if b, merr := json.Marshal(res); merr == nil {
				op.Result = string(b)
			}
		}
	case opRecord:
		var e machine.Entry
		if err = json.Unmarshal([]byte(op.Request), &e); err == nil {
			err = fl.Record(ctx, e)
		}
	default:
		err = fmt.Errorf("unknown machine op %q", op.Kind)
	}
	if err != nil {
		recordError(op, err)
	}
	return false, err
}
