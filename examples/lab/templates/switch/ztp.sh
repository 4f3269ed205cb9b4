#!/bin/sh
# CUMULUS-AUTOPROVISIONING
# Zero-touch provisioning of {{.Name}} ({{.Kind}} switch {{.ID}} of {{.Zone}}/{{.Pod}}), rendered by drover.
# Written for the lab's switches, Linux network namespaces: a Cumulus switch
# would write /etc/network/interfaces and /etc/frr/frr.conf and reload them.
# The lab's ZTP client sets ZTP_ROOT (the switch's own directory) and DROVER.
set -eu
root=${ZTP_ROOT:?run by the lab switch ZTP client}
mgmt={{.Mgmt.Address.Addr}}
say() {
  curl -fsS --interface "$mgmt" -H "Authorization: Bearer {{.Token}}" -H 'Content-Type: application/json' \
    -d "{\"status\":\"$1\",\"message\":\"$2\"}" '{{.PhoneHome}}' >/dev/null
}
trap 'say failed "ztp script of {{.Name}} stopped (exit $?)"' EXIT

say progress "configuring interfaces"
sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
ip link set lo up
{{- range .Uplinks}}
ip link set {{.}} up
{{- end}}
{{- range .Relay.Ports}}
ip link set {{.Name}} up  # {{.Description}}
{{- if eq $.Relay.Shape "per-port"}}
ip addr replace {{.Address}} dev {{.Name}}
{{- else}}
ip addr replace {{$.Relay.Address}}/32 dev {{.Name}}
{{- end}}
{{- end}}

say progress "starting FRR (BGP AS {{.ASN}})"
mkdir -p "$root/frr"
curl -fsS --interface "$mgmt" -o "$root/frr/frr.conf" '{{index .Files "frr.conf"}}'
chown -R frr:frr "$root/frr"
for daemon in zebra bgpd; do
  /usr/lib/frr/$daemon -d -N {{.Name}} -f "$root/frr/frr.conf" -i "$root/frr/$daemon.pid" \
    --vty_socket "$root/frr" -z "$root/frr/zserv.api"
done
{{- if .Relay.Enabled}}

say progress "starting the DHCP relay (option 82: {{.Relay.Shape}})"
setsid "${DROVER:?}" lab switch --switch {{or .Relay.RemoteID .Name}} --server {{index .Relay.Servers 0}} \
  --uplink {{index .Uplinks 0}}{{if eq .Relay.Shape "per-port"}} --per-port{{else}} --giaddr {{.Relay.Address}}{{end}}
{{- range .Relay.Ports}} --port {{.Name}}{{end}} \
  </dev/null >"$root/relay.log" 2>&1 &
{{- end}}

trap - EXIT
say installed "{{.Name}} configured: {{len .Relay.Ports}} host ports, BGP on {{range $i, $u := .Uplinks}}{{if $i}},{{end}}{{$u}}{{end}}"
