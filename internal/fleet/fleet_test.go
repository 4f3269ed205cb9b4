package fleet

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover/drover/internal/machine"
	"github.com/drover/drover/internal/store"
	"github.com/drover/drover/internal/zone"
)

type env struct {
	t    *testing.T
	st   *store.DB
	path string
	ix   *zone.Index
	now  time.Time
	// phase is "before" or "after" the fleet carries out an apply, for tests
	// that run a step in either.
	phase string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	d, err := zone.Load("../../examples/lab")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, path: filepath.Join(t.TempDir(), "d.db"), ix: zone.NewIndex(d), now: time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)}
	if e.st, err = store.OpenSQLite(ctx, e.path); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.ApplyDesign(ctx, &store.Revision{Hash: d.Hash, AppliedBy: "t", AppliedAt: e.now, Sources: d.Source}, d.Slots, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.st.Close() })
	return e
}

// start runs a fleet on the env's store; stop writes what is queued.
func (e *env) start() (*Fleet, func()) {
	e.t.Helper()
	f, err := New(context.Background(), Config{Store: e.st, Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return e.now }})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	var once sync.Once
	return f, func() { once.Do(func() { cancel(); <-done }) }
}

func at(port string, mac string) Request {
	m, _ := net.ParseMAC(mac)
	return Request{MAC: mac, Query: zone.Query{Relay: netip.MustParseAddr("10.77.0.1"), HasOption82: true, CircuitID: port, MAC: m}, IPXE: true}
}

func (e *env) dora(f *Fleet, r Request) Assignment {
	e.t.Helper()
	ctx := context.Background()
	a, err := f.Offer(ctx, r)
	if err != nil {
		e.t.Fatalf("offer to %s: %v", r.MAC, err)
	}
	r.Requested = a.Addr
	if a, err = f.Ack(ctx, r); err != nil {
		e.t.Fatalf("ack to %s: %v", r.MAC, err)
	}
	return a
}

func TestLeasesSurviveRestartAndNeverDouble(t *testing.T) {
	e := newEnv(t)
	f, stop := e.start()
	unknown := []string{"52:54:00:00:10:01", "52:54:00:00:10:02", "52:54:00:00:10:03"}
	got := map[netip.Addr]string{}
	for _, mac := range unknown {
		a := e.dora(f, at("swp7", mac)) // an undefined port: the pod's discovery pool
		if prev, dup := got[a.Addr]; dup {
			t.Fatalf("%s given to %s and %s", a.Addr, prev, mac)
		}
		got[a.Addr] = mac
	}
	stop()

	f, stop = e.start()
	defer stop()
	for _, mac := range unknown { // the same clients keep their addresses after a restart
		a := e.dora(f, at("swp7", mac))
		if got[a.Addr] != mac {
			t.Errorf("after restart %s got %s, which was %s's", mac, a.Addr, got[a.Addr])
		}
	}
	a := e.dora(f, at("swp7", "52:54:00:00:10:04"))
	if _, dup := got[a.Addr]; dup {
		t.Errorf("new client got %s, already leased", a.Addr)
	}
}

func TestHardwareReplacedAndMoved(t *testing.T) {
	e := newEnv(t)
	f, stop := e.start()
	defer stop()
	ctx := context.Background()
	old := e.dora(f, at("swp1", "52:54:00:00:20:01"))
	if old.Hostname != "lab-compute-01" || old.Addr != netip.MustParseAddr("10.77.0.11") {
		t.Fatalf("first machine: %+v", old)
	}
	m1, _ := f.Machine("52:54:00:00:20:01")
	if m1.State != machine.Deploying || m1.SlotKey != "p1-tor1/swp1" {
		t.Fatalf("first machine %+v", m1)
	}
	nw := e.dora(f, at("swp1", "52:54:00:00:20:02"))
	if nw.Addr != old.Addr || nw.Hostname != old.Hostname {
		t.Fatalf("replacement got %+v", nw)
	}
	m1, _ = f.Machine("52:54:00:00:20:01")
	m2, _ := f.Machine("52:54:00:00:20:02")
	if m1.State != machine.Retired || m1.SlotKey != "" || m2.SlotKey != "p1-tor1/swp1" || m2.State != machine.Deploying {
		t.Fatalf("after replacement: old %s %q, new %s %q", m1.State, m1.SlotKey, m2.State, m2.SlotKey)
	}
	if _, err := f.Offer(ctx, at("swp2", "52:54:00:00:20:01")); err == nil {
		t.Error("a retired machine was offered an address")
	}
	// Moving the new machine to another port gives it that port's identity.
	moved := e.dora(f, at("swp2", "52:54:00:00:20:02"))
	if moved.Hostname != "lab-compute-02" {
		t.Fatalf("moved machine: %+v", moved)
	}
	stop()
	tl, _ := e.st.Timeline(ctx, m2.ID, 0, 0)
	kinds := map[machine.Kind]bool{}
	for _, en := range tl {
		kinds[en.Kind] = true
	}
	for _, k := range []machine.Kind{machine.KindHardwareReplaced, machine.KindMoved, machine.KindDHCPOffer, machine.KindDHCPAck} {
		if !kinds[k] {
			t.Errorf("timeline lacks %s: %+v", k, tl)
		}
	}
}

