#!/usr/bin/env bash
# Builds pgbranch. Usage: scripts/build.sh [release|test]
#   release (default): build/release/pgbranch, optimised, no tests, no fail points.
#   test:              build/test/, with unit + end-to-end tests and fail points compiled in.
set -euo pipefail
cd "$(dirname "$0")/.."
kind="${1:-release}"
case "$kind" in
  release) flags=(-DCMAKE_BUILD_TYPE=Release -DPGBRANCH_TESTS=OFF -DPGBRANCH_FAILPOINTS=OFF) ;;
  test)    flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DPGBRANCH_TESTS=ON -DPGBRANCH_FAILPOINTS=ON) ;;
  *) echo "usage: $0 [release|test]" >&2; exit 2 ;;
esac
cmake -S . -B "build/$kind" -G Ninja "${flags[@]}" >/dev/null
cmake --build "build/$kind"
