#!/usr/bin/env bash
# Runs every fuzz target in the module for the given time each (default 10s).
# `make test` runs it briefly so that every target is exercised beyond its
# seed corpus; `make fuzz FUZZTIME=5m` runs it longer. Minimizing a new
# interesting input is capped (FUZZMINIMIZETIME, default 1s; Go's default is
# 60s) so that a 10s smoke run spends its time fuzzing.
set -euo pipefail
fuzztime="${1:-10s}"
minimize="${FUZZMINIMIZETIME:-1s}"
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files '*_test.go' | xargs grep -l '^func Fuzz' || true)
if [ "${#files[@]}" -eq 0 ]; then
  echo "fuzz-smoke: no fuzz targets found" >&2
  exit 1
fi
n=0
for f in "${files[@]}"; do
  dir="./$(dirname "$f")"
  for name in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | sed 's/^func //'); do
    echo "fuzz-smoke: $dir $name for $fuzztime"
    go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -fuzzminimizetime "$minimize" "$dir"
    n=$((n + 1))
  done
done
echo "fuzz-smoke: $n targets fuzzed for $fuzztime each, no failures"
