package fleet

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"runtime"
	"sort"
	"time"

	"github.com/drover/drover/internal/machine"
	"github.com/drover/drover/internal/store"
)

// batch collects the durable effects of one change made under the fleet's lock.
type batch struct {
	machines map[int64]machine.Machine // snapshots, taken after the change
	entries  []machine.Entry
	leases   map[netip.Addr]store.Lease
	freed    map[netip.Addr]bool
	audits   []*store.AuditEntry
	revision int64   // machine rows reflect the effects of revisions up to this one
	created  []int64 // machines new in this batch
	// podRevisions is revision per pod, for a fleet that shares its database.
	podRevisions map[string]int64
	ops          []*store.MachineOp // ops of other servers this change carries out
	fence        *fence             // the pods the change was decided under
	barrier      bool               // written (as nothing) after everything queued before it
	// onFail, when set, is told in a goroutine of its own that the database
	// refused the batch: for a change its submitter does not wait for.
	onFail func(error)
	// unawaited: nobody waits for the batch (a DHCP exchange's timeline
	// entry, a TFTP transfer's): holding timeline entries alone, it may wait
	// for others to share a commit.
	unawaited bool
}

// newBatch is an empty batch. Its maps are made on first use: most batches
// (a known machine's DHCP exchange) hold a timeline entry or a lease at most.
func newBatch() *batch { return &batch{} }

func (b *batch) touch(m *machine.Machine) {
	if b.machines == nil {
		b.machines = map[int64]machine.Machine{}
	}
	b.machines[m.ID] = *m
}

func (b *batch) add(es ...machine.Entry) { b.entries = append(b.entries, es...) }

func (b *batch) putLease(l *store.Lease) {
	if b.leases == nil {
		b.leases = map[netip.Addr]store.Lease{}
	}
	b.leases[l.Addr] = *l
	delete(b.freed, l.Addr)
}

func (b *batch) freeLease(a netip.Addr) {
	if b.freed == nil {
		b.freed = map[netip.Addr]bool{}
	}
	b.freed[a] = true
	delete(b.leases, a)
}

// leasesOnly: the batch holds leases and timeline entries, nothing else.
func (b *batch) leasesOnly() bool {
	return len(b.machines)+len(b.audits)+len(b.podRevisions)+len(b.ops) == 0 && b.revision == 0 && !b.barrier
}

// entriesOnly: the batch holds timeline entries and nothing else.
func (b *batch) entriesOnly() bool { return b.leasesOnly() && len(b.leases)+len(b.freed) == 0 }

// lazy: the batch is timeline entries alone that nobody waits for.
func (b *batch) lazy() bool { return b.unawaited && b.entriesOnly() }

func (b *batch) empty() bool { return b.entriesOnly() && len(b.entries) == 0 }

// write applies the batch in a transaction.
func (b *batch) write(ctx context.Context, tx store.Tx) error {
	if err := b.writeRows(ctx, tx); err != nil {
		return err
	}
	return tx.AppendEntries(ctx, b.entries)
}

// writeRows writes all of the batch but its timeline entries, which the
// writer appends for a whole group at once (AppendEntries). Machines leaving
// a slot are written before machines taking one: within one change a slot
// only passes from the machine it leaves to the one it goes to, so the
// one-machine-per-slot constraint holds at every step.
func (b *batch) writeRows(ctx context.Context, tx store.Tx) error {
	ids := make([]int64, 0, len(b.machines))
	for id := range b.machines {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		a, c := b.machines[ids[i]], b.machines[ids[j]]
		if (a.SlotKey == "") != (c.SlotKey == "") {
			return a.SlotKey == ""
		}
		return ids[i] < ids[j]
	})
	for _, id := range ids {
		m := b.machines[id]
		if err := tx.PutMachine(ctx, &m); err != nil {
			return err
		}
	}
	leases := make([]store.Lease, 0, len(b.leases))
	for _, l := range b.leases {
		leases = append(leases, l)
	}
	if err := tx.PutLeases(ctx, leases...); err != nil {
		return err
	}
	freed := make([]netip.Addr, 0, len(b.freed))
	for a := range b.freed {
		freed = append(freed, a)
	}
	if err := tx.DeleteLeases(ctx, freed...); err != nil {
		return err
	}
	if b.revision > 0 {
		if err := tx.SetMachinesRevision(ctx, b.revision); err != nil {
			return err
		}
	}
	for pod, rev := range b.podRevisions {
		if err := tx.SetPodRevision(ctx, pod, rev); err != nil {
			return err
		}
	}
	for _, op := range b.ops {
		if err := tx.FinishMachineOp(ctx, op); err != nil {
			return err
		}
	}
	return tx.AddAudit(ctx, b.audits...)
}

// writer persists batches with group commit: whatever queued while the previous
// transaction ran is written in the next one, so the DHCP path never pays a
// disk write per packet. A reply that depends on its change is sent once the
// change is durable; one that does not (a slot's OFFER and ACK on a lone
// server) is sent at once, and the writer, first in first out, lands its
// change before any change made after it.
type writer struct {
	st      store.Store
	owner   string // set when servers divide the database: changes are fenced
	log     *slog.Logger
	ch      chan *pending
	done    chan struct{}
	written chan error // closed: what an empty batch's submitter reads
}

type pending struct {
	b    *batch
	done chan error // nil for an unawaited batch
}

// maxBatches bounds how many changes one transaction carries;
// maxLazyBatches, when all of them are timeline entries nobody waits for.
const (
	maxBatches     = 512
	maxLazyBatches = 4096
)

