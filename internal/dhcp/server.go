package dhcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/net/ipv4"
)

// Config configures the DHCP server.
type Config struct {
	Listen      string     // UDP address to listen on (default 0.0.0.0:67)
	Interfaces  []string   // serve only requests arriving on these interfaces (default: all)
	ServerIP    netip.Addr // server identifier and next-server; default: the address the request reached
	Workers     int        // concurrent requests in progress (default 64)
	Queue       int        // requests waiting for a worker; when full, the least urgent is dropped (default 65536)
	ClientRate  float64    // requests per second allowed per client MAC (default 10)
	ClientBurst int        // burst allowed per client MAC (default 20)
	// ReadBuffer is the socket's receive buffer in bytes (default 8 MiB):
	// what arrives while the reader is off the CPU waits there, and what
	// does not fit the kernel drops (counted as socket_overflow).
	ReadBuffer int
	Handler    *Handler
	Log        *slog.Logger
}

// Server serves DHCPv4 on one UDP socket.
type Server struct {
	cfg   Config
	ready chan struct{}
	addr  net.Addr
}

// NewServer checks a configuration.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Handler == nil || cfg.Handler.Leases == nil {
		return nil, errors.New("dhcp: no handler")
	}
	if cfg.Listen == "" {
		cfg.Listen = "0.0.0.0:67"
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 64
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 65536
	}
	if cfg.ClientRate <= 0 {
		cfg.ClientRate = 10
	}
	if cfg.ClientBurst <= 0 {
		cfg.ClientBurst = 20
	}
	if cfg.ReadBuffer <= 0 {
		cfg.ReadBuffer = 8 << 20
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Server{cfg: cfg, ready: make(chan struct{})}, nil
}

// Ready is closed once the socket is listening.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr is the listening address, once Ready.
func (s *Server) Addr() net.Addr { return s.addr }

// job is a request waiting for a worker. It keeps the packet rather than
// its parsed form, which takes several times the memory, so that a storm's
// backlog is cheap to hold; the worker that answers it parses it.
type job struct {
	pkt     []byte
	class   int
	in      Inbound
	ifIndex int
	key     requestKey
	started bool // a worker has it
	skip    bool // a retransmission took its place in the queue: not served
}

// requestKey names one request of one client, for spotting retransmissions.
type requestKey struct {
	mac [6]byte
	xid dhcpv4.TransactionID
	mt  dhcpv4.MessageType
}

// batch is how many datagrams one system call reads or writes (recvmmsg,
// sendmmsg): under load most calls move several, which is where a busy
// server's time went (one recvmsg and one sendmsg per packet).
const batch = 32

// outgoing is a reply waiting for the writer.
type outgoing struct {
	b       []byte
	to      netip.AddrPort
	ifIndex int // send out of this interface (a broadcast reply); 0: by route
}

// Run serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); serr != nil {
				return
			}
			if serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_BROADCAST, 1); serr != nil {
				return
			}
			// Each datagram then carries how many the kernel dropped so far.
			// Best effort, as the buffer's size: a kernel without it (a
			// sandbox's) still gets a DHCP server, without the count.
			syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RXQ_OVFL, 1)
			setReadBuffer(int(fd), s.cfg.ReadBuffer)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	conn, err := lc.ListenPacket(ctx, "udp4", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("dhcp listen %s: %w", s.cfg.Listen, err)
	}
	pc := ipv4.NewPacketConn(conn)
	if err := pc.SetControlMessage(ipv4.FlagInterface|ipv4.FlagDst, true); err != nil {
		conn.Close()
		return fmt.Errorf("dhcp listen %s: %w", s.cfg.Listen, err)
	}
	s.addr = conn.LocalAddr()
	close(s.ready)
	s.cfg.Log.Info("dhcp listening", "addr", s.addr, "workers", s.cfg.Workers, "queue", s.cfg.Queue, "read_buffer", readBuffer(conn))
	if got := readBuffer(conn); got < s.cfg.ReadBuffer {
		s.cfg.Log.Warn("dhcp receive buffer smaller than asked: a storm of requests may overflow it (raise net.core.rmem_max, or run with CAP_NET_ADMIN)",
			"asked", s.cfg.ReadBuffer, "got", got)
	}
	go func() {
		<-ctx.Done()
		conn.Close()
	}()

	jobs := newQueue(s.cfg.Queue)
	// A reply waiting for the writer is one a worker has finished: a reply
	// each is enough, and the backlog waits in the queue, in its order.
	out := make(chan outgoing, s.cfg.Workers)
	var wg sync.WaitGroup
	for i := 0; i < s.cfg.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := jobs.pop(); j != nil; j = jobs.pop() {
				s.serve(ctx, out, j)
				jobs.done(j)
			}
		}()
	}
	written := make(chan struct{})
	go func() {
		defer close(written)
		s.write(pc, out)
	}()
	s.read(ctx, pc, jobs)
	jobs.close()
	wg.Wait()
	close(out)
	<-written
	return nil
}

