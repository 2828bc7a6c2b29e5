#!/bin/sh
# Runs the pgjdbc test client: run.sh info | query SQL | cancel (see ../README.md).
# Compiles Client.java against Debian's pgjdbc (libpostgresql-jdbc-java, with a JDK
# from default-jdk-headless) into $PGB_CLIENT_BUILD (default /tmp/pgb-jdbc-client)
# when the class is missing or older than the source. Safe to run several at once.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${PGB_CLIENT_BUILD:-/tmp/pgb-jdbc-client}
jar=${PGB_JDBC_JAR:-/usr/share/java/postgresql.jar}

if [ ! -r "$jar" ]; then
  printf '{"error": "pgjdbc not found at %s (apt-get install libpostgresql-jdbc-java)", "sqlstate": null}\n' "$jar"
  exit 1
fi

stale() {
  [ ! -f "$build/Client.class" ] || [ "$here/Client.java" -nt "$build/Client.class" ]
}

if stale; then
  mkdir -p "$build"
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$build/.lock"
    flock 9
  fi
  if stale; then  # another run may have compiled it while this one waited
    tmp=$(mktemp -d "$build/.javac.XXXXXX")
    if ! javac -encoding UTF-8 -cp "$jar" -d "$tmp" "$here/Client.java" >&2; then
      rm -rf "$tmp"
      printf '{"error": "javac failed on %s", "sqlstate": null}\n' "$here/Client.java"
      exit 1
    fi
    # Client.class last: a run that finds it up to date finds its inner classes too
    for f in "$tmp"/*.class; do
      [ "$f" = "$tmp/Client.class" ] || mv -f "$f" "$build"/
    done
    mv -f "$tmp/Client.class" "$build"/
    rm -rf "$tmp"
  fi
  exec 9>&-
fi

# quick start-up: these runs are short
exec java -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xshare:auto \
  -cp "$build:$jar" Client "$@"