func TestInstallFlow(t *testing.T) {
	e := newEnv(t)
	f, stop := e.start()
	defer stop()
	ctx := context.Background()
	a := e.dora(f, at("swp3", "52:54:00:00:30:01"))
	if _, err := f.Script(ctx, a.Ticket, netip.MustParseAddr("10.77.0.99")); !errors.Is(err, ErrUnknown) {
		t.Errorf("script from another address: %v", err)
	}
	if _, err := f.Script(ctx, "nope", a.Addr); !errors.Is(err, ErrUnknown) {
		t.Errorf("script with a wrong ticket: %v", err)
	}
	t1, err := f.Script(ctx, a.Ticket, a.Addr)
	if err != nil || t1.Action != ActionInstall || t1.Token == "" || t1.Slot.Name != "lab-compute-lvm-03" {
		t.Fatalf("script: %+v %v", t1, err)
	}
	t2, err := f.Script(ctx, a.Ticket, a.Addr) // the machine rebooted mid-install: a new token
	if err != nil || t2.Token == t1.Token {
		t.Fatalf("second script: %v", err)
	}
	if _, err := f.Installing(t1.Token); !errors.Is(err, ErrUnknown) {
		t.Error("the replaced token still works")
	}
	if _, err := f.Installing(t2.Token); err != nil {
		t.Fatal(err)
	}
	if _, err := f.PhoneHome(ctx, t2.Token, "rebooting", "", nil); !errors.Is(err, ErrBadStatus) {
		t.Errorf("bad status: %v", err)
	}
	if _, err := f.PhoneHome(ctx, t2.Token, StatusProgress, "partitioning", nil); err != nil {
		t.Fatal(err)
	}
	// lvm-03's profile writes an image: installed waits for the installed system's first boot.
	if _, err := f.PhoneHome(ctx, t2.Token, StatusInstalled, "", nil); !errors.Is(err, ErrBadStatus) {
		t.Errorf("installed without a plan: %v", err)
	}
	boot, err := f.IssueBootToken(ctx, t2.Token)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.PhoneHome(ctx, boot, StatusProgress, "the boot token is for booted only", nil); !errors.Is(err, ErrUnknown) {
		t.Errorf("progress with the boot token: %v", err)
	}
	if _, err := f.PhoneHome(ctx, boot, StatusBooted, "", nil); !errors.Is(err, ErrUnknown) {
		t.Errorf("booted before the image is on disk: %v", err)
	}
	m, err := f.PhoneHome(ctx, t2.Token, StatusInstalled, "", map[string]any{"cpus": 2.0})
	if err != nil || m.State != machine.Deploying || !m.AwaitingBoot() || m.Facts["cpus"] != 2.0 {
		t.Fatalf("installed: %+v %v", m, err)
	}
	if _, err := f.PhoneHome(ctx, t2.Token, StatusInstalled, "", nil); !errors.Is(err, ErrUnknown) {
		t.Error("a used install token works again")
	}
	if _, err := f.PhoneHome(ctx, t2.Token, StatusBooted, "", nil); !errors.Is(err, ErrUnknown) {
		t.Error("the install token says booted")
	}
	t3, err := f.Script(ctx, a.Ticket, a.Addr)
	if err != nil || t3.Action != ActionLocal || t3.Token != "" {
		t.Fatalf("script of a machine whose image is on disk: %+v %v", t3, err)
	}
	m, err = f.PhoneHome(ctx, boot, StatusBooted, "", map[string]any{"hostname": "x"})
	if err != nil || m.State != machine.Deployed || m.Facts["cpus"] != 2.0 {
		t.Fatalf("booted: %+v %v", m, err)
	}
	if _, err := f.PhoneHome(ctx, boot, StatusBooted, "", nil); !errors.Is(err, ErrUnknown) {
		t.Error("a used boot token works again")
	}
	t4, err := f.Script(ctx, a.Ticket, a.Addr)
	if err != nil || t4.Action != ActionLocal {
		t.Fatalf("script of a deployed machine: %+v %v", t4, err)
	}
}

