package dhcp

import (
	"encoding/binary"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// replyOptionsHint is how many options a reply usually carries (an ACK with
// boot and host options has about fifteen): its map is made that large, so
// that it does not grow while the reply is built.
const replyOptionsHint = 16

// newReply starts a reply to req with the fields dhcpv4.NewReplyFromRequest
// sets (op, htype, xid, flags, chaddr and giaddr from the request; option 82,
// RFC 3046, and the client identifier, RFC 6842, echoed) and a message type
// and server identifier. It does not call NewReplyFromRequest: that draws a
// random transaction ID (a getrandom call and a timer per packet) only for
// the request's to replace it, and its option map grows as options are added.
// Under load those were a tenth of the DHCP path's CPU. The reply is built in
// memory a released reply leaves (Release): a fresh option map per reply was
// a third of the bytes the DHCP path allocated.
func (h *Handler) newReply(req *dhcpv4.DHCPv4, mt dhcpv4.MessageType, server netip.Addr) (*Reply, *replyOptions) {
	mem, _ := h.replies.Get().(*replyMemory)
	if mem == nil {
		mem = &replyMemory{opts: replyOptions{m: make(dhcpv4.Options, replyOptionsHint), buf: make([]byte, 0, 128)}}
	}
	opts := mem.opts.m
	mem.pkt = dhcpv4.DHCPv4{
		OpCode:        dhcpv4.OpcodeBootReply,
		HWType:        req.HWType,
		TransactionID: req.TransactionID,
		Flags:         req.Flags,
		ClientHWAddr:  req.ClientHWAddr,
		ClientIPAddr:  net.IPv4zero,
		YourIPAddr:    net.IPv4zero,
		ServerIPAddr:  net.IPv4zero,
		GatewayIPAddr: req.GatewayIPAddr,
		Options:       opts,
	}
	if mem.pkt.GatewayIPAddr == nil {
		mem.pkt.GatewayIPAddr = net.IPv4zero
	}
	mem.reply = Reply{Packet: &mem.pkt, mem: mem}
	// The request's option values are not changed after parsing: the reply
	// can share them.
	for _, code := range [...]uint8{dhcpv4.OptionRelayAgentInformation.Code(), dhcpv4.OptionClientIdentifier.Code()} {
		if v, ok := req.Options[code]; ok {
			opts[code] = v
		}
	}
	o := &mem.opts
	o.bytes(dhcpv4.OptionDHCPMessageType, byte(mt))
	o.addr(dhcpv4.OptionServerIdentifier, server)
	return &mem.reply, o
}

// replyMemory is one reply and what it is built in, reused from reply to
// reply through Handler.replies.
type replyMemory struct {
	reply Reply
	pkt   dhcpv4.DHCPv4
	opts  replyOptions
	to    net.UDPAddr
	// The addresses the packet and to point into.
	ip, yiaddr, siaddr [4]byte
}

// ip4 is a as a slice of into, the reply's own memory: a.AsSlice() allocates.
func ip4(into *[4]byte, a netip.Addr) net.IP {
	*into = a.As4()
	return into[:]
}

// Release hands a reply's memory back for the next reply to reuse, once the
// reply is encoded: neither the reply nor its packet may be used after. A
// reply that is not released is collected as any other value.
func (h *Handler) Release(r *Reply) {
	mem := r.mem
	if mem == nil {
		return
	}
	r.mem = nil
	// Emptied now, so that a pooled reply holds on to no request's memory.
	clear(mem.opts.m)
	mem.opts.buf = mem.opts.buf[:0]
	mem.pkt = dhcpv4.DHCPv4{}
	h.replies.Put(mem)
}

// replyOptions sets a reply's options, their values cut from one buffer
// rather than a slice each (the library's Opt* values): the encodings are
// RFC 2132's, as the library's.
type replyOptions struct {
	m   dhcpv4.Options
	buf []byte
}

// set takes the value appended to buf since start. A value keeps its own
// capacity, so nothing appended later can reach into it; when buf grows,
// values cut before stay in the old array, unchanged.
func (o *replyOptions) set(code dhcpv4.OptionCode, start int) {
	o.m[code.Code()] = o.buf[start:len(o.buf):len(o.buf)]
}

func (o *replyOptions) bytes(code dhcpv4.OptionCode, v ...byte) {
	start := len(o.buf)
	o.buf = append(o.buf, v...)
	o.set(code, start)
}

func (o *replyOptions) str(code dhcpv4.OptionCode, s string) {
	start := len(o.buf)
	o.buf = append(o.buf, s...)
	o.set(code, start)
}

// addr is one IPv4 address (server identifier, subnet mask, a router).
func (o *replyOptions) addr(code dhcpv4.OptionCode, a netip.Addr) {
	o.addrs(code, a)
}

func (o *replyOptions) addrs(code dhcpv4.OptionCode, as ...netip.Addr) {
	start := len(o.buf)
	for _, a := range as {
		b := a.As4()
		o.buf = append(o.buf, b[:]...)
	}
	o.set(code, start)
}

// seconds is a time in whole seconds, 32 bits (lease, T1, T2).
func (o *replyOptions) seconds(code dhcpv4.OptionCode, d time.Duration) {
	start := len(o.buf)
	o.buf = binary.BigEndian.AppendUint32(o.buf, uint32(d/time.Second))
	o.set(code, start)
}

// mask is a prefix's subnet mask.
func (o *replyOptions) mask(code dhcpv4.OptionCode, p netip.Prefix) {
	start := len(o.buf)
	o.buf = binary.BigEndian.AppendUint32(o.buf, ^uint32(0)<<(32-p.Bits()))
	o.set(code, start)
}
