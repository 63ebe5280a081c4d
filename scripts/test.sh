#!/usr/bin/env bash
# The whole test suite from a fresh machine of this kind (Debian, as root): a Docker engine,
# the local grading images, the npm dependencies, the lint, the build, node's test runner, then
# the host lane (scripts/test-hosts.sh: the host-dependent tests inside a VM of each cgroup v2
# host). Ends with one line that adds both up.
#
#   scripts/test.sh              everything
#   scripts/test.sh --no-hosts   the main suite only (the host lane takes 10-20 more minutes)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

hosts=1
for arg in "$@"; do
  case "$arg" in
    --no-hosts) hosts=0 ;;
    *) echo "test.sh: unknown argument: $arg (--no-hosts)" >&2; exit 2 ;;
  esac
done

step() { printf '\n=== %s\n' "$*"; }

step "Docker engine and host tools"
scripts/ensure-docker.sh

step "grading images"
images/build.sh

step "npm dependencies"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  # zeromq ships a prebuilt binary: no install script is needed.
  npm ci --ignore-scripts --no-audit --no-fund
else
  echo "up to date"
fi

step "lint"
npm run lint

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
# node's test runner closes with "ℹ pass N" (spec reporter) or "# pass N" (tap, when not on a terminal)
count() { sed -n -E "s/^(ℹ|#) $1 ([0-9]+)\$/\2/p" "$2" | tail -n 1; }

step "tests"
set +e
npm test 2>&1 | tee "$logs/main.log"
main_status=${PIPESTATUS[0]}
set -e
passed=$(count pass "$logs/main.log"); failed=$(count fail "$logs/main.log")
passed=${passed:-0}; failed=${failed:-0}
[ "$main_status" = 0 ] || [ "$failed" -gt 0 ] || failed=1

hosts_status=0
if [ "$hosts" = 1 ]; then
  step "host lane"
  set +e
  scripts/test-hosts.sh 2>&1 | tee "$logs/hosts.log"
  hosts_status=${PIPESTATUS[0]}
  set -e
  line=$(grep -E '^hosts: [0-9]+ passed, [0-9]+ failed$' "$logs/hosts.log" | tail -n 1)
  host_passed=$(echo "$line" | sed -n 's/^hosts: \([0-9]*\) passed.*/\1/p')
  host_failed=$(echo "$line" | sed -n 's/.* \([0-9]*\) failed$/\1/p')
  passed=$(( passed + ${host_passed:-0} )); failed=$(( failed + ${host_failed:-0} ))
  [ "$hosts_status" = 0 ] || [ "${host_failed:-0}" -gt 0 ] || failed=$(( failed + 1 ))
fi

echo
echo "total: $passed passed, $failed failed"
[ "$main_status" = 0 ] && [ "$hosts_status" = 0 ]
