package fleet

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/drover/drover/internal/machine"
	"github.com/drover/drover/internal/secret"
	"github.com/drover/drover/internal/store"
	"github.com/drover/drover/internal/zone"
)

// Request is what the DHCP layer knows about a client.
type Request struct {
	Query     zone.Query
	MAC       string
	Requested netip.Addr // option 50, or ciaddr when renewing
	Renewing  bool       // a renewal or rebinding: not a boot step worth a timeline entry
	IPXE      bool       // the client is iPXE: it gets a boot ticket for its script
	ZTP       string     // the switch ZTP client it says it is (dhcp.ZTPClient), or ""
	BootFile  string     // what the reply will boot, for the timeline
	// Peer: the client requests an offer another server made (its server
	// identifier is not ours). Only servers that divide the pods answer
	// it: the pod's owner takes over an offer its previous owner made.
	Peer bool
}

// Assignment is what a client is given.
type Assignment struct {
	Identity  zone.Identity
	Addr      netip.Addr
	Prefix    netip.Prefix
	Gateway   netip.Addr
	Hostname  string
	Domain    string
	DNS       []netip.Addr
	LeaseTime time.Duration
	State     machine.State
	Ticket    string // opens the iPXE script; set for iPXE clients
}

// Refusal is why a client gets no address. Silent refusals are dropped
// without a reply; the others get a DHCPNAK when answering a REQUEST.
type Refusal struct {
	Reason string
	Silent bool
	// Elsewhere: the client's pod is another server's (servers sharing a
	// database); that server answers it.
	Elsewhere bool
}

func (r *Refusal) Error() string { return r.Reason }

// Offer decides a client's identity and address for a DISCOVER, records the
// machine on first sight (installing it when it stands in a known slot) and
// holds the address for it. It returns once that is durable, except for a
// known slot on a lone server (replyAhead).
func (f *Fleet) Offer(ctx context.Context, r Request) (Assignment, error) {
	f.mu.Lock()
	now := f.now()
	b := newBatch()
	a, m, err := f.assign(r, now, b)
	if err == nil {
		// A client that already holds its address (a reboot) keeps it: nothing to record.
		held := f.holds(a.Addr, r.MAC, now)
		if !held {
			f.hold(a.Addr, r.MAC, slotKey(a), LeaseOffered, now.Add(offerHold), b)
		}
		if r.IPXE || a.Identity.Slot.IsSwitch() {
			a.Ticket = f.ticketFor(r.MAC, now)
		}
		if !r.Renewing && !held && m != nil {
			b.add(machine.Entry{MachineID: m.ID, At: now, Actor: actorDHCP, Kind: machine.KindDHCPOffer, Reason: describe(a, r)})
		}
		if f.replyAhead(a) {
			f.postAhead(b)
			return a, nil
		}
	}
	if werr := f.commit(ctx, b); werr != nil {
		f.failed(b, werr)
		return Assignment{}, fmt.Errorf("offer to %s: %w", r.MAC, werr)
	}
	return a, err
}

// failed undoes in memory what a batch the database refused added: the
// machines it created are forgotten (the client's next request creates them
// again), and an address the database says another client holds (given by
// another server on the same database) is kept out of use here too, so that
// the client's next request gets another.
func (f *Fleet) failed(b *batch, err error) {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return // the caller stopped waiting: the batch may still land
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range b.created {
		if m := f.byID[id]; m != nil {
			delete(f.byID, id)
			delete(f.byMAC, m.MAC)
			if m.SlotKey != "" && f.bySlot[m.SlotKey] == m {
				delete(f.bySlot, m.SlotKey)
			}
		}
	}
	var t *store.AddressTakenError
	if !errors.As(err, &t) {
		return
	}
	if f.leaseOf[t.MAC] == t.Addr {
		delete(f.leaseOf, t.MAC)
	}
	f.leases[t.Addr] = &store.Lease{Addr: t.Addr, MAC: t.Holder, State: LeaseOffered, Expires: f.now().Add(offerHold)}
}

// holds reports whether mac holds a bound, unexpired lease on addr. Called with f.mu held.
func (f *Fleet) holds(addr netip.Addr, mac string, now time.Time) bool {
	l := f.leases[addr]
	return l != nil && l.MAC == mac && l.State == LeaseBound && now.Before(l.Expires)
}

// replyAhead: a reply with address a goes out before its record is durable
// (docs/boot.md, Leases and crashes). On a lone server a slot's address is the
// slot's, so a record lost in a crash cannot give it to anyone else (as an
// extension kept in memory cannot), and the writer, first in first out, lands
// the record before anything decided after it. With a backlog in the writer
// replies wait after all: a storm of new machines is held back at the DHCP
// socket, not in memory. Called with f.mu held.
func (f *Fleet) replyAhead(a Assignment) bool {
	return f.owner == "" && a.Identity.Known() && !f.w.busy()
}