// write sends replies, as many per system call as are waiting.
func (s *Server) write(pc *ipv4.PacketConn, out <-chan outgoing) {
	stats := s.cfg.Handler.Stats
	msgs := make([]ipv4.Message, 0, batch)
	// Each message's one-buffer list and address, made once rather than per reply.
	bufs := make([][]byte, batch)
	addrs := make([]sendAddr, batch)
	for first := range out {
		msgs = append(msgs[:0], message(first, bufs[0:1:1], &addrs[0]))
	drain:
		for len(msgs) < batch {
			select {
			case o, ok := <-out:
				if !ok {
					break drain
				}
				n := len(msgs)
				msgs = append(msgs, message(o, bufs[n:n+1:n+1], &addrs[n]))
			default:
				break drain
			}
		}
		for sent := 0; sent < len(msgs); {
			n, err := pc.WriteBatch(msgs[sent:], 0)
			if err != nil {
				// The first message of the rest failed: count it and go on with the others.
				stats.Add("tx_error")
				s.cfg.Log.Warn("dhcp send", "to", msgs[sent].Addr, "err", err)
				n = 1
			}
			sent += n
		}
		clear(bufs) // let the sent replies go
	}
}

// sendAddr is a reply's destination as the socket takes it.
type sendAddr struct {
	udp net.UDPAddr
	ip  [4]byte
}

// message is o as a datagram to send, its payload held in buf (one element)
// and its destination in to.
func message(o outgoing, buf [][]byte, to *sendAddr) ipv4.Message {
	buf[0] = o.b
	to.ip = o.to.Addr().As4()
	to.udp = net.UDPAddr{IP: to.ip[:], Port: int(o.to.Port())}
	m := ipv4.Message{Buffers: buf, Addr: &to.udp}
	if o.ifIndex != 0 {
		m.OOB = (&ipv4.ControlMessage{IfIndex: o.ifIndex}).Marshal()
	}
	return m
}

func (s *Server) read(ctx context.Context, pc *ipv4.PacketConn, jobs *queue) {
	limiter := newLimiter(s.cfg.ClientRate, s.cfg.ClientBurst)
	ifaces := &ifaceAddrs{allowed: s.cfg.Interfaces}
	msgs := make([]ipv4.Message, batch)
	for i := range msgs {
		msgs[i].Buffers = [][]byte{make([]byte, 4096)}
		msgs[i].OOB = append(ipv4.NewControlMessage(ipv4.FlagInterface|ipv4.FlagDst), make([]byte, syscall.CmsgSpace(4))...)
	}
	var overflowed uint32 // the kernel's count of datagrams it dropped, as last seen
	for {
		n, err := pc.ReadBatch(msgs, 0)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			s.cfg.Log.Warn("dhcp read", "err", err)
			continue
		}
		now := time.Now()
		for i := range msgs[:n] {
			m := &msgs[i]
			rc := parseControl(m.OOB[:m.NN])
			if rc.counted && rc.drops != overflowed {
				s.cfg.Handler.Stats.AddN("drop_socket_overflow", int64(rc.drops-overflowed))
				overflowed = rc.drops
			}
			s.accept(m.Buffers[0][:m.N], rc, now, jobs, limiter, ifaces)
		}
	}
}

// accept checks one datagram and queues it for a worker.
func (s *Server) accept(b []byte, rc received, now time.Time, jobs *queue, limiter *limiter, ifaces *ifaceAddrs) {
	stats := s.cfg.Handler.Stats
	stats.Add("rx_packets")
	if rc.info && !ifaces.serves(rc.ifIndex) {
		stats.Add("drop_interface")
		return
	}
	h, err := peekHeader(b)
	if err != nil {
		stats.Add("drop_malformed")
		return
	}
	if !limiter.allow(h.key.mac, now) {
		stats.Add("drop_rate_limited")
		return
	}
	j := &job{pkt: b, class: classOf(h), key: h.key}
	if rc.info {
		j.ifIndex = rc.ifIndex
		j.in.Server = s.serverAddr(rc, ifaces)
	}
	switch _, result := jobs.push(j); result {
	case duplicate:
		stats.Add("drop_retransmit")
	case overflow:
		stats.Add("drop_overload")
	}
}

