#!/usr/bin/env bash
# Builds pgbranch. Usage: scripts/build.sh [release|test|tsan|thread-safety]
#   release (default): build/release/pgbranch, optimised, no tests, no fail points; and the
#                      dashboard (scripts/build-web.sh: web/dist).
#   test:              build/test/, with unit + end-to-end tests and fail points compiled in.
#   tsan:              build/tsan/pgbranch and pgbranch_test built with ThreadSanitizer
#                      (-fsanitize=thread) and fail points; $CXX picks the compiler (g++ by
#                      default; clang++ needs libclang-rt-14-dev). Run the unit tests from there.
#   thread-safety:     build/tsa/, everything (tests too) compiled by clang++ with
#                      -Wthread-safety -Werror=thread-safety: building is the check.
# scripts/check-threads.sh runs the last two as one CI check.
set -euo pipefail
cd "$(dirname "$0")/.."
kind="${1:-release}"
dir="build/$kind"
targets=()
case "$kind" in
  release) flags=(-DCMAKE_BUILD_TYPE=Release -DPGBRANCH_TESTS=OFF -DPGBRANCH_FAILPOINTS=OFF) ;;
  test)    flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DPGBRANCH_TESTS=ON -DPGBRANCH_FAILPOINTS=ON) ;;
  tsan)
    # -O1 and line tables only (-g1): half the compile time of -O2 -g, and all a report needs.
    flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG"
           -DPGBRANCH_TESTS=ON -DPGBRANCH_FAILPOINTS=ON -DPGBRANCH_SANITIZE=thread)
    targets=(--target pgbranch pgbranch_test)
    ;;
  thread-safety)
    dir=build/tsa
    # The analysis runs in the front end: no optimisation or debug information needed.
    flags=(-DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=None -DPGBRANCH_TESTS=ON
           -DPGBRANCH_FAILPOINTS=ON -DPGBRANCH_THREAD_SAFETY=ON)
    ;;
  *) echo "usage: $0 [release|test|tsan|thread-safety]" >&2; exit 2 ;;
esac
cmake -S . -B "$dir" -G Ninja "${flags[@]}" >/dev/null
cmake --build "$dir" "${targets[@]}"
# The dashboard `pgbranch serve` serves (web/dist, found beside a binary in build/<kind>/).
case "$kind" in release|test) ./scripts/build-web.sh >/dev/null ;; esac
