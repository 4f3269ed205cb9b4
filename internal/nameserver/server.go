// Package nameserver is drover's authoritative DNS server: it answers for the
// zones dnszone builds from the applied design, transfers them (AXFR, and
// IXFR answered with the whole zone as RFC 1995 allows) to secondaries that
// sign with the TSIG key, and tells the design's secondaries of every change
// with NOTIFY.
package nameserver

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/drover/drover/internal/dnszone"
	"github.com/drover/drover/internal/zone"
)

// Designs is where the applied design comes from (the fleet).
type Designs interface {
	Revision() int64
	Index() *zone.Index
}

// Config is what the nameserver runs with.
type Config struct {
	Addr    string // host:port for UDP and TCP; port 0 picks one
	Designs Designs
	// AppliedAt is when the served revision was applied: a changed zone's
	// serial (seconds since 1970).
	AppliedAt func(ctx context.Context) (time.Time, error)
	Key       *Key          // nil: transfers are refused
	Poll      time.Duration // how often a new revision is looked for (default 1s)
	// NotifyRetries is how often an unanswered NOTIFY is sent again (default 5).
	NotifyRetries int
	Log           *slog.Logger
}

// Server answers DNS queries for the zones of the applied design.
type Server struct {
	cfg      Config
	zones    atomic.Pointer[dnszone.Set]
	revision int64
	ready    chan struct{}
	addr     atomic.Pointer[netip.AddrPort]
	notifyWG sync.WaitGroup

	rcodes    [dns.RcodeBadCookie + 1]prometheus.Counter
	queries   *prometheus.CounterVec
	dropped   prometheus.Counter
	transfers *prometheus.CounterVec
	notifies  *prometheus.CounterVec
	serial    *prometheus.GaugeVec
}

// New makes a nameserver; Run serves.
func New(cfg Config) *Server {
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.NotifyRetries <= 0 {
		cfg.NotifyRetries = 5
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	s := &Server{cfg: cfg, ready: make(chan struct{}),
		queries:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "drover_dns_queries_total", Help: "DNS queries answered, by response code."}, []string{"rcode"}),
		dropped:   prometheus.NewCounter(prometheus.CounterOpts{Name: "drover_dns_dropped_total", Help: "DNS messages dropped because they could not be parsed."}),
		transfers: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "drover_dns_transfers_total", Help: "Zone transfers, by outcome (ok, refused, failed)."}, []string{"outcome"}),
		notifies:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "drover_dns_notifies_total", Help: "NOTIFY messages to secondaries, by outcome (ok, failed)."}, []string{"outcome"}),
		serial:    prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "drover_dns_zone_serial", Help: "The serial of every zone served."}, []string{"zone"}),
	}
	for rc := range s.rcodes {
		name, ok := dns.RcodeToString[rc]
		if !ok {
			name = fmt.Sprint(rc)
		}
		s.rcodes[rc] = s.queries.WithLabelValues(name)
	}
	return s
}

// Collectors are the nameserver's metrics.
func (s *Server) Collectors() []prometheus.Collector {
	return []prometheus.Collector{s.queries, s.dropped, s.transfers, s.notifies, s.serial}
}

// Ready is closed once the server listens.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr is where the server listens (once ready).
func (s *Server) Addr() netip.AddrPort {
	if a := s.addr.Load(); a != nil {
		return *a
	}
	return netip.AddrPort{}
}

// Zones are the zones being served (nil before Run loaded them).
func (s *Server) Zones() *dnszone.Set { return s.zones.Load() }

// Run serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	if err := s.reload(ctx); err != nil {
		return err
	}
	pc, err := net.ListenPacket("udp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("dns listen udp %s: %w", s.cfg.Addr, err)
	}
	// TCP on the very port UDP got, so that ":0" works.
	ln, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		pc.Close()
		return fmt.Errorf("dns listen tcp %s: %w", pc.LocalAddr(), err)
	}
	ap := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	s.addr.Store(&ap)
	var tsig map[string]string
	if k := s.cfg.Key; k != nil {
		tsig = map[string]string{k.Name: k.Secret}
	}
	invalid := func([]byte, error) { s.dropped.Inc() }
	udp := &dns.Server{PacketConn: pc, Handler: s, TsigSecret: tsig, MsgInvalidFunc: invalid}
	tcp := &dns.Server{Listener: ln, Handler: s, TsigSecret: tsig, MsgInvalidFunc: invalid,
		ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second}
	errc := make(chan error, 2)
	for _, srv := range []*dns.Server{udp, tcp} {
		go func() { errc <- srv.ActivateAndServe() }()
	}
	close(s.ready)
	s.cfg.Log.Info("dns serving", "addr", ap, "zones", len(s.Zones().Zones()), "transfers", s.cfg.Key != nil)
	s.notifyAll(ctx, nil) // secondaries catch up after a restart, as BIND does at start

	t := time.NewTicker(s.cfg.Poll)
	defer t.Stop()
	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-errc:
			runErr = fmt.Errorf("dns server: %w", err)
			break loop
		case <-t.C:
			if s.cfg.Designs.Revision() == s.revision {
				continue
			}
			prev := s.Zones()
			if err := s.reload(ctx); err != nil {
				s.cfg.Log.Error("dns: new design not loaded; serving the previous zones", "err", err)
				continue
			}
			s.notifyAll(ctx, prev)
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	udp.ShutdownContext(sctx)
	tcp.ShutdownContext(sctx)
	s.notifyWG.Wait()
	return runErr
}

