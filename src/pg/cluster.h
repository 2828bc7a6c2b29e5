// A PostgreSQL data directory as pgbranch shapes it: binaries, initdb, and the configuration
// files pgbranch owns.
//
// pgbranch writes two files into every data directory and PostgreSQL reads them:
//   - pgbranch.conf, pulled in by an `include 'pgbranch.conf'` line that InitDataDir appends to
//     postgresql.conf (so it wins over earlier settings; postgresql.auto.conf still overrides,
//     as ALTER SYSTEM should). It holds what differs per branch: port, listen_addresses, the
//     socket directory, cluster_name, TLS. Rewritten on every clone (PostgreSQL docs 20.1.5,
//     "Managing Configuration File Contents").
//   - pg_hba.conf: local (socket) connections trusted — the socket directory is private —
//     and every TCP connection, including replication, by scram-sha-256 (docs 21.1), with or
//     without TLS (`host`, not `hostssl`: a client chooses with its sslmode).
// Files are written atomically and owned by the server's OS user.

#ifndef PGBRANCH_PG_CLUSTER_H_
#define PGBRANCH_PG_CLUSTER_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/fs.h"
#include "common/os_user.h"
#include "common/status.h"
#include "common/subprocess.h"

namespace pgb {

struct PgBinaries {
  std::string bin_dir;  // holds initdb and postgres
  int major = 0;        // 15
  std::string version;  // "15.20"
};

// Finds PostgreSQL's server binaries. With `override_dir` set, uses exactly that directory.
// Otherwise asks `pg_config --bindir`, then falls back to the Debian layout
// /usr/lib/postgresql/<N>/bin (highest N with a postgres binary). The version comes from
// `postgres --version`. NotFound (naming where it looked, and the postgresql package) if none.
Result<PgBinaries> FindPgBinaries(ProcessRunner& runner, const std::string& override_dir = "");

// Parses `postgres --version` output of the binaries in `bin_dir`:
// "postgres (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)" -> major 15, version "15.20";
// development builds ("16devel", "16beta1") give major 16 and the version as printed.
// Internal for anything else.
Result<PgBinaries> ParsePostgresVersion(const std::string& bin_dir, const std::string& output);

// The major version a data directory was made by (its PG_VERSION file).
Result<int> DataDirMajorVersion(const std::string& data_dir);

// Runs initdb for a new, empty data directory `data_dir` (which must exist, mode 0700, owned
// by `os_user`): superuser `superuser`, UTF8, locale C.UTF-8, data checksums, no password.
// Then appends the include line to postgresql.conf and writes pg_hba.conf. On failure the
// directory's contents are left for the caller to destroy with the volume.
// The include is `include`, not `include_if_exists`: until WriteInstanceConfig has written
// pgbranch.conf the server refuses to start, rather than starting on the default port.
Status InitDataDir(ProcessRunner& runner, const PgBinaries& bins, const std::string& data_dir,
                   const std::string& superuser, const std::optional<OsUser>& os_user);

// InitDataDir in two halves, for an initdb run elsewhere (in a container): initdb's arguments
// (after the program), and what follows a successful initdb, with files owned by `owner`.
std::vector<std::string> InitdbArgs(const std::string& data_dir, const std::string& superuser,
                                    int pg_major);
Status FinishInitDataDir(const std::string& data_dir, std::optional<FileOwner> owner);

// After a physical copy of another server's data directory (pg_basebackup): the include of
// pgbranch.conf appended to its postgresql.conf — or, when the source kept that file outside
// its data directory, a new postgresql.conf with `settings` (name -> value, as the source runs
// them) and the include — and pgbranch's pg_hba.conf, the source's kept as pg_hba.conf.source.
// Files owned by `owner`.
Status FinishCopiedDataDir(const std::string& data_dir,
                           const std::map<std::string, std::string>& settings,
                           std::optional<FileOwner> owner);

// The inverse of FinishCopiedDataDir and WriteInstanceConfig for a data directory pgbranch
// adopted in place (project delete --keep-data): the include taken out of postgresql.conf (or
// the postgresql.conf pgbranch wrote removed), pg_hba.conf.source back as pg_hba.conf,
// pgbranch.conf and pgbranch's server certificate removed and the directory's own put back
// (SetAsideServerCertificate). Each part is skipped when already undone, so a second call
// after an interrupted one finishes it.
Status RestoreAdoptedDataDir(const std::string& data_dir);

// Renames an adopted data directory's own server.crt and server.key to *.source, so that
// pgbranch's certificate (pg/tls.h) never overwrites them.
Status SetAsideServerCertificate(const std::string& data_dir);

// Archive recovery to a target (point-in-time recovery; PostgreSQL docs 26.3.4 "Recovering
// Using a Continuous Archive Backup" and 20.5.5 "Recovery Target"). At most one target; none
// recovers to the end of the WAL available, then promotes.
struct RecoverySettings {
  // The WAL archive restore_command copies segments from; empty: none (only pg_wal's WAL).
  std::string restore_dir;
  std::string target_time;  // recovery_target_time, "2026-11-21 14:30:00.123456+00"
  std::string target_lsn;   // recovery_target_lsn, "0/3000060"
};

// A streaming standby (docs 27.2.2 "Standby Server Operation", 20.6.3 "Standby Servers"):
// primary_conninfo (a libpq connection string, no password in it) and the slot, if any.
struct StandbySettings {
  std::string primary_conninfo;
  std::string slot;
};

// What differs per branch; written into pgbranch.conf.
struct InstanceConfig {
  int port = 0;
  std::string listen_addresses = "127.0.0.1";
  std::string socket_dir;    // unix_socket_directories: pgbranch's private socket directory
  std::string cluster_name;  // "demo/dev": shows in `ps` and in the server log
  // WAL archiving (docs 26.3.1) into this directory; empty: archive_mode stays off. From
  // PostgreSQL 15 through the contrib module basic_archive (docs F.6), which copies each
  // segment to a temporary file, fsyncs and renames it, succeeds when an identical file is
  // already there and fails — so the server keeps the segment and retries — when a different
  // one is. Before 15, an archive_command doing the same with test, cmp, cp and mv.
  std::string archive_dir;
  int pg_major = 0;  // chooses between the two
  // With a value, the server starts in archive recovery (see WriteRecoverySignal).
  std::optional<RecoverySettings> recovery;
  // With a value, the server follows a primary as a hot standby (the caller writes
  // standby.signal) and archives with archive_mode = always.
  std::optional<StandbySettings> standby;
  // TLS on: ssl = on with the certificate and key pg/tls.h keeps in the data directory
  // (server.crt, server.key, named relative to it) and at least TLS 1.2 (docs 19.9 "Secure
  // TCP/IP Connections with SSL", 20.3.3 "SSL"). The files must exist before the server starts
  // (EnsureServerCertificate), or it refuses to.
  bool ssl = false;
  // One line for pgbranch itself (JSON: which project and branch this data directory is,
  // its parent, runtime ...), kept as a comment so a lost catalog can be rebuilt from the
  // volumes (`doctor --adopt`). PostgreSQL ignores it.
  std::string metadata;
};

// What ReadInstanceConfig finds in a data directory's pgbranch.conf.
struct InstanceConfigFile {
  int port = 0;
  std::string cluster_name;  // "demo/dev"
  std::string metadata;      // the metadata line's JSON, empty if none (an older pgbranch)
};
// Reads `data_dir`/pgbranch.conf. NotFound if there is none.
Result<InstanceConfigFile> ReadInstanceConfig(const std::string& data_dir);

// Writes pgbranch.conf (atomic, mode 0600, owned by `owner`). InvalidArgument for values that
// cannot be written safely (a line break, a port out of range, a path with a quote or '%').
Status WriteInstanceConfig(const std::string& data_dir, const InstanceConfig& config,
                           std::optional<FileOwner> owner);

// Creates `data_dir`/recovery.signal, which makes the next start an archive recovery that
// ends at the configured target (docs 26.3.4); PostgreSQL removes it when it promotes.
Status WriteRecoverySignal(const std::string& data_dir, std::optional<FileOwner> owner);

// Makes a freshly cloned data directory ready to start as a new instance: removes the copied
// postmaster.pid and postmaster.opts (the parent's, which would otherwise make the new server
// refuse to start or be mistaken for the parent) and the parent's TLS key and certificate (no
// two branches share a key: the clone gets its own before it starts), and writes pgbranch.conf
// for `config`.
Status PrepareClonedDataDir(const std::string& data_dir, const InstanceConfig& config,
                            std::optional<FileOwner> owner);

// The pid and start time recorded in `data_dir`/postmaster.pid (lines 1 and 3; docs 19.2
// "postmaster.pid"), or nullopt if there is no such file.
struct PostmasterPid {
  int pid = 0;
  long long start_epoch_seconds = 0;
  int port = 0;
  std::string socket_dir;  // line 5: the first Unix-socket directory, empty if none
  std::string status;      // line 8: "starting", "ready", "stopping" (PostgreSQL 10+)
};
Result<std::optional<PostmasterPid>> ReadPostmasterPid(const std::string& data_dir);

}  // namespace pgb

#endif  // PGBRANCH_PG_CLUSTER_H_
