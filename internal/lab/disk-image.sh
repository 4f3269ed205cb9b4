#!/bin/sh
# Builds a small bootable Debian 12 disk image (raw, BIOS and UEFI) from
# Debian's packages only: mmdebstrap for the root file system, then a GPT disk
# with a BIOS boot partition, an EFI system partition and an ext4 root, all put
# together in files (no loop devices, no mounts). GRUB is installed by hand the
# way grub-install would: boot.img in the MBR pointing at core.img in the BIOS
# boot partition, and a removable-media BOOTX64.EFI on the ESP.
#
# usage: disk-image.sh OUT.raw WORKDIR
set -eu
out=$1
work=$2
size_mib=${DROVER_IMAGE_MIB:-1024}
esp_mib=32

rm -rf "$work"
mkdir -p "$work"
root="$work/root"

# cloud-init applies drover's NoCloud seed on first boot; ifupdown is what it
# renders Debian's network configuration for; the rest makes a server one can
# reach and configure (ssh, python3 for configuration management).
mmdebstrap --quiet --variant=minbase --mode=root \
	--include=systemd-sysv,udev,linux-image-cloud-amd64,initramfs-tools,e2fsprogs,ifupdown,isc-dhcp-client,iproute2,openssh-server,python3,cloud-init,cloud-guest-utils,netbase,ca-certificates \
	--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
	--dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
	--customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
	--customize-hook='echo "LABEL=drover-root / ext4 defaults,errors=remount-ro 0 1" > "$1"/etc/fstab' \
	--customize-hook='rm -f "$1"/etc/ssh/ssh_host_*' \
	--customize-hook='rm -f "$1"/etc/machine-id && touch "$1"/etc/machine-id' \
	--customize-hook='printf "datasource_list: [ NoCloud, None ]\n" > "$1"/etc/cloud/cloud.cfg.d/90-drover.cfg' \
	--customize-hook='printf "auto lo\niface lo inet loopback\nsource /etc/network/interfaces.d/*\n" > "$1"/etc/network/interfaces' \
	bookworm "$root" http://deb.debian.org/debian

kernel=$(cd "$root/boot" && ls vmlinuz-* | head -n 1)
initrd=$(cd "$root/boot" && ls initrd.img-* | head -n 1)
[ -n "$kernel" ] && [ -n "$initrd" ] || { echo "no kernel or initrd in the root file system" >&2; exit 1; }

mkdir -p "$root/boot/grub"
cat > "$root/boot/grub/grub.cfg" <<EOF
set timeout=0
set default=0
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
menuentry "Debian 12 (drover)" {
	search --no-floppy --label --set=root drover-root
	linux /boot/$kernel root=LABEL=drover-root ro console=tty0 console=ttyS0,115200 net.ifnames=0
	initrd /boot/$initrd
}
EOF

# GRUB's own first stage: find the root by label, read its grub.cfg.
cat > "$work/early.cfg" <<'EOF'
search --no-floppy --label --set=root drover-root
set prefix=($root)/boot/grub
configfile $prefix/grub.cfg
EOF
mods="part_gpt part_msdos ext2 fat search search_label normal linux configfile echo gzio serial terminal test"
grub-mkimage -O i386-pc -o "$work/core.img" -c "$work/early.cfg" -p /boot/grub biosdisk $mods
grub-mkimage -O x86_64-efi -o "$work/BOOTX64.EFI" -c "$work/early.cfg" -p /boot/grub $mods

# Partitions: 1 MiB BIOS boot at 1 MiB, the ESP, then the root to the end.
root_start=$(( (2 + esp_mib) * 2048 ))
root_sectors=$(( (size_mib - 2 - esp_mib) * 2048 - 34 ))
truncate -s 0 "$out.tmp"
truncate -s "${size_mib}M" "$out.tmp"
sfdisk --quiet "$out.tmp" <<EOF
label: gpt
start=2048, size=2048, type=21686148-6449-6E6F-744E-656564454649, name=bios
start=4096, size=$((esp_mib * 2048)), type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=esp
start=$root_start, size=$root_sectors, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=root
EOF

# The ESP: a FAT file system made in a file and filled with mtools.
mkfs.vfat -n DROVER-ESP -C "$work/esp.img" $((esp_mib * 1024)) >/dev/null
mmd -i "$work/esp.img" ::/EFI ::/EFI/BOOT
mcopy -i "$work/esp.img" "$work/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI
dd if="$work/esp.img" of="$out.tmp" bs=1M seek=2 conv=notrunc status=none

# The root: ext4 populated from the directory (mke2fs -d), no mount needed.
mkfs.ext4 -q -F -L drover-root -d "$root" -E offset=$((root_start * 512)) "$out.tmp" $((root_sectors / 2))k

# BIOS: boot.img's code in the MBR (the partition table stays), told where
# core.img starts; core.img's first sector told where the rest of it is.
dd if=/usr/lib/grub/i386-pc/boot.img of="$out.tmp" bs=440 count=1 conv=notrunc status=none
core_sectors=$(( ($(stat -c %s "$work/core.img") + 511) / 512 ))
[ "$core_sectors" -le 2048 ] || { echo "core.img is larger than the BIOS boot partition" >&2; exit 1; }
# le N BYTES: N as BYTES little-endian bytes, for dd.
le() { v=$1; i=0; while [ $i -lt $2 ]; do printf "\\$(printf %03o $((v % 256)))"; v=$((v / 256)); i=$((i + 1)); done; }
dd if="$work/core.img" of="$out.tmp" bs=512 seek=2048 conv=notrunc status=none
# diskboot.img's block list (the last 12 bytes of core.img's first sector): start, count, segment.
{ le 2049 8; le $((core_sectors - 1)) 2; le $((0x820)) 2; } | dd of="$out.tmp" bs=1 seek=$((2048 * 512 + 0x1F4)) conv=notrunc status=none
# boot.img: the sector where core.img starts.
le 2048 8 | dd of="$out.tmp" bs=1 seek=$((0x5C)) conv=notrunc status=none
mv "$out.tmp" "$out"
rm -rf "$work"