// postAhead queues the batch of a reply that goes out ahead of it, and
// unlocks; should the database refuse the batch, what it added in memory is
// undone as if the reply had waited.
func (f *Fleet) postAhead(b *batch) {
	b.onFail = func(werr error) { f.failed(b, werr) }
	f.post(b)
	f.mu.Unlock()
}

// commit submits a batch and unlocks; it waits only when the batch holds a
// change a reply depends on (machines, leases, audit), not for timeline
// entries alone, so a known machine's reboot or renewal never waits on disk.
func (f *Fleet) commit(ctx context.Context, b *batch) error {
	b.unawaited = b.entriesOnly()
	done := f.submit(b)
	f.mu.Unlock()
	if b.unawaited {
		return nil
	}
	// The timer is made only here, when a reply must wait: most exchanges in
	// a storm do not, and a timer per request is a measurable share of the CPU.
	ctx, cancel := context.WithTimeout(ctx, commitWait)
	defer cancel()
	return wait(ctx, done)
}

// commitWait bounds how long a DHCP reply waits for its write: the client
// has retransmitted long before, and a worker stuck longer serves no one.
const commitWait = 10 * time.Second

// Ack confirms a REQUEST: the requested address must be the one this client is
// given; anything else is refused so the client starts over.
func (f *Fleet) Ack(ctx context.Context, r Request) (Assignment, error) {
	f.mu.Lock()
	now := f.now()
	b := newBatch()
	if r.Peer && f.owner == "" {
		f.mu.Unlock()
		return Assignment{}, &Refusal{Reason: "client chose another server", Silent: true}
	}
	a, m, err := f.assign(r, now, b)
	if err == nil && r.Peer {
		// The offer is this pod's if its lease, held for the client at the
		// address it requests, came over with the pod.
		if l := f.leases[r.Requested]; l == nil || l.MAC != r.MAC || r.Requested != a.Addr || !now.Before(l.Expires) {
			err = &Refusal{Reason: "client chose another server", Silent: true}
		}
	}
	if err == nil && r.Requested.IsValid() && r.Requested != a.Addr {
		err = &Refusal{Reason: fmt.Sprintf("requested %s but %s's address is %s", r.Requested, r.MAC, a.Addr)}
	}
	if err == nil {
		if a.Identity.Known() && f.holds(a.Addr, r.MAC, now) {
			// A slot's address belongs to the slot: an extension lost in a crash
			// cannot give it to anyone else, so it is kept in memory only.
			f.leases[a.Addr].Expires = now.Add(a.LeaseTime)
		} else {
			f.hold(a.Addr, r.MAC, slotKey(a), LeaseBound, now.Add(a.LeaseTime), b)
		}
		if r.IPXE || a.Identity.Slot.IsSwitch() {
			a.Ticket = f.ticketFor(r.MAC, now)
		}
		if !r.Renewing && m != nil {
			b.add(machine.Entry{MachineID: m.ID, At: now, Actor: actorDHCP, Kind: machine.KindDHCPAck, Reason: describe(a, r)})
		}
		if b.leasesOnly() && f.replyAhead(a) {
			// A first boot's ACK waits for no disk write; one that also
			// changes the machine (first seen at its REQUEST) does.
			f.postAhead(b)
			return a, nil
		}
	}
	if werr := f.commit(ctx, b); werr != nil {
		f.failed(b, werr)
		return Assignment{}, fmt.Errorf("ack to %s: %w", r.MAC, werr)
	}
	return a, err
}

// Inform answers a DHCPINFORM: configuration for a client that has its address.
func (f *Fleet) Inform(r Request) (Assignment, error) {
	ix := f.Index()
	id := ix.Resolve(r.Query)
	a := Assignment{Identity: id, LeaseTime: 0}
	z := id.Zone
	if h := id.BMCOf; h != nil {
		if net, ok := ix.BMCNetwork(h); ok {
			a.Hostname, a.Domain, a.Prefix, a.Gateway = h.PermanentName+"-bmc", h.Domain, net.Prefix, net.Gateway
		}
	} else if id.Known() {
		a.Hostname, a.Domain, a.Prefix, a.Gateway = id.Slot.PermanentName, id.Slot.Domain, id.Slot.Prefix, id.Slot.Gateway
	}
	if z != nil {
		a.DNS = z.DNS()
		if a.Domain == "" {
			a.Domain = z.Domain
		}
	}
	return a, nil
}

