#!/usr/bin/env bash
# Tests an INGInious course in CI: replays its recorded submissions (each task's test/*.test)
# with this agent's `test` command, and keeps the JUnit file for the CI to display.
#
#   scripts/course-ci.sh COURSE_DIR [JUNIT_FILE]
#
# COURSE_DIR is the course folder (its name is the course id); JUNIT_FILE defaults to
# ./course-tests.xml. Steps, each skipped when what it makes is there already:
#   1. a Docker engine: scripts/ensure-docker.sh (Debian's docker.io, dockerd started), as root;
#   2. Node.js 20 or newer: Debian's nodejs when its version is recent enough, else the official
#      build from nodejs.org (checksum verified) under /usr/local, as root;
#   3. the grading images the course needs:
#        PULL_IMAGES="ingi/inginious-c-default ..."   pulled from their registry;
#        BUILD_IMAGES="name=DIR ..."                  built from DIR/Dockerfile, tagged name;
#        SAMPLE_IMAGE=1                               this repository's sample image (images/build.sh);
#   4. this agent: npm ci, build;
#   5. `test COURSE_DIR --junit JUNIT_FILE` (with TEST_ARGS="..." added, e.g. --concurrency 2).
# Exits with `test`'s status: 0 all matched, 1 a mismatch, 2 a usage error, 3 jobs could not run.
set -euo pipefail

AGENT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NODE_MAJOR=20

say() { printf '\n=== course-ci: %s\n' "$*" >&2; }
die() { echo "course-ci: ERROR: $*" >&2; exit 3; }
usage() { sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

[ $# -ge 1 ] && [ $# -le 2 ] || { usage >&2; exit 2; }
case "$1" in -h|--help) usage; exit 0 ;; esac
[ -d "$1" ] || { echo "course-ci: no course folder $1" >&2; exit 2; }
COURSE="$(cd "$1" && pwd)"
JUNIT="$(realpath -m "${2:-course-tests.xml}")"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

node_ok() { command -v node >/dev/null && node -e "process.exit(+process.versions.node.split('.')[0] >= $NODE_MAJOR ? 0 : 1)"; }

install_node() {
  if command -v apt-get >/dev/null; then
    as_root apt-get update -qq
    local candidate
    candidate="$(apt-cache policy nodejs | awk '/Candidate:/ { print $2 }' | sed 's/^[0-9]*://')"
    if [ "${candidate%%.*}" -ge "$NODE_MAJOR" ] 2>/dev/null; then
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
      return
    fi
  fi
  local arch base file tmp
  case "$(uname -m)" in x86_64) arch=x64 ;; aarch64) arch=arm64 ;; *) die "no Node.js build for $(uname -m)" ;; esac
  base="https://nodejs.org/dist/latest-v$NODE_MAJOR.x"
  tmp="$(mktemp -d)"
  curl -fsSL "$base/SHASUMS256.txt" -o "$tmp/SHASUMS256.txt"
  file="$(awk -v a="linux-$arch.tar.xz" '$2 ~ a"$" { print $2 }' "$tmp/SHASUMS256.txt")"
  [ -n "$file" ] || die "no linux-$arch build listed at $base"
  curl -fsSL "$base/$file" -o "$tmp/$file"
  (cd "$tmp" && grep " $file\$" SHASUMS256.txt | sha256sum -c --quiet) || { rm -rf "$tmp"; die "checksum of $file does not match"; }
  as_root tar -xJf "$tmp/$file" -C /usr/local --strip-components=1 --exclude='*.md' --exclude=LICENSE
  rm -rf "$tmp"
}

say "Docker engine"
if docker info >/dev/null 2>&1; then echo "the engine answers"; else as_root "$AGENT/scripts/ensure-docker.sh"; fi

say "Node.js $NODE_MAJOR or newer"
if node_ok; then echo "node $(node --version)"; else install_node; node_ok || die "Node.js $NODE_MAJOR+ is still missing"; fi

say "grading images"
for image in ${PULL_IMAGES:-}; do docker pull --quiet "$image"; done
for spec in ${BUILD_IMAGES:-}; do
  [[ "$spec" == *=* ]] || die "BUILD_IMAGES takes name=DIR, got $spec"
  docker build --quiet -t "${spec%%=*}" "${spec#*=}"
done
if [ "${SAMPLE_IMAGE:-0}" = 1 ]; then
  if [ "$(id -u)" = 0 ]; then "$AGENT/scripts/ensure-docker.sh" && "$AGENT/images/build.sh" --sample-only
  else sudo "$AGENT/scripts/ensure-docker.sh" && sudo "$AGENT/images/build.sh" --sample-only; fi
fi

say "the agent"
cd "$AGENT"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --ignore-scripts --no-audit --no-fund
fi
npm run --silent build

say "test $COURSE"
status=0
# shellcheck disable=SC2086 # TEST_ARGS is a list of words
node dist/src/cli.js test "$COURSE" --junit "$JUNIT" ${TEST_ARGS:-} || status=$?
echo "course-ci: JUnit results in $JUNIT (exit status $status)" >&2
exit "$status"
