#!/usr/bin/env bash
# Build, cached, the VM image of one host of the lane (scripts/hosts/hosts.sh names them):
#
#   scripts/hosts/build-image.sh HOST      prints the folder that holds rootfs.img, vmlinuz, initrd
#
# Everything comes from Debian's packages: debootstrap makes the root filesystem, apt installs the
# engine and the kernel into it, busybox-static and the kernel's virtio modules make a small
# initramfs (the cloud kernel has virtio_blk as a module), and `mkfs.ext4 -d` turns the tree into a
# disk image. The result is kept under $INGINIOUS_AGENT_CACHE/hosts/HOST-<hash of the recipe>; a
# folder with a complete image is reused as it is. Needs root, debootstrap, e2fsprogs, cpio.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${INGINIOUS_AGENT_CACHE:-/var/cache/inginious-agent-docker}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
IMAGE_SIZE=6G

say() { echo "build-image: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

[ $# = 1 ] || die "usage: build-image.sh HOST"
# shellcheck source=hosts.sh
. "$HERE/hosts.sh"
load_host "$1" || exit 2
[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot)"
for tool in debootstrap mkfs.ext4 cpio chroot xz sha256sum; do
  command -v "$tool" >/dev/null || die "$tool is missing (scripts/test-hosts.sh installs the host tools)"
done

# The recipe: this host's settings and every file that goes into the image.
recipe=$( { declare -f "host_$HOST"; echo "$HOST_COMMON_PACKAGES $MIRROR $IMAGE_SIZE";
            cat "$HERE/build-image.sh" "$HERE/initramfs-init" "$HERE/iad-lane.service"; } | sha256sum | cut -c1-16)
OUT="$CACHE/hosts/$HOST-$recipe"
if [ -f "$OUT/complete" ]; then
  say "$HOST: up to date ($OUT)"
  echo "$OUT"
  exit 0
fi

mkdir -p "$CACHE/hosts"
exec 9>"$CACHE/hosts/.$HOST.lock"
flock 9
if [ -f "$OUT/complete" ]; then echo "$OUT"; exit 0; fi
# Older recipes of this host are of no use any more.
find "$CACHE/hosts" -maxdepth 1 -name "$HOST-*" -type d -exec rm -rf --one-file-system {} +

work=$(mktemp -d "$CACHE/hosts/.build-$HOST.XXXXXX")
root="$work/root"
unmount_all() {
  local mnt
  while read -r mnt; do umount -l "$mnt" 2>/dev/null || true; done \
    < <(awk -v d="$root/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r)
}
cleanup() { unmount_all; rm -rf --one-file-system "$work"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

started=$SECONDS
say "$HOST: debootstrap $SUITE (minbase)"
debootstrap --variant=minbase "$SUITE" "$root" "$MIRROR" >"$work/debootstrap.log" 2>&1 \
  || { tail -n 30 "$work/debootstrap.log" >&2; die "debootstrap $SUITE failed (log above)"; }

# apt inside the tree: no service starts, no recommends, the host's resolver.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
echo "deb $MIRROR $SUITE main" >"$root/etc/apt/sources.list"
cp /etc/resolv.conf "$root/etc/resolv.conf"
mount -t proc proc "$root/proc"
mount -t sysfs sys "$root/sys"
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"
in_root() { chroot "$root" env DEBIAN_FRONTEND=noninteractive LC_ALL=C PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }
say "$HOST: apt-get install ($HOST_COMMON_PACKAGES $PACKAGES)"
in_root apt-get update -qq >"$work/apt.log" 2>&1 || { tail -n 30 "$work/apt.log" >&2; die "apt-get update in $SUITE failed"; }
# shellcheck disable=SC2086
in_root apt-get install -y -qq --no-install-recommends $HOST_COMMON_PACKAGES $PACKAGES >>"$work/apt.log" 2>&1 \
  || { tail -n 40 "$work/apt.log" >&2; die "apt-get install in $SUITE failed"; }
in_root apt-get clean
unmount_all
rm -f "$root/usr/sbin/policy-rc.d"
rm -rf "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/*

# ---- the system inside ----------------------------------------------------------------
echo "iad-$HOST" >"$root/etc/hostname"
printf 'nameserver 127.0.0.1\n' >"$root/etc/resolv.conf"
mkdir -p "$root/lane" "$root/etc/docker"
# No NAT (the VM has no network but loopback and the engine's bridge); the driver is said, not guessed.
printf '{\n  "iptables": false,\n  "exec-opts": ["native.cgroupdriver=%s"]\n}\n' "$DRIVER" >"$root/etc/docker/daemon.json"
cat >"$root/etc/fstab" <<FSTAB
/dev/vda / ext4 rw,relatime 0 1
/dev/vdb /lane ext4 rw,relatime,nofail 0 0
FSTAB
# PID 1 of a host without systemd is the lane disk's lane-init (scripts/hosts/lane-init): changing
# it needs no new image.
cat >"$root/sbin/lane-init" <<'STUB'
#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount /lane && [ -x /lane/lane-init ] && exec /lane/lane-init
echo "lane-init: no /lane/lane-init on the second disk"
sync
exec busybox poweroff -f
STUB
chmod 755 "$root/sbin/lane-init"
if [ "$INIT" = systemd ]; then
  install -m 644 "$HERE/iad-lane.service" "$root/etc/systemd/system/iad-lane.service"
  mkdir -p "$root/etc/systemd/system/multi-user.target.wants"
  ln -sf /etc/systemd/system/iad-lane.service "$root/etc/systemd/system/multi-user.target.wants/iad-lane.service"
  # The console is the lane's output: no login prompt on it, nothing waits for a network.
  for unit in serial-getty@ttyS0.service getty@tty1.service getty.target systemd-networkd-wait-online.service \
              apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer man-db.timer dpkg-db-backup.timer; do
    ln -sf /dev/null "$root/etc/systemd/system/$unit"
  done
fi

# ---- kernel and initramfs ---------------------------------------------------------------
kver=$(basename "$(ls -d "$root"/lib/modules/* | sort -V | tail -n 1)")
[ -f "$root/boot/vmlinuz-$kver" ] || die "no kernel $kver in the $SUITE tree"
mkdir -p "$work/out" "$work/initrd/bin" "$work/initrd/modules" "$work/initrd/dev" "$work/initrd/proc" "$work/initrd/sys" "$work/initrd/newroot"
cp "$root/boot/vmlinuz-$kver" "$work/out/vmlinuz"
cp "$root/bin/busybox" "$work/initrd/bin/busybox"
for applet in sh mount umount insmod switch_root mkdir sleep cat echo poweroff; do ln -s busybox "$work/initrd/bin/$applet"; done
# Module order from the tree's own modules.dep; busybox's insmod takes uncompressed modules only.
: >"$work/initrd/modules/order"
while read -r verb path _; do
  [ "$verb" = insmod ] || continue
  path="$root$path"
  name=$(basename "$path"); name=${name%%.ko*}.ko
  case "$path" in
    *.xz) xz -dc "$path" >"$work/initrd/modules/$name" ;;
    *.zst) zstd -qdc "$path" >"$work/initrd/modules/$name" ;;
    *.gz) gzip -dc "$path" >"$work/initrd/modules/$name" ;;
    *) cp "$path" "$work/initrd/modules/$name" ;;
  esac
  grep -qx "$name" "$work/initrd/modules/order" || echo "$name" >>"$work/initrd/modules/order"
done < <(in_root modprobe -S "$kver" --show-depends -a virtio_pci virtio_blk ext4)
grep -q virtio_blk "$work/initrd/modules/order" || say "$HOST: virtio_blk is built into $kver"
install -m 755 "$HERE/initramfs-init" "$work/initrd/init"
echo "$INIT" >"$work/initrd/init-kind"
(cd "$work/initrd" && find . | cpio -o -H newc --quiet) >"$work/out/initrd"

say "$HOST: disk image ($(du -sh "$root" | cut -f1) of files)"
truncate -s "$IMAGE_SIZE" "$work/out/rootfs.img"
mkfs.ext4 -q -F -L iad-root -d "$root" "$work/out/rootfs.img" || die "mkfs.ext4 -d failed"
{ echo "host=$HOST suite=$SUITE kernel=$kver init=$INIT driver=$DRIVER"
  in_root dpkg-query -W -f='${Package} ${Version}\n' docker.io containerd runc systemd 2>/dev/null || true; } >"$work/out/manifest"
touch "$work/out/complete"
mv "$work/out" "$OUT"
say "$HOST: built in $(( SECONDS - started )) s ($OUT)"
echo "$OUT"
