package dhcp

import (
	"errors"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// header is what the reader needs of a request to queue it: the rest is
// parsed once, by the worker that answers it. A full parse in the reader
// was paid twice for a request that waited deep in the queue (which keeps
// only bytes), so a server that fell behind did more work per request and
// stayed behind: measured, 34,000 DORA/s offered spent 12 % of drover's CPU
// in dhcpv4.FromBytes, half of it parsing again.
type header struct {
	key  requestKey
	secs uint16
}

// errMalformed: the datagram is not one dhcpv4.FromBytes would parse.
var errMalformed = errors.New("malformed DHCP packet")

// fixedLen is the BOOTP header and the magic cookie (RFC 2131 section 2).
const fixedLen = 236 + 4

// peekHeader checks b as dhcpv4.FromBytes does (the fixed header, the
// magic cookie, options that fit and, if there are any, end with an End
// option) and reads its transaction, client hardware address, secs and
// message type. No library reads these without parsing every option into a
// map, hence this. FuzzPeekHeader holds it to dhcpv4.FromBytes.
func peekHeader(b []byte) (header, error) {
	var h header
	// 99.130.83.99: the magic cookie that starts the options (RFC 2131
	// section 3; the library's is unexported).
	if len(b) < fixedLen || [4]byte(b[236:240]) != [4]byte{99, 130, 83, 99} {
		return h, errMalformed
	}
	copy(h.key.xid[:], b[4:8])
	h.secs = uint16(b[8])<<8 | uint16(b[9])
	hlen := min(int(b[2]), 16)
	copy(h.key.mac[:], b[28:28+hlen])
	// Like the library, the values of an option that appears more than once
	// are one value (RFC 3396): a message type is one byte in all.
	var mt []byte
	mtLen := 0
	// Like the library, no options at all is no End option missing.
	for opts := b[fixedLen:]; len(b) > fixedLen; {
		if len(opts) == 0 {
			return h, errMalformed // no End option
		}
		code := opts[0]
		if code == 0 { // Pad
			opts = opts[1:]
			continue
		}
		if code == 255 { // End
			break
		}
		if len(opts) < 2 || len(opts) < 2+int(opts[1]) {
			return h, errMalformed
		}
		n := int(opts[1])
		if code == byte(dhcpv4.OptionDHCPMessageType) && n > 0 {
			mt, mtLen = opts[2:2+n], mtLen+n
		}
		opts = opts[2+n:]
	}
	if mtLen == 1 {
		h.key.mt = dhcpv4.MessageType(mt[0])
	} else {
		h.key.mt = dhcpv4.MessageTypeNone
	}
	return h, nil
}
