package lab

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
)

// RelayConfig configures the lab's switch agent in a ToR namespace.
type RelayConfig struct {
	Switch   string            // remote-id: the switch's name
	GIAddr   netip.Addr        // the gateway interface address (pod-shaped switch); invalid: RA only
	PerPort  bool              // relay with each port's own address as giaddr (a per-port switch)
	Server   netip.Addr        // drover's address
	Uplink   string            // interface towards drover
	Ports    map[string]string // interface name -> port name (circuit-id)
	BootNS   string            // namespace of drover, for host routes back to the machines
	UplinkIP netip.Addr        // this switch's address on the uplink, the next hop from BootNS
	Log      *slog.Logger
}

// RunSwitch runs what a real ToR does for the machines behind it: IPv6 router
// advertisements on every port (iPXE otherwise waits for IPv6 autoconf) and,
// for a switch with one subnet for the pod, a DHCP relay that names the
// physical port. ISC dhcrelay cannot: on a bridge it reports the bridge, so
// this relay listens on each port's own interface instead, with
// giaddr = the gateway interface address, circuit-id = port, remote-id = switch.
func RunSwitch(ctx context.Context, cfg RelayConfig) error {
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := advertise(ctx, cfg); err != nil {
			errc <- err
		}
	}()
	if cfg.GIAddr.IsValid() || cfg.PerPort {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := relay(ctx, cfg); err != nil {
				errc <- err
			}
		}()
	}
	wg.Wait()
	close(errc)
	return <-errc
}

// listenDHCP opens a UDP socket on port bound to one interface.
func listenDHCP(ctx context.Context, iface string, port int) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			for _, o := range []int{syscall.SO_REUSEADDR, syscall.SO_BROADCAST} {
				if serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, o, 1); serr != nil {
					return
				}
			}
			serr = syscall.BindToDevice(int(fd), iface)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(ctx, "udp4", fmt.Sprintf("0.0.0.0:%d", port))
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", iface, err)
	}
	return pc.(*net.UDPConn), nil
}

func relay(ctx context.Context, cfg RelayConfig) error {
	up, err := listenDHCP(ctx, cfg.Uplink, 67)
	if err != nil {
		return err
	}
	defer up.Close()
	ports := map[string]*net.UDPConn{} // port name -> socket on its interface
	ifOf := map[string]string{}
	giaddr := map[string]net.IP{}
	for ifname, port := range cfg.Ports {
		c, err := listenDHCP(ctx, ifname, 67)
		if err != nil {
			return err
		}
		defer c.Close()
		ports[port], ifOf[port], giaddr[port] = c, ifname, cfg.GIAddr.AsSlice()
		if cfg.PerPort {
			if giaddr[port], err = portAddr(ifname); err != nil {
				return err
			}
		}
	}
	go func() {
		<-ctx.Done()
		up.Close()
		for _, c := range ports {
			c.Close()
		}
	}()
	server := &net.UDPAddr{IP: cfg.Server.AsSlice(), Port: 67}
	for port, c := range ports {
		go func() {
			buf := make([]byte, 1500)
			for {
				n, _, err := c.ReadFromUDP(buf)
				if err != nil {
					return
				}
				req, err := dhcpv4.FromBytes(buf[:n])
				if err != nil || req.OpCode != dhcpv4.OpcodeBootRequest {
					continue
				}
				req.GatewayIPAddr = giaddr[port]
				req.HopCount++
				req.UpdateOption(dhcpv4.OptRelayAgentInfo(
					dhcpv4.OptGeneric(dhcpv4.AgentCircuitIDSubOption, []byte(port)),
					dhcpv4.OptGeneric(dhcpv4.AgentRemoteIDSubOption, []byte(cfg.Switch))))
				if _, err := up.WriteToUDP(req.ToBytes(), server); err != nil {
					cfg.Log.Warn("relay to server", "err", err)
				}
			}
		}()
	}
	buf := make([]byte, 1500)
	for {
		n, _, err := up.ReadFromUDP(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		rep, err := dhcpv4.FromBytes(buf[:n])
		if err != nil || rep.OpCode != dhcpv4.OpcodeBootReply {
			continue
		}
		rai := rep.RelayAgentInfo()
		if rai == nil {
			continue
		}
		port := string(rai.Get(dhcpv4.AgentCircuitIDSubOption))
		c := ports[port]
		if c == nil {
			continue
		}
		rep.Options.Del(dhcpv4.OptionRelayAgentInformation)
		if rep.MessageType() == dhcpv4.MessageTypeAck && !rep.YourIPAddr.IsUnspecified() {
			hostRoutes(cfg, rep.YourIPAddr.String(), ifOf[port])
		}
		if _, err := c.WriteToUDP(rep.ToBytes(), &net.UDPAddr{IP: net.IPv4bcast, Port: 68}); err != nil {
			cfg.Log.Warn("relay to client", "port", port, "err", err)
		}
	}
}

// portAddr is the IPv4 address of a per-port switch's port: its giaddr.
func portAddr(ifname string) (net.IP, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("port %s: %w", ifname, err)
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return nil, fmt.Errorf("port %s: %w", ifname, err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			return n.IP.To4(), nil
		}
	}
	return nil, fmt.Errorf("port %s has no IPv4 address to relay from", ifname)
}

// hostRoutes make a machine reachable through the port it was leased on: a
// real ToR learns this from ARP on its VLAN; the lab's ports are routed links.
func hostRoutes(cfg RelayConfig, addr, ifname string) {
	exec.Command("ip", "route", "replace", addr+"/32", "dev", ifname).Run()
	if cfg.BootNS != "" && cfg.UplinkIP.IsValid() {
		exec.Command("ip", "-n", cfg.BootNS, "route", "replace", addr+"/32", "via", cfg.UplinkIP.String()).Run()
	}
}

// advertise sends IPv6 router advertisements (router lifetime 0: not a default
// router) on every port every few seconds.
func advertise(ctx context.Context, cfg RelayConfig) error {
	pc, err := icmp.ListenPacket("ip6:ipv6-icmp", "::")
	if err != nil {
		return fmt.Errorf("router advertisements: %w", err)
	}
	defer pc.Close()
	p := pc.IPv6PacketConn()
	p.SetMulticastHopLimit(255)
	p.SetHopLimit(255)
	// Type 134, code 0, checksum (kernel), hop limit 64, flags 0, lifetime 0, reachable 0, retrans 0.
	ra := []byte{134, 0, 0, 0, 64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	dst := &net.IPAddr{IP: net.ParseIP("ff02::1")}
	t := time.NewTicker(3 * time.Second)
	defer t.Stop()
	for {
		for ifname := range cfg.Ports {
			if ifi, err := net.InterfaceByName(ifname); err == nil {
				p.WriteTo(ra, &ipv6.ControlMessage{IfIndex: ifi.Index, HopLimit: 255}, dst)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
