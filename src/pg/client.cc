#include "pg/client.h"

#include <fmt/format.h>
#include <libpq-fe.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <string_view>
#include <thread>

namespace pgb {
namespace {

// Keyword/value arrays for PQconnectdbParams/PQpingParams. The strings live in keys_ and
// values_, so the char* arrays stay valid as long as this object does.
class ConnKeywords {
 public:
  explicit ConnKeywords(const ConnParams& p) {
    Add("host", p.host);
    Add("port", std::to_string(p.port));
    Add("user", p.user);
    if (!p.password.empty()) Add("password", p.password);
    Add("dbname", p.dbname);
    Add("connect_timeout", std::to_string(p.connect_timeout_seconds));
    Add("application_name", p.application_name);
    // Over a Unix socket or loopback there is nothing to encrypt against, and sslmode=prefer
    // (and gssencmode=prefer, with a Kerberos cache) would cost a round trip per connection,
    // which readiness polling pays many times. Remote hosts keep libpq's defaults.
    if (IsLocal(p.host)) {
      Add("sslmode", "disable");
      Add("gssencmode", "disable");
    }
    for (size_t i = 0; i < keys_.size(); ++i) {
      key_ptrs_.push_back(keys_[i].c_str());
      value_ptrs_.push_back(values_[i].c_str());
    }
    key_ptrs_.push_back(nullptr);
    value_ptrs_.push_back(nullptr);
  }
  const char* const* keywords() const { return key_ptrs_.data(); }
  const char* const* values() const { return value_ptrs_.data(); }

 private:
  static bool IsLocal(const std::string& host) {
    return host.empty() || host[0] == '/' || host[0] == '@' || host == "localhost" ||
           host == "::1" || host.starts_with("127.");
  }
  void Add(std::string key, std::string value) {
    keys_.push_back(std::move(key));
    values_.push_back(std::move(value));
  }
  std::vector<std::string> keys_, values_;
  std::vector<const char*> key_ptrs_, value_ptrs_;
};

// libpq messages end in a newline (sometimes several lines); keep them on one line.
std::string OneLine(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '\n') {
      if (!out.empty() && out.back() != ' ') out += ' ';
    } else {
      out += c;
    }
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

std::string Where(const ConnParams& p) {
  return p.host.starts_with('/') ? fmt::format("socket {}/.s.PGSQL.{}", p.host, p.port)
                                 : fmt::format("{}:{}", p.host, p.port);
}

// Before a connection is established libpq exposes no SQLSTATE, so the failure is classified
// from PQconnectionNeedsPassword and the message text. Our servers are initdb'd with
// lc_messages=C.UTF-8, so their messages are in English.
Status ClassifyConnectError(PGconn* conn, const ConnParams& p) {
  std::string msg = OneLine(PQerrorMessage(conn));
  std::string text = fmt::format("connect to {} as {}: {}", Where(p), p.user, msg);
  auto has = [&msg](std::string_view s) { return msg.find(s) != std::string::npos; };
  // "password authentication failed for user", "no pg_hba.conf entry for host", or the server
  // asked for a password and we had none.
  if (PQconnectionNeedsPassword(conn) || has("authentication failed") ||
      has("no pg_hba.conf entry")) {
    return Status::FailedPrecondition(std::move(text));
  }
  if (has("the database system is starting up") || has("the database system is shutting down") ||
      has("the database system is in recovery mode") || has("not yet accepting connections") ||
      has("too many clients") || has("Connection refused") || has("No such file or directory") ||
      has("timeout expired")) {
    return Status::Unavailable(std::move(text));
  }
  return Status::IOError(std::move(text));
}

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using ResultPtr = std::unique_ptr<PGresult, ResultDeleter>;

struct PqFree {
  void operator()(char* p) const { PQfreemem(p); }
};
using PqString = std::unique_ptr<char, PqFree>;

}  // namespace

Result<std::unique_ptr<Connection>> Connection::Open(const ConnParams& params) {
  ConnKeywords kw(params);
  PGconn* conn = PQconnectdbParams(kw.keywords(), kw.values(), /*expand_dbname=*/0);
  if (conn == nullptr) return Status::Internal("libpq could not allocate a connection");
  if (PQstatus(conn) != CONNECTION_OK) {
    Status s = ClassifyConnectError(conn, params);
    PQfinish(conn);
    return s;
  }
  return std::unique_ptr<Connection>(new Connection(conn));
}

Connection::~Connection() { PQfinish(conn_); }

Result<std::vector<Row>> Connection::Query(const std::string& sql,
                                           const std::vector<std::string>& params) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) values.push_back(p.c_str());
  // Without parameters, the simple query protocol (PQexec), which accepts several statements;
  // with them, the extended protocol, which takes exactly one.
  ResultPtr res(params.empty() ? PQexec(conn_, sql.c_str())
                               : PQexecParams(conn_, sql.c_str(), static_cast<int>(values.size()),
                                              /*paramTypes=*/nullptr, values.data(),
                                              /*paramLengths=*/nullptr, /*paramFormats=*/nullptr,
                                              /*resultFormat=*/0));
  ExecStatusType st = res ? PQresultStatus(res.get()) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK || st == PGRES_EMPTY_QUERY) return std::vector<Row>{};
  if (st == PGRES_TUPLES_OK) {
    std::vector<Row> rows;
    int nrows = PQntuples(res.get()), ncols = PQnfields(res.get());
    rows.reserve(nrows);
    for (int r = 0; r < nrows; ++r) {
      Row row;
      row.reserve(ncols);
      for (int c = 0; c < ncols; ++c) {
        if (PQgetisnull(res.get(), r, c)) {
          row.emplace_back(std::nullopt);
        } else {
          row.emplace_back(std::string(PQgetvalue(res.get(), r, c), PQgetlength(res.get(), r, c)));
        }
      }
      rows.push_back(std::move(row));
    }
    return rows;
  }
  const char* sqlstate = res ? PQresultErrorField(res.get(), PG_DIAG_SQLSTATE) : nullptr;
  const char* primary = res ? PQresultErrorField(res.get(), PG_DIAG_MESSAGE_PRIMARY) : nullptr;
  if (sqlstate != nullptr && primary != nullptr) {
    return Status::CommandFailed(fmt::format("{} (SQLSTATE {})", primary, sqlstate));
  }
  // No server error: the connection broke or libpq failed locally.
  return Status::IOError(fmt::format("query failed: {}", OneLine(PQerrorMessage(conn_))));
}

