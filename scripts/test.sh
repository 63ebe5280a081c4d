#!/usr/bin/env bash
# The whole test suite from a fresh machine of this kind (Debian, as root): a Docker engine,
# the local grading images, the npm dependencies, the lint, the build, then node's test runner.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

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

step "tests"
npm test
