#include "server/serve.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <asio.hpp>
#include <condition_variable>
#include <map>
#include <set>
#include <thread>
#include <utility>

#include "common/fs.h"
#include "common/time.h"
#include "proxy/proxy.h"

namespace pgb::server {

namespace {

// How many ports after the default one `serve` tries when the default is taken.
constexpr int kPortFallbacks = 20;

}  // namespace

Result<proxy::Endpoint> EngineRouter::Resolve(const proxy::Route& route) {
  PGB_ASSIGN_OR_RETURN(ProxyTarget target, engine_.ResolveRoute(route.project, route.branch));
  BranchRef ref{target.project, target.branch};
  if (target.state == kStateSuspended) {
    auto started = std::chrono::steady_clock::now();
    PGB_RETURN_IF_ERROR(engine_.StartBranch(ref).status());
    spdlog::info("serve: woke {} in {} ms", ref.ToString(),
                 std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::steady_clock::now() - started)
                     .count());
  } else if (target.state == kStateStopped) {
    return Status::FailedPrecondition(
        fmt::format("branch {} is stopped; start it with 'pgbranch branch start {}'",
                    ref.ToString(), ref.ToString()));
  } else if (!IsSettledState(target.state)) {
    return Status::FailedPrecondition(fmt::format("branch {} is {}", ref.ToString(), target.state));
  }
  proxy::Endpoint e;
  e.project = target.project;
  e.branch = target.branch;
  e.socket_path = target.socket_path;
  e.superuser = target.superuser;
  e.host = target.host;
  e.port = target.port;
  std::lock_guard<std::mutex> lock(mu_);
  auto& verifier = verifiers_[target.proxy_password];
  if (!verifier) {
    verifier = std::make_shared<const proxy::ScramVerifier>(
        proxy::ScramVerifier::Make(target.proxy_password));
  }
  e.verifier = verifier;
  return e;
}

namespace {

// A suspended branch's own address, and the file that says it is being started.
struct SuspendedPort {
  std::string host;
  proxy::Route route;
  std::string start_marker;  // Engine::StartMarkerPath
};
using SuspendedPorts = std::map<int, SuspendedPort>;

// Whether `path` was written in the last 30 s: a start in progress (an older one is a crash's).
bool Recent(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return false;
  return ::time(nullptr) - st.st_mtime < 30;
}

// Suspends branches idle past their suspend-after time, keeps the proxy's own certificate
// covering every project's SNI names, and tells which suspended branches' ports to listen on,
// on one thread; deletes expired branches and runs due schedules on another. Both run until
// Stop().
class Scheduler {
 public:
  // `api` (may be null) hears of branch changes after each look (ApiServer::PollBranches).
  Scheduler(Engine& engine, std::chrono::milliseconds interval,
            std::function<void()> projects_changed, std::function<void(SuspendedPorts)> suspended,
            ApiServer* api)
      : engine_(engine),
        interval_(interval),
        projects_changed_(std::move(projects_changed)),
        suspended_(std::move(suspended)),
        api_(api) {
    thread_ = std::thread([this] { Loop(); });
    // Expiry and schedules on a thread of their own: a scheduled refresh may take minutes,
    // and suspension and the API's branch polling must not wait for it.
    lifetime_thread_ = std::thread([this] { LifetimeLoop(); });
  }
  ~Scheduler() { Stop(); }