// Release frees a client's address.
func (f *Fleet) Release(mac string, addr netip.Addr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.leases[addr]
	if l == nil || l.MAC != mac {
		return
	}
	b := newBatch()
	delete(f.leases, addr)
	delete(f.leaseOf, mac)
	b.freeLease(addr)
	if m := f.byMAC[mac]; m != nil {
		b.add(machine.Entry{MachineID: m.ID, At: f.now(), Actor: actorDHCP, Kind: machine.KindDHCPRelease, Reason: "released " + addr.String()})
	}
	f.post(b)
}

// Decline marks an address a client found in use: it is kept out of use for a
// while and the event lands on the machine's timeline.
func (f *Fleet) Decline(mac string, addr netip.Addr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.owner != "" && f.byMAC[mac] == nil && f.leases[addr] == nil {
		return // a client of another server's pod
	}
	now := f.now()
	b := newBatch()
	l := &store.Lease{Addr: addr, MAC: mac, State: LeaseDeclined, Expires: now.Add(declineHold)}
	if old := f.leases[addr]; old != nil {
		l.SlotKey = old.SlotKey
	}
	f.leases[addr] = l
	if f.leaseOf[mac] == addr {
		delete(f.leaseOf, mac)
	}
	b.putLease(l)
	reason := fmt.Sprintf("client reported %s already in use (DHCPDECLINE); the address is held until %s", addr, l.Expires.Format(time.RFC3339))
	if m := f.byMAC[mac]; m != nil {
		b.add(machine.Entry{MachineID: m.ID, At: now, Actor: actorDHCP, Kind: machine.KindAddressDeclined, Reason: reason})
	}
	f.log.Warn("address declined", "mac", mac, "addr", addr, "held_until", l.Expires)
	f.post(b)
}

// bmcSlotPrefix marks a lease held by a slot's BMC rather than its host.
const bmcSlotPrefix = "bmc:"

func slotKey(a Assignment) string {
	if a.Identity.BMCOf != nil {
		return bmcSlotPrefix + a.Identity.BMCOf.Key
	}
	if a.Identity.Slot != nil {
		return a.Identity.Slot.Key
	}
	return ""
}

func describe(a Assignment, r Request) string {
	s := a.Addr.String()
	if a.Hostname != "" {
		s += " as " + a.Hostname
	}
	if r.BootFile != "" {
		s += ", boot file " + r.BootFile
	}
	if r.ZTP != "" {
		if a.Identity.Slot.IsSwitch() {
			s += ", ZTP client " + r.ZTP
		} else {
			s += ", no ZTP configuration (a " + r.ZTP + " ZTP client that is not a switch of the design)"
		}
	}
	if !a.Identity.Known() {
		s += " (unknown: " + a.Identity.Reason + ")"
	}
	return s
}

// assign resolves the client and picks its address. Called with f.mu held.
func (f *Fleet) assign(r Request, now time.Time, b *batch) (Assignment, *machine.Machine, error) {
	ix := f.Index()
	id := ix.Resolve(r.Query)
	if f.owner != "" { // servers divide the pods: answer only for this one's
		if pod := PodOf(ix, id); !f.owns(pod) {
			return Assignment{}, nil, &Refusal{Reason: "pod " + podName(pod) + " is served by another server", Silent: true, Elsewhere: true}
		}
	}
	if id.BMC {
		return f.assignBMC(ix, id, r, now, b)
	}
	if !id.Known() && r.ZTP != "" {
		// A switch the design does not place: recorded where it is, given
		// nothing, so that it cannot configure itself from anyone's files.
		id.Reason = "switch ZTP client (" + r.ZTP + "): " + id.Reason
		m, err := f.observe(ix, id, r.MAC, now, b)
		if err != nil {
			return Assignment{}, nil, err
		}
		return Assignment{}, m, &Refusal{Reason: "no address and no ZTP configuration for a switch outside the design: " + id.Reason, Silent: true}
	}
	m, err := f.observe(ix, id, r.MAC, now, b)
	if err != nil {
		return Assignment{}, nil, err
	}
	a := Assignment{Identity: id, State: m.State}
	var z *zone.Zone
	if id.Known() {
		s := id.Slot
		z = id.Zone
		a.Addr, a.Prefix, a.Gateway, a.Hostname, a.Domain = s.Address, s.Prefix, s.Gateway, s.PermanentName, s.Domain
	} else {
		disc, ok := ix.Discovery(id)
		if !ok {
			return Assignment{}, nil, &Refusal{Reason: "no address for an unknown machine: " + id.Reason, Silent: true}
		}
		a.Prefix, a.Gateway, z = disc.Prefix, disc.Gateway, disc.Zone
		if a.Addr, ok = f.discoveryAddr(disc, r, now); !ok {
			return Assignment{}, nil, &Refusal{Reason: fmt.Sprintf("discovery pool %s-%s is exhausted", disc.First, disc.Last), Silent: true}
		}
	}
	if l := f.leases[a.Addr]; l != nil && l.State == LeaseDeclined && now.Before(l.Expires) {
		return Assignment{}, nil, &Refusal{Reason: fmt.Sprintf("address %s was declined and is held until %s", a.Addr, l.Expires.Format(time.RFC3339)), Silent: true}
	}
	if z != nil {
		a.DNS, a.LeaseTime = z.DNS(), z.Lease()
		if a.Domain == "" {
			a.Domain = z.Domain
		}
	}
	if a.LeaseTime == 0 {
		a.LeaseTime = time.Hour
	}
	return a, m, nil
}

