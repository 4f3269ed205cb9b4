#!/bin/busybox sh
# drover's lab installer: brings up the network, fetches its rendered install
# template with its one-time token, runs it, collects facts and phones home.
/bin/busybox mkdir -p /proc /sys /dev /tmp /sbin /usr/bin /usr/sbin /etc
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec >/dev/console 2>&1
log() { echo "drover-installer: $*"; }

for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci failover net_failover virtio_net virtio_blk; do
	[ -f /modules/$m.ko ] && { insmod /modules/$m.ko || log "insmod $m failed"; }
done

arg() { tr ' ' '\n' < /proc/cmdline | sed -n "s/^$1=//p" | tail -n 1; }
URL=$(arg drover.url)
TOKEN=$(arg drover.token)
NAME=$(arg drover.name)
MODE=$(arg drover.mode)
log "starting for ${NAME:-unknown machine} (server $URL)"

ip link set lo up
IFACE=""
for i in 1 2 3 4 5 6 7 8 9 10; do
	for n in /sys/class/net/*; do
		n=${n##*/}
		[ "$n" = lo ] && continue
		IFACE=$n
		break
	done
	[ -n "$IFACE" ] && break
	sleep 1
done
ip link set "$IFACE" up
cat > /tmp/udhcpc.sh <<'HOOK'
#!/bin/sh
case "$1" in
bound|renew)
	ip addr flush dev "$interface"
	ip addr add "$ip/$mask" dev "$interface"
	[ -n "$router" ] && ip route replace default via "${router%% *}"
	echo "$ip" > /tmp/address
	;;
esac
HOOK
chmod +x /tmp/udhcpc.sh
until udhcpc -i "$IFACE" -q -n -t 5 -T 2 -s /tmp/udhcpc.sh; do
	log "no DHCP answer yet"
	sleep 2
done
log "network up: $(cat /tmp/address) on $IFACE"

# post STATUS MESSAGE [FACTS-JSON]: retried until drover answers, so an
# installer outlives a restart of the server.
post() {
	body="{\"status\":\"$1\",\"message\":\"$2\",\"facts\":${3:-null}}"
	tries=0
	until wget -q -O /tmp/reply --header 'Content-Type: application/json' --post-data "$body" "$URL/phone-home?token=$TOKEN"; do
		tries=$((tries + 1))
		[ $tries -ge 60 ] && { log "phone-home $1 failed"; return 1; }
		sleep 2
	done
	log "phone-home $1: $(cat /tmp/reply)"
}

if [ "$MODE" = discover ] || [ -z "$TOKEN" ]; then
	log "discovery mode: nothing to install"
	while true; do sleep 3600; done
fi

post progress "network up on $IFACE"
tries=0
until wget -q -O /tmp/install "$URL/install/install?token=$TOKEN"; do
	tries=$((tries + 1))
	[ $tries -ge 60 ] && { post failed "could not fetch the install template"; reboot -f; }
	sleep 2
done
post progress "template fetched"
if ! sh /tmp/install > /tmp/install.log 2>&1; then
	post failed "install script failed: $(tail -n 1 /tmp/install.log | tr -d '"\\')"
	sleep 5
	reboot -f
fi

clean() { tr -d '"\\' | sed 's/^ *//; s/ *$//'; }
macs=""
nics=""
for n in /sys/class/net/*; do
	n=${n##*/}
	[ "$n" = lo ] && continue
	mac=$(cat /sys/class/net/$n/address)
	macs="$macs${macs:+,}\"$mac\""
	nics="$nics${nics:+,}{\"name\":\"$n\",\"mac\":\"$mac\"}"
done
disks=""
for d in /sys/block/*; do
	d=${d##*/}
	case "$d" in loop*|ram*|\*) continue ;; esac
	[ -e "/sys/block/$d/size" ] || continue
	size=$(( $(cat /sys/block/$d/size) * 512 ))
	disks="$disks${disks:+,}{\"name\":\"$d\",\"bytes\":$size}"
done
cpus=$(grep -c ^processor /proc/cpuinfo)
model=$(grep -m 1 'model name' /proc/cpuinfo | cut -d: -f2 | clean)
mem=$(grep MemTotal /proc/meminfo | awk '{print $2 * 1024}')
serial=$(cat /sys/class/dmi/id/product_serial 2>/dev/null | clean)
product=$(cat /sys/class/dmi/id/product_name 2>/dev/null | clean)
facts="{\"macs\":[$macs],\"nics\":[$nics],\"cpus\":$cpus,\"cpu_model\":\"$model\",\"memory_bytes\":$mem,\"disks\":[$disks],\"serial\":\"$serial\",\"product\":\"$product\",\"kernel\":\"$(uname -r)\"}"
post installed "installed by the drover lab installer" "$facts"
log "installed; rebooting"
sleep 1
reboot -f
