// Package dhcp is drover's DHCPv4 server: relay and option 82 identity, the
// full message set, boot file choice, and the machinery that keeps a boot
// storm from exhausting the server (bounded workers, per-client rate limits,
// retransmit de-duplication). Packets are encoded with insomniacslk/dhcp; the
// policy is in the fleet.
package dhcp

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"sync"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/drover/drover/internal/counter"
	"github.com/drover/drover/internal/fleet"
	"github.com/drover/drover/internal/zone"
)

// Leaser decides identities and addresses; the fleet implements it.
type Leaser interface {
	Offer(ctx context.Context, r fleet.Request) (fleet.Assignment, error)
	Ack(ctx context.Context, r fleet.Request) (fleet.Assignment, error)
	Inform(r fleet.Request) (fleet.Assignment, error)
	Release(mac string, addr netip.Addr)
	Decline(mac string, addr netip.Addr)
}

// Handler turns one request into at most one reply. It holds no sockets, so
// it can be tested and fuzzed with plain packets.
type Handler struct {
	Leases    Leaser
	Files     BootFiles
	HTTPPort  int    // the machine HTTP listener's port, for script and loader URLs
	HTTPHost  string // host for those URLs; default: the server address the client reached
	Stats     *counter.Set
	LoaderURL string // path of the UEFI HTTP Boot loader on the HTTP listener (default /ipxe/ipxe.efi)

	replies sync.Pool // *replyMemory of released replies
	// Stats' counters the DHCP path adds to for every packet.
	received, sent typeCounters
	relayed        relayCounters
}

// Inbound is where a request came in.
type Inbound struct {
	Server netip.Addr // our address the client or relay reached (server identifier)
}

// Reply is a response and where to send it.
type Reply struct {
	Packet *dhcpv4.DHCPv4
	To     *net.UDPAddr
	Bcast  bool // broadcast on the receiving interface

	mem *replyMemory // what the reply is built in, until released
}

// errDrop marks requests that get no reply, with the reason counted.
type errDrop struct {
	reason string
	// counter names the drop in drover_dhcp_dropped_total: "refused", or
	// "other_server" for a pod another server on the database answers for.
	counter string
}

func (e *errDrop) Error() string { return "dropped: " + e.reason }

func drop(reason string) error { return &errDrop{reason, "refused"} }

// Handle answers a request. A nil reply with a nil error means "no answer due".
func (h *Handler) Handle(ctx context.Context, req *dhcpv4.DHCPv4, in Inbound) (*Reply, error) {
	if req.OpCode != dhcpv4.OpcodeBootRequest {
		return nil, drop("not a request")
	}
	if req.HWType != 1 || len(req.ClientHWAddr) != 6 {
		return nil, drop("not ethernet")
	}
	mt := messageType(req)
	if mt == dhcpv4.MessageTypeNone {
		return nil, drop("no message type")
	}
	h.received.add(h.Stats, "rx_", mt)
	kind := ClientKind(req)
	r := h.request(req, kind)
	switch mt {
	case dhcpv4.MessageTypeDiscover:
		return h.discover(ctx, req, in, r, kind)
	case dhcpv4.MessageTypeRequest:
		return h.requestMsg(ctx, req, in, r, kind)
	case dhcpv4.MessageTypeRelease:
		if a, ok := addrFrom(req.ClientIPAddr); ok {
			h.Leases.Release(r.MAC, a)
		}
		return nil, nil
	case dhcpv4.MessageTypeDecline:
		if a, _ := optionAddr(req, dhcpv4.OptionRequestedIPAddress); usable(a) {
			h.Leases.Decline(r.MAC, a)
		}
		return nil, nil
	case dhcpv4.MessageTypeInform:
		return h.inform(req, in, r)
	}
	return nil, drop("unexpected message type " + mt.String())
}

func addrFrom(ip net.IP) (netip.Addr, bool) {
	a, ok := netip.AddrFromSlice(ip.To4())
	if !ok || a.IsUnspecified() {
		return netip.Addr{}, false
	}
	return a, true
}

func usable(a netip.Addr) bool { return a.IsValid() && !a.IsUnspecified() }

// The library's accessors (MessageType, ServerIdentifier, ...) decode an
// option afresh on every call, with an allocation each; a request asks for
// its message type several times. The options below are read straight from
// the parsed map, with the library's rules for their length.

// messageType is option 53, MessageTypeNone unless it is one byte.
func messageType(req *dhcpv4.DHCPv4) dhcpv4.MessageType {
	if v := req.Options.Get(dhcpv4.OptionDHCPMessageType); len(v) == 1 {
		return dhcpv4.MessageType(v[0])
	}
	return dhcpv4.MessageTypeNone
}

// optionAddr is an option holding one IPv4 address (50, 54); present only
// when it is four bytes long.
func optionAddr(req *dhcpv4.DHCPv4, code dhcpv4.OptionCode) (a netip.Addr, present bool) {
	if v := req.Options.Get(code); len(v) == net.IPv4len {
		return netip.AddrFrom4([4]byte(v)), true
	}
	return netip.Addr{}, false
}

