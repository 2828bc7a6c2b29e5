// Talking to a PostgreSQL server through libpq.
//
// pgbranch's own administrative connections (readiness, CHECKPOINT, setting passwords) go over
// the server's Unix-domain socket in pgbranch's private socket directory, where pg_hba.conf
// trusts local connections: that directory is mode 0700, reachable only by the server's OS user
// and root, which can read the data directory anyway. Users connect over TCP with scram-sha-256.
// Connection parameters are passed as keyword/value arrays (PQconnectdbParams), never as a
// concatenated string, so no value needs quoting.

#ifndef PGBRANCH_PG_CLIENT_H_
#define PGBRANCH_PG_CLIENT_H_

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

struct pg_conn;  // libpq's PGconn

namespace pgb {

struct ConnParams {
  std::string host;  // a socket directory (starts with '/') or a host name/address
  int port = 5432;
  std::string user = "postgres";
  std::string password;  // empty: none sent
  std::string dbname = "postgres";
  int connect_timeout_seconds = 10;
  std::string application_name = "pgbranch";
};

// One row of text values; a NULL is nullopt.
using Row = std::vector<std::optional<std::string>>;

// An open connection. Not thread-safe.
class Connection {
 public:
  // Connects. Unavailable if the server is not accepting connections (not up yet, shutting
  // down, starting up), FailedPrecondition on authentication failure, IOError otherwise; the
  // message includes libpq's own.
  static Result<std::unique_ptr<Connection>> Open(const ConnParams& params);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Runs `sql` with optional text parameters ($1, $2...). Without parameters `sql` may hold
  // several statements separated by ';' (simple query protocol); the rows returned are the
  // last statement's. With parameters it must be one statement (extended protocol). Returns the
  // rows (empty for commands). CommandFailed carrying the server's message and SQLSTATE on error.
  Result<std::vector<Row>> Query(const std::string& sql,
                                 const std::vector<std::string>& params = {});
  // Runs a statement and discards its rows.
  Status Exec(const std::string& sql, const std::vector<std::string>& params = {});
  // The single value of a one-row, one-column query (NotFound if no row, Internal if NULL).
  Result<std::string> QueryValue(const std::string& sql,
                                 const std::vector<std::string>& params = {});

  // A quoted identifier / literal for this connection's encoding (PQescapeIdentifier/Literal).
  Result<std::string> QuoteIdentifier(const std::string& name);
  Result<std::string> QuoteLiteral(const std::string& value);

  // The server_version_num, e.g. 150020.
  int ServerVersion() const;

 private:
  friend Status SetRolePassword(Connection& conn, const std::string& role,
                                const std::string& password);  // PQencryptPasswordConn
  explicit Connection(pg_conn* conn) : conn_(conn) {}
  pg_conn* conn_;
};

enum class PingResult {
  kReady,       // accepting connections
  kRejecting,   // up but refusing (starting up, shutting down, in crash recovery)
  kNoResponse,  // nothing listening (yet)
  kBadParams,   // the parameters can never work
};

// PQpingParams: whether a server answers, without authenticating.
PingResult Ping(const ConnParams& params);

// Polls `params` every `interval` until a connection succeeds and returns it. Before each poll
// calls `still_alive` (if set): OK → the server says it is ready, connect (without a ping
// first); Unavailable → it runs but is not ready yet (its postmaster.pid says "starting"), so
// skip this round, as a connection attempt would only add a FATAL "the database system is
// starting up" line to the server log; any other error (the server process died) → return it
// at once. Without `still_alive`, each round pings before it logs in. Unavailable after
// `timeout`, with the last error. FailedPrecondition at once if the server rejects our
// credentials.
Result<std::unique_ptr<Connection>> ConnectWhenReady(
    const ConnParams& params, std::chrono::milliseconds timeout, std::chrono::milliseconds interval,
    const std::function<Status()>& still_alive = nullptr);

// ConnectWhenReady, then `SELECT 1` on that connection; OK once it answered.
Status WaitUntilReady(const ConnParams& params, std::chrono::milliseconds timeout,
                      std::chrono::milliseconds interval,
                      const std::function<Status()>& still_alive = nullptr);

// Parses a connection URI ("postgresql://user:password@host:port/dbname", or a key=value
// string) with libpq's own parser (PQconninfoParse; PostgreSQL docs 34.1.1 "Connection
// Strings"). Unset parts keep ConnParams' defaults. InvalidArgument with libpq's message.
Result<ConnParams> ConnParamsFromUri(const std::string& uri);

// Runs CHECKPOINT (requires a superuser or pg_checkpoint role).
Status Checkpoint(Connection& conn);

// Sets `role`'s password to `password`, hashed client-side with scram-sha-256
// (PQencryptPasswordConn), so the plain password is never sent to or logged by the server.
Status SetRolePassword(Connection& conn, const std::string& role, const std::string& password);

// Removes from this process's environment every variable libpq reads as a connection default
// (the `envvar` of each PQconndefaults() entry: PGHOST, PGOPTIONS, PGSSLMODE, PGSERVICE, ...;
// docs 34.15 "Environment Variables") and the files it may read (PGSERVICEFILE, PGSYSCONFDIR),
// so pgbranch's own connections are made from the parameters it passes and nothing else.
// Returns the removed name/value pairs, for programs run on the caller's behalf
// (`pgbranch psql`). Not thread-safe (setenv/unsetenv): call before any thread starts.
std::vector<std::pair<std::string, std::string>> ClearLibpqEnvironment();

}  // namespace pgb

#endif  // PGBRANCH_PG_CLIENT_H_
