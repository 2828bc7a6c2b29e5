#!/usr/bin/env bash
# What per-branch space limits cost, and how fast deleted space comes back. Figures, not
# assertions. Needs root.
#
# Three Btrfs pools of the same size, each on its own loop-mounted image on the same host disk,
# each loaded with the same pgbench data (`pgbench -i -s SCALE`, then CHECKPOINT and sync):
#   quotas   the default pool, `init --image` (pgbranch turns on simple quotas; every branch
#            gets a limit and the group of branches a cap)
#   none     `init --btrfs DIR` on an image the script formats itself: quotas off, no limits
#   full     the same with full qgroups (`btrfs quota enable`, as an administrator would): the
#            accounting simple quotas avoid, for comparison
# Then, round-robin across the pools so that drift hits all alike:
#   - branch create, timed from the command's start until it returns (the branch answers);
#   - `pgbench -n -c 4 -j 2 -T SECONDS` on one branch of each pool, ROUNDS times; the median;
#   - branch delete of a branch holding ~500 MB of its own, and the free space right after.
# And the delete lag without the wait: a subvolume of 512 MB deleted with `btrfs subvolume
# delete` (which returns at once), then the seconds until `stat -f` shows the space free.
#
# Usage: sudo bench/space.sh [--scale 30] [--branches 10] [--seconds 30] [--rounds 3]
#                            [--ports 58600-58699] [--no-full]
# PGB_BIN=path/to/pgbranch skips the release build and uses that binary.
set -euo pipefail
cd "$(dirname "$0")/.."
scale=30
branches=10
seconds=30
rounds=3
ports=58600-58699
full=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --scale) scale="$2"; shift 2 ;;
    --branches) branches="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --ports) ports="$2"; shift 2 ;;
    --no-full) full=0; shift ;;
    *) echo "usage: $0 [--scale N] [--branches N] [--seconds N] [--rounds N] [--ports A-B]" \
         "[--no-full]" >&2; exit 2 ;;
  esac
done
if [[ -z "${PGB_BIN:-}" ]]; then
  ./scripts/install-deps.sh >/dev/null
  ./scripts/build.sh release >/dev/null
  PGB_BIN="$PWD/build/release/pgbranch"
fi
first_port="${ports%-*}"
last_port="${ports#*-}"
third=$(((last_port - first_port + 1) / 3))

work="$(mktemp -d /var/tmp/pgbranch-space-bench.XXXXXX)"
chmod 711 "$work"
pools=(quotas none)
[[ "$full" == 1 ]] && pools+=(full)

pgb() { # pgb POOL ARGS...: pgbranch in that pool's home
  local pool="$1"
  shift
  PGBRANCH_HOME="$work/$pool" NO_COLOR=1 "$PGB_BIN" -q "$@"
}
cleanup() {
  for pool in "${pools[@]}"; do
    [[ -d "$work/$pool" ]] || continue
    pgb "$pool" project delete bench --force >/dev/null 2>&1 || true
  done
  for mnt in "$work/quotas/pool" "$work/none.mnt" "$work/full.mnt" "$work/lag.mnt"; do
    mountpoint -q "$mnt" 2>/dev/null && umount "$mnt"
  done
  rm -rf "$work"
}
trap cleanup EXIT

now() { date +%s.%N; }
# on POOL REF CMD...: CMD with the PG* variables of branch REF in POOL's home (`branch env`),
# so no password is in any process's argv.
on() { local pool="$1" ref="$2"; shift 2; ( eval "$(pgb "$pool" branch env "$ref")"; "$@" ); }
sql() { on "$1" "$2" psql -qAtX -c "$3"; }
free_bytes() { stat -f -c '%a %S' "$1" | awk '{ printf "%.0f\n", $1 * $2 }'; }
minus() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", a - b }'; }
# p50 and p95 of the numbers on stdin
percentiles() {
  sort -g | awk '{ v[NR] = $1 } END {
    p50 = v[int((NR - 1) * 0.5) + 1]; p95 = v[int((NR - 1) * 0.95 + 0.5) + 1]
    printf "%.3f %.3f\n", p50, p95 }'
}
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# A Btrfs image of 24 GiB formatted and mounted by the script, for the pools that pgbranch does
# not format itself.
own_btrfs() {
  local name="$1"
  truncate -s 24G "$work/$name.img"
  mkfs.btrfs -q "$work/$name.img"
  mkdir -p "$work/$name.mnt"
  mount -o loop,noatime "$work/$name.img" "$work/$name.mnt"
  chmod 711 "$work/$name.mnt"
  mkdir -m 711 "$work/$name.mnt/pool"
}

