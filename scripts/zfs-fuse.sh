#!/usr/bin/env bash
# Starts, stops and reports Debian's zfs-fuse daemon for pgbranch's tests and for hosts without
# OpenZFS kernel modules.
#
#   scripts/zfs-fuse.sh start    start zfs-fuse unless one runs already; wait until `zpool list`
#                                answers (exit 0), else exit 1
#   scripts/zfs-fuse.sh stop     stop the daemon, but only if this script started it (the pidfile
#                                says so); a daemon started otherwise is left alone
#   scripts/zfs-fuse.sh status   say whether it runs and who started it; exit 0 if it runs, 3 if not
#
# Needs root, the zfs-fuse package and /dev/fuse. `stop` does not unmount or export anything:
# whoever made zpools (the tests) destroys them first; a pool still imported when the daemon stops
# stays in /var/lib/zfs/zpool.cache and is imported again by the next start.
#
# Why the zombie check: on some machines (containers, microVMs) PID 1 does not reap orphans, so a
# daemon that exited stays a zombie with its /proc entry. A zombie counts as not running.

set -euo pipefail

readonly PIDFILE=/run/pgbranch-zfs-fuse.pid
readonly LOGFILE=/run/pgbranch-zfs-fuse.log
readonly START_TIMEOUT_S=15
readonly STOP_TIMEOUT_S=20

die() {
  echo "zfs-fuse.sh: $*" >&2
  exit 1
}

# True if PID names a live (not zombie) zfs-fuse process.
is_zfs_fuse_pid() {
  local pid=$1 stat comm state
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
  # /proc/PID/stat: "PID (COMM) STATE ..."; COMM may hold spaces, so split at the last ')'.
  comm=${stat#*(}
  comm=${comm%)*}
  state=${stat##*) }
  state=${state%% *}
  [[ $comm == zfs-fuse && $state != Z ]]
}

# The pid this script started, if that process still runs; empty otherwise.
our_pid() {
  local pid
  pid=$(cat "$PIDFILE" 2>/dev/null) || return 0
  if is_zfs_fuse_pid "$pid"; then echo "$pid"; fi
}

# The pids of all live zfs-fuse processes, whoever started them.
all_pids() {
  local dir pid
  for dir in /proc/[0-9]*; do
    pid=${dir#/proc/}
    if is_zfs_fuse_pid "$pid"; then echo "$pid"; fi
  done
}

zpool_answers() {
  zpool list -H -o name >/dev/null 2>&1
}

do_start() {
  local pids
  pids=$(all_pids)
  if [[ -n $pids ]]; then
    echo "zfs-fuse already runs (pid ${pids//$'\n'/ })"
    return 0
  fi
  command -v zfs-fuse >/dev/null || die "zfs-fuse is not installed; apt-get install zfs-fuse"
  [[ $(id -u) == 0 ]] || die "start needs root"
  [[ -c /dev/fuse ]] || die "/dev/fuse is missing; load the fuse module (modprobe fuse)"
  rm -f "$PIDFILE"
  # zfs-fuse daemonizes itself and writes the daemon's pid to the pidfile.
  zfs-fuse --pidfile "$PIDFILE" >>"$LOGFILE" 2>&1 || die "zfs-fuse failed to start; see $LOGFILE"
  local deadline=$((SECONDS + START_TIMEOUT_S))
  while ! zpool_answers; do
    if ((SECONDS >= deadline)); then
      die "zfs-fuse started but 'zpool list' does not answer after ${START_TIMEOUT_S}s"
    fi
    sleep 0.1
  done
  echo "zfs-fuse started (pid $(cat "$PIDFILE"))"
}

do_stop() {
  local pid
  pid=$(our_pid)
  if [[ -z $pid ]]; then
    rm -f "$PIDFILE"
    if [[ -n $(all_pids) ]]; then
      echo "zfs-fuse runs but was not started by this script; leaving it"
    else
      echo "zfs-fuse is not running"
    fi
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + STOP_TIMEOUT_S))
  while is_zfs_fuse_pid "$pid"; do
    if ((SECONDS >= deadline)); then
      echo "zfs-fuse (pid $pid) ignored SIGTERM for ${STOP_TIMEOUT_S}s; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
      break
    fi
    sleep 0.1
  done
  rm -f "$PIDFILE"
  [[ -s $LOGFILE ]] || rm -f "$LOGFILE"
  echo "zfs-fuse stopped (pid $pid)"
}

do_status() {
  local pid pids
  pid=$(our_pid)
  if [[ -n $pid ]]; then
    echo "zfs-fuse runs (pid $pid, started by this script)"
    return 0
  fi
  pids=$(all_pids)
  if [[ -n $pids ]]; then
    echo "zfs-fuse runs (pid ${pids//$'\n'/ }, not started by this script)"
    return 0
  fi
  echo "zfs-fuse is not running"
  return 3
}

case "${1:-}" in
  start) do_start ;;
  stop) do_stop ;;
  status) do_status ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
