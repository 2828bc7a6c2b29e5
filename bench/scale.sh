#!/usr/bin/env bash
# Many branches of one project, in one run (issue 15's "listings with many branches" and
# "creation flat in count"):
#   (a) branch create, one after another, until --running branches run: the time of each,
#       printed as p50/p95 per tenth of the way (flat is the goal);
#   (b) at 10 and at --running branches: `status`, `branch list --json` and `branch get` of one
#       branch, each run --repeat times (warm: the sizes as last measured), p50 and p95; and
#       `status --refresh`, which measures every branch's size now (what a listing cost before
#       sizes were kept);
#   (c) the memory the running servers take (proportional set size of every postgres process,
#       /proc/PID/smaps_rollup), per branch;
#   (d) with --defined M: branches up to M in all, the ones beyond --running stopped at once,
#       and the listings again.
# Figures, not assertions. Needs root (the image pool).
# Usage: sudo bench/scale.sh [--running 100] [--defined 0] [--repeat 5] [--scale 5]
#        PGBRANCH=build/test/pgbranch bench/scale.sh ...   (skip the release build)
set -euo pipefail
cd "$(dirname "$0")/.."
running=100 defined=0 repeat=5 scale=5
while [[ $# -gt 0 ]]; do
  case "$1" in
    --running) running=$2; shift 2 ;;
    --defined) defined=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    --scale) scale=$2; shift 2 ;;
    *) echo "usage: $0 [--running N] [--defined M] [--repeat N] [--scale S]" >&2; exit 2 ;;
  esac
done
if (( running < 10 )); then echo "--running must be 10 or more" >&2; exit 2; fi
# shellcheck source=bench/lib.sh
source bench/lib.sh
bench_binary
home=$(mktemp -d /tmp/pgb-bench-scale.XXXXXX)
chmod 755 "$home"
cleanup() {
  set +e
  "$PGBRANCH" --home "$home" -q project delete scale --force >/dev/null 2>&1
  umount -l "$home/pool" 2>/dev/null
  rm -rf "$home"
}
trap cleanup EXIT
pgb() { "$PGBRANCH" --home "$home" -q "$@"; }

# Milliseconds one command takes, its output thrown away.
time_ms() {
  local start end
  start=$(date +%s%N)
  "$@" >/dev/null
  end=$(date +%s%N)
  echo $(( (end - start) / 1000000 ))
}
# "p50 X ms, p95 Y ms" of the numbers on stdin.
percentiles() {
  python3 -c '
import sys
v = sorted(float(x) for x in sys.stdin.read().split())
p = lambda q: v[min(len(v) - 1, int(round(q * (len(v) - 1))))]
print(f"p50 {p(0.5):7.0f} ms   p95 {p(0.95):7.0f} ms   (n={len(v)})")'
}
listings() {
  local label=$1 ref=$2 what
  echo "  $label:"
  for what in "status" "branch list scale --json" "branch get $ref --json" "status --refresh"; do
    # shellcheck disable=SC2086 # the words of $what are the command's
    printf '    %-28s %s\n' "$what" "$(for _ in $(seq "$repeat"); do time_ms pgb $what; done | percentiles)"
  done
}
# Proportional set size of every postgres process, in MiB.
postgres_pss_mib() {
  python3 - <<'EOF'
import os
total = 0
for pid in os.listdir("/proc"):
    if not pid.isdigit():
        continue
    try:
        if os.path.basename(os.readlink(f"/proc/{pid}/exe")) != "postgres":
            continue
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
    except OSError:
        pass
print(f"{total / 1024:.0f}")
EOF
}

last=$((40000 + (defined > running ? defined : running) + 10))
pgb init --image "$home/pool.img" --size 16G --fs btrfs --port-range "40000-$last" >/dev/null
pss_before=$(postgres_pss_mib)
pgb project create scale >/dev/null
uri=$(pgb branch url scale/main)
pgbench -i -q -s "$scale" "$uri" >/dev/null 2>&1
echo "pgbranch $("$PGBRANCH" --version 2>/dev/null | head -1) on $(nproc) cores; main: pgbench -s $scale"
echo
echo "(a) branch create, one after another, up to $running running branches (plus main):"
times=()
for i in $(seq "$running"); do
  times+=("$(time_ms pgb branch create "scale/b$i")")
  if (( i == 10 )); then
    at10=$(listings "(b) at 10 branches" scale/b5)
  fi
done
step=$((running / 10))
for d in $(seq 0 9); do
  printf '  creates %4d-%-4d %s\n' $((d * step + 1)) $(((d + 1) * step)) \
    "$(printf '%s\n' "${times[@]:$((d * step)):$step}" | percentiles)"
done
echo "$at10"
listings "(b) at $running branches" "scale/b$((running / 2))"
pss=$(postgres_pss_mib)
echo "(c) memory of $((running + 1)) running servers: $((pss - pss_before)) MiB PSS," \
  "$(( (pss - pss_before) / (running + 1) )) MiB each"
if (( defined > running )); then
  for i in $(seq $((running + 1)) "$defined"); do
    pgb branch create "scale/b$i" >/dev/null
    pgb branch stop "scale/b$i" >/dev/null
  done
  listings "(d) at $defined branches, $running running" "scale/b$((defined - 1))"
fi
