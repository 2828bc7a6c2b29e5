#include "pg/cluster.h"

#include <fmt/format.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "pg/tls.h"

namespace pgb {
namespace {

// The comment line of pgbranch.conf that carries InstanceConfig::metadata.
constexpr const char* kMetadataPrefix = "# pgbranch-branch: ";

std::string Trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

template <typename T>
std::optional<T> ParseNumber(std::string_view s) {
  T value{};
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return value;
}

bool IsExecutable(const std::string& path) { return ::access(path.c_str(), X_OK) == 0; }

// A directory holding a usable server: both the postgres and the initdb binary.
bool HasServerBinaries(const std::string& dir) {
  return IsExecutable(JoinPath(dir, "postgres")) && IsExecutable(JoinPath(dir, "initdb"));
}

Result<PgBinaries> ReadVersion(ProcessRunner& runner, const std::string& bin_dir) {
  Command cmd;
  cmd.argv = {JoinPath(bin_dir, "postgres"), "--version"};
  cmd.clean_env = true;
  cmd.timeout = std::chrono::seconds(30);
  PGB_ASSIGN_OR_RETURN(CommandResult r, RunChecked(runner, cmd));
  return ParsePostgresVersion(bin_dir, r.out);
}

// Debian/Ubuntu install each major version side by side: /usr/lib/postgresql/<N>/bin.
// Returns the bin directories holding a server, highest N first.
std::vector<std::string> DebianBinDirs() {
  std::vector<std::pair<int, std::string>> found;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/usr/lib/postgresql", ec)) {
    std::optional<int> n = ParseNumber<int>(entry.path().filename().string());
    std::string bin = JoinPath(entry.path().string(), "bin");
    if (n && HasServerBinaries(bin)) found.emplace_back(*n, bin);
  }
  std::sort(found.rbegin(), found.rend());
  std::vector<std::string> dirs;
  for (auto& [n, dir] : found) dirs.push_back(std::move(dir));
  return dirs;
}

std::optional<FileOwner> OwnerOf(const std::optional<OsUser>& user) {
  if (!user) return std::nullopt;
  return FileOwner{user->uid, user->gid};
}

// A value for postgresql.conf: single-quoted, with ' doubled and \ escaped (the configuration
// file lexer reads backslash escapes inside quoted strings). Line breaks cannot be expressed.
Result<std::string> QuoteConfValue(std::string_view value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\n' || c == '\r' || c == '\0') {
      return Status::InvalidArgument(
          fmt::format("configuration value {:?} contains a line break or NUL", value));
    }
    if (c == '\'')
      out += "''";
    else if (c == '\\')
      out += "\\\\";
    else
      out += c;
  }
  out += '\'';
  return out;
}

// A directory that ends up inside a command PostgreSQL runs through /bin/sh, between double
// quotes: refuse every character that could end the quoting or be expanded there, and '%',
// which PostgreSQL itself substitutes.
Status CheckCommandPath(const std::string& path) {
  if (path.empty() || path.front() != '/') {
    return Status::InvalidArgument(fmt::format("{:?} is not an absolute path", path));
  }
  if (path.find_first_of("\"'`$\\%\n\r") != std::string::npos) {
    return Status::InvalidArgument(fmt::format(
        "path {:?} has a quote, '$', '`', '\\' or '%'; choose a PGBRANCH_HOME without them", path));
  }
  return Status::OK();
}

constexpr std::string_view kIncludeComment =
    "\n"
    "# Added by pgbranch. Per-branch settings (port, listen_addresses, socket directory,\n"
    "# cluster_name) live in pgbranch.conf, rewritten for every clone; the include is last so\n"
    "# it wins over this file. ALTER SYSTEM (postgresql.auto.conf) still overrides both.\n"
    "# pgbranch.conf must exist before the server starts (written by pgbranch before every\n"
    "# start of a new branch).\n"
    "include = 'pgbranch.conf'\n";

constexpr std::string_view kWrittenConfHeader =
    "# Written by pgbranch: the source's postgresql.conf was not in its data directory.\n";