// reload builds the zones of the applied design, keeping the serial of every
// zone whose content did not change.
func (s *Server) reload(ctx context.Context) error {
	rev := s.cfg.Designs.Revision()
	ix := s.cfg.Designs.Index()
	at, err := s.cfg.AppliedAt(ctx)
	if err != nil {
		return fmt.Errorf("dns: when was revision %d applied: %w", rev, err)
	}
	set := dnszone.Build(ix.Design())
	set.Serials(s.Zones(), at)
	s.zones.Store(set)
	s.revision = rev
	s.serial.Reset()
	for _, z := range set.Zones() {
		s.serial.WithLabelValues(strings.TrimSuffix(z.Origin, ".")).Set(float64(z.Serial()))
	}
	return nil
}

// notifyAll tells each zone's secondaries of a zone that is new or whose
// serial changed since prev (every zone when prev is nil).
func (s *Server) notifyAll(ctx context.Context, prev *dnszone.Set) {
	for _, z := range s.Zones().Zones() {
		if prev != nil {
			if old := prev.Zone(z.Origin); old != nil && old.Serial() == z.Serial() {
				continue
			}
		}
		for _, to := range z.Notify {
			s.notifyWG.Add(1)
			go func() {
				defer s.notifyWG.Done()
				s.notify(ctx, z, to)
			}()
		}
	}
}

// notify sends a NOTIFY until the secondary answers it, backing off between tries.
func (s *Server) notify(ctx context.Context, z *dnszone.Zone, to netip.AddrPort) {
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	wait := time.Second
	var err error
	for try := range s.cfg.NotifyRetries {
		if try > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			wait *= 2
		}
		m := new(dns.Msg)
		m.SetNotify(z.Origin)
		m.Answer = []dns.RR{z.SOA()}
		if k := s.cfg.Key; k != nil {
			c.TsigSecret = map[string]string{k.Name: k.Secret}
			m.SetTsig(k.Name, k.Algorithm, 300, time.Now().Unix())
		}
		var r *dns.Msg
		r, _, err = c.ExchangeContext(ctx, m, to.String())
		if err == nil && r.Rcode != dns.RcodeSuccess {
			err = fmt.Errorf("answered %s", dns.RcodeToString[r.Rcode])
		}
		if err == nil {
			s.notifies.WithLabelValues("ok").Inc()
			s.cfg.Log.Info("dns notify", "zone", z.Origin, "serial", z.Serial(), "to", to)
			return
		}
	}
	s.notifies.WithLabelValues("failed").Inc()
	s.cfg.Log.Warn("dns notify not answered; the secondary will refresh on its own", "zone", z.Origin, "to", to, "err", err)
}

// ServeDNS answers one message.
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := s.answer(w, r)
	if m == nil {
		return // a transfer wrote its own messages
	}
	s.rcodes[min(m.Rcode, len(s.rcodes)-1)].Inc()
	if opt := r.IsEdns0(); opt != nil {
		if opt.Version() != 0 {
			m.Rcode = dns.RcodeBadVers
		}
		m.SetEdns0(max(dns.MinMsgSize, opt.UDPSize()), false)
	}
	if t := r.IsTsig(); t != nil && w.TsigStatus() == nil {
		m.SetTsig(t.Hdr.Name, t.Algorithm, t.Fudge, time.Now().Unix())
	}
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		size := dns.MinMsgSize
		if opt := r.IsEdns0(); opt != nil {
			size = max(size, int(opt.UDPSize()))
		}
		m.Truncate(size)
	}
	w.WriteMsg(m)
}

