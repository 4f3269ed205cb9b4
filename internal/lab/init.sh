#!/bin/busybox sh
# drover's lab install initrd: mounts what the kernel needs, loads the virtio
# drivers, and hands the machine to drover's install agent (drover-agent),
# which reads drover.url, drover.token and BOOTIF from the kernel command line.
/bin/busybox mkdir -p /proc /sys /dev /tmp /sbin /usr/bin /usr/sbin /etc /run
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec >/dev/console 2>&1
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci failover net_failover virtio_net virtio_blk rng-core virtio-rng; do
	[ -f /modules/$m.ko ] && { insmod /modules/$m.ko || echo "drover-installer: insmod $m failed"; }
done
ip link set lo up
# Give the block and network drivers a moment to register their devices.
for i in 1 2 3 4 5 6 7 8 9 10; do
	ls /sys/class/net | grep -qv '^lo$' && break
	sleep 1
done
echo "drover-installer: starting drover-agent"
/bin/drover-agent
echo "drover-installer: drover-agent exited ($?)"
while true; do sleep 3600; done
