package main

import (
	"os"
	"testing"
)

func TestUDPRcvbufErrors(t *testing.T) {
	const snmp = `Ip: Forwarding DefaultTTL InReceives
Ip: 1 64 120
Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
Udp: 99265 0 10610 109875 10610 0 0 0 0
UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
UdpLite: 0 0 0 0 7 0 0 0 0
`
	tests := []struct {
		name    string
		in      string
		want    int64
		wantErr bool
	}{
		{"the Udp line, not UdpLite", snmp, 10610, false},
		{"no Udp lines", "Ip: Forwarding\nIp: 1\n", 0, true},
		{"names without values", "Udp: InDatagrams RcvbufErrors\n", 0, true},
		{"not a number", "Udp: RcvbufErrors\nUdp: many\n", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := udpRcvbufErrors(tt.in)
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Errorf("udpRcvbufErrors = %d, %v; want %d, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
	// This machine's own file reads.
	if b, err := os.ReadFile("/proc/net/snmp"); err == nil {
		if _, err := udpRcvbufErrors(string(b)); err != nil {
			t.Errorf("/proc/net/snmp: %v", err)
		}
	}
}