  // Asks for the certificate to be reloaded on the scheduler's thread (SIGHUP).
  void RequestReload() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      reload_ = true;
    }
    cv_.notify_all();
  }

  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    if (lifetime_thread_.joinable()) lifetime_thread_.join();
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      bool reload = std::exchange(reload_, false);
      lock.unlock();
      if (reload) projects_changed_();
      Tick();
      lock.lock();
      cv_.wait_for(lock, interval_, [this] { return stop_ || reload_; });
    }
  }

  // Every kExpiryInterval until Stop(): expired branches, then due schedules.
  void LifetimeLoop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      lock.unlock();
      Expire();
      RunSchedules();
      MeasureSizes();
      lock.lock();
      cv_.wait_for(lock, kExpiryInterval, [this] { return stop_; });
    }
  }

  void Tick() {
    auto targets = engine_.ProxyTargets();
    if (!targets.ok()) {
      spdlog::warn("serve: read the catalog: {}", targets.status().message());
      return;
    }
    if (api_) api_->PollBranches(*targets);  // the same read: no second one for the API
    auto now = std::chrono::steady_clock::now();
    std::set<std::string> projects;
    std::map<int64_t, std::chrono::steady_clock::time_point> seen;
    SuspendedPorts suspended;
    for (const auto& t : *targets) {
      projects.insert(t.project);
      if (t.state == kStateSuspended) {
        suspended[t.port] = {t.host, proxy::Route{t.project, t.branch},
                             engine_.StartMarkerPath(t.branch_id)};
      }
      bool suspends = t.suspend_after_s && *t.suspend_after_s > 0;
      if ((!suspends && !t.idle_ttl_s) || t.state != kStateRunning) continue;
      BranchRef ref{t.project, t.branch};
      auto activity = engine_.Activity(ref);
      bool used = activity.ok() && (activity->client_sessions > 0 || activity->wal_senders > 0);
      if (used && t.idle_ttl_s) NoteUse(t.branch_id, now);
      if (!suspends) continue;
      auto last = last_active_.find(t.branch_id);
      auto since = last == last_active_.end() ? now : last->second;
      if (!activity.ok() || used) {
        since = now;  // busy, or not up: the idle spell starts again
      } else if (now - since >= std::chrono::seconds(*t.suspend_after_s)) {
        auto suspended = engine_.SuspendBranch(ref);
        if (suspended.ok()) {
          spdlog::info("serve: suspended {} after {} s idle", ref.ToString(), *t.suspend_after_s);
          continue;
        }
        spdlog::warn("serve: suspend {}: {}", ref.ToString(), suspended.status().message());
        since = now;
      }
      seen[t.branch_id] = since;
    }
    last_active_ = std::move(seen);
    suspended_(std::move(suspended));
    if (projects != projects_) {
      bool first = projects_.empty();
      projects_ = std::move(projects);
      if (!first) projects_changed_();
    }
  }

  // Records a session seen on a branch with an idle TTL: at most once a minute per branch, so
  // a busy branch does not write the catalog at every look.
  void NoteUse(int64_t branch_id, std::chrono::steady_clock::time_point now) {
    auto it = marked_.find(branch_id);
    if (it != marked_.end() && now - it->second < std::chrono::minutes(1)) return;
    Status s = engine_.MarkBranchActive(branch_id);
    if (!s.ok()) spdlog::warn("serve: note a session on branch {}: {}", branch_id, s.message());
    marked_[branch_id] = now;
  }

  // Deletes branches past their TTL or idle TTL; logs each deletion, and each refusal once.
  // Renews branch sizes older than kSizeInterval, so that listings read them instead of walking
  // every volume's extents (Engine::MeasureSizes).
  void MeasureSizes() {
    auto measured = engine_.MeasureSizes(kSizeInterval);
    if (!measured.ok()) {
      spdlog::warn("serve: measure branch sizes: {}", measured.status().message());
    } else if (*measured > 0) {
      spdlog::debug("serve: measured the sizes of {} branches", *measured);
    }
  }

  void Expire() {
    auto found = engine_.ExpireBranches();
    if (!found.ok()) {
      spdlog::warn("serve: expire branches: {}", found.status().message());
      return;
    }
    std::map<std::string, std::string> kept;
    for (const auto& e : *found) {
      if (e.deleted) {
        spdlog::info("serve: deleted {}: {}", e.branch, e.reason);
        continue;
      }
      kept[e.branch] = e.kept_because;
      auto said = kept_.find(e.branch);
      if (said == kept_.end() || said->second != e.kept_because) {
        spdlog::info("serve: kept {} although {}: {}", e.branch, e.reason, e.kept_because);
      }
    }
    kept_ = std::move(kept);
  }

  // Takes the snapshots that schedules say are due, and logs what their retention did.
  void RunSchedules() {
    auto runs = engine_.RunDueSchedules();
    if (!runs.ok()) {
      spdlog::warn("serve: run schedules: {}", runs.status().message());
      return;
    }
    for (const auto& r : *runs) {
      if (r.ok) {
        spdlog::info("serve: schedule {} ({}) for {}: {}", r.schedule_id, r.branch, r.slot,
                     r.result);
      } else {
        spdlog::warn("serve: schedule {} ({}) for {} failed: {}", r.schedule_id, r.branch, r.slot,
                     r.result);
      }
      for (int64_t id : r.removed) {
        spdlog::info("serve: schedule {}: deleted snapshot {} (retention)", r.schedule_id, id);
      }
      for (const auto& k : r.kept) {
        spdlog::info("serve: schedule {}: kept {}", r.schedule_id, k);
      }
    }
  }

  // How often expired branches and due schedules are looked for.
  static constexpr auto kExpiryInterval = std::chrono::seconds(5);
  // How old a branch's measured size may grow before it is measured again.
  static constexpr auto kSizeInterval = std::chrono::seconds(60);

  Engine& engine_;
  std::map<int64_t, std::chrono::steady_clock::time_point> marked_;
  std::map<std::string, std::string> kept_;
  std::chrono::milliseconds interval_;
  std::function<void()> projects_changed_;
  std::function<void(SuspendedPorts)> suspended_;
  ApiServer* api_;
  std::map<int64_t, std::chrono::steady_clock::time_point> last_active_;
  std::set<std::string> projects_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool reload_ = false;
  std::thread thread_;
  std::thread lifetime_thread_;  // Expire, RunSchedules and MeasureSizes; kept_ is its alone
};

}  // namespace

