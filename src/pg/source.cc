#include "pg/source.h"

#include <fmt/format.h>
#include <libpq-fe.h>

#include <algorithm>
#include <cctype>
#include <memory>
#include <vector>

namespace pgb {
namespace {

struct ConnFinish {
  void operator()(PGconn* c) const { PQfinish(c); }
};
struct ResultClear {
  void operator()(PGresult* r) const { PQclear(r); }
};
struct OptionsFree {
  void operator()(PQconninfoOption* o) const { PQconninfoFree(o); }
};
using ConnPtr = std::unique_ptr<PGconn, ConnFinish>;
using ResultPtr = std::unique_ptr<PGresult, ResultClear>;

// libpq's and the server's messages end in newlines; keep the first line with text.
std::string FirstLine(const char* text) {
  std::string s = text ? text : "";
  size_t start = s.find_first_not_of(" \n");
  if (start == std::string::npos) return "";
  size_t end = s.find('\n', start);
  return s.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

// A one-row result of a replication command or SHOW; its error as the server said it.
Result<ResultPtr> Run(PGconn* conn, const std::string& command) {
  ResultPtr r(PQexec(conn, command.c_str()));
  if (!r || PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
    return Status::FailedPrecondition(
        fmt::format("{}: {}", command, FirstLine(PQerrorMessage(conn))));
  }
  return r;
}

}  // namespace

Result<SourceServer> ProbeSourceServer(const std::string& uri, const std::string& slot,
                                       const std::string& default_passfile, bool replication) {
  char* parse_error = nullptr;
  std::unique_ptr<PQconninfoOption, OptionsFree> options(
      PQconninfoParse(uri.c_str(), &parse_error));
  if (!options) {
    std::string why = FirstLine(parse_error);
    PQfreemem(parse_error);
    return Status::InvalidArgument(fmt::format("the source URI is not a connection string: {}",
                                               why.empty() ? "out of memory" : why));
  }
  SourceServer source;
  std::vector<std::string> keys, values;
  for (PQconninfoOption* o = options.get(); o->keyword; ++o) {
    if (!o->val || !*o->val) continue;
    std::string key = o->keyword;
    if (key == "replication") {
      return Status::InvalidArgument(
          "the source URI sets replication; pgbranch makes its own replication connection");
    }
    keys.push_back(key);
    values.push_back(o->val);
    if (key != "password" && key != "passfile") source.params[key] = o->val;
  }
  if (!default_passfile.empty() && std::find(keys.begin(), keys.end(), "passfile") == keys.end()) {
    keys.push_back("passfile");
    values.push_back(default_passfile);
  }
  if (replication) {
    keys.push_back("replication");
    values.push_back("true");
  }
  if (!source.params.count("application_name")) {
    keys.push_back("application_name");
    values.push_back("pgbranch");
  }
  if (!source.params.count("connect_timeout")) {
    keys.push_back("connect_timeout");
    values.push_back("10");
  }
  std::vector<const char*> kp, vp;
  for (size_t i = 0; i < keys.size(); ++i) {
    kp.push_back(keys[i].c_str());
    vp.push_back(values[i].c_str());
  }
  kp.push_back(nullptr);
  vp.push_back(nullptr);
  ConnPtr conn(PQconnectdbParams(kp.data(), vp.data(), /*expand_dbname=*/0));
  if (!conn) return Status::Internal("libpq could not allocate a connection");
  std::string where = DescribeSource(source.params);
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    std::string msg = FirstLine(PQerrorMessage(conn.get()));
    std::string text = fmt::format("cannot connect to the source {}: {}", where, msg);
    if (PQconnectionNeedsPassword(conn.get())) {
      return Status::FailedPrecondition(
          text +
          " (give the password in the URI or in a password file: PGPASSFILE or "
          "~/.pgpass)");
    }
    if (msg.find("authentication failed") != std::string::npos ||
        msg.find("pg_hba.conf") != std::string::npos ||
        msg.find("replication") != std::string::npos) {
      return Status::FailedPrecondition(std::move(text));
    }
    return Status::Unavailable(std::move(text));
  }
  source.user = PQuser(conn.get());
  source.password = PQpass(conn.get()) ? PQpass(conn.get()) : "";
  source.version_num = PQserverVersion(conn.get());
  source.major =
      source.version_num >= 100000 ? source.version_num / 10000 : source.version_num / 100;
  if (source.major < 10) {
    return Status::FailedPrecondition(
        fmt::format("the source {} runs PostgreSQL {}; pgbranch copies from 10 or newer", where,
                    source.version_num));
  }
  if (replication) {
    PGB_ASSIGN_OR_RETURN(ResultPtr ident, Run(conn.get(), "IDENTIFY_SYSTEM"));
    if (PQntuples(ident.get()) != 1) return Status::Internal("IDENTIFY_SYSTEM returned no row");
    source.system_identifier = PQgetvalue(ident.get(), 0, 0);
  }
  PGB_ASSIGN_OR_RETURN(ResultPtr seg, Run(conn.get(), "SHOW wal_segment_size"));
  if (PQntuples(seg.get()) != 1) return Status::Internal("SHOW wal_segment_size returned no row");
  PGB_ASSIGN_OR_RETURN(source.wal_segment_size, ParseSizeSetting(PQgetvalue(seg.get(), 0, 0)));
  for (const char* name :
       {"max_connections", "max_prepared_transactions", "max_locks_per_transaction",
        "max_wal_senders", "max_worker_processes"}) {
    PGB_ASSIGN_OR_RETURN(ResultPtr r, Run(conn.get(), fmt::format("SHOW {}", name)));
    if (PQntuples(r.get()) == 1) source.settings[name] = PQgetvalue(r.get(), 0, 0);
  }
  if (!slot.empty() && source.major >= 15) {
    // One row with NULLs when there is no such slot (docs 55.4, READ_REPLICATION_SLOT).
    PGB_ASSIGN_OR_RETURN(ResultPtr r, Run(conn.get(), "READ_REPLICATION_SLOT " + slot));
    source.slot_exists = PQntuples(r.get()) == 1 && !PQgetisnull(r.get(), 0, 0);
  }
  return source;
}

std::string FormatConninfo(const std::map<std::string, std::string>& params,
                           const std::map<std::string, std::string>& extra) {
  std::string out;
  auto add = [&](const std::string& key, const std::string& value) {
    if (!out.empty()) out += ' ';
    out += key;
    out += "='";
    for (char c : value) {
      if (c == '\\' || c == '\'') out += '\\';
      out += c;
    }
    out += '\'';
  };
  for (const auto& [k, v] : params) {
    if (!extra.count(k)) add(k, v);
  }
  for (const auto& [k, v] : extra) add(k, v);
  return out;
}

std::string DescribeSource(const std::map<std::string, std::string>& params) {
  auto get = [&](const char* key, const char* fallback) {
    auto it = params.find(key);
    return it == params.end() ? std::string(fallback) : it->second;
  };
  std::string user = get("user", "");
  std::string host = get("host", get("hostaddr", "localhost").c_str());
  std::string port = get("port", "5432");
  std::string at = host.starts_with('/') ? fmt::format("{} port {}", host, port)
                                         : fmt::format("{}:{}", host, port);
  return user.empty() ? at : user + "@" + at;
}

std::string PassfileEntry(const std::string& password) {
  std::string out = "*:*:*:*:";
  for (char c : password) {
    if (c == ':' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\n";
}

Status ValidateSlotName(const std::string& name) {
  bool ok = !name.empty() && name.size() <= 63;
  for (char c : name) {
    if (!(std::islower(static_cast<unsigned char>(c)) ||
          std::isdigit(static_cast<unsigned char>(c)) || c == '_')) {
      ok = false;
    }
  }
  if (ok) return Status::OK();
  return Status::InvalidArgument(fmt::format(
      "replication slot name {:?}: use 1 to 63 lower-case letters, digits and underscores", name));
}

Result<uint64_t> ParseSizeSetting(const std::string& text) {
  size_t i = 0;
  uint64_t n = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    if (n > (uint64_t{1} << 50)) break;
    n = n * 10 + static_cast<uint64_t>(text[i] - '0');
    ++i;
  }
  std::string unit = text.substr(i);
  uint64_t scale = 0;
  if (unit.empty()) scale = 1;
  if (unit == "kB") scale = uint64_t{1} << 10;
  if (unit == "MB") scale = uint64_t{1} << 20;
  if (unit == "GB") scale = uint64_t{1} << 30;
  if (unit == "TB") scale = uint64_t{1} << 40;
  if (i == 0 || scale == 0 || n > (uint64_t{1} << 50)) {
    return Status::InvalidArgument(fmt::format("{:?} is not a size setting", text));
  }
  return n * scale;
}

Status CheckSourceMajor(const SourceServer& source, int project_major,
                        const std::string& project_pg_bin, bool logical) {
  if (logical) {
    // pg_dump reads servers of its own major version and older ones (docs: pg_dump Notes).
    if (source.major <= project_major) return Status::OK();
    return Status::FailedPrecondition(fmt::format(
        "the source {} runs PostgreSQL {}, newer than the project's {}; pg_dump {} cannot "
        "dump it (choose a newer PostgreSQL with --pg-bin)",
        DescribeSource(source.params), source.major, project_major, project_major));
  }
  // A data directory is read only by its own major version (docs 19.6, "Upgrading").
  if (source.major == project_major) return Status::OK();
  return Status::FailedPrecondition(fmt::format(
      "the source {} runs PostgreSQL {}, the project PostgreSQL {} ({}); a physical copy "
      "needs the same major version (choose it with --pg-bin, or load a dump with "
      "--from-dump)",
      DescribeSource(source.params), source.major, project_major, project_pg_bin));
}

}  // namespace pgb