// assignBMC gives a BMC on a lom port the BMC address of the host slot the
// port serves. A BMC on a lom port the design does not map is recorded as a
// discovered machine at that location and gets no address. Called with f.mu held.
func (f *Fleet) assignBMC(ix *zone.Index, id zone.Identity, r Request, now time.Time, b *batch) (Assignment, *machine.Machine, error) {
	host := id.BMCOf
	if host == nil {
		m, err := f.observe(ix, zone.Identity{Zone: id.Zone, Switch: id.Switch, Port: id.Port, Reason: "BMC: " + id.Reason}, r.MAC, now, b)
		if err != nil {
			return Assignment{}, nil, err
		}
		return Assignment{}, m, &Refusal{Reason: "BMC on an undefined lom port: " + id.Reason, Silent: true}
	}
	net, ok := ix.BMCNetwork(host)
	if !ok {
		return Assignment{}, nil, &Refusal{Reason: host.Name + " has no bmc network", Silent: true}
	}
	a := Assignment{Identity: id, Addr: host.BMCAddress, Prefix: net.Prefix, Gateway: net.Gateway,
		Hostname: host.PermanentName + "-bmc", Domain: host.Domain, LeaseTime: time.Hour}
	if z := id.Zone; z != nil {
		a.DNS, a.LeaseTime = z.DNS(), z.Lease()
	}
	// The host's timeline notes a BMC it has not had at this address before.
	if l := f.leases[a.Addr]; l == nil || l.MAC != r.MAC {
		if m := f.bySlot[host.Key]; m != nil {
			b.add(machine.Entry{MachineID: m.ID, At: now, Actor: actorDHCP, Kind: machine.KindBMC,
				Reason: fmt.Sprintf("BMC %s on %s/%s gets %s", r.MAC, id.Switch, id.Port, a.Addr)})
		}
	}
	return a, nil, nil
}

// discoveryAddr gives an unknown machine the fixed address of its port, or an
// address of its pod's pool: the one it holds, the one it asks for when free, or the first free one.
func (f *Fleet) discoveryAddr(d zone.DiscoveryLease, r Request, now time.Time) (netip.Addr, bool) {
	if d.Fixed.IsValid() {
		return d.Fixed, true
	}
	inPool := func(a netip.Addr) bool { return a.IsValid() && a.Compare(d.First) >= 0 && a.Compare(d.Last) <= 0 }
	free := func(a netip.Addr) bool {
		l := f.leases[a]
		return l == nil || l.MAC == r.MAC && l.State != LeaseDeclined || now.After(l.Expires)
	}
	if a, ok := f.leaseOf[r.MAC]; ok && inPool(a) && free(a) {
		return a, true
	}
	if inPool(r.Requested) && free(r.Requested) {
		return r.Requested, true
	}
	// Scan from where the last allocation in this pool stopped, wrapping once,
	// so a storm of new machines does not rescan the taken part of the pool.
	start := f.poolNext[d.First]
	if !inPool(start) {
		start = d.First
	}
	for a := start; ; {
		if free(a) {
			f.poolNext[d.First] = a.Next()
			return a, true
		}
		if a = a.Next(); !inPool(a) {
			a = d.First
		}
		if a == start {
			return netip.Addr{}, false
		}
	}
}

// hold records addr as leased to mac. An address has one holder at a time:
// the lease table is keyed by address, and a client moving to a new address frees its old one.
func (f *Fleet) hold(addr netip.Addr, mac, slot, state string, expires time.Time, b *batch) {
	if old := f.leases[addr]; old != nil && old.MAC != mac && f.leaseOf[old.MAC] == addr {
		delete(f.leaseOf, old.MAC)
	}
	if prev, ok := f.leaseOf[mac]; ok && prev != addr {
		delete(f.leases, prev)
		b.freeLease(prev)
	}
	l := &store.Lease{Addr: addr, MAC: mac, SlotKey: slot, State: state, Expires: expires, At: f.now()}
	f.leases[addr] = l
	f.leaseOf[mac] = addr
	b.putLease(l)
}