Status Serve(Engine& engine, const ServeOptions& options,
             const std::function<void(const std::string&)>& note) {
  // Signals are caught from here on (queued until the event loop runs): a SIGTERM or SIGHUP
  // that comes as soon as serve.json exists must stop or reload serve, not be lost or kill it.
  asio::io_context io;
  asio::signal_set signals(io, SIGINT, SIGTERM, SIGHUP);
  PGB_ASSIGN_OR_RETURN(auto running, engine.ReadServeRecord());
  if (running && running->alive && running->pid != ::getpid()) {
    return Status::FailedPrecondition(
        fmt::format("pgbranch serve already runs for {} (pid {}, proxy on {}:{})", engine.home(),
                    running->pid, running->proxy_host, running->proxy_port));
  }
  proxy::ProxyOptions po;
  po.listen_host = options.listen_host;
  po.sni_domain = options.sni_domain;
  po.max_connections = options.max_connections;
  const bool own_certificate = options.tls_cert.empty();
  if (own_certificate) {
    PGB_ASSIGN_OR_RETURN(std::string dir, engine.ProxyCertificate(options.sni_domain));
    po.tls_cert = JoinPath(dir, "server.crt");
    po.tls_key = JoinPath(dir, "server.key");
  } else {
    po.tls_cert = options.tls_cert;
    po.tls_key = options.tls_key;
  }

  EngineRouter router(engine);
  std::unique_ptr<proxy::Proxy> proxy;
  int tries = options.port_given ? 1 : kPortFallbacks + 1;
  Status listened;
  for (int i = 0; i < tries; ++i) {
    po.listen_port = options.listen_port == 0 ? 0 : options.listen_port + i;
    proxy = std::make_unique<proxy::Proxy>(io, router, po);
    listened = proxy->Listen();
    if (listened.ok() || !listened.Is(StatusCode::kUnavailable)) break;
    if (i + 1 < tries) {
      note(fmt::format("port {} is in use; trying {}", po.listen_port, po.listen_port + 1));
    }
  }
  PGB_RETURN_IF_ERROR(listened);

  std::unique_ptr<ApiServer> api;
  if (options.api) {
    api = std::make_unique<ApiServer>(engine, *options.api);
    PGB_RETURN_IF_ERROR(api->Listen(note));
  }
  // Lines for the user go to the API's log view too.
  auto say = [&](const std::string& line) {
    note(line);
    if (api) api->Log(line);
  };

  ServeRecord record;
  record.pid = ::getpid();
  record.proxy_host = options.listen_host == "0.0.0.0" ? "127.0.0.1"
                      : options.listen_host == "::"    ? "::1"
                                                       : options.listen_host;
  record.proxy_port = proxy->port();
  record.sni_domain = options.sni_domain;
  record.started_at = FormatTimestamp(SystemClock().Now());
  if (api) record.api_url = api->BaseUrl();
  PGB_RETURN_IF_ERROR(engine.WriteServeRecord(record));
  say(fmt::format("proxy listening on {}:{} (TLS {}; SNI routes BRANCH.PROJECT.{})",
                  options.listen_host, record.proxy_port,
                  own_certificate ? "from the local CA" : options.tls_cert, options.sni_domain));
  if (api) {
    say(fmt::format("API and dashboard on {}/ (tokens: pgbranch token create NAME)",
                    api->BaseUrl()));
    api->Start();
  }

  auto reload = [&] {
    if (own_certificate) {
      auto dir = engine.ProxyCertificate(options.sni_domain);
      if (!dir.ok()) {
        spdlog::warn("serve: reissue the proxy certificate: {}", dir.status().message());
        return;
      }
    }
    asio::post(io, [&] {
      Status s = proxy->ReloadTls();
      if (s.ok()) {
        spdlog::info("serve: TLS certificate reloaded");
      } else {
        spdlog::warn("serve: {}; the previous certificate stays in use", s.message());
      }
    });
  };

  bool stopping = false;
  // A suspended branch's own port is listened on, so that its own connection string wakes it
  // too (Proxy::ListenForBranch); a branch no longer suspended gets its port back.
  auto follow_suspended = [&](SuspendedPorts want) {
    asio::post(io, [&, want = std::move(want)] {
      if (stopping) return;
      for (int port : proxy->BranchListenerPorts()) {
        if (!want.count(port)) proxy->StopListeningForBranch(port);
      }
      for (const auto& [port, where] : want) {
        // Not while someone starts it: its server is about to bind the port.
        if (Recent(where.start_marker)) continue;
        Status s = proxy->ListenForBranch(where.host, port, where.route);
        if (!s.ok()) spdlog::debug("serve: {} ({})", s.message(), where.route.ToString());
      }
    });
  };
  Scheduler scheduler(
      engine, options.idle_check, [&] { reload(); }, follow_suspended, api.get());
  asio::steady_timer grace(io);
  std::chrono::steady_clock::time_point deadline;
  // Every 100 ms during the grace period: done when no session is left or time is up.
  std::function<void()> check = [&] {
    if (proxy->stats().sessions == 0 || std::chrono::steady_clock::now() >= deadline) {
      if (proxy->stats().sessions > 0) {
        note(fmt::format("closing {} session(s) still open", proxy->stats().sessions));
      }
      proxy->CloseAll();
      io.stop();
      return;
    }
    grace.expires_after(std::chrono::milliseconds(100));
    grace.async_wait([&check](const asio::error_code& e) {
      if (!e) check();
    });
  };
  std::function<void(const asio::error_code&, int)> on_signal = [&](const asio::error_code& ec,
                                                                    int signo) {
    if (ec) return;
    if (signo == SIGHUP) {
      // The certificate may take a moment to reissue: off the event loop.
      scheduler.RequestReload();
      signals.async_wait(on_signal);
      return;
    }
    if (stopping) {
      note("second signal: closing every session now");
      proxy->CloseAll();
      io.stop();
      return;
    }
    stopping = true;
    sd_notify(0, "STOPPING=1");
    proxy->StopAccepting();
    size_t open = proxy->stats().sessions;
    note(fmt::format("stopping: {} session(s) open, waiting up to {} s for them", open,
                     options.grace.count()));
    deadline = std::chrono::steady_clock::now() + options.grace;
    check();
    signals.async_wait(on_signal);
  };
  signals.async_wait(on_signal);

  sd_notifyf(0, "READY=1\nSTATUS=proxy on %s:%d\nMAINPID=%d", options.listen_host.c_str(),
             record.proxy_port, static_cast<int>(::getpid()));
  io.run();
  scheduler.Stop();
  if (api) api->Stop(options.grace);
  proxy.reset();
  Status removed = engine.RemoveServeRecord();
  if (!removed.ok()) spdlog::warn("serve: {}", removed.message());
  note("stopped");
  return Status::OK();
}

}  // namespace pgb::server