constexpr std::string_view kPgHba =
    "# pg_hba.conf written by pgbranch.\n"
    "#\n"
    "# Local (Unix-socket) connections are trusted: the server listens only in pgbranch's\n"
    "# private socket directory (mode 0700), which only the server's OS user and root can\n"
    "# enter, and both can read the data directory anyway. pgbranch's own administrative\n"
    "# connections (readiness, CHECKPOINT, passwords) use it.\n"
    "# Every TCP connection, replication included, authenticates with scram-sha-256.\n"
    "#\n"
    "# TYPE  DATABASE     USER  ADDRESS  METHOD\n"
    "local   all          all            trust\n"
    "local   replication  all            trust\n"
    "host    all          all   all      scram-sha-256\n"
    "host    replication  all   all      scram-sha-256\n";

}  // namespace

Result<PgBinaries> ParsePostgresVersion(const std::string& bin_dir, const std::string& output) {
  constexpr std::string_view kMarker = "(PostgreSQL) ";
  size_t pos = output.find(kMarker);
  if (pos == std::string::npos) {
    return Status::Internal(
        fmt::format("unexpected `postgres --version` output: {}", Trim(output)));
  }
  pos += kMarker.size();
  size_t end = output.find_first_of(" \n", pos);
  std::string version = output.substr(pos, end == std::string::npos ? end : end - pos);
  size_t digits = 0;
  while (digits < version.size() && std::isdigit(static_cast<unsigned char>(version[digits]))) {
    ++digits;
  }
  std::optional<int> major = ParseNumber<int>(std::string_view(version).substr(0, digits));
  if (!major) {
    return Status::Internal(fmt::format("unexpected PostgreSQL version {:?}", version));
  }
  return PgBinaries{bin_dir, *major, version};
}

Result<PgBinaries> FindPgBinaries(ProcessRunner& runner, const std::string& override_dir) {
  constexpr std::string_view kHint =
      "install the PostgreSQL server (e.g. `apt install postgresql-15`) or pass --pg-bin DIR";
  if (!override_dir.empty()) {
    if (!HasServerBinaries(override_dir)) {
      return Status::NotFound(fmt::format(
          "no executable postgres and initdb in {}; pass the bin directory of a PostgreSQL "
          "server installation (e.g. /usr/lib/postgresql/15/bin)",
          override_dir));
    }
    return ReadVersion(runner, override_dir);
  }

  std::vector<std::string> looked;
  Command pg_config;
  pg_config.argv = {"pg_config", "--bindir"};
  pg_config.timeout = std::chrono::seconds(30);
  Result<CommandResult> r = runner.Run(pg_config);
  if (r.ok() && r->Succeeded()) {
    // On Debian, /usr/bin/pg_config belongs to libpq-dev and may name a bin directory whose
    // server package is not installed; so verify.
    std::string dir = Trim(r->out);
    if (!dir.empty() && HasServerBinaries(dir)) return ReadVersion(runner, dir);
    looked.push_back(fmt::format("{} (from pg_config --bindir)", dir));
  } else {
    looked.push_back("pg_config --bindir (not found or failed)");
  }
  std::vector<std::string> debian = DebianBinDirs();
  if (!debian.empty()) return ReadVersion(runner, debian.front());
  looked.push_back("/usr/lib/postgresql/*/bin");
  std::string where;
  for (const auto& l : looked) where += (where.empty() ? "" : ", ") + l;
  return Status::NotFound(
      fmt::format("no PostgreSQL server binaries found (looked in {}); {}", where, kHint));
}

Result<int> DataDirMajorVersion(const std::string& data_dir) {
  Result<std::string> text = ReadFile(JoinPath(data_dir, "PG_VERSION"));
  if (!text.ok()) {
    if (text.status().Is(StatusCode::kNotFound)) {
      return Status::NotFound(
          fmt::format("{} is not a PostgreSQL data directory (no PG_VERSION)", data_dir));
    }
    return text.status();
  }
  std::string v = Trim(*text);
  std::optional<int> major = ParseNumber<int>(v);
  if (!major) {
    return Status::FailedPrecondition(
        fmt::format("{}/PG_VERSION holds {:?}, not a major version", data_dir, v));
  }
  return *major;
}