func TestWatchdogFailsAStuckInstall(t *testing.T) {
	e := newEnv(t)
	f, stop := e.start()
	defer stop()
	e.dora(f, at("swp1", "52:54:00:00:40:01"))
	e.now = e.now.Add(21 * time.Minute) // the lab design's deploying timeout is 20m
	f.Tick()
	m, _ := f.Machine("52:54:00:00:40:01")
	if m.State != machine.DeployFailed || m.InstallTokenHash != "" {
		t.Fatalf("after the watchdog: %s", m.State)
	}
}

func TestDiscoveryPoolIsExhaustedNotDoubled(t *testing.T) {
	e := newEnv(t)
	f, stop := e.start()
	defer stop()
	seen := map[netip.Addr]string{}
	for i := 0; i < 51; i++ { // the lab pool is 10.77.0.200-10.77.0.250
		mac := fmt.Sprintf("52:54:00:00:50:%02x", i)
		a := e.dora(f, at("swp8", mac))
		if prev, dup := seen[a.Addr]; dup {
			t.Fatalf("%s given to %s and %s", a.Addr, prev, mac)
		}
		seen[a.Addr] = mac
	}
	if _, err := f.Offer(context.Background(), at("swp8", "52:54:00:00:50:ff")); err == nil || !strings.Contains(err.Error(), "exhausted") {
		t.Fatalf("52nd unknown machine: %v", err)
	}
	// A released address is found again by the wrapping search.
	f.Release("52:54:00:00:50:00", netip.MustParseAddr("10.77.0.200"))
	if a := e.dora(f, at("swp8", "52:54:00:00:50:fe")); a.Addr != netip.MustParseAddr("10.77.0.200") {
		t.Fatalf("after a release: %s", a.Addr)
	}
}

func TestRebootOfAKnownMachineRecordsOnlyTheAck(t *testing.T) {
	e := newEnv(t)
	f, stop := e.start()
	first := e.dora(f, at("swp1", "52:54:00:00:60:01"))
	e.now = e.now.Add(time.Minute)
	again := e.dora(f, at("swp1", "52:54:00:00:60:01")) // the machine reboots
	if again.Addr != first.Addr {
		t.Fatalf("reboot got %s, first %s", again.Addr, first.Addr)
	}
	stop()
	m, _ := e.st.Machine(context.Background(), "52:54:00:00:60:01")
	tl, _ := e.st.Timeline(context.Background(), m.ID, 0, 0)
	kinds := map[machine.Kind]int{}
	for _, en := range tl {
		kinds[en.Kind]++
	}
	if kinds["dhcp-offer"] != 1 || kinds["dhcp-ack"] != 2 {
		t.Errorf("timeline kinds %v: want one offer (first boot) and two acks", kinds)
	}
	ls, _ := e.st.Leases(context.Background())
	if len(ls) != 1 || ls[0].Addr != first.Addr || ls[0].State != LeaseBound {
		t.Errorf("stored leases %+v", ls)
	}
}

// Two fleets on one database (two servers) never give one pool address
// twice: the database refuses the second, and that fleet's client gets
// another address when it asks again. Ids come from the database too.
func TestTwoFleetsShareAPoolThroughTheDatabase(t *testing.T) {
	e := newEnv(t)
	a, stopA := e.start()
	defer stopA()
	b, stopB := e.start() // loaded before a leases anything: it knows nothing of a's leases
	defer stopB()
	first := e.dora(a, at("swp8", "52:54:00:00:70:01"))
	ctx := context.Background()
	if _, err := b.Offer(ctx, at("swp8", "52:54:00:00:70:02")); !errors.Is(err, store.ErrAddressTaken) {
		t.Fatalf("second fleet offering %s: %v, want ErrAddressTaken", first.Addr, err)
	}
	second := e.dora(b, at("swp8", "52:54:00:00:70:02"))
	if second.Addr == first.Addr {
		t.Fatalf("both clients got %s", first.Addr)
	}
	ma, _ := a.Machine("52:54:00:00:70:01")
	mb, _ := b.Machine("52:54:00:00:70:02")
	if ma.ID == mb.ID {
		t.Fatalf("both machines got id %d", ma.ID)
	}
	ls, _ := e.st.Leases(ctx)
	holders := map[netip.Addr]string{}
	for _, l := range ls {
		holders[l.Addr] = l.MAC
	}
	if holders[first.Addr] != "52:54:00:00:70:01" || holders[second.Addr] != "52:54:00:00:70:02" {
		t.Fatalf("stored leases %+v", ls)
	}
}

