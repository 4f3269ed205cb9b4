package dhcp

import (
	"bytes"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/drover/drover/internal/zone"
)

// ZTP clients a switch's DHCP request can say it is.
const (
	ZTPONIE    = "onie"    // ONIE, the installer environment of a bare switch: vendor class "onie_vendor:..."
	ZTPCumulus = "cumulus" // Cumulus Linux: vendor class naming cumulus
	ZTPSONiC   = "sonic"   // SONiC: vendor class "SONiC..."
	ZTPEOS     = "eos"     // Arista EOS: vendor class "Arista..."
	ZTPNXOS    = "nxos"    // Cisco NX-OS POAP: vendor class "Cisco..."
	// ZTPScript is a client that only asks for option 239 (a provisioning
	// script URL), as Cumulus Linux and SONiC do: the switch's design OS decides.
	ZTPScript = "option-239"
)

// DHCP options of the ZTP answers.
const (
	optONIEURL      = dhcpv4.GenericOptionCode(114) // ONIE's default-url: the installer
	optProvisionURL = dhcpv4.GenericOptionCode(239) // Cumulus and SONiC: the provisioning script
)

// ZTPClient says which switch ZTP client a request comes from, "" for none.
func ZTPClient(req *dhcpv4.DHCPv4) string {
	// Every request passes here: compare without lower-casing a copy.
	vc := req.ClassIdentifier()
	prefix := func(p string) bool { return len(vc) >= len(p) && strings.EqualFold(vc[:len(p)], p) }
	switch {
	case vc == "", prefix("PXEClient"), prefix("HTTPClient"):
		// a host's firmware: no switch
	case prefix("onie_vendor:"):
		return ZTPONIE
	case prefix("sonic"):
		return ZTPSONiC
	case prefix("arista"):
		return ZTPEOS
	case prefix("cisco"):
		return ZTPNXOS
	case strings.Contains(strings.ToLower(vc), "cumulus"):
		return ZTPCumulus
	}
	// IsOptionRequested would decode the request list into a new slice.
	if bytes.IndexByte(req.Options.Get(dhcpv4.OptionParameterRequestList), optProvisionURL.Code()) >= 0 {
		return ZTPScript
	}
	return ""
}

// ztpAnswer is what a switch's ZTP client is told.
type ztpAnswer struct {
	options  dhcpv4.Options
	bootFile string // the file field and option 67
	why      string // why nothing is offered, for the timeline; "" when something is
}

// answerZTP picks the options for a provisioned switch's request: ONIE gets
// the OS's installer (option 114), the OS's own ZTP client its script in the
// form its firmware expects. A client that says it runs another OS than the
// design's gets nothing: provisioning it with the wrong OS's files would
// leave it half-configured.
func answerZTP(client string, s *zone.Slot, z *zone.Zone, base, ticket string) ztpAnswer {
	url := func(name string) string { return base + "/ztp/" + ticket + "/" + name }
	osName := s.NetworkOS
	a := ztpAnswer{options: dhcpv4.Options{}}
	switch {
	case client == ZTPONIE:
		sw := z.Switch(s.Name)
		if sw == nil || sw.Installer() == "" {
			a.why = "ONIE asked for an installer but the fabric has none for " + osName
			return a
		}
		a.options.Update(dhcpv4.OptGeneric(optONIEURL, []byte(url(OnieInstaller))))
		return a
	case client == "", client == osName, client == ZTPScript && (osName == zone.OSCumulus || osName == zone.OSSONiC):
	default:
		a.why = "the switch says it runs " + client + " but the design says " + osName
		return a
	}
	script := url(zone.ZTPScript)
	switch osName {
	case zone.OSCumulus:
		a.options.Update(dhcpv4.OptGeneric(optProvisionURL, []byte(script)))
	case zone.OSSONiC:
		a.options.Update(dhcpv4.OptGeneric(optProvisionURL, []byte(script)))
		if o := z.NetworkOS(osName); o != nil && o.Templates["ztp.json"] != "" {
			a.bootFile = url("ztp.json")
		}
	case zone.OSEOS:
		a.bootFile = script
	case zone.OSNXOS:
		// POAP reads the script's server from option 66 and its path from 67.
		a.options.Update(dhcpv4.OptTFTPServerName(base))
		a.bootFile = "/ztp/" + ticket + "/" + zone.ZTPScript
	}
	return a
}

// OnieInstaller is the name under /ztp/TICKET/ that serves the ONIE installer.
const OnieInstaller = "onie-installer"
