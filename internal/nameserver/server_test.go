package nameserver

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/drover/drover/internal/zone"
)

type designs struct {
	rev atomic.Int64
	ix  atomic.Pointer[zone.Index]
}

func (d *designs) Revision() int64    { return d.rev.Load() }
func (d *designs) Index() *zone.Index { return d.ix.Load() }

func (d *designs) set(t *testing.T, text string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bgo.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	des, err := zone.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	d.ix.Store(zone.NewIndex(des))
	d.rev.Add(1)
}

const testKey = `key "drover-xfr" {
	algorithm hmac-sha256;
	secret "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0IQ==";
};
`

// secondary is a stand-in secondary that records the NOTIFYs it gets.
type secondary struct {
	mu       sync.Mutex
	notified []uint32
}

func (s *secondary) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	if r.Opcode == dns.OpcodeNotify && len(r.Answer) == 1 && w.TsigStatus() == nil && r.IsTsig() != nil {
		s.mu.Lock()
		s.notified = append(s.notified, r.Answer[0].(*dns.SOA).Serial)
		s.mu.Unlock()
		m.SetTsig(r.IsTsig().Hdr.Name, dns.HmacSHA256, 300, time.Now().Unix())
	} else {
		m.Rcode = dns.RcodeRefused
	}
	w.WriteMsg(m)
}

func (s *secondary) serials() []uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]uint32(nil), s.notified...)
}

func TestServer(t *testing.T) {
	key, err := ParseKey(testKey)
	if err != nil {
		t.Fatal(err)
	}
	sec := &secondary{}
	secSrv := &dns.Server{Addr: "127.0.0.1:0", Net: "udp", Handler: sec, TsigSecret: map[string]string{key.Name: key.Secret}}
	started := make(chan struct{})
	secSrv.NotifyStartedFunc = func() { close(started) }
	go secSrv.ListenAndServe()
	<-started
	defer secSrv.Shutdown()

	base, err := os.ReadFile("../zone/testdata/base.yaml")
	if err != nil {
		t.Fatal(err)
	}
	design := strings.Replace(string(base), "dns_servers: [10.10.0.53]\n", "dns_servers: [10.10.0.53]\ndns:\n  notify: ["+secSrv.PacketConn.LocalAddr().String()+"]\n", 1)
	ds := &designs{}
	ds.set(t, design)
	applied := atomic.Int64{}
	applied.Store(1_800_000_000)
	srv := New(Config{Addr: "127.0.0.1:0", Designs: ds, Key: key, Poll: 20 * time.Millisecond,
		AppliedAt: func(context.Context) (time.Time, error) { return time.Unix(applied.Load(), 0), nil }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	<-srv.Ready()
	addr := srv.Addr().String()

	query := func(name string, qtype uint16) *dns.Msg {
		t.Helper()
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		r, _, err := new(dns.Client).Exchange(m, addr)
		if err != nil {
			t.Fatalf("query %s %s: %v", name, dns.TypeToString[qtype], err)
		}
		return r
	}
	tests := []struct {
		name   string
		qtype  uint16
		rcode  int
		answer []string // last field of each answer record
		ns     bool     // SOA in authority
	}{
		{"bgo-compute-01.bgo.example.org.", dns.TypeA, dns.RcodeSuccess, []string{"10.10.0.11"}, false},
		{"BGO-Compute-01.bgo.example.org.", dns.TypeA, dns.RcodeSuccess, []string{"10.10.0.11"}, false},
		{"bgo-compute-lvm-21.bgo.example.org.", dns.TypeA, dns.RcodeSuccess, []string{"bgo-compute-21.bgo.example.org.", "10.10.0.31"}, false},
		{"bgo-compute-01.bgo.example.org.", dns.TypeAAAA, dns.RcodeSuccess, nil, true},
		{"bmc.bgo.example.org.", dns.TypeA, dns.RcodeSuccess, nil, true},
		{"nosuch.bgo.example.org.", dns.TypeA, dns.RcodeNameError, nil, true},
		{"11.0.10.10.in-addr.arpa.", dns.TypePTR, dns.RcodeSuccess, []string{"bgo-compute-01.bgo.example.org."}, false},
		{"example.com.", dns.TypeA, dns.RcodeRefused, nil, false},
		{"bgo.example.org.", dns.TypeAXFR, dns.RcodeRefused, nil, false}, // unsigned
	}
	for _, tt := range tests {
		t.Run(tt.name+"/"+dns.TypeToString[tt.qtype], func(t *testing.T) {
			r := query(tt.name, tt.qtype)
			if r.Rcode != tt.rcode {
				t.Fatalf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tt.rcode])
			}
			var got []string
			for _, rr := range r.Answer {
				f := strings.Fields(rr.String())
				got = append(got, f[len(f)-1])
			}
			if strings.Join(got, " ") != strings.Join(tt.answer, " ") {
				t.Errorf("answer %v, want %v", got, tt.answer)
			}
			if tt.rcode != dns.RcodeRefused && !r.Authoritative {
				t.Error("not authoritative")
			}
			if hasSOA := len(r.Ns) == 1 && r.Ns[0].Header().Rrtype == dns.TypeSOA; hasSOA != tt.ns {
				t.Errorf("authority %v", r.Ns)
			}
		})
	}

	// A malformed packet is dropped and counted, and the server goes on.
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte{0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff}) // a question cut short
	c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(srv.dropped) != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := testutil.ToFloat64(srv.dropped); got != 1 {
		t.Errorf("dropped %v, want 1", got)
	}
	if r := query("bgo-compute-01.bgo.example.org.", dns.TypeA); len(r.Answer) != 1 {
		t.Errorf("after a malformed packet: %v", r)
	}

	transfer := func(qtype uint16, serial uint32) []dns.RR {
		t.Helper()
		m := new(dns.Msg)
		m.SetQuestion("bgo.example.org.", qtype)
		if qtype == dns.TypeIXFR {
			m.SetIxfr("bgo.example.org.", serial, "ns1.bgo.example.org.", "hostmaster.bgo.example.org.")
		}
		m.SetTsig(key.Name, key.Algorithm, 300, time.Now().Unix())
		tr := &dns.Transfer{TsigSecret: map[string]string{key.Name: key.Secret}}
		env, err := tr.In(m, addr)
		if err != nil {
			t.Fatal(err)
		}
		var rrs []dns.RR
		for e := range env {
			if e.Error != nil {
				t.Fatal(e.Error)
			}
			rrs = append(rrs, e.RR...)
		}
		return rrs
	}
	fwd := srv.Zones().Zone("bgo.example.org")
	axfr := transfer(dns.TypeAXFR, 0)
	if want := len(fwd.Records()) + 2; len(axfr) != want || axfr[0].Header().Rrtype != dns.TypeSOA || axfr[len(axfr)-1].Header().Rrtype != dns.TypeSOA {
		t.Errorf("AXFR: %d records, want %d framed by the SOA", len(axfr), want)
	}
	if ixfr := transfer(dns.TypeIXFR, fwd.Serial()); len(ixfr) != 1 {
		t.Errorf("IXFR at the current serial: %d records, want the SOA alone", len(ixfr))
	}
	if ixfr := transfer(dns.TypeIXFR, fwd.Serial()-1); len(ixfr) != len(axfr) {
		t.Errorf("IXFR from an older serial: %d records, want the whole zone (%d)", len(ixfr), len(axfr))
	}

	waitNotified := func(serial uint32) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			for _, s := range sec.serials() {
				if s == serial {
					return
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("no NOTIFY with serial %d; got %v", serial, sec.serials())
	}
	waitNotified(1_800_000_000)

	// A design change: the changed zone gets a new serial and a NOTIFY.
	applied.Store(1_800_000_100)
	ds.set(t, strings.Replace(design, "compute: 10", "compute: 40", 1))
	waitNotified(1_800_000_100)
	if r := query("bgo-compute-01.bgo.example.org.", dns.TypeA); len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "10.10.0.41" {
		t.Errorf("after the change: %v", r.Answer)
	}
	if got := srv.Zones().Zone("bgo.example.org").Serial(); got != 1_800_000_100 {
		t.Errorf("serial %d", got)
	}
}