i=0
for pool in "${pools[@]}"; do
  mkdir -m 711 "$work/$pool"
  range="$((first_port + i * third))-$((first_port + (i + 1) * third - 1))"
  i=$((i + 1))
  case "$pool" in
    quotas) pgb quotas init --image "$work/quotas/pool.img" --size 24G --port-range "$range" ;;
    none)
      own_btrfs none
      pgb none init --btrfs "$work/none.mnt/pool" --port-range "$range"
      ;;
    full)
      own_btrfs full
      btrfs quota enable "$work/full.mnt"
      btrfs quota rescan -w "$work/full.mnt" >/dev/null 2>&1 || true
      pgb full init --btrfs "$work/full.mnt/pool" --port-range "$range"
      ;;
  esac >/dev/null
  pgb "$pool" project create bench >/dev/null
  on "$pool" bench/main pgbench -i -q -s "$scale" >/dev/null 2>&1
  sql "$pool" bench/main "CHECKPOINT" >/dev/null
done
sync

declare -A create_times tps_runs delete_times freed
for n in $(seq 1 "$branches"); do
  for pool in "${pools[@]}"; do
    t0="$(now)"
    pgb "$pool" branch create "bench/b$n" >/dev/null
    t1="$(now)"
    create_times[$pool]+="$(minus "$t1" "$t0") "
  done
done
for r in $(seq 1 "$rounds"); do
  for pool in "${pools[@]}"; do
    tps="$(on "$pool" bench/b1 pgbench -n -c 4 -j 2 -T "$seconds" 2>/dev/null |
      sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -1)"
    tps_runs[$pool]+="$tps "
  done
done
for pool in "${pools[@]}"; do
  sql "$pool" bench/b2 "CREATE TABLE fill AS SELECT g, repeat(md5(g::text), 20) AS pad
              FROM generate_series(1, 750000) g" >/dev/null
  sql "$pool" bench/b2 "CHECKPOINT" >/dev/null
  sync
  root="$work/$pool/pool"
  [[ "$pool" != quotas ]] && root="$work/$pool.mnt/pool"
  before="$(free_bytes "$root")"
  t0="$(now)"
  pgb "$pool" branch delete bench/b2 >/dev/null
  t1="$(now)"
  after="$(free_bytes "$root")"
  delete_times[$pool]="$(minus "$t1" "$t0")"
  freed[$pool]="$(((after - before) / 1048576))"
done

# The lag a delete that does not wait leaves: the kernel frees a deleted subvolume's space only
# when its cleaner thread runs (once per 30 s commit interval unless woken).
own_btrfs lag
btrfs subvolume create "$work/lag.mnt/pool/v" >/dev/null
dd if=/dev/urandom of="$work/lag.mnt/pool/v/data" bs=1M count=512 status=none
sync
before="$(free_bytes "$work/lag.mnt")"
t0="$(now)"
btrfs subvolume delete "$work/lag.mnt/pool/v" >/dev/null
while (($(free_bytes "$work/lag.mnt") < before + 400 * 1048576)); do
  sleep 0.1
  if awk -v t="$(minus "$(now)" "$t0")" 'BEGIN { exit !(t > 120) }'; then break; fi
done
lag="$(minus "$(now)" "$t0")"

base_tps="$(echo "${tps_runs[none]}" | tr ' ' '\n' | grep . | median)"
printf '\n%-34s %11s %11s %16s %9s %11s %14s\n' "pool (scale $scale)" "create p50" "create p95" \
  "branch TPS" "TPS/none" "delete" "freed at once"
for pool in "${pools[@]}"; do
  read -r p50 p95 < <(echo "${create_times[$pool]}" | tr ' ' '\n' | grep . | percentiles)
  tps="$(echo "${tps_runs[$pool]}" | tr ' ' '\n' | grep . | median)"
  case "$pool" in
    quotas) label="btrfs image, simple quotas" ;;
    none) label="btrfs, quotas off" ;;
    full) label="btrfs, full qgroups" ;;
  esac
  printf '%-34s %10.3fs %10.3fs %16.0f %8.2fx %10.3fs %10d MiB\n' "$label" "$p50" "$p95" "$tps" \
    "$(awk -v a="$tps" -v b="$base_tps" 'BEGIN { print a / b }')" "${delete_times[$pool]}" \
    "${freed[$pool]}"
done
echo
echo "branch TPS: median of $rounds runs of pgbench -c 4 -j 2 -T $seconds on a branch; runs:"
for pool in "${pools[@]}"; do echo "  $pool: ${tps_runs[$pool]}"; done
printf 'delete without waiting for the cleaner (btrfs subvolume delete, 512 MiB): space free after %.1f s\n' "$lag"