Status Connection::Exec(const std::string& sql, const std::vector<std::string>& params) {
  return Query(sql, params).status();
}

Result<std::string> Connection::QueryValue(const std::string& sql,
                                           const std::vector<std::string>& params) {
  PGB_ASSIGN_OR_RETURN(std::vector<Row> rows, Query(sql, params));
  if (rows.empty()) return Status::NotFound(fmt::format("no row from: {}", sql));
  if (rows[0].empty() || !rows[0][0]) return Status::Internal(fmt::format("NULL from: {}", sql));
  return std::move(*rows[0][0]);
}

Result<std::string> Connection::QuoteIdentifier(const std::string& name) {
  PqString quoted(PQescapeIdentifier(conn_, name.data(), name.size()));
  if (!quoted) {
    return Status::InvalidArgument(
        fmt::format("cannot quote identifier: {}", OneLine(PQerrorMessage(conn_))));
  }
  return std::string(quoted.get());
}

Result<std::string> Connection::QuoteLiteral(const std::string& value) {
  PqString quoted(PQescapeLiteral(conn_, value.data(), value.size()));
  if (!quoted) {
    return Status::InvalidArgument(
        fmt::format("cannot quote literal: {}", OneLine(PQerrorMessage(conn_))));
  }
  return std::string(quoted.get());
}

int Connection::ServerVersion() const { return PQserverVersion(conn_); }

PingResult Ping(const ConnParams& params) {
  ConnKeywords kw(params);
  switch (PQpingParams(kw.keywords(), kw.values(), /*expand_dbname=*/0)) {
    case PQPING_OK:
      return PingResult::kReady;
    case PQPING_REJECT:
      return PingResult::kRejecting;
    case PQPING_NO_RESPONSE:
      return PingResult::kNoResponse;
    case PQPING_NO_ATTEMPT:
      break;
  }
  return PingResult::kBadParams;
}

namespace {

// One readiness poll: a connection once the server accepts one, else why not. Without a
// postmaster that already says "ready" (`known_ready`), pings first: the ping is cheap while
// nothing listens (ECONNREFUSED/ENOENT at once) and needs no credentials. With one, the ping
// would only cost an extra backend start.
Result<std::unique_ptr<Connection>> TryConnect(const ConnParams& params, bool known_ready) {
  if (!known_ready) {
    switch (Ping(params)) {
      case PingResult::kReady:
        break;
      case PingResult::kRejecting:
        return Status::Unavailable(
            fmt::format("{} rejects connections (starting up or shutting down)", Where(params)));
      case PingResult::kNoResponse:
        return Status::Unavailable(fmt::format("no server answers on {}", Where(params)));
      case PingResult::kBadParams:
        return Status::InvalidArgument(
            fmt::format("connection parameters for {} are invalid", Where(params)));
    }
  }
  return Connection::Open(params);
}

}  // namespace