func (s *Server) serverAddr(rc received, ifaces *ifaceAddrs) netip.Addr {
	if s.cfg.ServerIP.IsValid() {
		return s.cfg.ServerIP
	}
	if a := rc.dst; !a.IsMulticast() && a != netip.AddrFrom4([4]byte{255, 255, 255, 255}) && !a.IsUnspecified() {
		return a
	}
	return ifaces.addr(rc.ifIndex)
}

func (s *Server) serve(ctx context.Context, out chan<- outgoing, j *job) {
	stats := s.cfg.Handler.Stats
	if ctx.Err() != nil {
		// Stopping: a storm's backlog goes unanswered rather than through
		// handlers that would each fail on the ended context.
		stats.Add("drop_stopping")
		return
	}
	defer func() {
		if p := recover(); p != nil {
			stats.Add("drop_panic")
			s.cfg.Log.Error("dhcp handler panic", "panic", p, "stack", string(debug.Stack()))
		}
	}()
	if !j.in.Server.IsValid() {
		stats.Add("drop_no_server_address")
		return
	}
	req, err := dhcpv4.FromBytes(j.pkt)
	if err != nil { // peekHeader let it through: not expected
		stats.Add("drop_malformed")
		return
	}
	rep, err := s.cfg.Handler.Handle(ctx, req, j.in)
	if err != nil {
		var d *errDrop
		if errors.As(err, &d) {
			stats.Add("drop_" + d.counter)
			s.cfg.Log.Debug("dhcp no reply", "mac", req.ClientHWAddr.String(), "type", messageType(req).String(), "reason", d.reason)
			return
		}
		stats.Add("drop_error")
		s.cfg.Log.Error("dhcp request", "mac", req.ClientHWAddr.String(), "type", messageType(req).String(), "err", err)
		return
	}
	if rep == nil {
		return
	}
	to := rep.To.AddrPort()
	o := outgoing{b: rep.Packet.ToBytes(), to: netip.AddrPortFrom(to.Addr().Unmap(), to.Port())}
	if rep.Bcast {
		o.ifIndex = j.ifIndex
	}
	s.cfg.Handler.Release(rep)
	out <- o
}

// limiter is a token bucket per client, used only by the reader goroutine.
type limiter struct {
	rate    float64
	burst   float64
	buckets map[[6]byte]*bucket
	swept   time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(rate float64, burst int) *limiter {
	return &limiter{rate: rate, burst: float64(burst), buckets: map[[6]byte]*bucket{}}
}

func (l *limiter) allow(key [6]byte, now time.Time) bool {
	if now.Sub(l.swept) > time.Minute {
		// Forget clients idle long enough to have a full bucket again.
		for k, b := range l.buckets {
			if now.Sub(b.last).Seconds()*l.rate >= l.burst {
				delete(l.buckets, k)
			}
		}
		l.swept = now
	}
	b := l.buckets[key]
	if b == nil {
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// ifaceAddrs caches interface addresses and the interface filter.
type ifaceAddrs struct {
	allowed []string
	mu      sync.Mutex
	names   map[int]string
	addrs   map[int]netip.Addr
}

func (c *ifaceAddrs) lookup(idx int) {
	if c.names == nil {
		c.names, c.addrs = map[int]string{}, map[int]netip.Addr{}
	}
	if _, ok := c.names[idx]; ok {
		return
	}
	ifi, err := net.InterfaceByIndex(idx)
	if err != nil {
		c.names[idx] = ""
		return
	}
	c.names[idx] = ifi.Name
	addrs, _ := ifi.Addrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			if v4, ok := netip.AddrFromSlice(ipn.IP.To4()); ok {
				c.addrs[idx] = v4
				break
			}
		}
	}
}

func (c *ifaceAddrs) serves(idx int) bool {
	if len(c.allowed) == 0 {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lookup(idx)
	for _, n := range c.allowed {
		if n == c.names[idx] {
			return true
		}
	}
	return false
}

func (c *ifaceAddrs) addr(idx int) netip.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lookup(idx)
	return c.addrs[idx]
}
