// Package machine is the lifecycle of the hardware in a slot: its states, the
// one table of legal transitions, watchdogs, and the timeline every change writes.
package machine

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// State is where a machine is in its life.
type State string

// Stable states.
const (
	Discovered  State = "discovered"
	Ready       State = "ready"
	Deployed    State = "deployed"
	Maintenance State = "maintenance"
	Retired     State = "retired"
)

// Work states and their failure twins. Commissioning (hardware inventory and
// checks before a machine is ready) is reserved for the install agent: the
// table has it, nothing enters it yet. A release has no work to wait for: it
// goes straight to ready.
const (
	Commissioning       State = "commissioning"
	CommissioningFailed State = "commissioning-failed"
	Deploying           State = "deploying"
	DeployFailed        State = "deploy-failed"
)

// AllStates lists every state, stable ones first.
var allStates = []State{Discovered, Ready, Deployed, Maintenance, Retired,
	Commissioning, CommissioningFailed, Deploying, DeployFailed}

// States returns every state, stable ones first.
func States() []State { return append([]State(nil), allStates...) }

// ParseState checks a state name.
func ParseState(s string) (State, error) {
	for _, st := range allStates {
		if string(st) == s {
			return st, nil
		}
	}
	names := make([]string, len(allStates))
	for i, st := range allStates {
		names[i] = string(st)
	}
	return "", fmt.Errorf("unknown state %q (states: %s)", s, strings.Join(names, ", "))
}

// failureTwin maps each work state to the state an error or a watchdog moves it to.
var failureTwin = map[State]State{
	Commissioning: CommissioningFailed,
	Deploying:     DeployFailed,
}

// IsWork reports whether s is a work state (one with a watchdog).
func (s State) IsWork() bool { _, ok := failureTwin[s]; return ok }

// Event is something that moves a machine between states.
type Event string

// Events.
const (
	Commission       Event = "commission"
	Commissioned     Event = "commissioned"
	Deploy           Event = "deploy"
	Reinstall        Event = "reinstall"
	Installed        Event = "installed"
	Release          Event = "release" // out of its slot, back to ready
	Fail             Event = "fail"    // an error reported in a work state
	Timeout          Event = "timeout" // the watchdog of a work state fired
	EnterMaintenance Event = "enter-maintenance"
	LeaveMaintenance Event = "leave-maintenance"
	Retire           Event = "retire"
	Replaced         Event = "replaced" // the hardware was swapped out of its slot
)

// Special targets in the table.
const (
	toTwin   State = "<failure twin>"
	toReturn State = "<state before maintenance>"
)

type rule struct {
	from []State
	to   State
}

// transitions is the lifecycle: nothing else changes a machine's state.
var transitions = map[Event]rule{
	Commission:       {from: []State{Discovered, Ready, CommissioningFailed}, to: Commissioning},
	Commissioned:     {from: []State{Commissioning}, to: Ready},
	Deploy:           {from: []State{Discovered, Ready, DeployFailed}, to: Deploying},
	Reinstall:        {from: []State{Deployed, DeployFailed, Ready}, to: Deploying},
	Installed:        {from: []State{Deploying}, to: Deployed},
	Release:          {from: []State{Deployed, DeployFailed}, to: Ready},
	Fail:             {from: []State{Commissioning, Deploying}, to: toTwin},
	Timeout:          {from: []State{Commissioning, Deploying}, to: toTwin},
	EnterMaintenance: {from: []State{Discovered, Ready, Deployed, CommissioningFailed, DeployFailed}, to: Maintenance},
	LeaveMaintenance: {from: []State{Maintenance}, to: toReturn},
	Retire:           {from: []State{Discovered, Ready, Deployed, Maintenance, CommissioningFailed, DeployFailed}, to: Retired},
	Replaced:         {from: allStates, to: Retired},
}

// Events returns every event, sorted.
func Events() []Event {
	evs := make([]Event, 0, len(transitions))
	for e := range transitions {
		evs = append(evs, e)
	}
	sort.Slice(evs, func(i, j int) bool { return evs[i] < evs[j] })
	return evs
}

