// Package fleet is the running inventory of a drover server: which machine is
// in which slot, their leases, boot tickets and install tokens. It is held in
// memory for the DHCP and boot hot paths and persisted with group commit; a
// reply that depends on a change is sent only after that change is durable.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/drover/drover/internal/machine"
	"github.com/drover/drover/internal/store"
	"github.com/drover/drover/internal/zone"
)

// Lease states.
const (
	LeaseOffered  = "offered"
	LeaseBound    = "bound"
	LeaseDeclined = "declined"
)

const (
	offerHold      = 2 * time.Minute  // how long an offered address is kept for its client
	declineHold    = 10 * time.Minute // how long a declined address is kept out of use
	ticketLifetime = 15 * time.Minute // how long a DHCP-issued boot ticket opens the iPXE script
	actorDHCP      = "dhcp"
	actorBoot      = "boot"
)

// Config configures a Fleet.
type Config struct {
	Store store.Store
	Log   *slog.Logger
	Now   func() time.Time // defaults to time.Now
	// Power runs power actions through BMCs; nil: power actions are refused.
	Power Power
	// Owner, when set, names this server among several that divide the
	// database's pods: the fleet starts owning none and serves the pods it
	// is given (Acquire), fencing its writes with their epochs.
	Owner string
}

// Fleet is the in-memory inventory. All methods are safe for concurrent use.
type Fleet struct {
	st    store.Store
	log   *slog.Logger
	power Power
	now   func() time.Time
	w     *writer
	ix    atomic.Pointer[zone.Index]
	// served is the revision ix comes from; syncMu orders switches to new ones.
	served atomic.Int64
	syncMu sync.Mutex

	mu      sync.Mutex
	byMAC   map[string]*machine.Machine
	bySlot  map[string]*machine.Machine
	byID    map[int64]*machine.Machine
	ids     *idBlock
	leases  map[netip.Addr]*store.Lease
	leaseOf map[string]netip.Addr // MAC -> its lease
	tokens  map[string]int64      // install token hash -> machine id
	tickets map[string]ticket     // boot ticket -> MAC
	ticket  map[string]string     // MAC -> its current ticket
	// poolNext is where the next free-address search starts, per discovery pool.
	poolNext map[netip.Addr]netip.Addr
	// owner, owned and fence: see pods.go. podRev is, per pod, the revision
	// whose effects its machine rows reflect, where it is ahead of the database's.
	owner  string
	owned  map[string]int64
	fence  *fence
	podRev map[string]int64
}

type ticket struct {
	mac     string
	expires time.Time
}

// New creates a Fleet serving the applied design in the store, loads the
// stored machines and leases, and carries out the effects of revisions applied
// since the machines were last written (an apply made while no server ran).
// One fleet writes a database at a time: callers in different processes hold
// the store's writer lock.
func New(ctx context.Context, cfg Config) (*Fleet, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	ap, err := LoadApplied(ctx, cfg.Store)
	if err != nil {
		return nil, err
	}
	f := &Fleet{
		st: cfg.Store, log: cfg.Log, now: cfg.Now, power: cfg.Power, w: newWriter(cfg.Store, cfg.Log),
		byMAC: map[string]*machine.Machine{}, bySlot: map[string]*machine.Machine{}, byID: map[int64]*machine.Machine{},
		leases: map[netip.Addr]*store.Lease{}, leaseOf: map[string]netip.Addr{},
		tokens: map[string]int64{}, tickets: map[string]ticket{}, ticket: map[string]string{},
		poolNext: map[netip.Addr]netip.Addr{}, ids: &idBlock{st: cfg.Store},
		owner: cfg.Owner, owned: map[string]int64{}, fence: &fence{},
	}
	f.w.owner = cfg.Owner
	if f.podRev, err = cfg.Store.PodRevisions(ctx); err != nil {
		return nil, err
	}
	if f.owner != "" {
		// Pods come later, as the cluster gives them (Acquire).
		f.ix.Store(ap.Index)
		f.served.Store(ap.Revision.ID)
		return f, nil
	}
	ms, err := cfg.Store.AllMachines(ctx)
	if err != nil {
		return nil, fmt.Errorf("load inventory: %w", err)
	}
	for _, m := range ms {
		f.index(m)
	}
	ls, err := cfg.Store.Leases(ctx)
	if err != nil {
		return nil, fmt.Errorf("load leases: %w", err)
	}
	for i := range ls {
		l := ls[i]
		f.leases[l.Addr] = &l
		if l.State != LeaseDeclined {
			f.leaseOf[l.MAC] = l.Addr
		}
	}
	pending, err := cfg.Store.PendingRevisions(ctx)
	if err != nil {
		return nil, err
	}
	// The writer does not run yet: the fleet writes this batch itself.
	b := newBatch()
	f.switchTo(ap, pending, b)
	if !b.empty() {
		if err := cfg.Store.Update(ctx, func(tx store.Tx) error { return b.write(ctx, tx) }); err != nil {
			return nil, fmt.Errorf("carry out design revision %d: %w", ap.Revision.ID, err)
		}
	}
	return f, nil
}