func TestParseKey(t *testing.T) {
	tests := []struct {
		name, text, err string
	}{
		{"tsig-keygen output", testKey, ""},
		{"comments", "# made by hand\n// and checked\n/* twice\n */" + testKey + " // done", ""},
		{"a secret with // in it", "key \"drover-xfr\" { algorithm hmac-sha256; secret \"pL5Eof//FzmmLUp024wZLds2aIRPz/6C9x4Xpdmaarw=\"; }; # tsig-keygen", ""},
		{"a comment hides the secret", "key \"drover-xfr\" { algorithm hmac-sha256; # secret \"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0IQ==\";\n};", "has no secret"},
		{"no key", "options {};", "want exactly one key statement"},
		{"md5", `key "k" { algorithm hmac-md5; secret "c2VjcmV0LXNlY3JldC1zZWNyZXQ="; };`, "is not one of"},
		{"short secret", `key "k" { algorithm hmac-sha256; secret "c2hvcnQ="; };`, "at least 16 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParseKey(tt.text)
			if tt.err == "" {
				if err != nil || k.Name != "drover-xfr." || k.Algorithm != dns.HmacSHA256 || !strings.Contains(tt.text, `"`+k.Secret+`"`) {
					t.Fatalf("%+v, %v", k, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("error %v, want %q", err, tt.err)
			}
		})
	}
}

func FuzzParseKey(f *testing.F) {
	f.Add(testKey)
	f.Add(`key k { algorithm hmac-sha512; secret "AAAA"; };`)
	f.Fuzz(func(t *testing.T, text string) {
		if k, err := ParseKey(text); err == nil && (k.Name == "" || k.Secret == "") {
			t.Fatalf("accepted a key without name or secret: %+v", k)
		}
	})
}
