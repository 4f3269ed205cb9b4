package dhcp

import (
	"bytes"
	"net"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

func request(t testing.TB, mods ...dhcpv4.Modifier) []byte {
	t.Helper()
	req, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithHwAddr(net.HardwareAddr{2, 0, 0, 0, 0, 7})}, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	req.TransactionID = dhcpv4.TransactionID{9, 8, 7, 6}
	req.NumSeconds = 300
	return req.ToBytes()
}

func TestPeekHeader(t *testing.T) {
	discover := request(t, dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover))
	end := bytes.LastIndexByte(discover, 255)
	tests := []struct {
		name    string
		pkt     []byte
		wantMT  dhcpv4.MessageType
		wantErr bool
	}{
		{"discover", discover, dhcpv4.MessageTypeDiscover, false},
		{"request", request(t, dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest)), dhcpv4.MessageTypeRequest, false},
		{"no message type", request(t), dhcpv4.MessageTypeNone, false},
		// RFC 3396: two type options are one two-byte value, no type.
		{"message type twice", append(bytes.Clone(discover[:end]), 53, 1, 3, 255), dhcpv4.MessageTypeNone, false},
		{"pad before end", append(bytes.Clone(discover[:end]), 0, 0, 255), dhcpv4.MessageTypeDiscover, false},
		{"bytes after end", append(bytes.Clone(discover), 1, 2, 3), dhcpv4.MessageTypeDiscover, false},
		{"no end", discover[:end], 0, true},
		{"no options", discover[:240], dhcpv4.MessageTypeNone, false},
		{"option longer than the packet", append(bytes.Clone(discover[:end]), 12, 40, 'a'), 0, true},
		{"option code without length", append(bytes.Clone(discover[:end]), 12), 0, true},
		{"short", discover[:239], 0, true},
		{"bad cookie", append(append(bytes.Clone(discover[:236]), 1, 2, 3, 4), discover[240:]...), 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := peekHeader(tt.pkt)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if _, ferr := dhcpv4.FromBytes(tt.pkt); (ferr != nil) != tt.wantErr {
				t.Fatalf("dhcpv4.FromBytes err = %v: the case disagrees with the library", ferr)
			}
			if tt.wantErr {
				return
			}
			want := requestKey{mac: [6]byte{2, 0, 0, 0, 0, 7}, xid: dhcpv4.TransactionID{9, 8, 7, 6}, mt: tt.wantMT}
			if h.key != want || h.secs != 300 {
				t.Errorf("got %+v secs %d, want %+v secs 300", h.key, h.secs, want)
			}
		})
	}
}

// FuzzPeekHeader holds peekHeader to dhcpv4.FromBytes: it accepts exactly
// what the library parses and reads the same fields.
func FuzzPeekHeader(f *testing.F) {
	f.Add(request(f, dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover)))
	f.Add(request(f, dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest), dhcpv4.WithOption(dhcpv4.OptHostName("x"))))
	f.Add(request(f))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := peekHeader(b)
		req, ferr := dhcpv4.FromBytes(b)
		if (err != nil) != (ferr != nil) {
			t.Fatalf("peekHeader err %v, dhcpv4.FromBytes err %v", err, ferr)
		}
		if err != nil {
			return
		}
		var mac [6]byte
		copy(mac[:], req.ClientHWAddr)
		want := requestKey{mac: mac, xid: req.TransactionID, mt: messageType(req)}
		if h.key != want || h.secs != req.NumSeconds {
			t.Fatalf("got %+v secs %d, want %+v secs %d", h.key, h.secs, want, req.NumSeconds)
		}
	})
}
