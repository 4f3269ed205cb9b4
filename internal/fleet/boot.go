package fleet

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/drover/drover/internal/cabling"
	"github.com/drover/drover/internal/machine"
	"github.com/drover/drover/internal/secret"
	"github.com/drover/drover/internal/zone"
)

// Boot actions an iPXE script can take.
const (
	ActionInstall   = "install"   // kernel + initrd of the role's profile, with an install token
	ActionLocal     = "local"     // exit to the next boot device: the installed disk
	ActionDiscovery = "discovery" // the inventory image, or nothing when none is configured
	ActionNone      = "none"      // a retired machine boots nothing
)

// Target is a machine and what it should boot.
type Target struct {
	Machine machine.Machine
	Slot    *zone.Slot // nil for machines without a slot
	Zone    *zone.Zone
	Action  string
	Token   string // a fresh install token, for ActionInstall
}

// Script decides what a machine's iPXE script does. The ticket came in the
// machine's DHCP reply; the request must also come from the address leased to
// that machine. A machine that is installing gets a new install token (the
// previous one stops working) which is durable before Script returns.
func (f *Fleet) Script(ctx context.Context, ticketID string, src netip.Addr) (Target, error) {
	f.mu.Lock()
	now := f.now()
	tk, ok := f.tickets[ticketID]
	if !ok || now.After(tk.expires) {
		f.mu.Unlock()
		return Target{}, ErrUnknown
	}
	if leased, ok := f.leaseOf[tk.mac]; !ok || leased != src.Unmap() {
		f.mu.Unlock()
		return Target{}, fmt.Errorf("%w: script for %s requested from %s, which is not its leased address", ErrUnknown, tk.mac, src)
	}
	m := f.byMAC[tk.mac]
	if m == nil {
		f.mu.Unlock()
		return Target{}, ErrUnknown
	}
	t := f.target(m)
	switch {
	case m.AwaitingBoot():
		t.Action = ActionLocal
	case m.State == machine.Deploying:
		t.Action = ActionInstall
	case m.State == machine.Retired:
		t.Action = ActionNone
	case m.State == machine.Discovered, m.State == machine.Commissioning:
		t.Action = ActionDiscovery
	default:
		t.Action = ActionLocal
	}
	if t.Action == ActionInstall && (t.Slot == nil || t.Slot.Profile == "" && !t.Slot.IsSwitch()) {
		t.Action = ActionLocal
	}
	b := newBatch()
	if t.Action == ActionInstall {
		f.revokeToken(m)
		t.Token = secret.Hex(24)
		m.InstallTokenHash = secret.Hash(t.Token)
		// This install follows the design served now: whatever an earlier
		// revision asked a reinstall for is what it installs.
		m.NeedsReinstall = false
		f.tokens[m.InstallTokenHash] = m.ID
		b.touch(m)
		t.Machine = *m
	}
	kind := machine.KindIPXEScript
	if t.Slot.IsSwitch() {
		kind = machine.KindZTP
	}
	b.add(machine.Entry{MachineID: m.ID, At: now, Actor: actorBoot, Kind: kind, Reason: scriptReason(t)})
	done := f.submit(b)
	f.mu.Unlock()
	if err := wait(ctx, done); err != nil {
		return Target{}, fmt.Errorf("script for %s: %w", m.MAC, err)
	}
	return t, nil
}

// Holder returns the machine a boot ticket was given to, without starting
// anything: the ticket must be valid and src the machine's leased address.
func (f *Fleet) Holder(ticketID string, src netip.Addr) (Target, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	tk, ok := f.tickets[ticketID]
	if !ok || f.now().After(tk.expires) {
		return Target{}, ErrUnknown
	}
	m := f.byMAC[tk.mac]
	if leased, ok := f.leaseOf[tk.mac]; !ok || leased != src.Unmap() || m == nil {
		return Target{}, ErrUnknown
	}
	return f.target(m), nil
}

func scriptReason(t Target) string {
	if t.Slot.IsSwitch() && t.Action != ActionInstall {
		return "ZTP refused: the switch is " + string(t.Machine.State) + " (reinstall it to provision it again)"
	}
	switch t.Action {
	case ActionInstall:
		if t.Slot.IsSwitch() {
			return "ZTP: provision switch " + t.Slot.Name + " (" + t.Slot.NetworkOS + ")"
		}
		return "install " + t.Slot.Name + " with profile " + t.Slot.Profile
	case ActionLocal:
		if t.Machine.AwaitingBoot() {
			return "boot from local disk: the installed system's first boot"
		}
		return "boot from local disk (machine is " + string(t.Machine.State) + ")"
	case ActionDiscovery:
		return "discovery (machine has no slot to install)"
	}
	return "nothing: machine is retired"
}

