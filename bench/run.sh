#!/usr/bin/env bash
# Builds pgbranch (release) and runs the benchmark on ~1 GB of pgbench data: branch create
# against CREATE DATABASE ... TEMPLATE and cp -a, then every pool (btrfs, xfs, zfs, copy) side
# by side. Figures, not assertions. Needs root; starts zfs-fuse for the zfs pool if needed.
# Usage: sudo bench/run.sh [--scale 70] [--branches 10] [--copies 3] [--backends ...]
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh >/dev/null
./scripts/build.sh release >/dev/null
./scripts/daemon.sh zfs-fuse start >/dev/null
trap './scripts/daemon.sh zfs-fuse stop >/dev/null' EXIT
build/release/pgbranch_bench --pgbranch "$PWD/build/release/pgbranch" "$@"
