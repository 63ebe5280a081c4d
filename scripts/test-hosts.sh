#!/usr/bin/env bash
# The host lane: the tests that depend on the host (cgroups, the cgroup driver, the engine's
# version) run inside qemu VMs of the hosts that farms run, one boot per host.
#
#   scripts/test-hosts.sh [HOST...]      every host when none is named; hosts: bookworm-v2 trixie-systemd
#
# For each host: its VM image is built once and cached (scripts/hosts/build-image.sh), a second
# disk carries this checkout's build, node, the grading images and the list of tests, and the VM
# boots under software emulation (KVM does not work on this project's machines), runs the tests
# and powers off. Prints each host's node test summary and ends with one line per host and a total;
# exits 1 when any host failed. Needs root; installs qemu and the other host tools when missing.
#
# Environment: HOST_LANE_TESTS (test files under dist/test to run, default the lane's set),
# HOST_LANE_BOOT_LIMIT (seconds a boot may take in all, default 1800), INGINIOUS_AGENT_CACHE.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$(pwd)
HERE="$REPO/scripts/hosts"
. "$HERE/hosts.sh"
CACHE="${INGINIOUS_AGENT_CACHE:-/var/cache/inginious-agent-docker}"
# The host-dependent tests: every outcome, student containers, cgroup CPU and memory.oom.group, the
# task folders layered and copied, the disk limit, SIGKILL then restart, the start-up checks.
TESTS="${HOST_LANE_TESTS:-host-lane.test.js cgroup-cpu.test.js}"
BOOT_LIMIT="${HOST_LANE_BOOT_LIMIT:-1800}"
# The VM runs plain code 10-30x slower than this machine: a test file may take 25 minutes there
# (about 9 on a quiet machine), within the boot's limit.
TEST_TIMEOUT_MS=1500000

