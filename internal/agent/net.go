package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/vishvananda/netlink"
)

// NICs returns the machine's Ethernet interfaces in name order, brought up.
func NICs() ([]net.Interface, error) {
	all, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var out []net.Interface
	for _, ifi := range all {
		if ifi.Flags&net.FlagLoopback != 0 || len(ifi.HardwareAddr) != 6 {
			continue
		}
		if l, err := netlink.LinkByIndex(ifi.Index); err == nil {
			netlink.LinkSetUp(l)
		}
		out = append(out, ifi)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	if len(out) == 0 {
		return nil, errors.New("no Ethernet interface")
	}
	return out, nil
}

// Lease is the address DHCP gave an interface.
type Lease struct {
	Interface string
	MAC       string
	Address   net.IPNet
	Router    net.IP
}

// DHCP gets a lease on the interface with MAC bootMAC (the one the machine
// network-booted from), or on the first interface that answers, and
// configures it. It retries until ctx ends.
func DHCP(ctx context.Context, nics []net.Interface, bootMAC string) (Lease, error) {
	if bootMAC != "" {
		var only []net.Interface
		for _, n := range nics {
			if strings.EqualFold(n.HardwareAddr.String(), bootMAC) {
				only = append(only, n)
			}
		}
		if len(only) > 0 {
			nics = only
		}
	}
	for {
		for _, n := range nics {
			l, err := lease(ctx, n)
			if err == nil {
				return l, nil
			}
			if ctx.Err() != nil {
				return Lease{}, fmt.Errorf("DHCP: %w (last: %v)", ctx.Err(), err)
			}
		}
		select {
		case <-ctx.Done():
			return Lease{}, fmt.Errorf("DHCP: no answer on %d interfaces: %w", len(nics), ctx.Err())
		case <-time.After(2 * time.Second):
		}
	}
}

func lease(ctx context.Context, n net.Interface) (Lease, error) {
	c, err := nclient4.New(n.Name, nclient4.WithTimeout(3*time.Second), nclient4.WithRetry(2))
	if err != nil {
		return Lease{}, err
	}
	defer c.Close()
	l, err := c.Request(ctx)
	if err != nil {
		return Lease{}, err
	}
	ack := l.ACK
	mask := ack.SubnetMask()
	if mask == nil {
		mask = net.CIDRMask(24, 32)
	}
	out := Lease{Interface: n.Name, MAC: n.HardwareAddr.String(), Address: net.IPNet{IP: ack.YourIPAddr, Mask: mask}}
	if r := ack.Router(); len(r) > 0 {
		out.Router = r[0]
	}
	link, err := netlink.LinkByName(n.Name)
	if err != nil {
		return Lease{}, err
	}
	if err := netlink.AddrReplace(link, &netlink.Addr{IPNet: &out.Address}); err != nil {
		return Lease{}, fmt.Errorf("address %s on %s: %w", out.Address.String(), n.Name, err)
	}
	if out.Router != nil {
		if err := netlink.RouteReplace(&netlink.Route{LinkIndex: link.Attrs().Index, Gw: out.Router}); err != nil {
			return Lease{}, fmt.Errorf("default route via %s: %w", out.Router, err)
		}
	}
	return out, nil
}