func newWriter(st store.Store, log *slog.Logger) *writer {
	w := &writer{st: st, log: log, ch: make(chan *pending, 8192), done: make(chan struct{}),
		written: make(chan error)}
	close(w.written)
	return w
}

// ErrStopped is returned for changes submitted after the writer stopped.
var ErrStopped = errors.New("fleet stopped")

// busy reports a backlog: a quarter of the queue taken, well before a full
// queue would hold up whoever submits (with the fleet locked).
func (w *writer) busy() bool { return len(w.ch) >= cap(w.ch)/4 }

// submit queues a batch; the channel it returns tells once the batch is
// durable, or why not. An empty batch is durable at once. A batch nobody
// waits for (unawaited) gets no channel: on the DHCP path those are most
// batches, and a channel each was a measurable share of its allocations.
func (w *writer) submit(b *batch) <-chan error {
	if b.empty() {
		return w.written
	}
	var done chan error
	if !b.unawaited {
		done = make(chan error, 1)
	}
	select {
	case w.ch <- &pending{b: b, done: done}:
	case <-w.done:
		if done != nil {
			done <- ErrStopped
		}
	}
	return done
}

// run writes batches until ctx ends, then drains what is queued.
func (w *writer) run(ctx context.Context) {
	defer close(w.done)
	for {
		select {
		case p := <-w.ch:
			w.flush(ctx, p)
		case <-ctx.Done():
			for {
				select {
				case p := <-w.ch:
					w.flush(ctx, p)
				default:
					return
				}
			}
		}
	}
}

// yieldEvery is how many timeline entries the writer writes, in a group no
// reply waits for, before it lets other goroutines run. Such a group takes
// milliseconds of CPU; on a server with one core for drover the DHCP
// socket's reader would wait for it, and packets overflow the socket
// meanwhile (measured: half the drops at 8,000 DORA/s on one core). A group
// replies wait for is written without yielding: it is what they wait for.
// A power of two, so that each piece is one of AppendEntries' statements.
const yieldEvery = 64

// linger is how long the writer holds a group of timeline entries that
// nothing waits for (a known machine's DHCP exchanges) to gather more: under
// load a commit per few entries was most of the writer's time. Each commit
// writes every page it changed to the log, and a group's entries land all
// over the per-machine index, so fewer, larger groups write much less:
// measured at 28,000 DORA/s for 5 s, 157 MB written with 10 ms (and groups
// of at most 512), 91 MB with 100 ms and 4096, 34 MB with 1 s, which
// delayed the replies waiting behind its longer transactions.
const linger = 100 * time.Millisecond

func (w *writer) flush(ctx context.Context, first *pending) {
	// The group is whatever is queued behind first; a group of lazy batches
	// alone also waits up to linger for more.
	group, lazy := []*pending{first}, first.b.lazy()
	var timeout <-chan time.Time
	for len(group) < maxBatches || (lazy && len(group) < maxLazyBatches) {
		var p *pending
		if lazy && ctx.Err() == nil {
			if timeout == nil {
				t := time.NewTimer(linger)
				defer t.Stop()
				timeout = t.C
			}
			select {
			case p = <-w.ch:
			case <-timeout:
			case <-ctx.Done():
			}
		} else {
			select {
			case p = <-w.ch:
			default:
			}
		}
		if p == nil {
			break
		}
		group = append(group, p)
		lazy = lazy && p.b.lazy()
	}
	// The transaction outlives a cancelled server context on purpose: what was
	// queued must land before shutdown completes.
	err := w.st.Update(context.Background(), func(tx store.Tx) error {
		var fenced *fence
		for _, p := range group {
			if err := w.fenced(tx, p.b, &fenced); err != nil {
				return err
			}
			if err := p.b.writeRows(context.Background(), tx); err != nil {
				return err
			}
		}
		// The group's timeline entries in a few statements, after every
		// machine they name is written, in the order they were decided.
		var entries []machine.Entry
		for _, p := range group {
			entries = append(entries, p.b.entries...)
		}
		if !lazy {
			return tx.AppendEntries(context.Background(), entries)
		}
		for len(entries) > 0 {
			n := min(len(entries), yieldEvery)
			if err := tx.AppendEntries(context.Background(), entries[:n]); err != nil {
				return err
			}
			entries = entries[n:]
			runtime.Gosched()
		}
		return nil
	})
	if err == nil || len(group) == 1 {
		if err != nil {
			w.log.Error("persist changes", "changes", len(group), "err", err)
		}
		for _, p := range group {
			p.finish(err)
		}
		return
	}
	// One change the database refuses (an address another server holds) must
	// not fail the others it was grouped with: each is written on its own.
	for _, p := range group {
		err := w.st.Update(context.Background(), func(tx store.Tx) error {
			var fenced *fence
			if err := w.fenced(tx, p.b, &fenced); err != nil {
				return err
			}
			return p.b.write(context.Background(), tx)
		})
		if err != nil {
			w.log.Error("persist change", "err", err)
		}
		p.finish(err)
	}
}

func (p *pending) finish(err error) {
	if p.done != nil {
		p.done <- err
	}
	if err != nil && p.b.onFail != nil {
		go p.b.onFail(err)
	}
}

// fenced checks, once per distinct fence in a transaction, that this server
// still owns the pods a change was decided under.
func (w *writer) fenced(tx store.Tx, b *batch, last **fence) error {
	if w.owner == "" || b.fence == nil || b.fence == *last {
		return nil
	}
	if err := tx.Fence(context.Background(), w.owner, b.fence.epochs); err != nil {
		return err
	}
	*last = b.fence
	return nil
}