// request extracts identity and boot facts from a packet; kind is its ClientKind.
func (h *Handler) request(req *dhcpv4.DHCPv4, kind string) fleet.Request {
	q := zone.Query{MAC: req.ClientHWAddr}
	if a, ok := addrFrom(req.GatewayIPAddr); ok {
		q.Relay = a
	}
	if rai := req.RelayAgentInfo(); rai != nil {
		q.HasOption82 = true
		q.CircuitID = string(rai.Get(dhcpv4.AgentCircuitIDSubOption))
		q.RemoteID = string(rai.Get(dhcpv4.AgentRemoteIDSubOption))
	} else if req.Options.Has(dhcpv4.OptionRelayAgentInformation) {
		q.HasOption82 = true // present but malformed: still a claim to distrust
	}
	ztp := ZTPClient(req)
	q.ZTP = ztp != ""
	return fleet.Request{Query: q, MAC: req.ClientHWAddr.String(), IPXE: kind == KindIPXE, ZTP: ztp}
}

// baseURL is drover's machine HTTP base as this client reaches it.
func (h *Handler) baseURL(in Inbound) string {
	host := h.HTTPHost
	if host == "" {
		host = in.Server.String()
	}
	return "http://" + net.JoinHostPort(host, strconv.Itoa(h.HTTPPort))
}

// bootPlan is how a client's boot file is chosen, once per reply when its
// ticket is known. An iPXE script's URL carries the machine's boot ticket, a
// credential: the timeline names the script without it.
type bootPlan struct {
	kind     string
	script   string     // an iPXE client's script URL, up to its ticket
	fixed    BootChoice // any other client's choice
	timeline string     // how the choice reads on the timeline
}

func (p bootPlan) choose(files BootFiles, ticket string) BootChoice {
	if p.kind == KindIPXE {
		return ChooseBoot(p.kind, files, p.script+ticket+".ipxe", "")
	}
	return p.fixed
}

// boot plans a client of this kind's boot. It is a value rather than a
// closure: one closure per request was an allocation on the DHCP path.
func (h *Handler) boot(kind string, in Inbound) bootPlan {
	switch kind {
	case KindIPXE:
		return bootPlan{kind: kind, script: h.baseURL(in) + "/boot/", timeline: "its iPXE script"}
	case KindUEFIHTTP:
		loader := h.LoaderURL
		if loader == "" {
			loader = "/ipxe/" + h.Files.withDefaults().UEFI
		}
		c := ChooseBoot(kind, h.Files, "", h.baseURL(in)+loader)
		return bootPlan{kind: kind, fixed: c, timeline: c.File}
	}
	// The other kinds boot a TFTP path, or nothing: no URL to build.
	c := ChooseBoot(kind, h.Files, "", "")
	return bootPlan{kind: kind, fixed: c, timeline: c.File}
}

func (h *Handler) discover(ctx context.Context, req *dhcpv4.DHCPv4, in Inbound, r fleet.Request, kind string) (*Reply, error) {
	plan := h.boot(kind, in)
	r.BootFile = plan.timeline
	a, err := h.Leases.Offer(ctx, r)
	if err != nil {
		return nil, refused(err)
	}
	return h.reply(req, in, dhcpv4.MessageTypeOffer, a, plan.choose(h.Files, a.Ticket), r.ZTP)
}

func (h *Handler) requestMsg(ctx context.Context, req *dhcpv4.DHCPv4, in Inbound, r fleet.Request, kind string) (*Reply, error) {
	sid, hasSID := optionAddr(req, dhcpv4.OptionServerIdentifier)
	requested, hasRequested := optionAddr(req, dhcpv4.OptionRequestedIPAddress)
	if !usable(requested) {
		requested = netip.Addr{}
	}
	switch {
	case hasSID && !sid.IsUnspecified():
		// SELECTING: the client picked one server's offer. Another server's
		// is answered only by the owner of a pod that moved here since.
		if sid != in.Server {
			r.Peer = true
		}
		r.Requested = requested
	case hasRequested:
		// INIT-REBOOT: the client asks to keep an address it remembers.
		r.Requested = requested
	default:
		// RENEWING or REBINDING: the address is in ciaddr.
		a, ok := addrFrom(req.ClientIPAddr)
		if !ok {
			return nil, drop("request without an address")
		}
		r.Requested, r.Renewing = a, true
	}
	if !r.Requested.IsValid() {
		return nil, drop("request without an address")
	}
	plan := h.boot(kind, in)
	r.BootFile = plan.timeline
	a, err := h.Leases.Ack(ctx, r)
	if err != nil {
		var ref *fleet.Refusal
		if errors.As(err, &ref) && !ref.Silent {
			return h.nak(req, in, ref.Reason)
		}
		return nil, refused(err)
	}
	return h.reply(req, in, dhcpv4.MessageTypeAck, a, plan.choose(h.Files, a.Ticket), r.ZTP)
}