func (f *Fleet) ticketFor(mac string, now time.Time) string {
	if t, ok := f.ticket[mac]; ok {
		tk := f.tickets[t]
		tk.expires = now.Add(ticketLifetime)
		f.tickets[t] = tk
		return t
	}
	t := secret.Hex(16)
	f.tickets[t] = ticket{mac: mac, expires: now.Add(ticketLifetime)}
	f.ticket[mac] = t
	return t
}

func (f *Fleet) newMachine(mac string, now time.Time, b *batch) (*machine.Machine, error) {
	id, err := f.ids.take()
	if err != nil {
		return nil, err
	}
	m := &machine.Machine{ID: id, MAC: mac, State: machine.Discovered, StateSince: now, Created: now}
	f.index(m)
	b.touch(m)
	b.created = append(b.created, id)
	return m, nil
}

// observe brings the inventory up to date with a client seen at identity id.
// Called with f.mu held.
func (f *Fleet) observe(ix *zone.Index, id zone.Identity, mac string, now time.Time, b *batch) (*machine.Machine, error) {
	m := f.byMAC[mac]
	if m != nil && m.State == machine.Retired {
		return nil, &Refusal{Reason: "machine " + mac + " is retired", Silent: true}
	}
	if !id.Known() {
		if ix.UnknownPolicy(id) == zone.UnknownIgnore {
			return nil, &Refusal{Reason: "unknown machine ignored by policy: " + id.Reason, Silent: true}
		}
		loc := location(id)
		if m == nil {
			var err error
			if m, err = f.newMachine(mac, now, b); err != nil {
				return nil, err
			}
			m.Location = loc
			b.touch(m)
			b.add(machine.Entry{MachineID: m.ID, At: now, Actor: actorDHCP, Kind: machine.KindDiscovered, Reason: id.Reason})
		} else if m.Location != loc {
			m.Location = loc
			b.touch(m)
			b.add(machine.Entry{MachineID: m.ID, At: now, Actor: actorDHCP, Kind: machine.KindSeen, Reason: "seen where it has no slot: " + id.Reason})
		}
		return m, nil
	}
	s := id.Slot
	if m == nil {
		var err error
		if m, err = f.newMachine(mac, now, b); err != nil {
			return nil, err
		}
	}
	if m.SlotKey == s.Key {
		return m, nil
	}
	timeout := time.Hour
	if z := id.Zone; z != nil {
		timeout = z.Timeout(string(machine.Deploying))
	}
	if m.SlotKey != "" {
		b.add(machine.Entry{MachineID: m.ID, At: now, Actor: actorDHCP, Kind: machine.KindMoved, Reason: fmt.Sprintf("moved from slot %s to %s", m.SlotKey, s.Key)})
		delete(f.bySlot, m.SlotKey)
		m.SlotKey = ""
	}
	m.Location = ""
	if cur := f.bySlot[s.Key]; cur != nil {
		rep, err := machine.Replace(cur, m, s.OnReplace == zone.ReplaceHold, actorDHCP, now, timeout)
		if err != nil {
			return nil, err
		}
		f.revokeToken(cur)
		b.touch(cur)
		b.add(rep.OldEntries...)
		b.add(rep.NewEntries...)
		m.Name = s.Name
	} else {
		m.SlotKey, m.Name = s.Key, s.Name
		b.add(machine.Entry{MachineID: m.ID, At: now, Actor: actorDHCP, Kind: machine.KindSlotAssigned,
			Reason: fmt.Sprintf("in slot %s (%s): %s, role %s", s.Key, via(id), s.Name, roleOf(s))})
		if e, ok := m.Install(actorDHCP, "installing "+s.Name+" as "+roleOf(s), now, timeout); ok {
			b.add(e)
		}
	}
	f.bySlot[s.Key] = m
	b.touch(m)
	return m, nil
}

func via(id zone.Identity) string {
	if id.Via == zone.ViaPin {
		return "MAC pin"
	}
	return "switch " + id.Switch + " port " + id.Port
}

func roleOf(s *zone.Slot) string {
	if s.Variant != "" {
		return s.Role + "/" + s.Variant
	}
	return s.Role
}

func location(id zone.Identity) string {
	if id.Switch == "" {
		return ""
	}
	return id.Switch + "/" + id.Port
}