std::vector<std::string> InitdbArgs(const std::string& data_dir, const std::string& superuser,
                                    int pg_major) {
  std::vector<std::string> args = {"-D",
                                   data_dir,
                                   "-U",
                                   superuser,
                                   "-E",
                                   "UTF8",
                                   "--locale=C.UTF-8",
                                   "--data-checksums",
                                   "--auth-local=trust",
                                   "--auth-host=scram-sha-256"};
  // Only the "Success. You can now start the database server" text; initdb has the option
  // since PostgreSQL 14.
  if (pg_major >= 14) args.push_back("--no-instructions");
  return args;
}

Status FinishInitDataDir(const std::string& data_dir, std::optional<FileOwner> owner) {
  const std::string conf_path = JoinPath(data_dir, "postgresql.conf");
  PGB_ASSIGN_OR_RETURN(std::string conf, ReadFile(conf_path));
  if (!conf.empty() && conf.back() != '\n') conf += '\n';
  conf += kIncludeComment;
  PGB_RETURN_IF_ERROR(WriteFileAtomic(conf_path, conf, 0600, owner));
  return WriteFileAtomic(JoinPath(data_dir, "pg_hba.conf"), std::string(kPgHba), 0600, owner);
}

Status FinishCopiedDataDir(const std::string& data_dir,
                           const std::map<std::string, std::string>& settings,
                           std::optional<FileOwner> owner) {
  const std::string conf_path = JoinPath(data_dir, "postgresql.conf");
  std::string conf;
  if (PathExists(conf_path)) {
    PGB_ASSIGN_OR_RETURN(conf, ReadFile(conf_path));
    // Already ours (a copy of a pgbranch branch): the include is there.
    if (conf.find(kIncludeComment) != std::string::npos) conf.clear();
  } else {
    // The source kept its configuration outside the data directory (Debian's /etc/postgresql):
    // the settings a standby must match or exceed (docs 27.4.4 "Hot Standby Parameter
    // Settings"), as the source runs them.
    conf = std::string(kWrittenConfHeader);
    for (const auto& [name, value] : settings) {
      PGB_ASSIGN_OR_RETURN(std::string quoted, QuoteConfValue(value));
      conf += fmt::format("{} = {}\n", name, quoted);
    }
  }
  if (!conf.empty()) {
    if (conf.back() != '\n') conf += '\n';
    conf += kIncludeComment;
    PGB_RETURN_IF_ERROR(WriteFileAtomic(conf_path, conf, 0600, owner));
  }
  // The source's client authentication rules stay beside ours, for reference.
  const std::string hba = JoinPath(data_dir, "pg_hba.conf");
  if (PathExists(hba)) {
    PGB_ASSIGN_OR_RETURN(std::string theirs, ReadFile(hba));
    if (theirs != kPgHba) {
      PGB_RETURN_IF_ERROR(WriteFileAtomic(hba + ".source", theirs, 0600, owner));
    }
  }
  return WriteFileAtomic(hba, std::string(kPgHba), 0600, owner);
}

Status RestoreAdoptedDataDir(const std::string& data_dir) {
  // pgbranch.conf goes last but for the certificates: while it exists, a certificate without a
  // *.source beside it is pgbranch's (the directory had none); after, any left is theirs.
  const std::string marker = JoinPath(data_dir, "pgbranch.conf");
  const std::string certs[] = {JoinPath(data_dir, kServerCertFile),
                               JoinPath(data_dir, kServerKeyFile)};
  if (PathExists(marker)) {
    for (const std::string& path : certs) {
      if (!PathExists(path + ".source")) PGB_RETURN_IF_ERROR(RemoveFile(path));
    }
  }
  const std::string conf_path = JoinPath(data_dir, "postgresql.conf");
  if (PathExists(conf_path)) {
    PGB_ASSIGN_OR_RETURN(std::string conf, ReadFile(conf_path));
    if (conf.rfind(kWrittenConfHeader, 0) == 0) {
      PGB_RETURN_IF_ERROR(RemoveFile(conf_path));
    } else if (size_t at = conf.rfind(kIncludeComment); at != std::string::npos) {
      conf.erase(at, kIncludeComment.size());
      PGB_RETURN_IF_ERROR(WriteFileAtomic(conf_path, conf, 0600));
    }
  }
  // Each rename puts theirs over ours in one step.
  auto put_back = [](const std::string& path) -> Status {
    if (PathExists(path + ".source") && ::rename((path + ".source").c_str(), path.c_str()) != 0) {
      return PosixError(fmt::format("rename {}.source", path), errno);
    }
    return Status::OK();
  };
  PGB_RETURN_IF_ERROR(put_back(JoinPath(data_dir, "pg_hba.conf")));
  PGB_RETURN_IF_ERROR(RemoveFile(marker));
  for (const std::string& path : certs) PGB_RETURN_IF_ERROR(put_back(path));
  return Status::OK();
}

