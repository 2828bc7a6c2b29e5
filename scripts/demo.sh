#!/usr/bin/env bash
# The README's main job: installs what is needed, builds and installs pgbranch, then runs the
# demo on the embedded default pool (a Btrfs image pgbranch creates under /var/lib/pgbranch)
# with native PostgreSQL: real pgbench data in demo/main, branches, isolation check, reset,
# delete. Safe to run again: it starts by deleting a previous demo project.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  exec sudo "$0" "$@"
fi
./scripts/install-deps.sh
./scripts/build.sh release
install -m 0755 build/release/pgbranch /usr/local/bin/pgbranch
# The dashboard of `pgbranch serve`, where it looks beside /usr/local/bin/pgbranch.
rm -rf /usr/local/share/pgbranch/web
install -d /usr/local/share/pgbranch/web
cp -r web/dist/. /usr/local/share/pgbranch/web/

scale="${PGBRANCH_DEMO_SCALE:-10}"
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
note() { printf '\n\033[1m# %s\033[0m\n' "$*"; }
export PGOPTIONS='-c client_min_messages=warning'  # no NOTICE chatter from pgbench -i
run() { say "$*"; "$@"; }
# SQL on a branch through `pgbranch psql`: the password comes from the branch's private
# password file, never a command line (where every local user could read it in /proc).
sql() { pgbranch psql "$1" -- -qAtX -c "$2"; }
count() { sql "$1" "SELECT count(*) FROM pgbench_accounts"; }

if pgbranch project get demo >/dev/null 2>&1; then
  run pgbranch project delete demo --force
fi
run pgbranch project create demo
say "eval \"\$(pgbranch branch env demo/main)\"; pgbench -i -s $scale"
(eval "$(pgbranch branch env demo/main)"; pgbench -i -q -s "$scale")
run pgbranch branch create demo/dev
run pgbranch branch create demo/exp --parent demo/dev

note "isolation check: delete 1000 accounts in demo/dev, add a history row in demo/main"
run pgbranch psql demo/dev -- -qAtX -c "DELETE FROM pgbench_accounts WHERE aid <= 1000"
sql demo/main "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 1, 1, 1, now())"
expected=$((scale * 100000))
main_count="$(count demo/main)"
dev_count="$(count demo/dev)"
main_hist="$(sql demo/main "SELECT count(*) FROM pgbench_history")"
dev_hist="$(sql demo/dev "SELECT count(*) FROM pgbench_history")"
echo "demo/main: $main_count accounts, $main_hist history rows"
echo "demo/dev:  $dev_count accounts, $dev_hist history rows"
if [ "$main_count" -eq "$expected" ] && [ "$dev_count" -eq $((expected - 1000)) ] \
   && [ "$main_hist" -eq 1 ] && [ "$dev_hist" -eq 0 ]; then
  echo "✔ isolation: each branch sees only its own writes"
else
  echo "✘ isolation check failed" >&2
  exit 1
fi

run pgbranch status
run pgbranch branch reset demo/dev
dev_count="$(count demo/dev)"
echo "demo/dev after reset: $dev_count accounts (same URI), demo/main has $expected"
[ "$dev_count" -eq "$expected" ] || { echo "✘ reset did not restore the parent's data" >&2; exit 1; }
run pgbranch branch delete demo/exp
run pgbranch status
printf '\nThe demo project is still running. Try: pgbranch psql demo/dev\n'
printf 'Remove it with: pgbranch project delete demo --force\n'
