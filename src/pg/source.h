// A running PostgreSQL server that data is copied from (`project create P --from-server URI`):
// its connection without the password, the facts the copy must honour, and the text forms the
// copy's tools read.
//
// The password never goes on a command line: the caller writes PassfileEntry() into a private
// file (mode 0600) and passes `passfile=` in the connection string (libpq docs 34.16 "The
// Password File"; the `passfile` connection parameter, 34.1.2).

#ifndef PGBRANCH_PG_SOURCE_H_
#define PGBRANCH_PG_SOURCE_H_

#include <cstdint>
#include <map>
#include <string>

#include "common/status.h"

namespace pgb {

struct SourceServer {
  // The connection parameters that were set, as libpq parsed them (PQconninfoParse), without
  // `password`, `passfile` and `replication`. Keys are libpq keywords ("host", "port", "user").
  std::map<std::string, std::string> params;
  // The password libpq used: from the URI, or found in the password file (PQpass); empty when
  // the server asked for none.
  std::string password;
  std::string user;               // the role connected as (PQuser)
  int version_num = 0;            // server_version_num, 150020
  int major = 0;                  // 15
  uint64_t wal_segment_size = 0;  // bytes (SHOW wal_segment_size)
  std::string system_identifier;  // IDENTIFY_SYSTEM's systemid
  // Whether the server's READ_REPLICATION_SLOT found `slot` (PostgreSQL 15+; false before).
  bool slot_exists = false;
  // The settings a standby must match or exceed (docs 27.4.4), as SHOW prints them:
  // max_connections, max_prepared_transactions, max_locks_per_transaction, max_wal_senders,
  // max_worker_processes.
  std::map<std::string, std::string> settings;
};

// Connects to `uri` (a connection URI or keyword/value string, docs 34.1.1) as a physical
// replication connection (`replication=true`, what pg_basebackup and a standby use; docs 55.4
// "Streaming Replication Protocol") and reads the server's version (PQserverVersion),
// `SHOW wal_segment_size` and IDENTIFY_SYSTEM, and — when `slot` is not empty and the server is
// 15 or newer — READ_REPLICATION_SLOT `slot`. InvalidArgument for a URI libpq cannot parse or
// one that sets `replication`; FailedPrecondition when the server refuses the login (a wrong
// password, no replication privilege, no pg_hba.conf line); Unavailable when nothing answers.
// Messages carry libpq's or the server's own text, never the password. Blocking; thread-safe
// (no shared state).
// `default_passfile`, when not empty, is the password file used unless `uri` names its own
// (the caller's PGPASSFILE: pgbranch clears PG* variables for its own connections).
// With `replication` false, an ordinary connection instead (what pg_dump needs), and no
// IDENTIFY_SYSTEM.
Result<SourceServer> ProbeSourceServer(const std::string& uri, const std::string& slot = "",
                                       const std::string& default_passfile = "",
                                       bool replication = true);

// Whether a server of `source.major` can fill a project running PostgreSQL `project_major`
// (its binaries in `project_pg_bin`, named in the error): a physical copy needs the same
// major, a `logical` dump the same or an older one. FailedPrecondition naming both versions
// and what to do otherwise. Pure.
Status CheckSourceMajor(const SourceServer& source, int project_major,
                        const std::string& project_pg_bin, bool logical);

// `params` as a libpq keyword/value connection string, each value single-quoted with `\` and
// `'` backslash-escaped (docs 34.1.1.1), keys in order; plus `extra` after them. For
// pg_basebackup's --dbname and a standby's primary_conninfo.
std::string FormatConninfo(const std::map<std::string, std::string>& params,
                           const std::map<std::string, std::string>& extra = {});

// "host:port" (or the socket directory) and user of `params`, for messages and `status`:
// "replicator@prod.example:5432".
std::string DescribeSource(const std::map<std::string, std::string>& params);

// One password-file line matching every host, port, database and user, with `:` and `\` in the
// password escaped as the file format requires: "*:*:*:*:<password>\n".
std::string PassfileEntry(const std::string& password);

// A replication slot name as PostgreSQL accepts one (ReplicationSlotValidateName): 1 to 63
// lower-case letters, digits and underscores. InvalidArgument naming the rule otherwise.
Status ValidateSlotName(const std::string& name);

// A size setting as SHOW prints it ("16MB", "1GB", "8kB", "512") in bytes; InvalidArgument for
// anything else (docs 20.1.1 "Parameter Names and Values": units kB, MB, GB, TB).
Result<uint64_t> ParseSizeSetting(const std::string& text);

}  // namespace pgb

#endif  // PGBRANCH_PG_SOURCE_H_
