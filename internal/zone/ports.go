package zone

import (
	"fmt"
	"strconv"
	"strings"
)

// maxRange bounds a single port or id range so a typo cannot allocate millions of slots.
const maxRange = 4096

// splitTrailingNumber splits "Ethernet1/12" into ("Ethernet1/", "12").
func splitTrailingNumber(s string) (prefix, digits string) {
	i := len(s)
	for i > 0 && s[i-1] >= '0' && s[i-1] <= '9' {
		i--
	}
	return s[:i], s[i:]
}

// ParsePortRange expands "swp1-swp20", "swp1-20", "Ethernet1/1-Ethernet1/12" or a
// single port name. Names may themselves contain dashes ("ge-0/0/1-ge-0/0/8").
func ParsePortRange(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("empty port range")
	}
	for i := 0; i < len(s); i++ {
		if s[i] != '-' {
			continue
		}
		left, right := s[:i], s[i+1:]
		lp, ld := splitTrailingNumber(left)
		if ld == "" || right == "" {
			continue
		}
		rp, rd := splitTrailingNumber(right)
		if rd == "" || (rp != "" && rp != lp) {
			continue
		}
		from, err1 := strconv.Atoi(ld)
		to, err2 := strconv.Atoi(rd)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("port numbers in %q are too large", s)
		}
		if to < from {
			return nil, fmt.Errorf("range %q runs backwards", s)
		}
		if to-from >= maxRange {
			return nil, fmt.Errorf("range %q has more than %d ports", s, maxRange)
		}
		width := 0
		if len(ld) > 1 && ld[0] == '0' {
			width = len(ld)
		}
		out := make([]string, 0, to-from+1)
		for n := from; n <= to; n++ {
			out = append(out, fmt.Sprintf("%s%0*d", lp, width, n))
		}
		return out, nil
	}
	if strings.ContainsAny(s, " \t,") {
		return nil, fmt.Errorf("%q is not a port name or a range like swp1-swp20", s)
	}
	return []string{s}, nil
}

// ParseIDRange parses "1-20" or "7".
func ParseIDRange(s string) (from, to int, err error) {
	s = strings.TrimSpace(s)
	a, b, isRange := strings.Cut(s, "-")
	from, err = strconv.Atoi(strings.TrimSpace(a))
	if err != nil || from < 1 {
		return 0, 0, fmt.Errorf("%q is not an id range like 1-20", s)
	}
	if !isRange {
		return from, from, nil
	}
	to, err = strconv.Atoi(strings.TrimSpace(b))
	if err != nil || to < from {
		return 0, 0, fmt.Errorf("%q is not an id range like 1-20", s)
	}
	if to-from >= maxRange {
		return 0, 0, fmt.Errorf("id range %q has more than %d ids", s, maxRange)
	}
	return from, to, nil
}
