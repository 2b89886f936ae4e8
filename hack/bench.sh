#!/usr/bin/env bash
# Runs every benchmark under bench/ in turn. Benchmarks print their own
# figures and the command that reproduces them.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
for b in $(find bench -name '*.py' -not -name '_*' | sort); do
  echo "== $b"
  .venv/bin/python "$b" || status=1
done
exit $status
