package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"
)

// loadResult is one dhcp-load run, counted the way perfdhcp counts: a drop
// is a DISCOVER without an OFFER or a REQUEST without an ACK.
type loadResult struct {
	Seconds   float64 `json:"seconds"` // the sending period
	Discovers int     `json:"discovers"`
	Offers    int     `json:"offers"`
	Requests  int     `json:"requests"`
	Acks      int     `json:"acks"`
	Naks      int     `json:"naks"`
	AvgDOms   float64 `json:"avg_discover_offer_ms"`
	AvgRAms   float64 `json:"avg_request_ack_ms"`
}

// exchange is one DORA: its DISCOVER's send time is written by the sender and
// read by the receiver, the rest only by the receiver.
type exchange struct {
	discoverAt atomic.Int64 // ns since the start
	requestAt  int64
	offered    bool
	acked      bool
}

// loadBatch is how many datagrams one system call sends or receives.
const loadBatch = 64

// dhcpLoad is the harness's own DHCP load generator. It keeps perfdhcp's
// method (DISCOVERs as a relay at a fixed rate, a REQUEST for each OFFER,
// unanswered requests are drops) but sends and receives many datagrams per
// system call (sendmmsg, recvmmsg) and writes packets into reused buffers,
// so that on one CPU here it offers more than perfdhcp can. Written for the
// bench; no library generates DHCP load.
func dhcpLoad(args []string) int {
	fs := flag.NewFlagSet("dhcp-load", flag.ExitOnError)
	local := fs.String("l", "", "relay address: giaddr, bound on port 67")
	server := fs.String("s", "", "DHCP server address")
	rate := fs.Int("r", 1000, "DISCOVERs per second")
	period := fs.Duration("p", 5*time.Second, "how long to send")
	wait := fs.Duration("W", 250*time.Millisecond, "how long to wait for late replies after sending")
	macFile := fs.String("M", "", "MAC addresses, one per line, used in turn")
	fs.Parse(args)
	res, err := runLoad(*local, *server, *rate, *period, *wait, *macFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dhcp-load:", err)
		return 1
	}
	json.NewEncoder(os.Stdout).Encode(res)
	return 0
}

func runLoad(local, server string, rate int, period, wait time.Duration, macFile string) (*loadResult, error) {
	relay, err := netip.ParseAddr(local)
	if err != nil {
		return nil, fmt.Errorf("relay address: %w", err)
	}
	srv, err := netip.ParseAddr(server)
	if err != nil {
		return nil, fmt.Errorf("server address: %w", err)
	}
	macs, err := readMACs(macFile)
	if err != nil {
		return nil, err
	}
	conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(relay, 67)))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	conn.SetReadBuffer(16 << 20)
	conn.SetWriteBuffer(16 << 20)
	pc := ipv4.NewPacketConn(conn)
	to := net.UDPAddrFromAddrPort(netip.AddrPortFrom(srv, 67))

	total := int(float64(rate) * period.Seconds())
	exs := make([]exchange, total)
	start := time.Now()
	received := make(chan receiveCounts, 1)
	go func() { received <- receive(pc, to, relay, macs, exs, start) }()

	// Send each DISCOVER when it is due, as many at once as are due.
	msgs := make([]ipv4.Message, loadBatch)
	for i := range msgs {
		msgs[i] = ipv4.Message{Buffers: [][]byte{make([]byte, 300)}, Addr: to}
	}
	sent := 0
	for sent < total {
		due := min(total, int(float64(rate)*time.Since(start).Seconds())+1)
		for sent < due {
			n := min(loadBatch, due-sent)
			for j := range n {
				i := sent + j
				buildPacket(msgs[j].Buffers[0], 1, uint32(i+1), macs[i%len(macs)], relay, netip.Addr{}, netip.Addr{})
				exs[i].discoverAt.Store(int64(time.Since(start)))
			}
			if err := writeAll(pc, msgs[:n]); err != nil {
				return nil, err
			}
			sent += n
		}
		time.Sleep(200 * time.Microsecond)
	}
	sending := time.Since(start)
	time.Sleep(wait)
	conn.Close()
	rc := <-received
	res := &loadResult{Seconds: sending.Seconds(), Discovers: sent, Offers: rc.offers, Requests: rc.requests, Acks: rc.acks, Naks: rc.naks}
	if rc.offers > 0 {
		res.AvgDOms = float64(rc.doNanos) / float64(rc.offers) / 1e6
	}
	if rc.acks > 0 {
		res.AvgRAms = float64(rc.raNanos) / float64(rc.acks) / 1e6
	}
	return res, nil
}

