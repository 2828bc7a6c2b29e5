// What `pgbranch serve`'s proxy asks of the engine: where a route leads, the active branch of a
// project (`pgbranch use`), idle times, a branch's sessions, and the daemon's own record.

#include <fmt/format.h>
#include <netdb.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <vector>

#include "common/fs.h"
#include "common/proc.h"
#include "common/random.h"
#include "engine/engine.h"
#include "engine/engine_internal.h"
#include "pg/client.h"
#include "pg/tls.h"

namespace pgb {

using namespace internal;  // NOLINT: the engine's own private helpers

namespace {

constexpr size_t kProxyPasswordLength = 32;

std::string ServeRecordPath(const std::string& home) { return JoinPath(home, "serve.json"); }

// The branch a project route leads to: the one `use` chose, else the project's root (main).
const BranchRow* ActiveOf(const ProjectRow& project, const std::vector<BranchRow>& branches) {
  const BranchRow* root = nullptr;
  for (const auto& b : branches) {
    if (b.project_id != project.id) continue;
    if (project.active_branch_id && b.id == *project.active_branch_id) return &b;
    if (!b.parent_id) root = &b;
  }
  return root;
}

// "a, b, c" sorted, or "none".
std::string ListOrNone(std::vector<std::string> names) {
  if (names.empty()) return "none";
  std::sort(names.begin(), names.end());
  return fmt::format("{}", fmt::join(names, ", "));
}

}  // namespace

Result<ProxyTarget> Engine::ResolveRoute(const std::string& project_name,
                                         const std::optional<std::string>& branch_name) {
  auto loaded = LoadProject(project_name);
  if (!loaded.ok() && loaded.status().Is(StatusCode::kNotFound)) {
    // What exists, as the issue of a route that leads nowhere asks (the proxy's 3D000).
    PGB_ASSIGN_OR_RETURN(auto projects, catalog_->ListProjects());
    std::vector<std::string> names;
    for (const auto& p : projects) names.push_back(p.name);
    return Status::NotFound(fmt::format("project {} does not exist; the projects: {}", project_name,
                                        ListOrNone(std::move(names))));
  }
  PGB_RETURN_IF_ERROR(loaded.status());
  ProjectRow project = std::move(*loaded);
  if (project.proxy_password.empty()) {
    // Made once, under the project's lock, so two first connections agree on it.
    PGB_ASSIGN_OR_RETURN(LockHandle lock, LockProjectOf(project, nullptr));
    PGB_ASSIGN_OR_RETURN(project, catalog_->GetProject(project.id));
    if (project.proxy_password.empty()) {
      project.proxy_password = RandomPassword(kProxyPasswordLength);
      PGB_RETURN_IF_ERROR(catalog_->UpdateProjectProxy(project));
    }
  }
  PGB_ASSIGN_OR_RETURN(auto branches, catalog_->ListBranches(project.id));
  const BranchRow* row = nullptr;
  if (branch_name) {
    for (const auto& b : branches) {
      if (b.name == *branch_name) row = &b;
    }
  } else {
    row = ActiveOf(project, branches);
  }
  if (!row) {
    std::vector<std::string> names;
    for (const auto& b : branches) names.push_back(b.name);
    return Status::NotFound(fmt::format("project {} has no branch {}; its branches: {}",
                                        project.name, branch_name.value_or("(active)"),
                                        ListOrNone(std::move(names))));
  }
  return TargetOf(project, *row, ActiveOf(project, branches));
}

ProxyTarget Engine::TargetOf(const ProjectRow& project, const BranchRow& row,
                             const BranchRow* active) const {
  ProxyTarget t;
  t.project = project.name;
  t.branch = row.name;
  t.project_id = project.id;
  t.branch_id = row.id;
  t.state = row.state;
  t.socket_path = JoinPath(SocketDir(project), fmt::format(".s.PGSQL.{}", row.port));
  t.host = ClientHost(project.listen_address);
  t.port = row.port;
  t.superuser = project.superuser;
  t.proxy_password = project.proxy_password;
  t.suspend_after_s = row.suspend_after_s ? row.suspend_after_s : project.suspend_after_s;
  // A replica main must keep following its source, sessions or not.
  if (StandbyFor(project, row)) t.suspend_after_s.reset();
  t.idle_ttl_s = row.idle_ttl_s;
  t.active = active && active->id == row.id;
  return t;
}

Result<std::vector<ProxyTarget>> Engine::ProxyTargets() {
  PGB_ASSIGN_OR_RETURN(auto projects, catalog_->ListProjects());
  PGB_ASSIGN_OR_RETURN(auto branches, catalog_->ListBranches());
  std::vector<ProxyTarget> out;
  for (const auto& project : projects) {
    const BranchRow* active = ActiveOf(project, branches);
    for (const auto& row : branches) {
      if (row.project_id == project.id) out.push_back(TargetOf(project, row, active));
    }
  }
  return out;
}

Result<std::string> Engine::UseBranch(const BranchRef& ref, bool terminate) {
  PGB_ASSIGN_OR_RETURN(LockHandle home, HomeShared("use " + ref.ToString()));
  std::string previous;
  PGB_RETURN_IF_ERROR(RunOperation(
      "project.use", ref.ToString(), std::nullopt, std::nullopt, [&](Operation& op) -> Status {
        PGB_ASSIGN_OR_RETURN(ProjectRow project, LoadProject(ref.project));
        PGB_ASSIGN_OR_RETURN(LockHandle lock, LockProjectOf(project, &op));
        PGB_ASSIGN_OR_RETURN(project, catalog_->GetProject(project.id));
        PGB_ASSIGN_OR_RETURN(BranchRow row, LoadBranch(project, ref.branch));
        PGB_RETURN_IF_ERROR(op.SetIds(project.id, row.id));
        if (!IsSettledState(row.state)) {
          return Status::FailedPrecondition(fmt::format("{} is {}", ref.ToString(), row.state));
        }
        PGB_ASSIGN_OR_RETURN(auto branches, catalog_->ListBranches(project.id));
        const BranchRow* before = ActiveOf(project, branches);
        std::optional<BranchRow> old;
        if (before) {
          old = *before;
          previous = before->name;
        }
        project.active_branch_id = row.id;
        PGB_RETURN_IF_ERROR(op.Step("commit"));
        PGB_RETURN_IF_ERROR(catalog_->Transaction([&]() -> Status {
          PGB_RETURN_IF_ERROR(catalog_->UpdateProjectProxy(project));
          return catalog_->InsertEvent(
              Event(row, "used",
                    fmt::format("the route {}/@ leads here (was {})", project.name,
                                previous.empty() ? "none" : previous)));
        }));
        if (!terminate || !old || old->id == row.id) return Status::OK();
        PGB_RETURN_IF_ERROR(op.Step("terminate"));
        PGB_ASSIGN_OR_RETURN(InstanceStatus st, InspectBranch(project, *old));
        if (!st.running || !st.ready) return Status::OK();
        auto conn = Connection::Open(AdminParams(project, *old));
        PGB_RETURN_IF_ERROR(conn.status());
        PGB_ASSIGN_OR_RETURN(
            std::string ended,
            (*conn)->QueryValue("SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) "
                                "FROM pg_stat_activity WHERE backend_type = 'client backend' "
                                "AND pid <> pg_backend_pid()"));
        Note(fmt::format("ended {} session(s) of {}/{}", ended, project.name, old->name));
        return Status::OK();
      }));
  return previous;
}

Status Engine::SetSuspendAfter(const BranchRef& ref, std::optional<int64_t> seconds) {
  if (seconds && *seconds < 0) {
    return Status::InvalidArgument(
        fmt::format("set suspend-after of {}: {} is negative", ref.ToString(), *seconds));
  }
  PGB_ASSIGN_OR_RETURN(LockHandle home, HomeShared("set suspend-after " + ref.ToString()));
  PGB_ASSIGN_OR_RETURN(ProjectRow project, LoadProject(ref.project));
  PGB_ASSIGN_OR_RETURN(LockHandle lock, LockProjectOf(project, nullptr));
  PGB_ASSIGN_OR_RETURN(project, catalog_->GetProject(project.id));
  if (ref.branch.empty()) {
    project.suspend_after_s = seconds;
    return catalog_->UpdateProjectProxy(project);
  }
  PGB_ASSIGN_OR_RETURN(BranchRow row, LoadBranch(project, ref.branch));
  row.suspend_after_s = seconds;
  return catalog_->UpdateBranch(row);
}

Result<BranchActivity> Engine::Activity(const BranchRef& ref) {
  PGB_ASSIGN_OR_RETURN(ProjectRow project, LoadProject(ref.project));
  PGB_ASSIGN_OR_RETURN(BranchRow row, LoadBranch(project, ref.branch));
  PGB_ASSIGN_OR_RETURN(InstanceStatus st, InspectBranch(project, row));
  if (!st.running || !st.ready) {
    return Status::Unavailable(fmt::format("{} is not running", ref.ToString()));
  }
  PGB_ASSIGN_OR_RETURN(auto conn, Connection::Open(AdminParams(project, row)));
  // pg_stat_activity (docs 28.2.3): client backends but this one, and WAL senders.
  PGB_ASSIGN_OR_RETURN(
      auto rows, conn->Query("SELECT count(*) FILTER (WHERE backend_type = 'client backend'), "
                             "count(*) FILTER (WHERE backend_type = 'client backend' AND state IN "
                             "('active', 'idle in transaction', 'idle in transaction (aborted)')), "
                             "count(*) FILTER (WHERE backend_type = 'walsender') "
                             "FROM pg_stat_activity WHERE pid <> pg_backend_pid()"));
  BranchActivity a;
  if (!rows.empty() && rows[0].size() == 3) {
    a.client_sessions = std::stoi(rows[0][0].value_or("0"));
    a.in_transaction = std::stoi(rows[0][1].value_or("0"));
    a.wal_senders = std::stoi(rows[0][2].value_or("0"));
  }
  return a;
}

Result<ProxyUrl> Engine::ProxyUrlOf(const BranchRef& ref, bool verify) {
  PGB_ASSIGN_OR_RETURN(auto record, ReadServeRecord());
  if (!record) {
    return Status::FailedPrecondition(
        fmt::format("the proxy has not run in {}: start it with 'pgbranch serve'", env_.home));
  }
  std::optional<std::string> branch;
  if (!ref.branch.empty()) branch = ref.branch;
  PGB_ASSIGN_OR_RETURN(ProxyTarget target, ResolveRoute(ref.project, branch));
  ProxyUrl url;
  url.database = ref.project + "/" + (ref.branch.empty() ? "@" : ref.branch);
  url.uri = MakeUri(target.superuser, target.proxy_password, record->proxy_host, record->proxy_port,
                    url.database);
  url.masked_uri =
      MakeUri(target.superuser, "****", record->proxy_host, record->proxy_port, url.database);
  if (verify) {
    PGB_ASSIGN_OR_RETURN(LocalCa ca, CertificateAuthority());
    url.uri = WithVerifyFull(url.uri, ca.cert_path);
    url.masked_uri = WithVerifyFull(url.masked_uri, ca.cert_path);
  }
  url.serve_running = record->alive;
  return url;
}

Result<std::string> Engine::ProxyCertificate(const std::string& sni_domain) {
  PGB_ASSIGN_OR_RETURN(LocalCa ca, CertificateAuthority());
  PGB_ASSIGN_OR_RETURN(auto projects, catalog_->ListProjects());
  ServerCertificateRequest request;
  request.common_name = "pgbranch serve";
  request.hosts = {"localhost", "127.0.0.1", "::1"};
  if (sni_domain != "localhost") request.hosts.push_back(sni_domain);
  for (const auto& p : projects) {
    request.hosts.push_back(p.name + "." + sni_domain);
    request.hosts.push_back("*." + p.name + "." + sni_domain);
  }
  std::string dir = JoinPath(env_.home, "tls/proxy");
  PGB_RETURN_IF_ERROR(EnsureDir(dir, 0700));
  PGB_RETURN_IF_ERROR(EnsureServerCertificate(ca, request, dir, std::nullopt).status());
  return dir;
}

Status Engine::WriteServeRecord(const ServeRecord& record) {
  nlohmann::json j = {{"pid", record.pid},
                      {"proxy_host", record.proxy_host},
                      {"proxy_port", record.proxy_port},
                      {"sni_domain", record.sni_domain},
                      {"started_at", record.started_at},
                      {"api_url", record.api_url}};
  return WriteFileAtomic(ServeRecordPath(env_.home), j.dump(2) + "\n", 0644);
}

Result<std::optional<ServeRecord>> Engine::ReadServeRecord() {
  std::string path = ServeRecordPath(env_.home);
  if (!PathExists(path)) return std::optional<ServeRecord>();
  PGB_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  ServeRecord r;
  try {
    auto j = nlohmann::json::parse(text);
    r.pid = j.at("pid").get<int64_t>();
    r.proxy_host = j.at("proxy_host").get<std::string>();
    r.proxy_port = j.at("proxy_port").get<int>();
    r.sni_domain = j.value("sni_domain", "localhost");
    r.started_at = j.value("started_at", "");
    r.api_url = j.value("api_url", "");
  } catch (const nlohmann::json::exception& e) {
    return Status::FailedPrecondition(fmt::format("read {}: {}", path, e.what()));
  }
  auto proc = r.pid > 0 ? ReadProc(static_cast<pid_t>(r.pid)) : std::nullopt;
  r.alive = proc && !proc->Dead() && proc->comm == "pgbranch";
  return std::optional<ServeRecord>(std::move(r));
}

Status Engine::RemoveServeRecord() { return RemoveFile(ServeRecordPath(env_.home)); }

std::string Engine::StartMarkerPath(int64_t branch_id) const {
  return JoinPath(env_.home, fmt::format("locks/starting-{}", branch_id));
}

std::string Engine::PrepareSuspendedStart(const BranchRef& ref) {
  auto project = LoadProject(ref.project);
  if (!project.ok()) return "";
  auto row = LoadBranch(*project, ref.branch);
  if (!row.ok() || row->state != kStateSuspended) return "";
  // Until the start is over, serve does not listen on the port (it reads this file first).
  std::string marker = StartMarkerPath(row->id);
  if (!WriteFileAtomic(marker, "", 0600).ok()) marker.clear();
  if (env_.ports->IsFree(project->listen_address, row->port)) return marker;
  auto record = ReadServeRecord();
  if (!record.ok() || !*record || !(*record)->alive) return marker;
  // serve holds the port of a suspended branch for its clients (Proxy::ListenForBranch) and
  // lets go of it at the first connection: this one, which then sends nothing.
  std::string host = ClientHost(project->listen_address);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  std::string port = std::to_string(row->port);
  if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &found) != 0) return marker;
  int fd = ::socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0) {
    Status ignored = ::connect(fd, found->ai_addr, found->ai_addrlen) == 0
                         ? Status::OK()
                         : Status::IOError("connect");
    (void)ignored;
    ::close(fd);
  }
  ::freeaddrinfo(found);
  // Bounded (2 s) and interruptible: the start that follows reports a port still held.
  for (int i = 0; i < 40 && !env_.ports->IsFree(project->listen_address, row->port) &&
                  !(env_.cancel && env_.cancel->cancelled());
       ++i) {
    ::usleep(50'000);
  }
  return marker;
}

}  // namespace pgb
