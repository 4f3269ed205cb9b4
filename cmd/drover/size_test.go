package main

import (
	"strings"
	"testing"
)

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"450MiB", "1.5GB", "536870912", "2g", "", "-1", "1e30GiB", ". MiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseSize(s)
		if err == nil && (n < 1 || n >= unlimitedMemory) {
			t.Fatalf("parseSize(%q) = %d: outside the accepted range", s, n)
		}
	})
}

func TestDHCPReadBuffer(t *testing.T) {
	tests := []struct {
		setting string
		want    int
		wantErr string
	}{
		{setting: "8MiB", want: 8 << 20},
		{setting: "64KiB", want: 64 << 10},
		{setting: "1GiB", want: 1 << 30},
		{setting: "16777216", want: 16 << 20},
		{setting: "32KiB", wantErr: "give 64KiB to 1GiB"},
		{setting: "2GiB", wantErr: "give 64KiB to 1GiB"},
		{setting: "lots", wantErr: `unknown unit "lots"`},
		{setting: "0", wantErr: "write a positive size"},
	}
	for _, tt := range tests {
		t.Run(tt.setting, func(t *testing.T) {
			got, err := dhcpReadBuffer(tt.setting)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "--dhcp-read-buffer") {
					t.Fatalf("err = %v, want one naming the flag and %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("dhcpReadBuffer(%q) = %d, %v; want %d", tt.setting, got, err, tt.want)
			}
		})
	}
}

// TestServeRefusesBadDHCPSettings: a bad --dhcp-queue or --dhcp-read-buffer
// is a usage error (exit 64) naming the flag and what to give.
func TestServeRefusesBadDHCPSettings(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--dhcp-queue", "0"}, "--dhcp-queue 0: give at least 1"},
		{[]string{"--dhcp-read-buffer", "10KiB"}, `--dhcp-read-buffer "10KiB": give 64KiB to 1GiB`},
		{[]string{"--dhcp-read-buffer", "lots"}, `--dhcp-read-buffer "lots": unknown unit "lots"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			db := t.TempDir() + "/d.db"
			r := drover(t, "", append([]string{"--db", db, "serve"}, tt.args...)...)
			if r.code != 64 || !strings.Contains(r.stderr, tt.want) {
				t.Fatalf("exit %d, stderr %q: want 64 and %q", r.code, r.stderr, tt.want)
			}
		})
	}
}
