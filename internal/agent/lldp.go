package agent

import (
	"context"
	"net"
	"sync"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/mdlayher/packet"

	"github.com/drover/drover/internal/install"
)

const etherTypeLLDP = 0x88cc

// ListenLLDP listens on every NIC for up to wait and returns, per NIC, the
// first LLDP neighbour heard. A NIC that hears nothing is simply absent:
// many networks do not run LLDP.
func ListenLLDP(ctx context.Context, nics []net.Interface, wait time.Duration) []install.Neighbour {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var (
		mu  sync.Mutex
		out []install.Neighbour
		wg  sync.WaitGroup
	)
	for _, n := range nics {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if nb, ok := listenOne(ctx, n); ok {
				mu.Lock()
				out = append(out, nb)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out
}

func listenOne(ctx context.Context, ifi net.Interface) (install.Neighbour, bool) {
	c, err := packet.Listen(&ifi, packet.Raw, etherTypeLLDP, nil)
	if err != nil {
		return install.Neighbour{}, false
	}
	defer c.Close()
	// LLDP goes to a link-local multicast address the NIC filters out unless told otherwise.
	if err := c.SetPromiscuous(true); err != nil {
		return install.Neighbour{}, false
	}
	go func() {
		<-ctx.Done()
		c.SetReadDeadline(time.Now())
	}()
	buf := make([]byte, 9000)
	for ctx.Err() == nil {
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			return install.Neighbour{}, false
		}
		if nb, ok := ParseLLDP(buf[:n]); ok {
			nb.Interface, nb.MAC = ifi.Name, ifi.HardwareAddr.String()
			return nb, true
		}
	}
	return install.Neighbour{}, false
}

// ParseLLDP reads an Ethernet frame carrying LLDP.
func ParseLLDP(frame []byte) (install.Neighbour, bool) {
	p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.NoCopy)
	l, ok := p.Layer(layers.LayerTypeLinkLayerDiscovery).(*layers.LinkLayerDiscovery)
	if !ok {
		return install.Neighbour{}, false
	}
	nb := install.Neighbour{ChassisID: idString(l.ChassisID.Subtype == layers.LLDPChassisIDSubTypeMACAddr, l.ChassisID.ID),
		PortID: idString(l.PortID.Subtype == layers.LLDPPortIDSubtypeMACAddr, l.PortID.ID)}
	if info, ok := p.Layer(layers.LayerTypeLinkLayerDiscoveryInfo).(*layers.LinkLayerDiscoveryInfo); ok {
		nb.SystemName, nb.PortDescription = info.SysName, info.PortDescription
	}
	return nb, true
}

func idString(isMAC bool, id []byte) string {
	if isMAC && len(id) == 6 {
		return net.HardwareAddr(id).String()
	}
	return string(id)
}
