# Shared by the bench/ scripts (sourced from the repository root).

# Sets PGBRANCH to the binary to measure: as given, else a release build made now (with the
# project's dependencies installed first).
bench_binary() {
  if [[ -z ${PGBRANCH:-} ]]; then
    ./scripts/install-deps.sh >/dev/null
    ./scripts/build.sh release >/dev/null
    PGBRANCH=$PWD/build/release/pgbranch
  fi
}