// MaintenanceInfo is why a machine is out of service, who owns it, and until when.
type MaintenanceInfo struct {
	Reason  string    `json:"reason"`
	Owner   string    `json:"owner"`
	Expires time.Time `json:"expires"`
	Return  State     `json:"return"` // the state it goes back to
}

// Machine is the hardware currently in a slot (or discovered without one).
type Machine struct {
	ID             int64            `json:"id"`
	MAC            string           `json:"mac"`
	SlotKey        string           `json:"slot,omitempty"`
	Name           string           `json:"name,omitempty"`
	State          State            `json:"state"`
	StateSince     time.Time        `json:"state_since"`
	Deadline       time.Time        `json:"deadline,omitzero"` // watchdog of a work state
	Maintenance    *MaintenanceInfo `json:"maintenance,omitempty"`
	NeedsReinstall bool             `json:"needs_reinstall,omitempty"`
	Location       string           `json:"location,omitempty"` // where an unknown machine was seen
	Facts          map[string]any   `json:"facts,omitempty"`
	Created        time.Time        `json:"created"`
	// InstallTokenHash is the SHA-256 of the machine's current install token;
	// empty when it may not install. The token itself is never stored.
	InstallTokenHash string `json:"-"`
	// BootTokenHash is the SHA-256 of the token the installed system phones
	// home `booted` with. It is handed out with the install plan; once the
	// image is on disk the install token ends and only this one is left.
	BootTokenHash string `json:"-"`
}

// AwaitingBoot reports whether the machine's OS is on its disk and drover
// waits for the installed system's first phone-home: it boots its disk.
func (m *Machine) AwaitingBoot() bool {
	return m.State == Deploying && m.InstallTokenHash == "" && m.BootTokenHash != ""
}

// Label is how a machine is named in messages: its name, else its MAC.
func (m *Machine) Label() string {
	if m.Name != "" {
		return m.Name
	}
	return m.MAC
}

// Kind is what a timeline entry records.
type Kind string

// Timeline entry kinds.
const (
	KindTransition       Kind = "transition"        // a state change, from the table
	KindHardwareReplaced Kind = "hardware-replaced" // new hardware in a slot
	KindHeld             Kind = "held"              // a replacement waits for an operator
	KindDiscovered       Kind = "discovered"        // first seen, where it has no slot
	KindSeen             Kind = "seen"              // seen again somewhere without a slot
	KindMoved            Kind = "moved"             // showed up in another slot
	KindSlotAssigned     Kind = "slot-assigned"     // took a slot
	KindSlotChanged      Kind = "slot-changed"      // an applied design changed its slot
	KindSlotRemoved      Kind = "slot-removed"      // an applied design removed its slot
	KindDHCPOffer        Kind = "dhcp-offer"
	KindDHCPAck          Kind = "dhcp-ack"
	KindDHCPRelease      Kind = "dhcp-release"
	KindAddressDeclined  Kind = "address-declined"
	KindTFTP             Kind = "tftp"
	KindTFTPError        Kind = "tftp-error"
	KindIPXEScript       Kind = "ipxe-script"
	KindKernel           Kind = "kernel"
	KindInitrd           Kind = "initrd"
	KindArtifact         Kind = "artifact"
	KindIPXE             Kind = "ipxe"
	KindTemplate         Kind = "template"
	KindTemplateError    Kind = "template-error"
	KindProgress         Kind = "progress"
	KindCablingMismatch  Kind = "cabling-mismatch" // a NIC hears (LLDP) another port than the design says
	KindPhoneHome        Kind = "phone-home"
	KindBMC              Kind = "bmc"     // its BMC got its address (by the lom port it is on)
	KindPower            Kind = "power"   // a power action through its BMC, with the outcome
	KindRollout          Kind = "rollout" // a rollout step: drain, power cycle, install, health gate, undrain
	KindZTP              Kind = "ztp"     // a switch fetched a ZTP file (script, configuration, ONIE installer)
)