say() { echo "test-hosts: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root"
hosts=("$@")
[ "${#hosts[@]}" -gt 0 ] || hosts=("${HOSTS_ALL[@]}")
for h in "${hosts[@]}"; do load_host "$h" >/dev/null || exit 2; done

# ---- host tools ---------------------------------------------------------------------------
missing=()
command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v mkfs.ext4 >/dev/null || missing+=(e2fsprogs)
command -v cpio >/dev/null || missing+=(cpio)
command -v xz >/dev/null || missing+=(xz-utils)
command -v zstd >/dev/null || missing+=(zstd)
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
fi
command -v docker >/dev/null && docker info >/dev/null 2>&1 || die "the Docker engine does not answer (run scripts/ensure-docker.sh)"
[ -d node_modules ] || die "node_modules is missing (npm ci)"
[ -f dist/test/host-lane.test.js ] || die "dist/ is missing (npm run build)"

work=$(mktemp -d "${TMPDIR:-/tmp}/iad-hosts-XXXXXX")
trap 'rm -rf --one-file-system "$work"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- what the VMs get: the build, node, the images ----------------------------------------
images=$(docker images --format '{{.Repository}}:{{.Tag}}' | grep -E '^inginious-agent-docker(-test)?/' | sort)
[ -n "$images" ] || die "no grading images (run images/build.sh)"
# shellcheck disable=SC2086
ids=$(docker image inspect --format '{{.Id}}' $images | sha256sum | cut -c1-16)
images_tar="$CACHE/hosts/images-$ids.tar"
if [ ! -f "$images_tar" ]; then
  mkdir -p "$CACHE/hosts"
  rm -f "$CACHE"/hosts/images-*.tar
  say "saving the grading images ($(echo "$images" | wc -l))"
  # shellcheck disable=SC2086
  docker save -o "$images_tar.part" $images
  mv "$images_tar.part" "$images_tar"
fi

payload="$work/payload"
mkdir -p "$payload/project/test" "$payload/bin"
cp -a dist package.json "$payload/project/"
# node_modules may be a link (a second checkout sharing one): the VM gets what it leads to.
mkdir -p "$payload/project/node_modules"
cp -a "$(readlink -f node_modules)/." "$payload/project/node_modules/"
cp -a test/fixtures "$payload/project/test/"
cp "$(command -v node)" "$payload/bin/node"
install -m 755 "$HERE/lane-run.sh" "$payload/run.sh"
install -m 755 "$HERE/lane-init" "$payload/lane-init"
lane_tests=""
for t in $TESTS; do
  [ -f "dist/test/$t" ] || die "no test dist/test/$t"
  lane_tests="$lane_tests dist/test/$t"
done
loader="$work/loader"
mkdir -p "$loader"
install -m 755 "$HERE/lane-run.sh" "$loader/run.sh"
install -m 755 "$HERE/lane-init" "$loader/lane-init"
ln "$images_tar" "$loader/images.tar" 2>/dev/null || cp "$images_tar" "$loader/images.tar"

# A disk image of folder $1 at $2, with room to spare for what the VM writes there.
make_disk() {
  rm -f "$2"
  truncate -s "$(( $(du -sm "$1" | cut -f1) + 512 ))M" "$2"
  mkfs.ext4 -q -F -L iad-lane -d "$1" "$2"
}

# Boots the host's VM: boot ROOTFS SNAPSHOT(on|off) DISK LOG; the console goes to LOG and stdout.
boot() {
  local status
  set +e
  timeout --kill-after=10 "$BOOT_LIMIT" qemu-system-x86_64 -accel tcg,thread=multi -cpu max -smp 2 -m 4096 \
    -display none -monitor none -serial stdio -no-reboot -nic none \
    -kernel "$image_dir/vmlinuz" -initrd "$image_dir/initrd" \
    -append "console=ttyS0 root=/dev/vda rw quiet loglevel=3 systemd.show_status=false panic=-1" \
    -drive "file=$1,format=raw,if=virtio,snapshot=$2" \
    -drive "file=$3,format=raw,if=virtio" </dev/null 2>&1 | sed -u 's/\r$//' | tee "$4"
  status=${PIPESTATUS[0]}
  set -e
  return "$status"
}

write_env() {
  cat >"$1/host.env" <<ENV
HOST=$HOST
INIT=$INIT
DRIVER=$DRIVER
ENGINE=$ENGINE
TESTS="$lane_tests"
TEST_TIMEOUT_MS=$TEST_TIMEOUT_MS
ENV
}

results=()
failed=0
total_pass=0
total_fail=0
for h in "${hosts[@]}"; do
  load_host "$h"
  say "$HOST: the VM image"
  image_dir=$("$HERE/build-image.sh" "$HOST" | tail -n 1)
  started=$SECONDS
  # The host's disk with the grading images already loaded into its engine, kept beside its image.
  rootfs="$image_dir/rootfs-images-$ids.img"
  if [ ! -f "$rootfs" ]; then
    say "$HOST: loading the grading images into the VM's engine (one boot, kept)"
    rm -f "$image_dir"/rootfs-images-*.img
    cp --sparse=always "$image_dir/rootfs.img" "$rootfs.part"
    write_env "$loader"
    make_disk "$loader" "$work/loader-$HOST.img"
    if boot "$rootfs.part" off "$work/loader-$HOST.img" "$work/load-$HOST.log" \
        && grep -qx "host-lane\[$HOST\]: done status=0" "$work/load-$HOST.log"; then
      mv "$rootfs.part" "$rootfs"
    else
      rm -f "$rootfs.part"
      failed=1; total_fail=$(( total_fail + 1 ))
      results+=("$HOST: 0 passed, 1 failed in $(( SECONDS - started )) s (the images could not be loaded)")
      continue
    fi
  fi
  write_env "$payload"
  disk="$work/lane-$HOST.img"
  make_disk "$payload" "$disk"
  log="$work/console-$HOST.log"
  say "$HOST: booting ($(sed -n 1p "$image_dir/manifest"))"
  qemu_status=0
  boot "$rootfs" on "$disk" "$log" || qemu_status=$?
  seconds=$(( SECONDS - started ))
  status=$(sed -n "s/^host-lane\[$HOST\]: done status=\([0-9]*\)$/\1/p" "$log" | tail -n 1)
  pass=$(sed -n 's/^ℹ pass \([0-9]*\)$/\1/p' "$log" | tail -n 1)
  fail=$(sed -n 's/^ℹ fail \([0-9]*\)$/\1/p' "$log" | tail -n 1)
  pass=${pass:-0}; fail=${fail:-0}
  if [ -z "$status" ]; then
    why="the VM ended without the lane's last line (qemu status $qemu_status$([ "$qemu_status" = 124 ] && echo ", over the $BOOT_LIMIT s limit"))"
    [ "$fail" -gt 0 ] || fail=1
  elif [ "$status" != 0 ]; then
    why="the lane ended with status $status"
    [ "$fail" -gt 0 ] || fail=1
  else
    why="green"
  fi
  [ "$why" = green ] || failed=1
  total_pass=$(( total_pass + pass )); total_fail=$(( total_fail + fail ))
  results+=("$HOST: $pass passed, $fail failed in $seconds s ($why)")
done

echo
for r in "${results[@]}"; do echo "test-hosts: $r"; done
echo "hosts: $total_pass passed, $total_fail failed"
exit "$failed"