func (f *Fleet) index(m *machine.Machine) {
	f.byMAC[m.MAC] = m
	f.byID[m.ID] = m
	if m.SlotKey != "" {
		f.bySlot[m.SlotKey] = m
	}
	for _, h := range []string{m.InstallTokenHash, m.BootTokenHash} {
		if h != "" {
			f.tokens[h] = m.ID
		}
	}
}

// Run persists changes and runs the watchdogs until ctx ends; then it writes
// what is still queued and returns.
func (f *Fleet) Run(ctx context.Context) error {
	go f.w.run(ctx)
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			<-f.w.done
			return nil
		case <-tick.C:
			f.Tick()
		}
	}
}

// Index is the design being served.
func (f *Fleet) Index() *zone.Index { return f.ix.Load() }

// Machine returns a copy of the machine with that MAC.
func (f *Fleet) Machine(mac string) (machine.Machine, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.byMAC[mac]
	if !ok {
		return machine.Machine{}, false
	}
	return *m, true
}

// Tick applies the watchdogs and forgets expired leases and tickets.
func (f *Fleet) Tick() {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	b := newBatch()
	for _, m := range f.byID {
		if ch, due := m.Overdue(now); due {
			e, err := m.Apply(ch)
			if err != nil {
				continue
			}
			if m.State.IsWork() || m.State == machine.DeployFailed {
				f.revokeToken(m)
			}
			b.touch(m)
			b.add(e)
		}
	}
	for addr, l := range f.leases {
		if now.After(l.Expires) {
			delete(f.leases, addr)
			if f.leaseOf[l.MAC] == addr {
				delete(f.leaseOf, l.MAC)
			}
			b.freeLease(addr)
		}
	}
	for t, tk := range f.tickets {
		if now.After(tk.expires) {
			delete(f.tickets, t)
			if f.ticket[tk.mac] == t {
				delete(f.ticket, tk.mac)
			}
		}
	}
	f.post(b)
}

// revokeToken ends every token of the machine: install and boot.
func (f *Fleet) revokeToken(m *machine.Machine) {
	f.revokeInstallToken(m)
	if m.BootTokenHash != "" {
		delete(f.tokens, m.BootTokenHash)
		m.BootTokenHash = ""
	}
}

func (f *Fleet) revokeInstallToken(m *machine.Machine) {
	if m.InstallTokenHash != "" {
		delete(f.tokens, m.InstallTokenHash)
		m.InstallTokenHash = ""
	}
}

// wait blocks until a submitted batch is durable.
func wait(ctx context.Context, done <-chan error) error {
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// idBlock hands out machine ids from blocks the database reserves, so that
// a new machine costs a database round trip only once per block and servers
// sharing a database never give the same id. Used with f.mu held.
type idBlock struct {
	st        store.Store
	from, end int64
}

const idBlockSize = 256

func (b *idBlock) take() (int64, error) {
	if b.from == b.end {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		first, err := b.st.ReserveIDs(ctx, "machines", idBlockSize)
		if err != nil {
			return 0, err
		}
		b.from, b.end = first, first+idBlockSize
	}
	id := b.from
	b.from++
	return id, nil
}

// ErrUnknown is returned for tickets and tokens that open nothing.
var ErrUnknown = errors.New("unknown or expired credential")
