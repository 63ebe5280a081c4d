#!/usr/bin/env bash
# Make a Docker engine (and the host tools the tests use) available on a clean Debian machine,
# as root, without systemd:
#   - installs Debian's docker.io when dockerd is missing;
#   - installs debootstrap, python3-zmq and python3-msgpack when missing (images/build.sh needs
#     debootstrap; tests drive INGInious-style peers with /usr/bin/python3 and these modules);
#   - starts dockerd in the background (log: /var/log/dockerd.log) when the engine does not
#     answer, and waits up to 60 s for it.
# Fails loudly when any of this does not work. Safe to run again: it does only what is missing.
set -euo pipefail

SOCKET=/var/run/docker.sock
LOG=/var/log/dockerd.log
WAIT_SECONDS=60

say() { echo "ensure-docker: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root"

apt_updated=0
apt_install() {
  if ! command -v apt-get >/dev/null; then
    die "apt-get is missing: install $* by hand"
  fi
  if [ "$apt_updated" = 0 ]; then
    say "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq || die "apt-get update failed"
    apt_updated=1
  fi
  say "installing $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
    || die "apt-get install $* failed"
}

# Ask the engine directly on its socket: /usr/local/bin/docker may be a newer client than the
# daemon (it negotiates, but the socket answer does not depend on any client).
engine_answers() {
  [ -S "$SOCKET" ] || return 1
  if command -v curl >/dev/null; then
    curl -fsS --max-time 5 --unix-socket "$SOCKET" http://localhost/_ping >/dev/null 2>&1
  else
    python3 - "$SOCKET" <<'EOF' >/dev/null 2>&1
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
data = b""
while True:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
sys.exit(0 if data.startswith(b"HTTP/1.") and b" 200 " in data.split(b"\r\n", 1)[0] else 1)
EOF
  fi
}

# --- packages ----------------------------------------------------------------------------
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import zmq' 2>/dev/null || missing+=(python3-zmq)
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import msgpack' 2>/dev/null || missing+=(python3-msgpack)
# build.sh also uses these (present on any Debian, but a container image may lack them)
command -v flock >/dev/null && command -v setsid >/dev/null || missing+=(util-linux)
command -v pgrep >/dev/null || missing+=(procps)
command -v sha256sum >/dev/null || missing+=(coreutils)
if [ "${#missing[@]}" -gt 0 ]; then
  apt_install "${missing[@]}"
fi
command -v dockerd >/dev/null || die "dockerd is still missing after installing docker.io"
command -v docker >/dev/null || die "the docker client is missing"

# --- the engine --------------------------------------------------------------------------
if engine_answers; then
  say "the Docker engine answers on $SOCKET"
  exit 0
fi

if pgrep -x dockerd >/dev/null; then
  say "dockerd is running but does not answer yet; waiting"
else
  say "starting dockerd (log: $LOG)"
  # In its own session, so that the end of this script (or of its caller) does not stop it.
  # dockerd starts its own containerd when none is running.
  setsid dockerd >>"$LOG" 2>&1 </dev/null &
fi

for (( i = 0; i < WAIT_SECONDS * 2; i++ )); do
  if engine_answers; then
    say "the Docker engine answers after $(( i / 2 )) s"
    exit 0
  fi
  if ! pgrep -x dockerd >/dev/null; then
    tail -n 40 "$LOG" >&2 || true
    die "dockerd exited (last lines of $LOG above)"
  fi
  sleep 0.5
done
tail -n 40 "$LOG" >&2 || true
die "the Docker engine did not answer on $SOCKET within $WAIT_SECONDS s (last lines of $LOG above)"