// Entry is one line of a machine's timeline.
type Entry struct {
	ID        int64     `json:"id"`
	MachineID int64     `json:"machine_id"`
	At        time.Time `json:"at"`
	Actor     string    `json:"actor"`
	Kind      Kind      `json:"kind"`
	From      State     `json:"from,omitempty"`
	To        State     `json:"to,omitempty"`
	Reason    string    `json:"reason,omitempty"`
}

// Change asks for a transition.
type Change struct {
	Event       Event
	Actor       string
	Reason      string
	At          time.Time
	Timeout     time.Duration    // watchdog for the work state entered, if any
	Maintenance *MaintenanceInfo // required for EnterMaintenance
}

// ErrIllegal is wrapped by every refused transition.
var ErrIllegal = errors.New("illegal transition")

// Allows reports whether the table allows the event from state s.
func (s State) Allows(ev Event) bool {
	r, ok := transitions[ev]
	return ok && slices.Contains(r.from, s)
}

// ParseMaintenance reads an operator's maintenance request: reason, owner and
// an expiry written as an RFC 3339 time or a duration from now ("4h").
func ParseMaintenance(reason, owner, expires string, now time.Time) (*MaintenanceInfo, error) {
	reason, owner, expires = strings.TrimSpace(reason), strings.TrimSpace(owner), strings.TrimSpace(expires)
	if reason == "" || owner == "" || expires == "" {
		return nil, errors.New("maintenance needs a reason, an owner and an expiry (an RFC 3339 time or a duration like 4h)")
	}
	exp, err := time.Parse(time.RFC3339, expires)
	if err != nil {
		d, derr := time.ParseDuration(expires)
		if derr != nil || d <= 0 {
			return nil, fmt.Errorf("expiry %q: write an RFC 3339 time or a positive duration like 4h", expires)
		}
		exp = now.Add(d)
	}
	return &MaintenanceInfo{Reason: reason, Owner: owner, Expires: exp}, nil
}

// Apply performs a transition and returns the timeline entry it writes.
// An illegal transition changes nothing and returns an error wrapping ErrIllegal.
func (m *Machine) Apply(ch Change) (Entry, error) {
	r, ok := transitions[ch.Event]
	if !ok {
		return Entry{}, fmt.Errorf("%w: unknown event %q", ErrIllegal, ch.Event)
	}
	if !m.State.Allows(ch.Event) {
		return Entry{}, fmt.Errorf("%w: cannot %s %s while it is %s (allowed from: %s)", ErrIllegal, ch.Event, m.Label(), m.State, joinStates(r.from))
	}
	to := r.to
	switch to {
	case toTwin:
		to = failureTwin[m.State]
	case toReturn:
		to = Ready
		if m.Maintenance != nil && m.Maintenance.Return != "" {
			to = m.Maintenance.Return
		}
	}
	if ch.Event == EnterMaintenance {
		mi := ch.Maintenance
		if mi == nil || strings.TrimSpace(mi.Reason) == "" || strings.TrimSpace(mi.Owner) == "" || mi.Expires.IsZero() {
			return Entry{}, fmt.Errorf("%w: maintenance needs a reason, an owner and an expiry", ErrIllegal)
		}
		if !mi.Expires.After(ch.At) {
			return Entry{}, fmt.Errorf("%w: maintenance expiry %s is not in the future", ErrIllegal, mi.Expires.Format(time.RFC3339))
		}
		info := *mi
		info.Return = returnState(m.State)
		m.Maintenance = &info
	}
	if m.State == Maintenance && to != Maintenance {
		m.Maintenance = nil
	}
	e := Entry{MachineID: m.ID, At: ch.At, Actor: ch.Actor, Kind: KindTransition, From: m.State, To: to, Reason: ch.Reason}
	if e.Reason == "" {
		e.Reason = string(ch.Event)
	}
	m.State, m.StateSince, m.Deadline = to, ch.At, time.Time{}
	if to.IsWork() && ch.Timeout > 0 {
		m.Deadline = ch.At.Add(ch.Timeout)
	}
	if to == Deploying {
		m.NeedsReinstall = false
	}
	return e, nil
}

