#!/usr/bin/env bash
# Starts, stops and reports the daemons pgbranch's tests (and hosts without them as services)
# need: Debian's zfs-fuse (for a zfs pool without OpenZFS kernel modules) and dockerd (for the
# docker runtime; Podman needs no daemon).
#
#   scripts/daemon.sh NAME start    start NAME unless one runs already; wait until it answers
#                                   (`zpool list`, `docker info`): exit 0, else exit 1
#   scripts/daemon.sh NAME stop     stop it, but only if this script started it (the pidfile
#                                   says so); a daemon started otherwise is left alone
#   scripts/daemon.sh NAME status   say whether it runs and who started it; exit 0 if it runs,
#                                   3 if not
# NAME is zfs-fuse or dockerd.
#
# Needs root. zfs-fuse needs /dev/fuse; `stop` does not unmount or export anything: whoever made
# zpools (the tests) destroys them first. dockerd is started as this machine allows it:
# --iptables=false --bridge=none, so containers use host networking.
#
# Why the zombie check: on some machines (containers, microVMs) PID 1 does not reap orphans, so a
# daemon that exited stays a zombie with its /proc entry. A zombie counts as not running.

set -euo pipefail

readonly NAME=${1:-}
case "$NAME" in
  zfs-fuse) readonly START_TIMEOUT_S=15 STOP_TIMEOUT_S=20 PACKAGE=zfs-fuse ;;
  dockerd) readonly START_TIMEOUT_S=60 STOP_TIMEOUT_S=30 PACKAGE=docker.io ;;
  *)
    echo "usage: $0 zfs-fuse|dockerd start|stop|status" >&2
    exit 2
    ;;
esac
readonly PIDFILE=/run/pgbranch-$NAME.pid
readonly LOGFILE=/run/pgbranch-$NAME.log

die() {
  echo "daemon.sh $NAME: $*" >&2
  exit 1
}

# True if PID names a live (not zombie) process of the daemon.
is_daemon_pid() {
  local pid=$1 stat comm state
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
  # /proc/PID/stat: "PID (COMM) STATE ..."; COMM may hold spaces, so split at the last ')'.
  comm=${stat#*(}
  comm=${comm%)*}
  state=${stat##*) }
  state=${state%% *}
  [[ $comm == "$NAME" && $state != Z ]]
}

# The pid this script started, if that process still runs; empty otherwise.
our_pid() {
  local pid
  pid=$(cat "$PIDFILE" 2>/dev/null) || return 0
  if is_daemon_pid "$pid"; then echo "$pid"; fi
}

# The pids of all live $NAME processes, whoever started them.
all_pids() {
  local dir pid
  for dir in /proc/[0-9]*; do
    pid=${dir#/proc/}
    if is_daemon_pid "$pid"; then echo "$pid"; fi
  done
}

answers() {
  case "$NAME" in
    zfs-fuse) zpool list -H -o name >/dev/null 2>&1 ;;
    dockerd) docker info >/dev/null 2>&1 ;;
  esac
}

launch() {
  case "$NAME" in
    # zfs-fuse daemonizes itself and writes the daemon's pid to the pidfile.
    zfs-fuse) zfs-fuse --pidfile "$PIDFILE" >>"$LOGFILE" 2>&1 ;;
    # dockerd stays in the foreground: detach it into its own session.
    dockerd)
      setsid dockerd --iptables=false --bridge=none --pidfile "$PIDFILE" \
        >>"$LOGFILE" 2>&1 </dev/null &
      ;;
  esac
}

do_start() {
  local pids
  pids=$(all_pids)
  if [[ -n $pids ]]; then
    echo "$NAME already runs (pid ${pids//$'\n'/ })"
    return 0
  fi
  command -v "$NAME" >/dev/null || die "$NAME is not installed; apt-get install $PACKAGE"
  [[ $(id -u) == 0 ]] || die "start needs root"
  if [[ $NAME == zfs-fuse && ! -c /dev/fuse ]]; then
    die "/dev/fuse is missing; load the fuse module (modprobe fuse)"
  fi
  rm -f "$PIDFILE"
  launch || die "$NAME failed to start; see $LOGFILE"
  local deadline=$((SECONDS + START_TIMEOUT_S))
  while ! answers; do
    if ((SECONDS >= deadline)); then
      die "$NAME started but does not answer after ${START_TIMEOUT_S}s; see $LOGFILE"
    fi
    sleep 0.1
  done
  echo "$NAME started (pid $(cat "$PIDFILE"))"
}

do_stop() {
  local pid
  pid=$(our_pid)
  if [[ -z $pid ]]; then
    rm -f "$PIDFILE"
    if [[ -n $(all_pids) ]]; then
      echo "$NAME runs but was not started by this script; leaving it"
    else
      echo "$NAME is not running"
    fi
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + STOP_TIMEOUT_S))
  while is_daemon_pid "$pid"; do
    if ((SECONDS >= deadline)); then
      echo "$NAME (pid $pid) ignored SIGTERM for ${STOP_TIMEOUT_S}s; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
      break
    fi
    sleep 0.1
  done
  rm -f "$PIDFILE"
  # dockerd leaves the mount of its default network namespace behind.
  if [[ $NAME == dockerd ]] && grep -q ' /run/docker/netns/default ' /proc/mounts; then
    umount /run/docker/netns/default || true
  fi
  [[ -s $LOGFILE ]] || rm -f "$LOGFILE"
  echo "$NAME stopped (pid $pid)"
}

do_status() {
  local pid pids
  pid=$(our_pid)
  if [[ -n $pid ]]; then
    echo "$NAME runs (pid $pid, started by this script)"
    return 0
  fi
  pids=$(all_pids)
  if [[ -n $pids ]]; then
    echo "$NAME runs (pid ${pids//$'\n'/ }, not started by this script)"
    return 0
  fi
  echo "$NAME is not running"
  return 3
}

case "${2:-}" in
  start) do_start ;;
  stop) do_stop ;;
  status) do_status ;;
  *)
    echo "usage: $0 zfs-fuse|dockerd start|stop|status" >&2
    exit 2
    ;;
esac
