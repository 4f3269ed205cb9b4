package dhcp

import (
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// Client kinds, as far as booting is concerned.
const (
	KindNone        = "none"        // not a network-boot client (an OS DHCP client)
	KindBIOS        = "bios-pxe"    // legacy PXE ROM
	KindUEFI        = "uefi-pxe"    // UEFI x64 PXE
	KindUEFIHTTP    = "uefi-http"   // UEFI x64 HTTP Boot
	KindIPXE        = "ipxe"        // iPXE, wherever it came from
	KindUnsupported = "unsupported" // a PXE client of an architecture we have no loader for
)

// BootFiles names what each kind of client is given.
type BootFiles struct {
	BIOS string // TFTP path for BIOS PXE (default undionly.kpxe)
	UEFI string // TFTP path for UEFI x64 PXE (default ipxe.efi)
}

func (b BootFiles) withDefaults() BootFiles {
	if b.BIOS == "" {
		b.BIOS = "undionly.kpxe"
	}
	if b.UEFI == "" {
		b.UEFI = "ipxe.efi"
	}
	return b
}

// ipxeEncapsulated is option 175, iPXE's encapsulated options.
const ipxeEncapsulated = dhcpv4.GenericOptionCode(175)

// ClientKind classifies a request by what it will boot.
func ClientKind(req *dhcpv4.DHCPv4) string {
	if req.Options.Has(ipxeEncapsulated) {
		return KindIPXE
	}
	for _, uc := range req.UserClass() {
		if uc == "iPXE" {
			return KindIPXE
		}
	}
	vendor := req.ClassIdentifier()
	archs := req.ClientArch()
	if len(archs) == 0 {
		if strings.HasPrefix(vendor, "PXEClient") {
			return KindBIOS
		}
		return KindNone
	}
	switch archs[0] {
	case iana.INTEL_X86PC:
		return KindBIOS
	case iana.EFI_X86_64, iana.EFI_BC:
		return KindUEFI
	case iana.EFI_X86_64_HTTP:
		return KindUEFIHTTP
	}
	if strings.HasPrefix(vendor, "HTTPClient") && archs[0] == iana.EFI_X86_64_HTTP {
		return KindUEFIHTTP
	}
	return KindUnsupported
}

// BootChoice is what a client is told to boot.
type BootChoice struct {
	File       string // the file field: a TFTP path or an HTTP URL
	HTTPClient bool   // echo option 60 "HTTPClient" (UEFI HTTP Boot requires it)
	IPXE       bool   // send iPXE's no-pxedhcp option (175.176 = 1)
}

// ChooseBoot picks the boot file for a kind of client. scriptURL is the
// client's per-machine iPXE script; loaderURL is the HTTP URL of the UEFI iPXE loader.
func ChooseBoot(kind string, files BootFiles, scriptURL, loaderURL string) BootChoice {
	files = files.withDefaults()
	switch kind {
	case KindIPXE:
		return BootChoice{File: scriptURL, IPXE: true}
	case KindBIOS:
		return BootChoice{File: files.BIOS}
	case KindUEFI:
		return BootChoice{File: files.UEFI}
	case KindUEFIHTTP:
		return BootChoice{File: loaderURL, HTTPClient: true}
	}
	return BootChoice{}
}