Status SetAsideServerCertificate(const std::string& data_dir) {
  for (const char* name : {kServerCertFile, kServerKeyFile}) {
    std::string path = JoinPath(data_dir, name);
    if (PathExists(path) && ::rename(path.c_str(), (path + ".source").c_str()) != 0) {
      return PosixError(fmt::format("rename {}", path), errno);
    }
  }
  return Status::OK();
}

Status InitDataDir(ProcessRunner& runner, const PgBinaries& bins, const std::string& data_dir,
                   const std::string& superuser, const std::optional<OsUser>& os_user) {
  Command cmd;
  cmd.argv = {JoinPath(bins.bin_dir, "initdb")};
  for (auto& arg : InitdbArgs(data_dir, superuser, bins.major)) cmd.argv.push_back(std::move(arg));
  cmd.clean_env = true;
  cmd.user = os_user;
  // initdb resolves its own path from the working directory, which the server's account may
  // not be allowed to enter ("could not identify current directory"). (A std::string rather
  // than a literal dodges a GCC 12 -Wrestrict false positive.)
  cmd.cwd = std::string("/");
  cmd.timeout = std::chrono::minutes(5);
  PGB_RETURN_IF_ERROR(RunChecked(runner, cmd).status());
  return FinishInitDataDir(data_dir, OwnerOf(os_user));
}

