#!/bin/sh
# Installs what drover's build and tests need on Debian 12, and nothing that is
# already there: Debian packages for the real peers the tests talk to, and the
# Go toolchain (from the Go module proxy) when `go` is missing or too old.
set -eu

GO_VERSION=1.26.8
PACKAGES="ca-certificates curl unzip git make iproute2 tcpdump isc-dhcp-client isc-dhcp-relay atftp tftp-hpa kea-admin ipxe busybox-static cpio qemu-system-x86 ipxe-qemu ovmf prometheus openipmi chromium mmdebstrap grub-pc-bin grub-efi-amd64-bin mtools dosfstools fdisk e2fsprogs lldpd openssh-client qemu-utils ansible-core puppet python3 bind9 bind9-utils bind9-dnsutils prometheus-alertmanager postgresql-15 frr"

# `setup.sh bench` also installs the peers the benchmarks compare drover with.
if [ "${1:-}" = bench ]; then
	PACKAGES="$PACKAGES kea-dhcp4-server dnsmasq-base tftpd-hpa nginx-light gnuplot-nox ipmitool dnsperf"
fi

missing=""
for p in $PACKAGES; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "setup: installing Debian packages:$missing"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
	case "$missing" in *" frr"*)
		# The lab runs FRR inside its switches' namespaces; the host needs no routing daemon of its own.
		systemctl disable --now frr >/dev/null 2>&1 || true ;;
	esac
fi

have_go() {
	command -v go >/dev/null 2>&1 || return 1
	v=$(go env GOVERSION 2>/dev/null | sed 's/^go//')
	[ "$(printf '%s\n%s\n' "$GO_VERSION" "$v" | sort -V | head -n1)" = "$GO_VERSION" ]
}
export PATH="/usr/local/go/bin:$PATH"
if ! have_go; then
	echo "setup: installing Go $GO_VERSION from the Go module proxy"
	tmp=$(mktemp -d)
	curl -fsSL -o "$tmp/go.zip" "https://proxy.golang.org/golang.org/toolchain/@v/v0.0.1-go${GO_VERSION}.linux-amd64.zip"
	unzip -q "$tmp/go.zip" -d "$tmp"
	rm -rf /usr/local/go
	mv "$tmp/golang.org/toolchain@v0.0.1-go${GO_VERSION}.linux-amd64" /usr/local/go
	chmod +x /usr/local/go/bin/* /usr/local/go/pkg/tool/*/* 2>/dev/null || true
	rm -rf "$tmp"
fi
go version