// returnState is where a machine goes when maintenance ends: failed machines
// come back ready to be acted on, not silently "fixed".
func returnState(s State) State {
	switch s {
	case Deployed, Discovered:
		return s
	}
	return Ready
}

func joinStates(ss []State) string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return strings.Join(out, ", ")
}

// Overdue returns the change the watchdog must make at now, if any: a work
// state past its deadline fails, and maintenance past its expiry ends.
func (m *Machine) Overdue(now time.Time) (Change, bool) {
	switch {
	case m.State.IsWork() && !m.Deadline.IsZero() && now.After(m.Deadline):
		return Change{Event: Timeout, Actor: "watchdog", At: now,
			Reason: fmt.Sprintf("no progress in %s since %s", m.State, m.StateSince.Format(time.RFC3339))}, true
	case m.State == Maintenance && m.Maintenance != nil && now.After(m.Maintenance.Expires):
		return Change{Event: LeaveMaintenance, Actor: "watchdog", At: now,
			Reason: fmt.Sprintf("maintenance by %s expired (%s)", m.Maintenance.Owner, m.Maintenance.Reason)}, true
	}
	return Change{}, false
}

// Replacement is the outcome of new hardware showing up in a slot held by old.
type Replacement struct {
	OldEntries []Entry
	NewEntries []Entry
}

// Replace moves a slot from old hardware to new. The old machine is retired; the
// new one takes the slot and starts deploying into the slot's identity, unless
// hold (the slot's policy) makes it wait for an operator.
func Replace(old, nw *Machine, hold bool, actor string, at time.Time, deployTimeout time.Duration) (Replacement, error) {
	var r Replacement
	why := fmt.Sprintf("hardware replaced in slot %s: %s replaced by %s", old.SlotKey, old.MAC, nw.MAC)
	r.OldEntries = append(r.OldEntries, Entry{MachineID: old.ID, At: at, Actor: actor, Kind: KindHardwareReplaced, Reason: why})
	e, err := old.Apply(Change{Event: Replaced, Actor: actor, At: at, Reason: why})
	if err != nil {
		return Replacement{}, err
	}
	r.OldEntries = append(r.OldEntries, e)
	nw.SlotKey, nw.Name = old.SlotKey, old.Name
	old.SlotKey, old.NeedsReinstall = "", false
	r.NewEntries = append(r.NewEntries, Entry{MachineID: nw.ID, At: at, Actor: actor, Kind: KindHardwareReplaced, Reason: why})
	if hold {
		r.NewEntries = append(r.NewEntries, Entry{MachineID: nw.ID, At: at, Actor: actor, Kind: KindHeld,
			Reason: "slot policy is hold: waiting for an operator to reinstall " + nw.Name})
		return r, nil
	}
	e, ok := nw.Install(actor, why+"; slot policy reinstalls", at, deployTimeout)
	if ok {
		r.NewEntries = append(r.NewEntries, e)
	} else {
		r.NewEntries = append(r.NewEntries, Entry{MachineID: nw.ID, At: at, Actor: actor, Kind: KindHeld,
			Reason: fmt.Sprintf("not installing: the machine is %s", nw.State)})
	}
	return r, nil
}

// Install starts an install into the machine's slot identity when its state
// allows one: deploy from discovered, ready or deploy-failed, reinstall when
// deployed. It reports false, changing nothing, from any other state.
func (m *Machine) Install(actor, reason string, at time.Time, timeout time.Duration) (Entry, bool) {
	ev := Deploy
	if m.State == Deployed {
		ev = Reinstall
	}
	e, err := m.Apply(Change{Event: ev, Actor: actor, At: at, Timeout: timeout, Reason: reason})
	return e, err == nil
}