func (f *Fleet) target(m *machine.Machine) Target {
	t := Target{Machine: *m}
	ix := f.Index()
	if m.SlotKey != "" {
		t.Slot = ix.Slot(m.SlotKey)
		if t.Slot != nil {
			t.Zone = ix.Zone(t.Slot.Zone)
		}
	}
	return t
}

// Installing returns the machine an install token belongs to. The token is
// valid only while that machine is deploying.
func (f *Fleet) Installing(token string) (Target, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id, ok := f.tokens[secret.Hash(token)]
	if !ok || token == "" {
		return Target{}, ErrUnknown
	}
	m := f.byID[id]
	if m == nil || m.State != machine.Deploying || m.InstallTokenHash != secret.Hash(token) {
		return Target{}, ErrUnknown
	}
	t := f.target(m)
	if t.Slot == nil {
		return Target{}, ErrUnknown
	}
	t.Action = ActionInstall
	return t, nil
}

// IssueBootToken gives an installing machine (by its install token) the
// token its installed system phones home `booted` with; an earlier one
// stops working. It returns once the token is durable.
func (f *Fleet) IssueBootToken(ctx context.Context, installToken string) (string, error) {
	f.mu.Lock()
	id, ok := f.tokens[secret.Hash(installToken)]
	m := f.byID[id]
	if !ok || installToken == "" || m == nil || m.State != machine.Deploying || m.InstallTokenHash != secret.Hash(installToken) {
		f.mu.Unlock()
		return "", ErrUnknown
	}
	if m.BootTokenHash != "" {
		delete(f.tokens, m.BootTokenHash)
	}
	tok := secret.Hex(24)
	m.BootTokenHash = secret.Hash(tok)
	f.tokens[m.BootTokenHash] = m.ID
	b := newBatch()
	b.touch(m)
	done := f.submit(b)
	f.mu.Unlock()
	if err := wait(ctx, done); err != nil {
		return "", fmt.Errorf("boot token for %s: %w", m.Label(), err)
	}
	return tok, nil
}

// ErrBadStatus is returned for a phone-home status drover does not know.
var ErrBadStatus = errors.New("unknown status")

// Phone-home statuses.
const (
	StatusProgress  = "progress"
	StatusInstalled = "installed"
	StatusFailed    = "failed"
	StatusBooted    = "booted" // the installed system's first boot, with the boot token
)

// PhoneHome records an installer's report. "installed" moves the machine to
// deployed and ends its token, unless its profile writes an image: then the
// machine boots its disk and its installed system's "booted" (with the boot
// token) deploys it. "failed" moves it to deploy-failed. It returns once the
// report is durable.
func (f *Fleet) PhoneHome(ctx context.Context, token, status, message string, facts map[string]any) (machine.Machine, error) {
	f.mu.Lock()
	now := f.now()
	hash := secret.Hash(token)
	id, ok := f.tokens[hash]
	m := f.byID[id]
	if !ok || token == "" || m == nil || m.State != machine.Deploying {
		f.mu.Unlock()
		return machine.Machine{}, ErrUnknown
	}
	// The boot token is good for "booted" only, and the install token for the rest.
	if (status == StatusBooted) != (m.BootTokenHash == hash) || status == StatusBooted && !m.AwaitingBoot() {
		f.mu.Unlock()
		return machine.Machine{}, ErrUnknown
	}
	b := newBatch()
	message = strings.TrimSpace(message)
	t := f.target(m)
	toDisk := false
	if t.Slot != nil && t.Zone != nil {
		if p := t.Zone.Profile(t.Slot.Profile); p != nil && p.Image != "" {
			toDisk = true
		}
	}
	if status == StatusInstalled && len(facts) > 0 && t.Slot != nil {
		for _, fd := range cabling.Check(f.Index(), t.Slot, m.MAC, cabling.Neighbours(facts)).Findings {
			b.add(machine.Entry{MachineID: m.ID, At: now, Actor: "installer", Kind: machine.KindCablingMismatch, Reason: fd.Problem})
		}
	}
	switch {
	case status == StatusProgress:
		b.add(machine.Entry{MachineID: m.ID, At: now, Actor: "installer", Kind: machine.KindProgress, Reason: message})
	case status == StatusInstalled && toDisk:
		if m.BootTokenHash == "" {
			f.mu.Unlock()
			return machine.Machine{}, fmt.Errorf("%w: %s reported installed without fetching its install plan", ErrBadStatus, m.Label())
		}
		f.revokeInstallToken(m)
		if len(facts) > 0 {
			m.Facts = facts
		}
		reason := "installed to disk"
		if message != "" {
			reason += ": " + message
		}
		b.add(machine.Entry{MachineID: m.ID, At: now, Actor: "installer", Kind: machine.KindPhoneHome, Reason: reason + "; waiting for the installed system's first boot"})
		b.touch(m)
	case status == StatusInstalled, status == StatusFailed, status == StatusBooted:
		ev := machine.Installed
		if status == StatusFailed {
			ev = machine.Fail
		}
		actor := "installer"
		if status == StatusBooted {
			actor = "installed-system"
		}
		reason := actor + " reported " + status
		if message != "" {
			reason += ": " + message
		}
		e, err := m.Apply(machine.Change{Event: ev, Actor: actor, At: now, Reason: reason})
		if err != nil {
			f.mu.Unlock()
			return machine.Machine{}, err
		}
		f.revokeToken(m)
		if len(facts) > 0 && status != StatusBooted {
			m.Facts = facts
		}
		b.add(machine.Entry{MachineID: m.ID, At: now, Actor: actor, Kind: machine.KindPhoneHome, Reason: status})
		b.add(e)
		b.touch(m)
	default:
		f.mu.Unlock()
		return machine.Machine{}, fmt.Errorf("%w %q (use progress, installed, failed or booted)", ErrBadStatus, status)
	}
	snap := *m
	done := f.submit(b)
	f.mu.Unlock()
	if err := wait(ctx, done); err != nil {
		return machine.Machine{}, fmt.Errorf("phone-home from %s: %w", snap.Label(), err)
	}
	return snap, nil
}