Result<std::unique_ptr<Connection>> ConnectWhenReady(const ConnParams& params,
                                                     std::chrono::milliseconds timeout,
                                                     std::chrono::milliseconds interval,
                                                     const std::function<Status()>& still_alive) {
  using SteadyClock = std::chrono::steady_clock;
  const auto deadline = SteadyClock::now() + timeout;
  for (;;) {
    Status last = still_alive ? still_alive() : Status::OK();
    if (last.ok()) {
      auto conn = TryConnect(params, /*known_ready=*/static_cast<bool>(still_alive));
      if (conn.ok()) {
        spdlog::debug("port {}: connected", params.port);
        return conn;
      }
      last = conn.status();
      // Waiting does not fix bad parameters, a wrong password or a missing pg_hba.conf entry.
      if (last.Is(StatusCode::kInvalidArgument) || last.Is(StatusCode::kFailedPrecondition)) {
        return last;
      }
    } else if (!last.Is(StatusCode::kUnavailable)) {
      return last;  // the server died
    }
    auto now = SteadyClock::now();
    if (now >= deadline) {
      return Status::Unavailable(
          fmt::format("not ready after {} ms: {}", timeout.count(), last.message()));
    }
    std::this_thread::sleep_for(std::min<SteadyClock::duration>(interval, deadline - now));
  }
}

Status WaitUntilReady(const ConnParams& params, std::chrono::milliseconds timeout,
                      std::chrono::milliseconds interval,
                      const std::function<Status()>& still_alive) {
  PGB_ASSIGN_OR_RETURN(std::unique_ptr<Connection> conn,
                       ConnectWhenReady(params, timeout, interval, still_alive));
  return conn->Exec("SELECT 1");
}

Result<ConnParams> ConnParamsFromUri(const std::string& uri) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(uri.c_str(), &error);
  if (options == nullptr) {
    std::string message = error ? error : "out of memory";
    PQfreemem(error);
    while (!message.empty() && message.back() == '\n') message.pop_back();
    return Status::InvalidArgument(fmt::format("connection URI: {}", message));
  }
  ConnParams params;
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (o->val == nullptr) continue;
    std::string_view key = o->keyword;
    if (key == "host")
      params.host = o->val;
    else if (key == "port")
      params.port = std::atoi(o->val);
    else if (key == "user")
      params.user = o->val;
    else if (key == "password")
      params.password = o->val;
    else if (key == "dbname")
      params.dbname = o->val;
  }
  PQconninfoFree(options);
  return params;
}

Status Checkpoint(Connection& conn) { return conn.Exec("CHECKPOINT"); }

Status SetRolePassword(Connection& conn, const std::string& role, const std::string& password) {
  // Hash on our side: the statement carries only the SCRAM verifier, so neither the wire nor
  // log_statement ever sees the password (what psql's \password does).
  PqString verifier(
      PQencryptPasswordConn(conn.conn_, password.c_str(), role.c_str(), "scram-sha-256"));
  if (!verifier) {
    return Status::Internal(
        fmt::format("hash password for role {}: {}", role, OneLine(PQerrorMessage(conn.conn_))));
  }
  PGB_ASSIGN_OR_RETURN(std::string ident, conn.QuoteIdentifier(role));
  PGB_ASSIGN_OR_RETURN(std::string literal, conn.QuoteLiteral(verifier.get()));
  spdlog::debug("role {}: password hashed", role);
  // ALTER ROLE is a utility statement and takes no $n parameters, hence the quoting.
  return conn.Exec(fmt::format("ALTER ROLE {} PASSWORD {}", ident, literal));
}

std::vector<std::pair<std::string, std::string>> ClearLibpqEnvironment() {
  // The list PQconndefaults gives, plus the ones that matter most should it fail.
  std::vector<std::string> names = {"PGSERVICEFILE", "PGSYSCONFDIR", "PGSERVICE", "PGHOST",
                                    "PGHOSTADDR",    "PGPORT",       "PGUSER",    "PGPASSWORD",
                                    "PGPASSFILE",    "PGDATABASE",   "PGOPTIONS", "PGSSLMODE"};
  if (PQconninfoOption* defaults = PQconndefaults()) {
    for (PQconninfoOption* o = defaults; o->keyword != nullptr; ++o) {
      if (o->envvar != nullptr) names.emplace_back(o->envvar);
    }
    PQconninfoFree(defaults);
  }
  std::vector<std::pair<std::string, std::string>> removed;
  for (const auto& name : names) {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) continue;
    removed.emplace_back(name, value);
    ::unsetenv(name.c_str());
  }
  return removed;
}

}  // namespace pgb
