#!/usr/bin/env bash
# Builds pgbranch (release) and runs the branch-create benchmark on ~1 GB of pgbench data.
# Usage: sudo bench/run.sh [--scale 70] [--branches 10] [--copies 3]
# Prints figures side by side with CREATE DATABASE ... TEMPLATE and cp -a, as ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh >/dev/null
./scripts/build.sh release >/dev/null
exec build/release/pgbranch_bench --pgbranch "$PWD/build/release/pgbranch" "$@"