// TestPodOwnerTakesOverAPeersOffer: the pod moves between a client's OFFER
// (from server a) and its REQUEST (naming a): the new owner b ACKs it; a
// lone server never answers a REQUEST that names another server.
func TestPodOwnerTakesOverAPeersOffer(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	shared := func(name string) (*Fleet, func()) {
		f, err := New(ctx, Config{Store: e.st, Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return e.now }, Owner: name})
		if err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- f.Run(cctx) }()
		return f, func() { cancel(); <-done }
	}
	claim := func(f *Fleet, owner string) {
		epoch, err := e.st.AssignPod(ctx, "lab/p1", owner)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Acquire(ctx, map[string]int64{"lab/p1": epoch}); err != nil {
			t.Fatal(err)
		}
	}
	a, stopA := shared("a")
	defer stopA()
	claim(a, "a")
	r := at("swp1", "52:54:00:00:71:01")
	offer, err := a.Offer(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Drop(ctx, "lab/p1", true); err != nil {
		t.Fatal(err)
	}
	b, stopB := shared("b")
	defer stopB()
	claim(b, "b")
	r.Requested, r.Peer = offer.Addr, true
	ack, err := b.Ack(ctx, r)
	if err != nil || ack.Addr != offer.Addr {
		t.Fatalf("the new owner's answer to a request for a's offer: %+v %v", ack, err)
	}
	other := at("swp2", "52:54:00:00:71:02")
	other.Requested, other.Peer = netip.MustParseAddr("10.77.0.12"), true
	var ref *Refusal
	if _, err := b.Ack(ctx, other); !errors.As(err, &ref) || !ref.Silent {
		t.Errorf("a request for an offer this pod never made: %v, want a silent refusal", err)
	}
	lone, stop := e.start()
	defer stop()
	r.MAC = "52:54:00:00:71:03"
	if _, err := lone.Ack(ctx, r); !errors.As(err, &ref) || ref.Reason != "client chose another server" {
		t.Errorf("a lone server answering a request for another server: %v", err)
	}
}

// holdWriteLock takes the database's write lock from another connection, as
// a slow disk would hold the writer up; release gives it back.
func holdWriteLock(t *testing.T, path string) (release func()) {
	t.Helper()
	ctx := context.Background()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			conn.ExecContext(ctx, "ROLLBACK")
			conn.Close()
			db.Close()
		})
	}
	t.Cleanup(release)
	return release
}

// A slot's OFFER and ACK on a lone server go out while the database is held
// up, and the binding lands once it is free; an ACK of a discovery pool's
// address waits for its record.
func TestSlotAckDoesNotWaitForTheDatabase(t *testing.T) {
	e := newEnv(t)
	f, stop := e.start()
	defer stop()
	ctx := context.Background()
	pool := at("swp7", "52:54:00:00:70:02") // an undefined port: the discovery pool
	pool.Requested = e.dora(f, pool).Addr
	release := holdWriteLock(t, e.path)

	slot := at("swp1", "52:54:00:00:70:01")
	answered := make(chan error, 1)
	go func() {
		a, err := f.Offer(ctx, slot)
		if err == nil {
			r := slot
			r.Requested = a.Addr
			_, err = f.Ack(ctx, r)
		}
		answered <- err
	}()
	select {
	case err := <-answered:
		if err != nil {
			t.Fatalf("slot DORA: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the slot's DORA waited for the database")
	}
	wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := f.Ack(wctx, pool); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("pool address ACK with the database held: %v, want it to wait for its record", err)
	}
	release()
	stop()
	m, err := e.st.Machine(ctx, slot.MAC)
	if err != nil {
		t.Fatal(err)
	}
	ls, _ := e.st.Leases(ctx)
	var bound bool
	for _, l := range ls {
		bound = bound || l.MAC == slot.MAC && l.State == LeaseBound
	}
	tl, _ := e.st.Timeline(ctx, m.ID, 0, 0)
	kinds := map[machine.Kind]int{}
	for _, en := range tl {
		kinds[en.Kind]++
	}
	if !bound || kinds[machine.KindDHCPAck] != 1 {
		t.Errorf("after the database was free: slot lease bound %v, timeline %v; want the binding and its dhcp-ack", bound, kinds)
	}
}
