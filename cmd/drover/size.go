package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// parseSize reads a byte count with an optional unit: 450MiB, 1GiB, 500MB,
// 524288000; at least one byte, less than unlimitedMemory.
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	digits := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	number, unit := s, ""
	if digits >= 0 {
		number, unit = strings.TrimSpace(s[:digits]), strings.TrimSpace(s[digits:])
	}
	units := map[string]float64{
		"": 1, "b": 1,
		"kb": 1e3, "mb": 1e6, "gb": 1e9,
		"k": 1 << 10, "m": 1 << 20, "g": 1 << 30,
		"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30,
	}
	scale, ok := units[strings.ToLower(unit)]
	if !ok {
		return 0, fmt.Errorf("unknown unit %q: write a size like 450MiB, 1GiB or 500MB", unit)
	}
	v, err := strconv.ParseFloat(number, 64)
	if err != nil || v <= 0 {
		return 0, errors.New("write a positive size like 450MiB, 1GiB or 500MB")
	}
	n := v * scale
	if n < 1 {
		return 0, errors.New("less than a byte: write a size like 450MiB, 1GiB or 500MB")
	}
	if n >= float64(unlimitedMemory) {
		return 0, errors.New("too large")
	}
	return int64(n), nil
}

// dhcpReadBuffer reads --dhcp-read-buffer. Below 64 KiB a burst of requests
// overflows it at once; Linux keeps at most about 1 GiB (it stores twice
// the figure in an int), so more would be silently cut.
func dhcpReadBuffer(setting string) (int, error) {
	n, err := parseSize(setting)
	if err != nil {
		return 0, fmt.Errorf("--dhcp-read-buffer %q: %w", setting, err)
	}
	if n < 64<<10 || n > 1<<30 {
		return 0, fmt.Errorf("--dhcp-read-buffer %q: give 64KiB to 1GiB", setting)
	}
	return int(n), nil
}

// sizeOff reports whether a size setting (--memory-limit, --heap-floor)
// turns its feature off: off, none or 0.
func sizeOff(setting string) bool {
	switch strings.ToLower(strings.TrimSpace(setting)) {
	case "off", "none", "0":
		return true
	}
	return false
}
