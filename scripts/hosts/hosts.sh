# The hosts of the lane, sourced by scripts/test-hosts.sh and scripts/hosts/build-image.sh.
# One function per host sets:
#   SUITE      the Debian release of the VM's root filesystem (its kernel and Docker come from it)
#   INIT       how the VM starts: "lane" (scripts/hosts/lane-init as PID 1) or "systemd" (PID 1)
#   PACKAGES   what apt installs into it besides the common set
#   DRIVER     the cgroup driver dockerd is told to use (and the lane checks it got)
#   ENGINE     what the lane expects the engine's major version to be at least
# Every host runs cgroup v2 only; the project's own machines are the cgroup v1 host.

HOSTS_ALL=(bookworm-v2 trixie-systemd)

# Installed on every host: the engine, what the tests drive it with, and the kernel.
HOST_COMMON_PACKAGES="docker.io containerd runc iptables kmod procps iproute2 python3 python3-zmq python3-msgpack linux-image-cloud-amd64 busybox-static"

host_bookworm-v2() {
  SUITE=bookworm
  INIT=lane
  PACKAGES=""
  DRIVER=cgroupfs
  ENGINE=20
}

host_trixie-systemd() {
  SUITE=trixie
  INIT=systemd
  PACKAGES="systemd systemd-sysv dbus docker-cli"
  DRIVER=systemd
  ENGINE=26
}

# Sets the variables above for host $1; fails for an unknown name.
load_host() {
  local name="$1"
  if ! declare -F "host_$name" >/dev/null; then
    echo "unknown host: $name (hosts: ${HOSTS_ALL[*]})" >&2
    return 1
  fi
  "host_$name"
  HOST="$name"
}