type receiveCounts struct {
	offers, requests, acks, naks int
	doNanos, raNanos             int64
}

// receive counts replies and answers each first OFFER with a REQUEST, until
// the socket is closed.
func receive(pc *ipv4.PacketConn, to net.Addr, relay netip.Addr, macs []net.HardwareAddr, exs []exchange, start time.Time) receiveCounts {
	var rc receiveCounts
	in := make([]ipv4.Message, loadBatch)
	for i := range in {
		in[i].Buffers = [][]byte{make([]byte, 1500)}
	}
	out := make([]ipv4.Message, loadBatch)
	for i := range out {
		out[i] = ipv4.Message{Buffers: [][]byte{make([]byte, 300)}, Addr: to}
	}
	for {
		n, err := pc.ReadBatch(in, 0)
		if err != nil {
			return rc
		}
		now := int64(time.Since(start))
		reqs := 0
		for _, m := range in[:n] {
			b := m.Buffers[0][:m.N]
			if len(b) < 240 || b[0] != 2 {
				continue
			}
			i := int(binary.BigEndian.Uint32(b[4:8])) - 1
			if i < 0 || i >= len(exs) {
				continue
			}
			ex := &exs[i]
			kind, serverID := replyOptions(b)
			switch kind {
			case 2: // OFFER
				if ex.offered {
					continue
				}
				ex.offered = true
				rc.offers++
				rc.doNanos += now - ex.discoverAt.Load()
				yiaddr, _ := netip.AddrFromSlice(b[16:20])
				buildPacket(out[reqs].Buffers[0], 3, uint32(i+1), macs[i%len(macs)], relay, yiaddr, serverID)
				ex.requestAt = now
				reqs++
			case 5, 6: // ACK, NAK
				if !ex.offered || ex.acked {
					continue
				}
				ex.acked = true
				if kind == 6 {
					rc.naks++
					continue
				}
				rc.acks++
				rc.raNanos += now - ex.requestAt
			}
		}
		if reqs > 0 {
			if writeAll(pc, out[:reqs]) != nil {
				return rc
			}
			rc.requests += reqs
		}
	}
}

func writeAll(pc *ipv4.PacketConn, msgs []ipv4.Message) error {
	for len(msgs) > 0 {
		n, err := pc.WriteBatch(msgs, 0)
		if err != nil {
			return err
		}
		msgs = msgs[n:]
	}
	return nil
}

// buildPacket writes a relayed BOOTREQUEST of the given DHCP message type into
// b (300 bytes, the BOOTP minimum), the way perfdhcp's relay mode sends one.
func buildPacket(b []byte, kind byte, xid uint32, mac net.HardwareAddr, relay, requested, serverID netip.Addr) {
	clear(b)
	b[0], b[1], b[2], b[3] = 1, 1, 6, 1 // BOOTREQUEST, Ethernet, 6-byte address, one relay hop
	binary.BigEndian.PutUint32(b[4:8], xid)
	r := relay.As4()
	copy(b[24:28], r[:])
	copy(b[28:34], mac)
	copy(b[236:240], []byte{99, 130, 83, 99})
	o := b[240:]
	n := copy(o, []byte{53, 1, kind})
	if requested.IsValid() {
		a := requested.As4()
		n += copy(o[n:], []byte{50, 4, a[0], a[1], a[2], a[3]})
	}
	if serverID.IsValid() {
		a := serverID.As4()
		n += copy(o[n:], []byte{54, 4, a[0], a[1], a[2], a[3]})
	}
	copy(o[n:], []byte{55, 4, 1, 3, 6, 15, 255})
}

// replyOptions returns a reply's DHCP message type and server identifier.
func replyOptions(b []byte) (kind byte, serverID netip.Addr) {
	for i := 240; i < len(b); {
		code := b[i]
		if code == 255 {
			break
		}
		if code == 0 {
			i++
			continue
		}
		if i+1 >= len(b) {
			break
		}
		l := int(b[i+1])
		v := b[i+2 : min(len(b), i+2+l)]
		switch {
		case code == 53 && len(v) == 1:
			kind = v[0]
		case code == 54 && len(v) == 4:
			serverID = netip.AddrFrom4([4]byte(v))
		}
		i += 2 + l
	}
	return kind, serverID
}

func readMACs(path string) ([]net.HardwareAddr, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var macs []net.HardwareAddr
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		mac, err := net.ParseMAC(line)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		macs = append(macs, mac)
	}
	if len(macs) == 0 {
		return nil, errors.New(path + ": no MAC addresses")
	}
	return macs, sc.Err()
}
