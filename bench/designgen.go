// Package bench holds drover's benchmarks and the generators they share.
package bench

import (
	"fmt"
	"strings"
)

// GenerateDesign writes one zone file with pods of two 48-port ToR switches
// each (one per boot network shape), enough pods for at least slots slots.
// The first ToR of each pod also has ports swp49-swp58 without slots, where
// unknown machines get addresses of the pod's discovery pool.
func GenerateDesign(slots int) []byte {
	const perSwitch = 48
	pods := (slots + 2*perSwitch - 1) / (2 * perSwitch)
	var b strings.Builder
	b.WriteString(`zone: big
environment: prod
domain: big.example.org
dns_servers: [10.0.0.53]
profiles:
  debian: {kernel: debian/linux, initrd: [debian/initrd.gz]}
roles:
  compute: {profile: debian, variants: {lvm: {}}}
  storage: {profile: debian}
pods:
`)
	for p := 0; p < pods; p++ {
		// Pod p: boot 10.(64+p/64).((p%64)*4).0/22 keeps every pod's subnets apart.
		hi, lo := 64+p/64, (p%64)*4
		fmt.Fprintf(&b, `  p%d:
    networks:
      boot: {subnet: 10.%d.%d.0/22, gateway: 10.%d.%d.1, pool: 10.%d.%d.0-10.%d.%d.254}
      bmc: {subnet: 172.%d.%d.0/22, gateway: 172.%d.%d.1}
    addressing:
      compute: {offset: 10, first_id: %d}
      storage: {offset: 500, first_id: %d}
    switches:
      p%d-tor1:
        kind: tor
        relay: 10.%d.%d.2
        remote_id: p%d-tor1
        ports: [swp1-swp58]
        slots:
          - {ports: swp1-swp40, role: compute, ids: %d-%d}
          - {ports: swp41-swp48, role: compute, variant: lvm, ids: %d-%d}
      p%d-tor2:
        kind: tor
        boot_network: per-port
        port_subnets: 100.%d.%d.0/23
        ports: [swp1-swp48]
        slots:
          - {ports: swp1-swp48, role: storage, ids: %d-%d}
`, p, hi, lo, hi, lo, hi, lo+3, hi, lo+3, 16+p/64, lo, 16+p/64, lo, p*48+1, p*48+1,
			p, hi, lo, p, p*48+1, p*48+40, p*48+41, p*48+48,
			p, 64+p/128, (p%128)*2, p*48+1, p*48+48)
	}
	return []byte(b.String())
}

// GeneratePods writes one zone of pods pods with perPod slots each (at most
// 1,000), on two pod-shaped ToR switches per pod: compute on the first,
// storage on the second.
func GeneratePods(pods, perPod int) []byte {
	half := perPod / 2
	var b strings.Builder
	b.WriteString(`zone: wide
environment: prod
domain: wide.example.org
profiles:
  debian: {kernel: debian/linux}
roles:
  compute: {profile: debian}
  storage: {profile: debian}
pods:
`)
	for p := 0; p < pods; p++ {
		hi, lo := 64+p/64, (p%64)*4
		first := p*perPod + 1
		fmt.Fprintf(&b, `  p%d:
    networks:
      boot: {subnet: 10.%d.%d.0/22, gateway: 10.%d.%d.1}
    addressing:
      compute: {offset: 10, first_id: %d}
      storage: {offset: %d, first_id: %d}
    switches:
      p%d-tor1:
        kind: tor
        relay: 10.%d.%d.2
        ports: [swp1-swp%d]
        slots:
          - {ports: swp1-swp%d, role: compute, ids: %d-%d}
      p%d-tor2:
        kind: tor
        relay: 10.%d.%d.3
        ports: [swp1-swp%d]
        slots:
          - {ports: swp1-swp%d, role: storage, ids: %d-%d}
`, p, hi, lo, hi, lo, first, 10+half, first+half,
			p, hi, lo, half, half, first, first+half-1,
			p, hi, lo, perPod-half, perPod-half, first+half, p*perPod+perPod)
	}
	return []byte(b.String())
}