// Note adds a timeline entry to the machine holding addr's lease, if any. It
// does not wait: these are boot steps (TFTP file, kernel, initrd), not state.
// NoteTransfer records a finished TFTP transfer on the client's timeline.
func (f *Fleet) NoteTransfer(client netip.Addr, file string, n int64, err error) {
	if err != nil {
		f.Note(client, machine.KindTFTPError, fmt.Sprintf("%s: %v", file, err))
		return
	}
	f.Note(client, machine.KindTFTP, fmt.Sprintf("%s (%d bytes)", file, n))
}

func (f *Fleet) Note(addr netip.Addr, kind machine.Kind, reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.leases[addr.Unmap()]
	if l == nil || l.State == LeaseDeclined {
		return
	}
	m := f.byMAC[l.MAC]
	if m == nil {
		return
	}
	b := newBatch()
	b.add(machine.Entry{MachineID: m.ID, At: f.now(), Actor: actorBoot, Kind: kind, Reason: reason})
	f.post(b)
}

// NoteMachine adds a timeline entry to a machine by id, without waiting.
func (f *Fleet) NoteMachine(id int64, kind machine.Kind, reason string) {
	f.submitEntry(machine.Entry{MachineID: id, Actor: actorBoot, Kind: kind, Reason: reason}, true)
}

// Record adds a timeline entry to a machine by id and waits until it is durable.
func (f *Fleet) Record(ctx context.Context, e machine.Entry) error {
	done, ok := f.submitEntry(e, false)
	if !ok {
		return fmt.Errorf("%w: machine %d", ErrNotFound, e.MachineID)
	}
	return wait(ctx, done)
}

// submitEntry queues a timeline entry of a known machine (stamped now when
// it has no time) and returns when it will be durable; unawaited says the
// caller does not wait for that.
func (f *Fleet) submitEntry(e machine.Entry, unawaited bool) (<-chan error, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.byID[e.MachineID] == nil {
		return nil, false
	}
	if e.At.IsZero() {
		e.At = f.now()
	}
	b := newBatch()
	b.add(e)
	b.unawaited = unawaited
	return f.submit(b), true
}

// InSlot returns a copy of the machine standing in a slot.
func (f *Fleet) InSlot(key string) (machine.Machine, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.bySlot[key]
	if !ok {
		return machine.Machine{}, false
	}
	return *m, true
}

// Cabling checks every machine in a slot whose agent reported facts against
// the design being served. The check runs outside the fleet's lock: a
// metrics scrape must not hold up DHCP.
func (f *Fleet) Cabling() []cabling.Report {
	type reported struct {
		slot, mac string
		facts     map[string]any
	}
	f.mu.Lock()
	var ms []reported
	for _, m := range f.byID {
		if m.SlotKey != "" && m.Facts != nil {
			ms = append(ms, reported{m.SlotKey, m.MAC, m.Facts})
		}
	}
	f.mu.Unlock()
	ix := f.Index()
	var out []cabling.Report
	for _, m := range ms {
		if s := ix.Slot(m.slot); s != nil {
			out = append(out, cabling.Check(ix, s, m.mac, cabling.Neighbours(m.facts)))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Machine < out[j].Machine })
	return out
}
