package zone

// NaturalLess orders strings the way people number ports and hosts: runs of
// digits compare by value, so swp2 comes before swp10 and Ethernet1/2 before
// Ethernet1/10. Equal values with different zero padding fall back to byte order.
func NaturalLess(a, b string) bool {
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		ca, cb := a[i], b[j]
		if isDigit(ca) && isDigit(cb) {
			si, sj := i, j
			for i < len(a) && isDigit(a[i]) {
				i++
			}
			for j < len(b) && isDigit(b[j]) {
				j++
			}
			na, nb := trimZeros(a[si:i]), trimZeros(b[sj:j])
			if len(na) != len(nb) {
				return len(na) < len(nb)
			}
			if na != nb {
				return na < nb
			}
			continue
		}
		if ca != cb {
			return ca < cb
		}
		i++
		j++
	}
	if len(a)-i != len(b)-j {
		return len(a)-i < len(b)-j
	}
	return a < b
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func trimZeros(s string) string {
	for len(s) > 1 && s[0] == '0' {
		s = s[1:]
	}
	return s
}

// SlotLess orders slots by zone, pod and key, naturally.
func SlotLess(a, b *Slot) bool {
	if a.Zone != b.Zone {
		return NaturalLess(a.Zone, b.Zone)
	}
	if a.Pod != b.Pod {
		return NaturalLess(a.Pod, b.Pod)
	}
	return NaturalLess(a.Key, b.Key)
}
