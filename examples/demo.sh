#!/usr/bin/env bash
# Grades the sample submissions end to end on this machine, through the agent's local mode:
# a Docker engine, the sample grading image (built locally), the agent, then four jobs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/ensure-docker.sh
images/build.sh --sample-only
[ -d node_modules ] || npm ci --ignore-scripts --no-audit --no-fund
npm run --silent build

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo
echo "Grading examples/submissions/*.json against examples/tasks/demo/hello:"
node dist/src/cli.js grade demo/hello --tasks examples/tasks --tmpdir "$tmp" --time 5 --memory 100 \
  --input examples/submissions/correct.json examples/submissions/wrong.json \
          examples/submissions/error.json examples/submissions/endless.json "$@"