func (h *Handler) inform(req *dhcpv4.DHCPv4, in Inbound, r fleet.Request) (*Reply, error) {
	a, err := h.Leases.Inform(r)
	if err != nil {
		return nil, refused(err)
	}
	rep, o := h.newReply(req, dhcpv4.MessageTypeAck, in.Server)
	configOptions(o, a)
	return h.route(req, rep, false), nil
}

func refused(err error) error {
	var ref *fleet.Refusal
	if errors.As(err, &ref) {
		if ref.Elsewhere {
			return &errDrop{ref.Reason, "other_server"}
		}
		return drop(ref.Reason)
	}
	return err
}

func (h *Handler) nak(req *dhcpv4.DHCPv4, in Inbound, reason string) (*Reply, error) {
	rep, o := h.newReply(req, dhcpv4.MessageTypeNak, in.Server)
	o.str(dhcpv4.OptionMessage, reason)
	h.Stats.Add("tx_NAK")
	return h.route(req, rep, true), nil
}

func configOptions(o *replyOptions, a fleet.Assignment) {
	if a.Prefix.IsValid() {
		o.mask(dhcpv4.OptionSubnetMask, a.Prefix)
	}
	if a.Gateway.IsValid() {
		o.addr(dhcpv4.OptionRouter, a.Gateway)
	}
	if len(a.DNS) > 0 {
		o.addrs(dhcpv4.OptionDomainNameServer, a.DNS...)
	}
	if a.Domain != "" {
		o.str(dhcpv4.OptionDomainName, a.Domain)
	}
	if a.Hostname != "" {
		o.str(dhcpv4.OptionHostName, a.Hostname)
	}
}

// reply answers with an address; client is the ZTP client the request says it is.
func (h *Handler) reply(req *dhcpv4.DHCPv4, in Inbound, mt dhcpv4.MessageType, a fleet.Assignment, boot BootChoice, client string) (*Reply, error) {
	var ztp ztpAnswer
	switch {
	case a.Identity.BMC:
		boot = BootChoice{} // a BMC gets its address, never something to boot
	case a.Identity.Slot.IsSwitch():
		boot = BootChoice{}
		ztp = answerZTP(client, a.Identity.Slot, a.Identity.Zone, h.baseURL(in), a.Ticket)
		switch {
		case ztp.why != "":
			h.Stats.Add("ztp|refused")
		case client == ZTPONIE:
			h.Stats.Add("ztp|onie")
		default:
			h.Stats.Add("ztp|" + a.Identity.Slot.NetworkOS)
		}
	case client != "":
		boot = BootChoice{} // a ZTP client outside the design's switch slots is only recorded
	}
	rep, o := h.newReply(req, mt, in.Server)
	resp := rep.Packet
	resp.YourIPAddr = ip4(&rep.mem.yiaddr, a.Addr)
	lease := a.LeaseTime
	o.seconds(dhcpv4.OptionIPAddressLeaseTime, lease)
	o.seconds(dhcpv4.OptionRenewTimeValue, lease/2)
	o.seconds(dhcpv4.OptionRebindingTimeValue, lease*7/8)
	configOptions(o, a)
	if boot.File != "" {
		resp.ServerIPAddr = ip4(&rep.mem.siaddr, in.Server)
		resp.BootFileName = boot.File
		o.str(dhcpv4.OptionTFTPServerName, in.Server.String())
		o.str(dhcpv4.OptionBootfileName, boot.File)
	}
	for code, v := range ztp.options {
		resp.Options[code] = v
	}
	if ztp.bootFile != "" {
		resp.BootFileName = ztp.bootFile
		o.str(dhcpv4.OptionBootfileName, ztp.bootFile)
	}
	if boot.HTTPClient {
		o.str(dhcpv4.OptionClassIdentifier, "HTTPClient")
	}
	if boot.IPXE {
		// 175.176 = 1 (no-pxedhcp): iPXE need not wait for a proxyDHCP offer.
		o.bytes(ipxeEncapsulated, 176, 1, 1)
	}
	h.sent.add(h.Stats, "tx_", mt)
	if relay, ok := addrFrom(req.GatewayIPAddr); ok {
		h.relayed.add(h.Stats, a.Identity.Switch, relay, mt)
	}
	return h.route(req, rep, false), nil
}

// route picks the destination as RFC 2131 4.1 says.
func (h *Handler) route(req *dhcpv4.DHCPv4, rep *Reply, nak bool) *Reply {
	mem := rep.mem
	if a, ok := addrFrom(req.GatewayIPAddr); ok {
		if nak {
			rep.Packet.SetBroadcast()
		}
		mem.to = net.UDPAddr{IP: ip4(&mem.ip, a), Port: dhcpv4.ServerPort}
	} else if a, ok := addrFrom(req.ClientIPAddr); ok && !nak {
		mem.to = net.UDPAddr{IP: ip4(&mem.ip, a), Port: dhcpv4.ClientPort}
	} else {
		// A client without an address cannot be reached by unicast without
		// writing its ARP entry; broadcast is always allowed.
		mem.to = net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort}
		rep.Bcast = true
	}
	rep.To = &mem.to
	return rep
}
