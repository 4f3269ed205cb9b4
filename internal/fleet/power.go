package fleet

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/drover/drover/internal/machine"
	"github.com/drover/drover/internal/power"
	"github.com/drover/drover/internal/store"
)

// Power runs power actions through BMCs; power.Controller implements it.
type Power interface {
	Do(ctx context.Context, t power.Target, actions ...power.Action) (power.Result, error)
}

// ErrNoPower is returned when the machine cannot be driven through its BMC
// (no slot, no driver, no credentials, no controller).
var ErrNoPower = errors.New("no power control")

// PowerOp is an operator's power request on a machine.
type PowerOp struct {
	Ref     string
	Actions []power.Action // run in order in one BMC session
	Actor   string
	Reason  string
	Audit   store.AuditEntry // written with the timeline entry
}

// PowerResult is what a power request did.
type PowerResult struct {
	Machine string         `json:"machine"`
	BMC     string         `json:"bmc"`
	Actions []power.Action `json:"actions"`
	State   power.State    `json:"state"`
	Took    string         `json:"took"`
	Entry   *machine.Entry `json:"entry,omitempty"`
	Error   string         `json:"error,omitempty"`
}

// PowerAction runs op through the machine's BMC without holding the fleet
// (BMCs take seconds), then records the outcome, ok or failed, on the
// machine's timeline and in the audit log in one transaction. The returned
// error is the BMC's; the result says what was recorded.
func (f *Fleet) PowerAction(ctx context.Context, op PowerOp) (PowerResult, error) {
	f.mu.Lock()
	m := f.find(op.Ref)
	if m == nil {
		f.mu.Unlock()
		return PowerResult{}, fmt.Errorf("%w: %q", ErrNotFound, op.Ref)
	}
	row := *m
	f.mu.Unlock()
	out, e, audit, perr := f.PowerOf(ctx, &row, op)
	if e == nil {
		return out, perr
	}
	f.mu.Lock()
	e.At, audit.At = f.now(), f.now()
	b := newBatch()
	b.add(*e)
	b.audits = append(b.audits, audit)
	done := f.submit(b)
	f.mu.Unlock()
	if err := wait(ctx, done); err != nil {
		return out, fmt.Errorf("record power action on %s: %w", row.Label(), err)
	}
	out.Entry = e
	return out, perr
}

// PowerOf runs op through the BMC of machine m (a row of this fleet or of
// the database) and returns, besides the outcome, the timeline entry and
// audit entry that record it, for the caller to write; both are nil when
// the BMC was never reached.
func (f *Fleet) PowerOf(ctx context.Context, m *machine.Machine, op PowerOp) (PowerResult, *machine.Entry, *store.AuditEntry, error) {
	ix := f.Index()
	label := m.Label()
	s := ix.Slot(m.SlotKey)
	if s == nil {
		return PowerResult{}, nil, nil, fmt.Errorf("%w: %s is in no slot, so drover does not know its BMC", ErrNoPower, label)
	}
	if f.power == nil {
		return PowerResult{}, nil, nil, fmt.Errorf("%w: this server has no BMC credentials (start it with --power-secrets FILE)", ErrNoPower)
	}
	net, ok := ix.BMCNetwork(s)
	if !ok || s.Power == "" {
		return PowerResult{}, nil, nil, fmt.Errorf("%w: the design gives %s no power driver or BMC address (set `power: ipmi` on its zone or role; its pod needs a bmc network)", ErrNoPower, s.Name)
	}
	res, perr := f.power.Do(ctx, power.Target{Slot: s, Network: net}, op.Actions...)
	out := PowerResult{Machine: label, BMC: res.BMC.String(), Actions: op.Actions, State: res.State, Took: res.Took.Round(time.Millisecond).String()}
	names := make([]string, len(op.Actions))
	for i, a := range op.Actions {
		names[i] = string(a)
	}
	what := fmt.Sprintf("power %s via %s BMC %s", strings.Join(names, ", then "), s.Power, res.BMC)
	outcome := "ok"
	if perr != nil {
		outcome = "failed"
		out.Error = perr.Error()
		what += ": failed: " + perr.Error()
	} else {
		what += fmt.Sprintf(": ok, power %s (%s)", res.State, out.Took)
	}
	if op.Reason != "" {
		what += "; " + op.Reason
	}
	now := f.now()
	e := &machine.Entry{MachineID: m.ID, At: now, Actor: op.Actor, Kind: machine.KindPower, Reason: what}
	audit := op.Audit
	audit.At, audit.Action, audit.Outcome = now, "power "+strings.Join(names, ","), outcome
	if audit.Target == "" {
		audit.Target = label
	}
	if perr != nil {
		audit.Detail = strings.TrimSpace(audit.Detail + " " + perr.Error())
	}
	return out, e, &audit, perr
}