Status WriteInstanceConfig(const std::string& data_dir, const InstanceConfig& config,
                           std::optional<FileOwner> owner) {
  if (config.port < 1 || config.port > 65535) {
    return Status::InvalidArgument(fmt::format("port {} is out of range 1-65535", config.port));
  }
  if (!config.socket_dir.empty()) {
    // unix_socket_directories is a list (comma-separated, elements trimmed and optionally
    // double-quoted), and libpq splits its host parameter at commas without any escape.
    const std::string& dir = config.socket_dir;
    if (dir.find_first_of(",\"") != std::string::npos ||
        std::isspace(static_cast<unsigned char>(dir.front())) ||
        std::isspace(static_cast<unsigned char>(dir.back()))) {
      return Status::InvalidArgument(fmt::format(
          "socket directory {:?} has a comma, a double quote or surrounding blanks", dir));
    }
    // The kernel limits a socket path to sizeof(sun_path) - 1 bytes; PostgreSQL would only
    // say so in its log at start.
    std::string socket = fmt::format("{}/.s.PGSQL.{}", config.socket_dir, config.port);
    if (socket.size() >= sizeof(sockaddr_un{}.sun_path)) {
      return Status::InvalidArgument(
          fmt::format("socket path {} is longer than {} bytes; choose a shorter socket directory",
                      socket, sizeof(sockaddr_un{}.sun_path) - 1));
    }
  }
  PGB_ASSIGN_OR_RETURN(std::string listen, QuoteConfValue(config.listen_addresses));
  PGB_ASSIGN_OR_RETURN(std::string sockets, QuoteConfValue(config.socket_dir));
  PGB_ASSIGN_OR_RETURN(std::string name, QuoteConfValue(config.cluster_name));
  if (config.metadata.find_first_of("\r\n") != std::string::npos) {
    return Status::InvalidArgument("pgbranch.conf metadata has a line break");
  }
  std::string text = fmt::format(
      "# Written by pgbranch for this branch and rewritten on every clone: do not edit.\n"
      "# Put your own settings in postgresql.conf or use ALTER SYSTEM.\n"
      "{}"
      "port = {}\n"
      "listen_addresses = {}\n"
      "unix_socket_directories = {}\n"
      "cluster_name = {}\n"
      "password_encryption = 'scram-sha-256'\n",
      config.metadata.empty() ? "" : fmt::format("{}{}\n", kMetadataPrefix, config.metadata),
      config.port, listen, sockets, name);
  if (!config.archive_dir.empty()) {
    PGB_RETURN_IF_ERROR(CheckCommandPath(config.archive_dir));
    // A standby archives what it receives only with `always` (docs 26.2.9 "Continuous
    // Archiving in Standby").
    text += config.standby ? "archive_mode = always\n" : "archive_mode = on\n";
    if (config.pg_major >= 15) {
      PGB_ASSIGN_OR_RETURN(std::string dir, QuoteConfValue(config.archive_dir));
      // archive_command emptied: a copied cluster's own would clash with the library (an error
      // from PostgreSQL 16 on).
      text += fmt::format(
          "archive_library = 'basic_archive'\n"
          "archive_command = ''\n"
          "basic_archive.archive_directory = {}\n",
          dir);
    } else {
      // PostgreSQL runs archive_command through /bin/sh with %p (the segment's path relative
      // to the data directory) and %f (its file name) substituted (docs 26.3.1).
      std::string target = fmt::format("\"{}/%f\"", config.archive_dir);
      PGB_ASSIGN_OR_RETURN(std::string command,
                           QuoteConfValue(fmt::format(
                               "if test -f {0}; then cmp -s \"%p\" {0}; else cp \"%p\" {0}.tmp && "
                               "sync {0}.tmp && mv {0}.tmp {0}; fi",
                               target)));
      text += fmt::format("archive_command = {}\n", command);
    }
  }
  if (config.standby) {
    PGB_ASSIGN_OR_RETURN(std::string conninfo, QuoteConfValue(config.standby->primary_conninfo));
    text += fmt::format("primary_conninfo = {}\nhot_standby = on\n", conninfo);
    if (!config.standby->slot.empty()) {
      PGB_ASSIGN_OR_RETURN(std::string slot, QuoteConfValue(config.standby->slot));
      text += fmt::format("primary_slot_name = {}\n", slot);
    }
  }
  if (config.recovery) {
    const RecoverySettings& r = *config.recovery;
    // No archive: replay what pg_wal holds, then end recovery (a restore_command that finds
    // nothing, since archive recovery requires one).
    std::string command = "false";
    if (!r.restore_dir.empty()) {
      PGB_RETURN_IF_ERROR(CheckCommandPath(r.restore_dir));
      command = fmt::format("cp \"{}/%f\" \"%p\"", r.restore_dir);
    }
    PGB_ASSIGN_OR_RETURN(std::string restore, QuoteConfValue(command));
    text += fmt::format("restore_command = {}\n", restore);
    if (!r.target_time.empty()) {
      PGB_ASSIGN_OR_RETURN(std::string t, QuoteConfValue(r.target_time));
      text += fmt::format("recovery_target_time = {}\n", t);
    } else if (!r.target_lsn.empty()) {
      PGB_ASSIGN_OR_RETURN(std::string t, QuoteConfValue(r.target_lsn));
      text += fmt::format("recovery_target_lsn = {}\n", t);
    }
    text +=
        "recovery_target_inclusive = on\n"
        "recovery_target_timeline = 'latest'\n"
        "recovery_target_action = 'promote'\n";
  }
  if (config.ssl) {
    text += fmt::format(
        "ssl = on\n"
        "ssl_cert_file = '{}'\n"
        "ssl_key_file = '{}'\n"
        "ssl_min_protocol_version = 'TLSv1.2'\n",
        kServerCertFile, kServerKeyFile);
  }
  return WriteFileAtomic(JoinPath(data_dir, "pgbranch.conf"), text, 0600, owner);
}

