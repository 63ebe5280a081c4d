#!/bin/sh
# Runs inside a lane host (from its second disk, /lane): waits for the engine, checks that the host
# is what the lane says it is (cgroup v2, the cgroup driver, the engine's version), loads the
# grading images, then runs the lane's tests with node's test runner. Everything it prints goes to
# the serial console, which scripts/test-hosts.sh reads; its last line says how it ended.
set -u
export PATH=/lane/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8
. /lane/host.env
say() { echo "host-lane[$HOST]: $*"; }
finish() { say "done status=$1"; exit "$1"; }

waited=$(date +%s)
until docker info >/dev/null 2>&1; do
  if [ $(( $(date +%s) - waited )) -gt 600 ]; then
    say "the Docker engine did not answer within 600 s"
    tail -n 40 /var/log/dockerd.log 2>/dev/null || journalctl -u docker --no-pager -n 40
    finish 3
  fi
  sleep 1
done
facts=$(docker info --format '{{.ServerVersion}} {{.CgroupVersion}} {{.CgroupDriver}} {{.Driver}} {{.DefaultRuntime}} {{.KernelVersion}}')
say "engine: version cgroup driver storage runtime kernel = $facts"
set -- $facts
major=${1%%.*}
problem=""
[ "$2" = 2 ] || problem="$problem cgroup version $2, not 2;"
[ "$3" = "$DRIVER" ] || problem="$problem cgroup driver $3, not $DRIVER;"
[ "$major" -ge "$ENGINE" ] 2>/dev/null || problem="$problem engine $1, older than $ENGINE;"
[ "$INIT" != systemd ] || [ "$(cat /proc/1/comm)" = systemd ] || problem="$problem PID 1 is $(cat /proc/1/comm), not systemd;"
if [ -n "$problem" ]; then
  say "this is not the host the lane describes:$problem"
  finish 3
fi

# A boot with images.tar on its disk loads them into the host's engine and ends: that disk image
# is kept (scripts/test-hosts.sh), so that the lane's own boots start with the images there.
if [ -f /lane/images.tar ]; then
  started=$(date +%s)
  docker load -q -i /lane/images.tar >/dev/null || { say "docker load failed"; finish 3; }
  say "images loaded in $(( $(date +%s) - started )) s"
  finish 0
fi
docker image inspect inginious-agent-docker/sample:latest >/dev/null 2>&1 || { say "the grading images are not loaded"; finish 3; }

cd /lane/project || finish 3
# The engine is as slow as the rest here: its calls get the deadline they would have on a real
# host times the slowness (the agent's own default is 30 s).
export IAD_HOST_LANE="$HOST" IAD_TEST_SLOWNESS=20 IAD_ENGINE_CALL_TIMEOUT_MS=600000 NO_COLOR=1
# shellcheck disable=SC2086
node --test --test-concurrency=1 --test-timeout="$TEST_TIMEOUT_MS" --test-reporter=spec $TESTS
status=$?
if [ "$status" != 0 ]; then
  say "the last lines of the engine's log:"
  tail -n 30 /var/log/dockerd.log 2>/dev/null || journalctl -u docker --no-pager -n 30 2>/dev/null
fi
finish "$status"