func reply(r *dns.Msg, rcode int) *dns.Msg {
	m := new(dns.Msg)
	m.SetRcode(r, rcode)
	return m
}

func (s *Server) answer(w dns.ResponseWriter, r *dns.Msg) *dns.Msg {
	if r.Response {
		return reply(r, dns.RcodeFormatError)
	}
	if r.Opcode != dns.OpcodeQuery {
		return reply(r, dns.RcodeNotImplemented)
	}
	if len(r.Question) != 1 {
		return reply(r, dns.RcodeFormatError)
	}
	if r.IsTsig() != nil && w.TsigStatus() != nil {
		return reply(r, dns.RcodeNotAuth)
	}
	q := r.Question[0]
	set := s.Zones()
	z := set.Find(q.Name)
	if z == nil || q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY {
		return reply(r, dns.RcodeRefused)
	}
	switch q.Qtype {
	case dns.TypeAXFR, dns.TypeIXFR:
		return s.transfer(w, r, z)
	}
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	rrs, exists := z.Lookup(q.Name)
	if !exists {
		m.Rcode = dns.RcodeNameError
		m.Ns = []dns.RR{z.SOA()}
		return m
	}
	var cname *dns.CNAME
	for _, rr := range rrs {
		if c, ok := rr.(*dns.CNAME); ok {
			cname = c
		}
	}
	if cname != nil && q.Qtype != dns.TypeCNAME {
		m.Answer = append(m.Answer, cname)
		if tz := set.Find(cname.Target); tz != nil {
			trrs, _ := tz.Lookup(cname.Target)
			m.Answer = append(m.Answer, matching(trrs, q.Qtype)...)
		}
		return m
	}
	m.Answer = matching(rrs, q.Qtype)
	if len(m.Answer) == 0 {
		m.Ns = []dns.RR{z.SOA()}
	}
	return m
}

func matching(rrs []dns.RR, qtype uint16) []dns.RR {
	var out []dns.RR
	for _, rr := range rrs {
		if qtype == dns.TypeANY || rr.Header().Rrtype == qtype {
			out = append(out, rr)
		}
	}
	return out
}

// transfer sends the whole zone to a secondary that signed its request with
// the key, over TCP. An IXFR from a secondary already at the serial gets the
// SOA alone; any other IXFR gets the whole zone (RFC 1995 section 4).
func (s *Server) transfer(w dns.ResponseWriter, r *dns.Msg, z *dnszone.Zone) *dns.Msg {
	t := r.IsTsig()
	remote := w.RemoteAddr().String()
	if k := s.cfg.Key; k == nil || t == nil || !strings.EqualFold(t.Hdr.Name, k.Name) {
		s.transfers.WithLabelValues("refused").Inc()
		s.cfg.Log.Warn("dns transfer refused: not signed with drover's TSIG key", "zone", z.Origin, "from", remote)
		return reply(r, dns.RcodeRefused)
	}
	if r.Question[0].Qtype == dns.TypeIXFR {
		for _, rr := range r.Ns {
			if soa, ok := rr.(*dns.SOA); ok && soa.Serial == z.Serial() {
				m := new(dns.Msg)
				m.SetReply(r)
				m.Authoritative = true
				m.Answer = []dns.RR{z.SOA()}
				s.transfers.WithLabelValues("ok").Inc()
				return m
			}
		}
	}
	if _, tcp := w.RemoteAddr().(*net.TCPAddr); !tcp {
		// Over UDP, the SOA alone tells the secondary to come back over TCP.
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		m.Answer = []dns.RR{z.SOA()}
		return m
	}
	const perMessage = 500
	all := append([]dns.RR{z.SOA()}, z.Records()...)
	all = append(all, z.SOA())
	ch := make(chan *dns.Envelope)
	go func() {
		defer close(ch)
		for i := 0; i < len(all); i += perMessage {
			ch <- &dns.Envelope{RR: all[i:min(i+perMessage, len(all))]}
		}
	}()
	err := new(dns.Transfer).Out(w, r, ch)
	for range ch { // Out stopped early: let the sender finish
	}
	if err != nil {
		s.transfers.WithLabelValues("failed").Inc()
		s.cfg.Log.Warn("dns transfer failed", "zone", z.Origin, "to", remote, "err", err)
		return nil
	}
	s.transfers.WithLabelValues("ok").Inc()
	s.cfg.Log.Info("dns transfer", "zone", z.Origin, "serial", z.Serial(), "to", remote, "records", len(all))
	return nil
}