Result<InstanceConfigFile> ReadInstanceConfig(const std::string& data_dir) {
  PGB_ASSIGN_OR_RETURN(std::string text, ReadFile(JoinPath(data_dir, "pgbranch.conf")));
  InstanceConfigFile out;
  for (const std::string& line : SplitLines(text)) {
    if (line.rfind(kMetadataPrefix, 0) == 0) {
      out.metadata = line.substr(std::string_view(kMetadataPrefix).size());
    } else if (line.rfind("port = ", 0) == 0) {
      out.port = std::atoi(line.c_str() + 7);
    } else if (line.rfind("cluster_name = '", 0) == 0 && line.size() > 17 && line.back() == '\'') {
      // QuoteConfValue doubles a quote inside the value.
      std::string value = line.substr(16, line.size() - 17);
      std::string unquoted;
      for (size_t i = 0; i < value.size(); ++i) {
        unquoted += value[i];
        if (value[i] == '\'' && i + 1 < value.size() && value[i + 1] == '\'') ++i;
      }
      out.cluster_name = unquoted;
    }
  }
  return out;
}

Status WriteRecoverySignal(const std::string& data_dir, std::optional<FileOwner> owner) {
  return WriteFileAtomic(JoinPath(data_dir, "recovery.signal"), "", 0600, owner);
}

Status PrepareClonedDataDir(const std::string& data_dir, const InstanceConfig& config,
                            std::optional<FileOwner> owner) {
  PGB_RETURN_IF_ERROR(RemoveFile(JoinPath(data_dir, "postmaster.pid")));
  // A clone of a replica main is no standby: it recovers and becomes a primary.
  PGB_RETURN_IF_ERROR(RemoveFile(JoinPath(data_dir, "standby.signal")));
  PGB_RETURN_IF_ERROR(RemoveFile(JoinPath(data_dir, "postmaster.opts")));
  PGB_RETURN_IF_ERROR(RemoveServerCertificate(data_dir));
  return WriteInstanceConfig(data_dir, config, owner);
}

Result<std::optional<PostmasterPid>> ReadPostmasterPid(const std::string& data_dir) {
  const std::string path = JoinPath(data_dir, "postmaster.pid");
  Result<std::string> text = ReadFile(path);
  if (!text.ok()) {
    if (text.status().Is(StatusCode::kNotFound)) return std::optional<PostmasterPid>();
    return text.status();
  }
  // Lines (PostgreSQL's miscadmin.h, LOCK_FILE_LINE_*): 1 pid (negative for a single-user
  // backend), 2 data directory, 3 start time (epoch seconds), 4 port, 5 first socket
  // directory, 6 first listen address, 7 shared memory key, 8 status, space-padded. A
  // postmaster writes lines 1-5 at once and fills in the rest as it starts.
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text->size()) {
    size_t nl = text->find('\n', start);
    if (nl == std::string::npos) nl = text->size();
    lines.push_back(Trim(std::string_view(*text).substr(start, nl - start)));
    start = nl + 1;
  }
  if (lines.empty() || lines[0].empty()) {
    // PostgreSQL creates the file and then writes it: a reader can see it empty for an
    // instant; after a crash at that moment it stays empty.
    return Status::Unavailable(fmt::format("{} is empty", path));
  }
  std::optional<int> pid = ParseNumber<int>(lines[0]);
  if (!pid || *pid == 0) {
    return Status::FailedPrecondition(
        fmt::format("{} starts with {:?}, not a process id", path, lines[0]));
  }
  PostmasterPid pp;
  pp.pid = *pid < 0 ? -*pid : *pid;
  if (lines.size() > 2) pp.start_epoch_seconds = ParseNumber<long long>(lines[2]).value_or(0);
  if (lines.size() > 3) pp.port = ParseNumber<int>(lines[3]).value_or(0);
  if (lines.size() > 4) pp.socket_dir = lines[4];
  if (lines.size() > 7) pp.status = lines[7];
  return std::optional<PostmasterPid>(pp);
}

}  // namespace pgb
