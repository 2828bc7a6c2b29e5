#!/usr/bin/env bash
# Point-in-time branch creation against the WAL it replays. For each duration D: snapshot main,
# run `pgbench -c 4 -j 2 -T D` on it, note the server's clock, then time
#   pgbranch branch create --pitr <that time>   (clone the snapshot, replay D seconds of WAL)
#   pgbranch branch create                      (the plain branch, for comparison)
# in one run on the embedded default pool (Btrfs image), and print the WAL replayed in MB, the
# times, and MB of WAL per second of PITR. Figures, not assertions. Needs root.
# Usage: sudo bench/pitr.sh [--scale 10] [--durations "10 60 300"]
set -euo pipefail
cd "$(dirname "$0")/.."
scale=10
durations="10 60 300"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --scale) scale="$2"; shift 2 ;;
    --durations) durations="$2"; shift 2 ;;
    *) echo "usage: $0 [--scale N] [--durations \"10 60 300\"]" >&2; exit 2 ;;
  esac
done
./scripts/install-deps.sh >/dev/null
./scripts/build.sh release >/dev/null
pgb="$PWD/build/release/pgbranch"

export PGBRANCH_HOME
PGBRANCH_HOME="$(mktemp -d /var/tmp/pgbranch-pitr-bench.XXXXXX)"
chmod 711 "$PGBRANCH_HOME"
cleanup() {
  "$pgb" -q project delete bench --force >/dev/null 2>&1 || true
  umount "$PGBRANCH_HOME/pool" 2>/dev/null || true
  rm -rf "$PGBRANCH_HOME"
}
trap cleanup EXIT

"$pgb" -q init --image "$PGBRANCH_HOME/pool.img" --size 40G --port-range 58400-58499 >/dev/null
"$pgb" -q project create bench >/dev/null
# on REF CMD...: CMD with the PG* variables of branch REF (`branch env`), so no password is in
# any process's argv.
on() { local ref="$1"; shift; ( eval "$("$pgb" branch env "$ref")"; "$@" ); }
sql() { on "$1" psql -qAtX -c "$2"; }
on bench/main pgbench -i -q -s "$scale" >/dev/null 2>&1
seconds() { date +%s.%N; }

printf '%-10s %12s %12s %14s %14s %10s\n' "writes" "WAL replayed" "PITR branch" "WAL replay" \
  "plain branch" "PITR/plain"
i=0
for d in $durations; do
  i=$((i + 1))
  "$pgb" -q snapshot create bench/main --label "bench base $i" >/dev/null
  start_lsn="$(sql bench/main "SELECT pg_current_wal_lsn()")"
  on bench/main pgbench -n -c 4 -j 2 -T "$d" >/dev/null 2>&1
  target="$(sql bench/main "SELECT clock_timestamp()")"
  mb="$(sql bench/main "SELECT round(pg_wal_lsn_diff(pg_current_wal_lsn(), '$start_lsn') / 1048576.0, 1)")"
  t0="$(seconds)"
  "$pgb" -q branch create "bench/pitr-$i" --pitr "$target" >/dev/null
  t1="$(seconds)"
  "$pgb" -q branch create "bench/plain-$i" >/dev/null
  t2="$(seconds)"
  awk -v d="$d" -v mb="$mb" -v t0="$t0" -v t1="$t1" -v t2="$t2" 'BEGIN {
    pitr = t1 - t0; plain = t2 - t1
    printf "%-10s %9.1f MB %10.2f s %9.1f MB/s %12.2f s %9.1fx\n", d " s", mb, pitr, mb / pitr,
      plain, pitr / plain
  }'
  "$pgb" -q branch delete "bench/pitr-$i" >/dev/null
  "$pgb" -q branch delete "bench/plain-$i" >/dev/null
done
