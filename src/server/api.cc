#include "server/api.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <httplib.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <charconv>
#include <filesystem>

#include "common/digest.h"
#include "common/error_class.h"
#include "common/fs.h"
#include "common/random.h"
#include "common/time.h"
#include "engine/json.h"

namespace pgb::server {

// api/openapi.json, embedded at build time (CMakeLists.txt writes it into a generated source).
extern const char* const kOpenApiDocument;

namespace {

using nlohmann::json;
constexpr int kPortFallbacks = 20;
constexpr size_t kMaxFailures = 10;  // per address per kFailureWindow, then 429
constexpr auto kFailureWindow = std::chrono::seconds(60);
constexpr auto kSessionLifetime = std::chrono::hours(12);
constexpr const char* kSessionCookie = "pgb_session";
constexpr size_t kKeptLogLines = 1000;
// How long a branch list or status may be reused (ReadCache): changes made through the API
// show at once (an operation's end drops them), the CLI's within this.
constexpr auto kCachedReadAge = std::chrono::milliseconds(1000);

bool IsLoopback(const std::string& host) {
  return host == "127.0.0.1" || host == "::1" || host == "localhost" || host.rfind("127.", 0) == 0;
}

void SendJson(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

void SendError(httplib::Response& res, const Status& s, const std::string& prefix) {
  SendJson(res, Classify(s.code()).http_status, {{"error", ErrorJson(s, prefix)}});
}

// Errors of the HTTP layer itself, outside Status's codes (413, 429).
void SendHttpError(httplib::Response& res, int status, const char* code, std::string message) {
  SendJson(res, status, {{"error", {{"code", code}, {"message", std::move(message)}}}});
}

// A request body as a JSON object: empty means {}. InvalidArgument for anything else.
Result<json> BodyObject(const httplib::Request& req) {
  if (req.body.empty()) return json::object();
  json j = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::InvalidArgument("the request body is not valid JSON");
  if (!j.is_object()) return Status::InvalidArgument("the request body must be a JSON object");
  return j;
}

Result<std::optional<std::string>> OptString(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::optional<std::string>();
  if (!it->is_string()) return Status::InvalidArgument(fmt::format("\"{}\" must be a string", key));
  return std::optional<std::string>(it->get<std::string>());
}

Result<std::optional<int64_t>> OptInt(const json& j, const char* key, int64_t min, int64_t max) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::optional<int64_t>();
  if (!it->is_number_integer()) {
    return Status::InvalidArgument(fmt::format("\"{}\" must be an integer", key));
  }
  int64_t v = it->get<int64_t>();
  if (v < min || v > max) {
    return Status::InvalidArgument(fmt::format("\"{}\" must be from {} to {}", key, min, max));
  }
  return std::optional<int64_t>(v);
}

Result<bool> OptBool(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return false;
  if (!it->is_boolean())
    return Status::InvalidArgument(fmt::format("\"{}\" must be true or false", key));
  return it->get<bool>();
}

// What a refresh loads (POST .../refresh, a refresh schedule): "from_dump", "from_server",
// "logical", "jobs", "transforms" (paths as the daemon's host sees them), each optional.
Status ReadDataSource(const json& body, ProjectCreateOptions* o) {
  PGB_ASSIGN_OR_RETURN(auto dump, OptString(body, "from_dump"));
  if (dump) o->from_dump = *dump;
  PGB_ASSIGN_OR_RETURN(auto server, OptString(body, "from_server"));
  if (server) o->from_server = *server;
  PGB_ASSIGN_OR_RETURN(o->logical, OptBool(body, "logical"));
  PGB_ASSIGN_OR_RETURN(auto jobs, OptInt(body, "jobs", 1, 64));
  if (jobs) o->restore_jobs = static_cast<int>(*jobs);
  if (auto it = body.find("transforms"); it != body.end() && !it->is_null()) {
    if (!it->is_array()) return Status::InvalidArgument("\"transforms\" must be a list of paths");
    for (const auto& t : *it) {
      if (!t.is_string()) {
        return Status::InvalidArgument("\"transforms\" must be a list of paths");
      }
      o->transforms.push_back(t.get<std::string>());
    }
  }
  return Status::OK();
}

// The longest TTL or idle TTL the API takes, in seconds (as the engine: kMaxDays).
constexpr int64_t kMaxLifetime = int64_t{kMaxDays} * 86400;

// The body's `key`: an object of label values (strings; null, where `null_removes`, for a
// label to remove), each checked by ValidateLabel. Absent: empty.
Result<std::map<std::string, std::optional<std::string>>> OptLabels(const json& j, const char* key,
                                                                    bool null_removes) {
  std::map<std::string, std::optional<std::string>> out;
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return out;
  if (!it->is_object()) {
    return Status::InvalidArgument(fmt::format("\"{}\" must be an object of strings", key));
  }
  for (const auto& [k, v] : it->items()) {
    if (v.is_null() && null_removes) {
      PGB_RETURN_IF_ERROR(ValidateLabel(k, ""));
      out[k] = std::nullopt;
      continue;
    }
    if (!v.is_string()) {
      return Status::InvalidArgument(fmt::format("\"{}\" must be an object of strings{}", key,
                                                 null_removes ? " (null removes one)" : ""));
    }
    PGB_RETURN_IF_ERROR(ValidateLabel(k, v.get<std::string>()));
    out[k] = v.get<std::string>();
  }
  return out;
}

// The values of ?label= in the request's query, read from the raw target: cpp-httplib's own
// parse keeps only what follows the last '=' of "label=key=value" unless the client encoded it
// as %3D, and both forms must mean the same.
std::vector<std::string> LabelParams(const httplib::Request& req) {
  std::vector<std::string> out;
  size_t q = req.target.find('?');
  if (q == std::string::npos) return out;
  std::string_view query(req.target);
  query.remove_prefix(q + 1);
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view part = query.substr(0, amp);
    if (part.rfind("label=", 0) == 0) {
      out.push_back(httplib::detail::decode_url(std::string(part.substr(6)), true));
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return out;
}

// Refuses members other than `known` (a typo must not pass silently).
Status OnlyKeys(const json& j, std::initializer_list<const char*> known) {
  for (const auto& [k, v] : j.items()) {
    bool ok = false;
    for (const char* name : known) ok |= k == name;
    if (!ok) return Status::InvalidArgument(fmt::format("unknown field {}", QuoteForDisplay(k)));
  }
  return Status::OK();
}

// The body's "new_name" of a rename, a valid name of a `what` ("project", "branch").
Result<std::string> NewName(const json& body, const char* what) {
  PGB_RETURN_IF_ERROR(OnlyKeys(body, {"new_name"}));
  PGB_ASSIGN_OR_RETURN(auto to, OptString(body, "new_name"));
  if (!to) return Status::InvalidArgument("\"new_name\" is required");
  PGB_RETURN_IF_ERROR(ValidateName(what, *to));
  return *to;
}

Result<bool> QueryBool(const httplib::Request& req, const char* key) {
  if (!req.has_param(key)) return false;
  std::string v = req.get_param_value(key);
  if (v == "true" || v == "1" || v.empty()) return true;
  if (v == "false" || v == "0") return false;
  return Status::InvalidArgument(fmt::format("?{}= must be true or false", key));
}

Result<int64_t> QueryInt(const httplib::Request& req, const char* key, int64_t def, int64_t min,
                         int64_t max) {
  if (!req.has_param(key)) return def;
  std::string v = req.get_param_value(key);
  int64_t out = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || end != v.data() + v.size() || out < min || out > max) {
    return Status::InvalidArgument(
        fmt::format("?{}= must be an integer from {} to {}", key, min, max));
  }
  return out;
}

std::string CookieValue(const httplib::Request& req, const std::string& name) {
  std::string header = req.get_header_value("Cookie");
  size_t pos = 0;
  while (pos < header.size()) {
    size_t end = header.find(';', pos);
    if (end == std::string::npos) end = header.size();
    std::string part = header.substr(pos, end - pos);
    size_t start = part.find_first_not_of(' ');
    if (start != std::string::npos) part = part.substr(start);
    if (part.rfind(name + "=", 0) == 0) return part.substr(name.size() + 1);
    pos = end + 1;
  }
  return "";
}

// A name from the request's path as an error message shows it: as it is when it is made of
// the characters names may hold ("demo/dev"), else quoted and escaped (QuoteForDisplay).
std::string Named(const std::string& text) {
  bool plain = !text.empty() && text.size() <= 130;
  for (char c : text) {
    plain &= (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '/';
  }
  return plain ? text : QuoteForDisplay(text);
}

std::vector<std::string> SplitLines(const std::string& text) {
  std::vector<std::string> lines;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    lines.push_back(text.substr(pos, end - pos));
    pos = end + 1;
  }
  return lines;
}

}  // namespace

// The route handlers: one object per server, with access to its state.
class ApiHandlers {
 public:
  explicit ApiHandlers(ApiServer& s) : s_(s), engine_(s.engine_) {}

  using Req = httplib::Request;
  using Res = httplib::Response;

  // Authenticates `req` for `scope`; on failure answers it and returns nullopt.
  std::optional<ApiServer::Principal> Auth(const Req& req, Res& res, const std::string& scope) {
    const std::string& addr = req.remote_addr;
    auto now = std::chrono::steady_clock::now();
    {
      std::lock_guard<std::mutex> lock(s_.mu_);
      auto& f = s_.failures_[addr];
      while (!f.empty() && now - f.front() > kFailureWindow) f.pop_front();
      if (f.size() >= kMaxFailures) {
        res.set_header("Retry-After", std::to_string(kFailureWindow.count()));
        SendHttpError(res, 429, "too_many_requests",
                      fmt::format("authenticate: too many failed attempts from {}; try again in "
                                  "a minute",
                                  addr));
        return std::nullopt;
      }
      if (f.empty()) s_.failures_.erase(addr);
    }
    std::string token;
    bool by_cookie = false;
    std::string csrf;
    std::string auth = req.get_header_value("Authorization");
    if (!auth.empty()) {
      if (auth.rfind("Bearer ", 0) != 0) {
        return Fail(req, res, "the Authorization header must be 'Bearer <token>'");
      }
      token = auth.substr(7);
    } else if (std::string cookie = CookieValue(req, kSessionCookie); !cookie.empty()) {
      {
        std::lock_guard<std::mutex> lock(s_.mu_);
        auto it = s_.sessions_.find(cookie);
        if (it == s_.sessions_.end() || it->second.expires < now) {
          if (it != s_.sessions_.end()) s_.sessions_.erase(it);
        } else {
          token = it->second.token;
          csrf = it->second.csrf;
          it->second.expires = now + kSessionLifetime;
          by_cookie = true;
        }
      }
      if (!by_cookie) return Fail(req, res, "the session has ended; log in again");
    } else {
      return Fail(req, res, "a bearer token is required (pgbranch token create NAME)");
    }
    auto info = engine_.AuthenticateToken(token);
    if (!info.ok()) {
      if (!info.status().Is(StatusCode::kUnauthenticated)) {
        SendError(res, info.status(), "authenticate");
        return std::nullopt;
      }
      return Fail(req, res, info.status().message());
    }
    if (by_cookie && req.method != "GET" && req.method != "HEAD" &&
        !ConstantTimeEqual(req.get_header_value("X-CSRF-Token"), csrf)) {
      SendError(res, Status::PermissionDenied("the X-CSRF-Token header is missing or wrong"),
                "authenticate");
      return std::nullopt;
    }
    if (!ScopeAllows(info->scope, scope)) {
      SendError(res,
                Status::PermissionDenied(fmt::format("token {} has scope {}; this needs {}",
                                                     info->name, info->scope, scope)),
                "authorize");
      return std::nullopt;
    }
    return ApiServer::Principal{info->name, info->scope, by_cookie};
  }

  std::optional<ApiServer::Principal> Fail(const Req& req, Res& res, const std::string& why) {
    {
      std::lock_guard<std::mutex> lock(s_.mu_);
      s_.failures_[req.remote_addr].push_back(std::chrono::steady_clock::now());
    }
    res.set_header("WWW-Authenticate", "Bearer realm=\"pgbranch\"");
    SendError(res, Status::Unauthenticated(why), "authenticate");
    return std::nullopt;
  }

  // Answers a submitted operation: 202 with it, or with ?wait=true its end.
  void Accepted(const Req& req, Res& res, const Result<std::string>& id) {
    if (!id.ok()) {
      SendError(res, id.status(), "submit");
      return;
    }
    res.set_header("Location", "/api/v1/operations/" + *id);
    auto wait = QueryBool(req, "wait");
    auto timeout = QueryInt(req, "timeout", 300, 1, s_.options_.max_wait.count());
    if (!wait.ok() || !timeout.ok()) {  // checked before submitting; cannot happen
      SendJson(res, 202, ToJson(*s_.runner_.Get(*id)));
      return;
    }
    if (!*wait) {
      SendJson(res, 202, ToJson(*s_.runner_.Get(*id)));
      return;
    }
    auto op = s_.runner_.Wait(*id, std::chrono::seconds(*timeout));
    if (op->ended_at.empty()) {
      SendJson(res, 202, ToJson(*op));
    } else if (op->status == "succeeded") {
      SendJson(res, op->success_status, ToJson(*op));
    } else {
      SendJson(res, Classify(op->error.code()).http_status,
               {{"error", ErrorJson(op->error, op->error_prefix)}, {"operation", ToJson(*op)}});
    }
  }

  // Checks ?wait and ?timeout before anything is queued.
  Status CheckWaitParams(const Req& req) {
    PGB_RETURN_IF_ERROR(QueryBool(req, "wait").status());
    return QueryInt(req, "timeout", 300, 1, s_.options_.max_wait.count()).status();
  }

  // Queues `body` as operation `kind` on `target` for `who`, serialized by `key`.
  void Submit(const Req& req, Res& res, const ApiServer::Principal& who, std::string kind,
              std::string target, std::string key, std::string prefix, int success,
              std::function<Result<json>()> body) {
    OperationRunner::Request r;
    r.kind = std::move(kind);
    r.target = std::move(target);
    r.key = std::move(key);
    r.error_prefix = std::move(prefix);
    r.token = who.name;
    r.success_status = success;
    r.body = std::move(body);
    Accepted(req, res, s_.runner_.Submit(std::move(r)));
  }

  ApiServer& s_;
  Engine& engine_;
};

namespace {

// Runs `handler` with errors answered: a Status from it becomes the error response, prefixed.
template <typename F>
void Guard(httplib::Response& res, const std::string& prefix, F&& handler) {
  Status s = handler();
  if (!s.ok()) SendError(res, s, prefix);
}

std::string Param(const httplib::Request& req, size_t i) { return req.matches[i].str(); }

}  // namespace

Result<json> ReadCache::Get(const std::string& key, std::chrono::milliseconds max_age,
                            const std::function<Result<json>()>& read) {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    Slot& slot = slots_[key];
    const bool current = slot.valid && slot.generation == generation_;
    if (current && (slot.loading || std::chrono::steady_clock::now() - slot.at <= max_age)) {
      return slot.value;  // fresh, or being refreshed by another request: this one is enough
    }
    if (slot.loading) {
      cv_.wait(lock);
      continue;
    }
    slot.loading = true;
    uint64_t generation = generation_;
    auto started = std::chrono::steady_clock::now();
    lock.unlock();
    Result<json> r = read();
    lock.lock();
    Slot& done = slots_[key];
    done.loading = false;
    done.valid = r.ok();
    if (r.ok()) {
      done.value = *r;
      done.at = started;
      done.generation = generation;
    }
    cv_.notify_all();
    return r;
  }
}

void ReadCache::Invalidate() {
  std::lock_guard<std::mutex> lock(mu_);
  ++generation_;
}

ApiServer::ApiServer(Engine& engine, ApiOptions options)
    : engine_(engine), options_(std::move(options)) {}

ApiServer::~ApiServer() { Stop(std::chrono::seconds(0)); }

std::string ApiServer::BaseUrl() const {
  std::string host = options_.host == "0.0.0.0" ? "127.0.0.1"
                     : options_.host == "::"    ? "::1"
                                                : options_.host;
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  return fmt::format("{}://{}:{}", tls_ ? "https" : "http", host, port_);
}

void ApiServer::Log(const std::string& line) {
  std::lock_guard<std::mutex> lock(mu_);
  log_.push_back(FormatTimestamp(SystemClock().Now()) + " " + line);
  while (log_.size() > kKeptLogLines) log_.pop_front();
}

void ApiServer::PollBranches(const std::vector<ProxyTarget>& targets) {
  std::map<std::string, std::string> now;
  for (const auto& t : targets) now[t.Ref()] = t.state;
  std::vector<json> changes;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (polled_) {
      for (const auto& [ref, state] : now) {
        auto it = branch_states_.find(ref);
        if (it == branch_states_.end() || it->second != state) {
          size_t slash = ref.find('/');
          changes.push_back({{"project", ref.substr(0, slash)},
                             {"branch", ref.substr(slash + 1)},
                             {"state", state},
                             {"change", it == branch_states_.end() ? "created" : "state"}});
        }
      }
      for (const auto& [ref, state] : branch_states_) {
        if (!now.count(ref)) {
          size_t slash = ref.find('/');
          changes.push_back({{"project", ref.substr(0, slash)},
                             {"branch", ref.substr(slash + 1)},
                             {"state", "deleted"},
                             {"change", "deleted"}});
        }
      }
    }
    branch_states_ = std::move(now);
    polled_ = true;
  }
  if (!changes.empty()) reads_.Invalidate();
  for (auto& c : changes) events_.Publish("branch", std::move(c));
}

Status ApiServer::Listen(const std::function<void(const std::string&)>& note) {
  const bool want_tls = options_.tls || !options_.tls_cert.empty();
  if (!IsLoopback(options_.host) && !want_tls && !options_.insecure_http) {
    return Status::InvalidArgument(fmt::format(
        "--api-listen {}: an address other than loopback needs TLS (--api-tls, or "
        "--api-tls-cert and --api-tls-key); --insecure-http serves plain HTTP there anyway",
        options_.host));
  }
  if (want_tls) {
    std::string cert = options_.tls_cert, key = options_.tls_key;
    if (cert.empty()) {
      PGB_ASSIGN_OR_RETURN(std::string dir, engine_.ProxyCertificate(options_.sni_domain));
      cert = JoinPath(dir, "server.crt");
      key = JoinPath(dir, "server.key");
    }
    auto ssl = std::make_unique<httplib::SSLServer>(cert.c_str(), key.c_str());
    if (!ssl->is_valid()) {
      return Status::InvalidArgument(
          fmt::format("API TLS: cannot use the certificate {} and key {}", cert, key));
    }
    http_ = std::move(ssl);
    tls_ = true;
  } else {
    http_ = std::make_unique<httplib::Server>();
  }
  size_t threads = options_.threads;
  http_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http_->set_payload_max_length(options_.max_body_bytes);
  http_->set_read_timeout(options_.read_timeout);
  http_->set_write_timeout(std::chrono::seconds(30));
  http_->set_keep_alive_timeout(5);
  Routes();
  // cpp-httplib listens with a backlog of 5: a burst of new connections overflows it and the
  // kernel drops SYNs, which clients resend after 1 s. Its socket is taken here (before bind)
  // and listened on again with the system's maximum once bound (listen(2) on a listening
  // socket only changes the backlog).
  int listen_fd = -1;
  http_->set_socket_options([&listen_fd](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    ::fcntl(sock, F_SETFD, FD_CLOEXEC);
    listen_fd = sock;
  });
  auto widen_backlog = [&] {
    if (listen_fd >= 0) ::listen(listen_fd, SOMAXCONN);
  };
  int tries = options_.port_given || options_.port == 0 ? 1 : kPortFallbacks + 1;
  for (int i = 0; i < tries; ++i) {
    int port = options_.port == 0 ? 0 : options_.port + i;
    if (port == 0) {
      port_ = http_->bind_to_any_port(options_.host);
      if (port_ > 0) {
        widen_backlog();
        return Status::OK();
      }
    } else if (http_->bind_to_port(options_.host, port)) {
      port_ = port;
      widen_backlog();
      return Status::OK();
    }
    if (i + 1 < tries) note(fmt::format("API port {} is in use; trying {}", port, port + 1));
  }
  return Status::Unavailable(
      fmt::format("cannot listen on {}:{} for the API", options_.host, options_.port));
}

std::vector<std::pair<std::string, std::string>> ApiServer::RouteTable() {
  auto saved = std::move(http_);
  http_ = std::make_unique<httplib::Server>();
  auto table = Routes();
  http_ = std::move(saved);
  return table;
}

void ApiServer::Start() {
  thread_ = std::thread([this] {
    http_->listen_after_bind();
    stopped_ = true;
  });
  // cpp-httplib's stop() does nothing until its loop runs: wait for it, so that a Stop() that
  // follows at once (a SIGTERM right after serve.json) is not lost and the join does not hang.
  for (int i = 0; i < 5000 && !http_->is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

void ApiServer::Stop(std::chrono::milliseconds grace) {
  if (!http_) return;
  events_.CloseAll();
  if (thread_.joinable()) {
    // Until its loop has seen the stop (it may not have started when Start gave up waiting).
    while (!http_->is_running() && !stopped_.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    http_->stop();
    thread_.join();
  }
  size_t left = runner_.Shutdown(grace);
  if (left > 0)
    spdlog::warn("serve: {} API operation(s) still running at exit; doctor finishes them", left);
  http_.reset();
}

std::vector<std::pair<std::string, std::string>> ApiServer::Routes() {
  auto h = std::make_shared<ApiHandlers>(*this);
  httplib::Server& srv = *http_;
  // Each route as api/openapi.json writes it: "{name}" is one path segment ("{id}" of a
  // snapshot: digits).
  std::vector<std::pair<std::string, std::string>> table;
  auto add = [&](const std::string& method, const std::string& path, httplib::Server::Handler fn) {
    table.emplace_back(method, path);
    std::string re;
    for (size_t i = 0; i < path.size(); ++i) {
      if (path[i] != '{') {
        re += path[i] == '.' ? std::string("\\.") : std::string(1, path[i]);
        continue;
      }
      size_t end = path.find('}', i);
      re += path.compare(i, end - i + 1, "{id}") == 0 && path.rfind("/api/v1/snapshots/", 0) == 0
                ? "(\\d{1,18})"
                : "([^/]+)";
      i = end;
    }
    if (method == "GET") srv.Get(re, std::move(fn));
    if (method == "POST") srv.Post(re, std::move(fn));
    if (method == "PUT") srv.Put(re, std::move(fn));
    if (method == "DELETE") srv.Delete(re, std::move(fn));
    if (method == "PATCH") srv.Patch(re, std::move(fn));
  };
  using Req = httplib::Request;
  using Res = httplib::Response;

  srv.set_error_handler([](const Req& req, Res& res) {
    if (!res.body.empty()) return;
    if (res.status == 413) {
      SendHttpError(res, 413, "payload_too_large", "request: the body is larger than 1 MiB");
    } else if (res.status == 404) {
      SendError(
          res,
          Status::NotFound(fmt::format("no route {} {}", req.method, QuoteForDisplay(req.path))),
          "request");
    } else if (res.status == 400) {
      SendError(res, Status::InvalidArgument("malformed HTTP request"), "request");
    }
  });
  srv.set_exception_handler([](const Req&, Res& res, std::exception_ptr ep) {
    std::string what = "unknown";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    SendError(res, Status::Internal(what), "request");
  });
  srv.set_post_routing_handler([](const Req& req, Res& res) {
    res.set_header("X-Content-Type-Options", "nosniff");
    res.set_header("X-Frame-Options", "DENY");
    res.set_header("Referrer-Policy", "no-referrer");
    if (req.path.rfind("/api/", 0) == 0) {
      res.set_header("Cache-Control", "no-store");
    } else {
      res.set_header("Content-Security-Policy",
                     "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                     "frame-ancestors 'none'; base-uri 'none'; form-action 'self'");
    }
  });

  // --- No token needed ---
  add("GET", "/api/v1/health", [](const Req&, Res& res) {
    SendJson(res, 200, {{"status", "ok"}, {"version", PGBRANCH_VERSION}});
  });
  add("GET", "/api/v1/openapi.json", [](const Req&, Res& res) {
    res.status = 200;
    res.set_content(kOpenApiDocument, "application/json");
  });

  // --- Session (the dashboard's login) ---
  add("POST", "/api/v1/session", [this, h](const Req& req, Res& res) {
    Guard(res, "log in", [&]() -> Status {
      PGB_ASSIGN_OR_RETURN(json body, BodyObject(req));
      PGB_RETURN_IF_ERROR(OnlyKeys(body, {"token"}));
      PGB_ASSIGN_OR_RETURN(auto token, OptString(body, "token"));
      if (!token) return Status::InvalidArgument("\"token\" is required");
      // Counted with the bearer failures: the same guessing, another door.
      httplib::Request probe;
      probe.remote_addr = req.remote_addr;
      probe.method = "GET";
      probe.headers.emplace("Authorization", "Bearer " + *token);
      auto who = h->Auth(probe, res, "read");
      if (!who) return Status::OK();  // answered
      Session session{*token, RandomHex(32), std::chrono::steady_clock::now() + kSessionLifetime};
      std::string id = RandomHex(32);
      {
        std::lock_guard<std::mutex> lock(mu_);
        sessions_[id] = session;
      }
      res.set_header("Set-Cookie", fmt::format("{}={}; Path=/; HttpOnly; SameSite=Strict{}",
                                               kSessionCookie, id, tls_ ? "; Secure" : ""));
      SendJson(res, 200,
               {{"name", who->name}, {"scope", who->scope}, {"csrf_token", session.csrf}});
      return Status::OK();
    });
  });
  add("GET", "/api/v1/session", [this, h](const Req& req, Res& res) {
    auto who = h->Auth(req, res, "read");
    if (!who) return;
    if (!who->by_cookie) {
      SendJson(res, 200, {{"name", who->name}, {"scope", who->scope}, {"csrf_token", nullptr}});
      return;
    }
    std::lock_guard<std::mutex> lock(mu_);
    auto it = sessions_.find(CookieValue(req, kSessionCookie));
    SendJson(res, 200,
             {{"name", who->name},
              {"scope", who->scope},
              {"csrf_token", it == sessions_.end() ? json() : json(it->second.csrf)}});
  });
  add("DELETE", "/api/v1/session", [this, h](const Req& req, Res& res) {
    auto who = h->Auth(req, res, "read");
    if (!who) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      sessions_.erase(CookieValue(req, kSessionCookie));
    }
    res.set_header("Set-Cookie", fmt::format("{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
                                             kSessionCookie));
    res.status = 204;
  });

  // --- Reads ---
  auto read = [h](const char* prefix, std::function<Result<json>(const Req&)> fn) {
    return [h, prefix, fn](const Req& req, Res& res) {
      if (!h->Auth(req, res, "read")) return;
      Guard(res, prefix, [&]() -> Status {
        PGB_ASSIGN_OR_RETURN(json body, fn(req));
        SendJson(res, 200, body);
        return Status::OK();
      });
    };
  };
  Engine& e = engine_;
  add("GET", "/api/v1/status", read("status", [this, &e](const Req&) -> Result<json> {
        return reads_.Get("status", kCachedReadAge, [&e]() -> Result<json> {
          PGB_ASSIGN_OR_RETURN(StatusInfo s, e.GetStatus());
          return ToJson(s);
        });
      }));
  add("GET", "/api/v1/projects", read("project list", [&e](const Req&) -> Result<json> {
        PGB_ASSIGN_OR_RETURN(auto projects, e.ListProjects());
        return ToJsonArray(projects);
      }));
  add("GET", "/api/v1/projects/{p}", [h, &e](const Req& req, Res& res) {
    if (!h->Auth(req, res, "read")) return;
    std::string p = Param(req, 1);
    Guard(res, "project get " + Named(p), [&]() -> Status {
      PGB_ASSIGN_OR_RETURN(ProjectInfo info, e.GetProject(p));
      PGB_ASSIGN_OR_RETURN(auto branches, e.ListBranches(p, SizeMode::kNone));
      json j = ToJson(info);
      j["branches"] = ToJsonArray(branches, UriForm::kMasked);
      SendJson(res, 200, j);
      return Status::OK();
    });
  });
  add("GET", "/api/v1/projects/{p}/branches", [this, h, &e](const Req& req, Res& res) {
    if (!h->Auth(req, res, "read")) return;
    std::string p = Param(req, 1);
    Guard(res, "branch list " + Named(p), [&]() -> Status {
      // ?sizes=false: none; fresh: measured now; otherwise the last measurement.
      PGB_ASSIGN_OR_RETURN(SizeMode sizes, [&]() -> Result<SizeMode> {
        if (!req.has_param("sizes")) return SizeMode::kCached;
        if (req.get_param_value("sizes") == "fresh") return SizeMode::kMeasure;
        Result<bool> with = QueryBool(req, "sizes");
        if (!with.ok()) return Status::InvalidArgument("?sizes= must be true, false or fresh");
        return *with ? SizeMode::kCached : SizeMode::kNone;
      }());
      auto list_now = [&]() -> Result<json> {
        PGB_RETURN_IF_ERROR(e.GetProject(p).status());
        PGB_ASSIGN_OR_RETURN(auto branches, e.ListBranches(p, sizes));
        return ToJsonArray(branches, UriForm::kMasked);
      };
      std::string key = fmt::format("branches {} {}", p, static_cast<int>(sizes));
      PGB_ASSIGN_OR_RETURN(json list, sizes == SizeMode::kMeasure
                                          ? list_now()
                                          : reads_.Get(key, kCachedReadAge, list_now));
      std::vector<std::string> wanted = LabelParams(req);
      if (!wanted.empty()) {  // ?label=key=value&label=key: the branches that carry all of them
        PGB_ASSIGN_OR_RETURN(LabelFilter filter, ParseLabelFilter(wanted));
        json kept = json::array();
        for (const auto& b : list) {
          if (filter.Matches(b["labels"].get<std::map<std::string, std::string>>())) {
            kept.push_back(b);
          }
        }
        list = std::move(kept);
      }
      SendJson(res, 200, list);
      return Status::OK();
    });
  });
  // One branch: with its password (a single branch's GET is how a client learns it).
  add("GET", "/api/v1/projects/{p}/branches/{b}", [h, &e](const Req& req, Res& res) {
    if (!h->Auth(req, res, "read")) return;
    std::string text = Param(req, 1) + "/" + Param(req, 2);
    Guard(res, "branch get " + Named(text), [&]() -> Status {
      PGB_ASSIGN_OR_RETURN(BranchRef ref, ParseBranchRef(text));
      PGB_ASSIGN_OR_RETURN(BranchInfo b, e.GetBranch(ref));
      auto limit = e.BranchSpaceLimit(ref);
      json j = ToJson(b, limit.ok() ? limit->limit_bytes : std::nullopt);
      auto proxy = e.ProxyUrlOf(ref, false);
      j["proxy_uri"] = proxy.ok() ? json(proxy->uri) : json();
      SendJson(res, 200, j);
      return Status::OK();
    });
  });
  auto branch_read = [h, &e](const char* verb,
                             std::function<Result<json>(const Req&, const BranchRef&)> fn) {
    return [h, &e, verb, fn](const Req& req, Res& res) {
      if (!h->Auth(req, res, "read")) return;
      std::string text = Param(req, 1) + "/" + Param(req, 2);
      Guard(res, fmt::format("{} {}", verb, Named(text)), [&]() -> Status {
        PGB_ASSIGN_OR_RETURN(BranchRef ref, ParseBranchRef(text));
        PGB_RETURN_IF_ERROR(e.GetBranch(ref).status());
        PGB_ASSIGN_OR_RETURN(json body, fn(req, ref));
        SendJson(res, 200, body);
        return Status::OK();
      });
    };
  };
  add("GET", "/api/v1/projects/{p}/branches/{b}/snapshots",
      branch_read("snapshot list", [&e](const Req&, const BranchRef& ref) -> Result<json> {
        PGB_ASSIGN_OR_RETURN(auto snaps, e.ListSnapshots(ref));
        return ToJsonArray(snaps);
      }));
  add("GET", "/api/v1/projects/{p}/branches/{b}/history",
      branch_read("log", [&e](const Req&, const BranchRef& ref) -> Result<json> {
        PGB_ASSIGN_OR_RETURN(auto log, e.BranchLog(ref));
        return ToJsonArray(log);
      }));
  add("GET", "/api/v1/projects/{p}/branches/{b}/logs",
      branch_read("branch logs", [&e](const Req& req, const BranchRef& ref) -> Result<json> {
        PGB_ASSIGN_OR_RETURN(int64_t tail, QueryInt(req, "tail", 200, 1, 10000));
        PGB_ASSIGN_OR_RETURN(std::string text, e.BranchLogs(ref, static_cast<int>(tail)));
        return json{{"branch", ref.ToString()}, {"lines", SplitLines(text)}};
      }));
  add("GET", "/api/v1/projects/{p}/branches/{b}/wal",
      branch_read("wal info", [&e](const Req&, const BranchRef& ref) -> Result<json> {
        PGB_ASSIGN_OR_RETURN(auto infos, e.WalInfos(ref));
        if (infos.empty()) return Status::NotFound("no WAL archive");
        return ToJson(infos[0]);
      }));
  add("GET", "/api/v1/snapshots", read("snapshot list", [&e](const Req&) -> Result<json> {
        PGB_ASSIGN_OR_RETURN(auto snaps, e.ListSnapshots(std::nullopt));
        return ToJsonArray(snaps);
      }));
  add("GET", "/api/v1/snapshots/{id}", [h, &e](const Req& req, Res& res) {
    if (!h->Auth(req, res, "read")) return;
    std::string id = Param(req, 1);
    Guard(res, "snapshot get " + id, [&]() -> Status {
      PGB_ASSIGN_OR_RETURN(SnapshotInfo s, e.GetSnapshot(std::stoll(id)));
      SendJson(res, 200, ToJson(s));
      return Status::OK();
    });
  });
  add("GET", "/api/v1/wal", read("wal info", [&e](const Req&) -> Result<json> {
        PGB_ASSIGN_OR_RETURN(auto infos, e.WalInfos(std::nullopt));
        return ToJsonArray(infos);
      }));
  add("GET", "/api/v1/audit", read("audit", [&e](const Req& req) -> Result<json> {
        PGB_ASSIGN_OR_RETURN(int64_t limit, QueryInt(req, "limit", 50, 1, 100000));
        PGB_ASSIGN_OR_RETURN(auto rows, e.Audit(static_cast<int>(limit)));
        return ToJsonArray(rows);
      }));
  add("GET", "/api/v1/doctor", read("doctor", [&e](const Req&) -> Result<json> {
        PGB_ASSIGN_OR_RETURN(auto findings, e.Doctor(false));
        return ToJsonArray(findings);
      }));
  add("GET", "/api/v1/operations", read("operation list", [this](const Req& req) -> Result<json> {
        PGB_ASSIGN_OR_RETURN(int64_t limit, QueryInt(req, "limit", 100, 1, 1000));
        json arr = json::array();
        for (const auto& op : runner_.List(static_cast<size_t>(limit))) {
          arr.push_back(ToJson(op, /*secrets=*/false));
        }
        return arr;
      }));
  add("GET", "/api/v1/operations/{id}", [this, h](const Req& req, Res& res) {
    if (!h->Auth(req, res, "read")) return;
    std::string id = Param(req, 1);
    auto op = runner_.Get(id);
    if (!op) {
      SendError(res, Status::NotFound("no such operation"), "operation get " + Named(id));
      return;
    }
    SendJson(res, 200, ToJson(*op));
  });
  add("GET", "/api/v1/serve/log", read("serve log", [this](const Req& req) -> Result<json> {
        PGB_ASSIGN_OR_RETURN(int64_t tail, QueryInt(req, "tail", 200, 1, 1000));
        std::lock_guard<std::mutex> lock(mu_);
        size_t n = std::min<size_t>(static_cast<size_t>(tail), log_.size());
        return json{{"lines", std::vector<std::string>(log_.end() - n, log_.end())}};
      }));

  // Server-sent events: every operation change and branch change from the subscription on.
  add("GET", "/api/v1/events", [this, h](const Req& req, Res& res) {
    if (!h->Auth(req, res, "read")) return;
    auto sub = events_.Subscribe();
    auto hello = std::make_shared<bool>(true);
    res.set_header("X-Accel-Buffering", "no");
    res.set_chunked_content_provider(
        "text/event-stream",
        [sub, hello](size_t, httplib::DataSink& sink) {
          if (*hello) {
            *hello = false;
            std::string first =
                fmt::format("retry: 2000\nevent: hello\ndata: {}\n\n",
                            json{{"server_time", FormatTimestamp(SystemClock().Now())}}.dump());
            return sink.write(first.data(), first.size());
          }
          auto ev = sub->Next(std::chrono::seconds(15));
          if (sub->closed() && !ev) {
            sink.done();
            return false;
          }
          if (!sink.is_writable()) return false;
          std::string text =
              ev ? fmt::format("id: {}\nevent: {}\ndata: {}\n\n", ev->seq, ev->name,
                               ev->data.dump(-1, ' ', false, json::error_handler_t::replace))
                 : std::string(": keep-alive\n\n");
          return sink.write(text.data(), text.size());
        },
        [this, sub](bool) { events_.Unsubscribe(sub); });
  });

  // --- Mutations: checked here, then run as operations ---
  // POST /api/v1/projects
  add("POST", "/api/v1/projects", [h, &e](const Req& req, Res& res) {
    auto who = h->Auth(req, res, "write");
    if (!who) return;
    Guard(res, "project create", [&]() -> Status {
      PGB_RETURN_IF_ERROR(h->CheckWaitParams(req));
      PGB_ASSIGN_OR_RETURN(json body, BodyObject(req));
      PGB_RETURN_IF_ERROR(OnlyKeys(body, {"name", "runtime", "image", "pg_version", "port"}));
      PGB_ASSIGN_OR_RETURN(auto name, OptString(body, "name"));
      if (!name) return Status::InvalidArgument("\"name\" is required");
      PGB_RETURN_IF_ERROR(ValidateName("project", *name));
      ProjectCreateOptions o;
      PGB_ASSIGN_OR_RETURN(auto runtime, OptString(body, "runtime"));
      if (runtime) {
        if (*runtime != "native" && *runtime != "docker" && *runtime != "podman") {
          return Status::InvalidArgument("\"runtime\" must be native, docker or podman");
        }
        o.runtime = *runtime;
      }
      PGB_ASSIGN_OR_RETURN(auto image, OptString(body, "image"));
      if (image) o.image = *image;
      PGB_ASSIGN_OR_RETURN(auto version, OptInt(body, "pg_version", 10, 99));
      if (version) o.pg_version = static_cast<int>(*version);
      PGB_ASSIGN_OR_RETURN(auto port, OptInt(body, "port", 1, 65535));
      if (port) o.port = static_cast<int>(*port);
      std::string n = *name;
      h->Submit(req, res, *who, "project.create", n, "project:" + n, "project create " + n, 201,
                [&e, n, o]() -> Result<json> {
                  PGB_ASSIGN_OR_RETURN(BranchInfo main, e.CreateProject(n, o));
                  return ToJson(main, UriForm::kWithPassword);
                });
      return Status::OK();
    });
  });
  // POST /api/v1/projects/{p}/refresh: files and URIs as the daemon's host sees them.
  add("POST", "/api/v1/projects/{p}/refresh", [h, &e](const Req& req, Res& res) {
    auto who = h->Auth(req, res, "write");
    if (!who) return;
    std::string p = Param(req, 1);
    std::string prefix = "project refresh " + Named(p);
    Guard(res, prefix, [&]() -> Status {
      PGB_RETURN_IF_ERROR(h->CheckWaitParams(req));
      PGB_ASSIGN_OR_RETURN(json body, BodyObject(req));
      PGB_RETURN_IF_ERROR(
          OnlyKeys(body, {"from_dump", "from_server", "logical", "jobs", "transforms"}));
      ProjectCreateOptions o;
      PGB_RETURN_IF_ERROR(ReadDataSource(body, &o));
      PGB_RETURN_IF_ERROR(e.GetProject(p).status());
      h->Submit(req, res, *who, "project.refresh", p, "project:" + p, prefix, 200,
                [&e, p, o]() -> Result<json> {
                  PGB_ASSIGN_OR_RETURN(BranchInfo main, e.RefreshProject(p, o));
                  return ToJson(main, UriForm::kWithPassword);
                });
      return Status::OK();
    });
  });
  add("DELETE", "/api/v1/projects/{p}", [h, &e](const Req& req, Res& res) {
    auto who = h->Auth(req, res, "write");
    if (!who) return;
    std::string p = Param(req, 1);
    std::string prefix = "project delete " + Named(p);
    Guard(res, prefix, [&]() -> Status {
      PGB_RETURN_IF_ERROR(h->CheckWaitParams(req));
      PGB_ASSIGN_OR_RETURN(bool force, QueryBool(req, "force"));
      PGB_RETURN_IF_ERROR(e.GetProject(p).status());
      h->Submit(req, res, *who, "project.delete", p, "project:" + p, prefix, 200,
                [&e, p, force]() -> Result<json> {
                  PGB_RETURN_IF_ERROR(e.DeleteProject(p, force));
                  return json();  // the operation names what went
                });
      return Status::OK();
    });
  });
  add("POST", "/api/v1/projects/{p}/rename", [h, &e](const Req& req, Res& res) {
    auto who = h->Auth(req, res, "write");
    if (!who) return;
    std::string p = Param(req, 1);
    std::string prefix = "project rename " + Named(p);
    Guard(res, prefix, [&]() -> Status {
      PGB_RETURN_IF_ERROR(h->CheckWaitParams(req));
      PGB_ASSIGN_OR_RETURN(json body, BodyObject(req));
      PGB_ASSIGN_OR_RETURN(std::string n, NewName(body, "project"));
      PGB_RETURN_IF_ERROR(e.GetProject(p).status());
      h->Submit(req, res, *who, "project.rename", p, "project:" + p, prefix, 200,
                [&e, p, n]() -> Result<json> {
                  PGB_ASSIGN_OR_RETURN(ProjectInfo info, e.RenameProject(p, n));
                  return ToJson(info);
                });
      return Status::OK();
    });
  });

  // Branch create (POST with a name; PUT is idempotent: the branch if it exists).
  auto create_branch = [h, &e](const Req& req, Res& res, bool put) {
    auto who = h->Auth(req, res, "write");
    if (!who) return;
    std::string p = Param(req, 1);
    std::string prefix = "branch create " + Named(p);
    Guard(res, prefix, [&]() -> Status {
      PGB_RETURN_IF_ERROR(h->CheckWaitParams(req));
      PGB_ASSIGN_OR_RETURN(json body, BodyObject(req));
      std::string name;
      if (put) {
        PGB_RETURN_IF_ERROR(
            OnlyKeys(body, {"parent", "snapshot", "pitr", "fast", "port", "max_size_bytes", "ttl_s",
                            "idle_ttl_s", "protect", "labels"}));
        name = Param(req, 2);
      } else {
        PGB_RETURN_IF_ERROR(
            OnlyKeys(body, {"name", "parent", "snapshot", "pitr", "fast", "port", "max_size_bytes",
                            "ttl_s", "idle_ttl_s", "protect", "labels"}));
        PGB_ASSIGN_OR_RETURN(auto n, OptString(body, "name"));
        if (!n) return Status::InvalidArgument("\"name\" is required");
        name = *n;
      }
      PGB_ASSIGN_OR_RETURN(BranchRef ref, ParseBranchRef(p + "/" + name));
      prefix = "branch create " + ref.ToString();
      BranchCreateOptions o;
      PGB_ASSIGN_OR_RETURN(auto parent, OptString(body, "parent"));
      if (parent) {
        std::string full = parent->find('/') == std::string::npos ? p + "/" + *parent : *parent;
        PGB_ASSIGN_OR_RETURN(BranchRef pr, ParseBranchRef(full));
        if (pr.project != p) {
          return Status::InvalidArgument(
              fmt::format("the parent {} is in another project than {}", full, p));
        }
        o.parent = pr.ToString();
      }
      PGB_ASSIGN_OR_RETURN(o.snapshot, OptInt(body, "snapshot", 1, INT64_MAX));
      PGB_ASSIGN_OR_RETURN(o.pitr, OptString(body, "pitr"));
      PGB_ASSIGN_OR_RETURN(o.fast, OptBool(body, "fast"));
      PGB_ASSIGN_OR_RETURN(auto port, OptInt(body, "port", 1, 65535));
      if (port) o.port = static_cast<int>(*port);
      PGB_ASSIGN_OR_RETURN(auto max, OptInt(body, "max_size_bytes", 1, INT64_MAX));
      if (max) o.max_size_bytes = static_cast<uint64_t>(*max);
      PGB_ASSIGN_OR_RETURN(o.ttl_s, OptInt(body, "ttl_s", 1, kMaxLifetime));
      PGB_ASSIGN_OR_RETURN(o.idle_ttl_s, OptInt(body, "idle_ttl_s", 1, kMaxLifetime));
      PGB_ASSIGN_OR_RETURN(o.protect, OptBool(body, "protect"));
      PGB_ASSIGN_OR_RETURN(auto labels, OptLabels(body, "labels", /*null_removes=*/false));
      for (const auto& [k, v] : labels) o.labels[k] = *v;
      if (o.snapshot && o.pitr)
        return Status::InvalidArgument("give \"snapshot\" or \"pitr\", not both");
      PGB_RETURN_IF_ERROR(e.GetProject(p).status());
      if (put) {
        auto existing = e.GetBranch(ref);
        if (existing.ok()) {
          SendJson(res, 200, ToJson(*existing, UriForm::kWithPassword));
          return Status::OK();
        }
        if (!existing.status().Is(StatusCode::kNotFound)) return existing.status();
      }
      h->Submit(req, res, *who, "branch.create", ref.ToString(), ref.ToString(), prefix, 201,
                [&e, ref, o, put]() -> Result<json> {
                  if (put) {  // another PUT may have made it meanwhile: then it is the answer
                    auto existing = e.GetBranch(ref);
                    if (existing.ok()) return ToJson(*existing, UriForm::kWithPassword);
                  }
                  PGB_ASSIGN_OR_RETURN(BranchInfo b, e.CreateBranch(ref, o));
                  return ToJson(b, UriForm::kWithPassword);
                });
      return Status::OK();
    });
  };
  add("POST", "/api/v1/projects/{p}/branches",
      [create_branch](const Req& req, Res& res) { create_branch(req, res, false); });
  add("PUT", "/api/v1/projects/{p}/branches/{b}",
      [create_branch](const Req& req, Res& res) { create_branch(req, res, true); });

  // The branch actions: POST /api/v1/projects/{p}/branches/{b}/<verb> and DELETE.
  // `fn` checks the body (keys, types) and returns the work.
  using Work = std::function<Result<json>()>;
  auto branch_action =
      [h, &e](const char* verb, const char* kind, int success,
              std::function<Result<Work>(const Req&, const json&, const BranchRef&)> fn) {
        return [h, &e, verb, kind, success, fn](const Req& req, Res& res) {
          auto who = h->Auth(req, res, "write");
          if (!who) return;
          std::string text = Param(req, 1) + "/" + Param(req, 2);
          std::string prefix = fmt::format("{} {}", verb, Named(text));
          Guard(res, prefix, [&]() -> Status {
            PGB_RETURN_IF_ERROR(h->CheckWaitParams(req));
            PGB_ASSIGN_OR_RETURN(BranchRef ref, ParseBranchRef(text));
            json body = json::object();
            if (req.method != "DELETE") {
              PGB_ASSIGN_OR_RETURN(body, BodyObject(req));
            }
            PGB_ASSIGN_OR_RETURN(Work work, fn(req, body, ref));
            PGB_RETURN_IF_ERROR(e.GetBranch(ref).status());
            h->Submit(req, res, *who, kind, ref.ToString(), ref.ToString(), prefix, success,
                      std::move(work));
            return Status::OK();
          });
        };
      };
  auto branch_result = [](std::function<Result<BranchInfo>()> f) -> Work {
    return [f]() -> Result<json> {
      PGB_ASSIGN_OR_RETURN(BranchInfo b, f());
      return ToJson(b, UriForm::kWithPassword);
    };
  };
  add("DELETE", "/api/v1/projects/{p}/branches/{b}",
      branch_action("branch delete", "branch.delete", 200,
                    [&e](const Req& req, const json&, const BranchRef& ref) -> Result<Work> {
                      PGB_ASSIGN_OR_RETURN(bool recursive, QueryBool(req, "recursive"));
                      PGB_ASSIGN_OR_RETURN(bool force, QueryBool(req, "force"));
                      return Work([&e, ref, recursive, force]() -> Result<json> {
                        PGB_RETURN_IF_ERROR(e.DeleteBranch(ref, recursive, force));
                        return json();
                      });
                    }));
  add("POST", "/api/v1/projects/{p}/branches/{b}/reset",
      branch_action(
          "branch reset", "branch.reset", 200,
          [&e, branch_result](const Req&, const json& body, const BranchRef& ref) -> Result<Work> {
            PGB_RETURN_IF_ERROR(OnlyKeys(body, {"snapshot", "fast", "force"}));
            ResetOptions o;
            PGB_ASSIGN_OR_RETURN(o.snapshot, OptInt(body, "snapshot", 1, INT64_MAX));
            PGB_ASSIGN_OR_RETURN(o.fast, OptBool(body, "fast"));
            PGB_ASSIGN_OR_RETURN(o.force, OptBool(body, "force"));
            return branch_result([&e, ref, o] { return e.ResetBranch(ref, o); });
          }));
  add("POST", "/api/v1/projects/{p}/branches/{b}/rebase",
      branch_action(
          "branch rebase", "branch.reset", 200,
          [&e, branch_result](const Req&, const json& body, const BranchRef& ref) -> Result<Work> {
            PGB_RETURN_IF_ERROR(OnlyKeys(body, {"fast", "force"}));
            ResetOptions o;
            o.rebase = true;
            PGB_ASSIGN_OR_RETURN(o.fast, OptBool(body, "fast"));
            PGB_ASSIGN_OR_RETURN(o.force, OptBool(body, "force"));
            return branch_result([&e, ref, o] { return e.ResetBranch(ref, o); });
          }));
  struct Simple {
    const char* path;
    const char* verb;
    const char* kind;
    Result<BranchInfo> (Engine::*fn)(const BranchRef&);
  };
  for (const Simple& a :
       {Simple{"start", "branch start", "branch.start", &Engine::StartBranch},
        Simple{"stop", "branch stop", "branch.stop", &Engine::StopBranch},
        Simple{"suspend", "branch suspend", "branch.suspend", &Engine::SuspendBranch},
        Simple{"resume", "branch resume", "branch.resume", &Engine::StartBranch}}) {
    auto fn = a.fn;
    add("POST", fmt::format("/api/v1/projects/{{p}}/branches/{{b}}/{}", a.path),
        branch_action(a.verb, a.kind, 200,
                      [&e, fn, branch_result](const Req&, const json& body,
                                              const BranchRef& ref) -> Result<Work> {
                        PGB_RETURN_IF_ERROR(OnlyKeys(body, {}));
                        return branch_result([&e, ref, fn] { return (e.*fn)(ref); });
                      }));
  }
  add("POST", "/api/v1/projects/{p}/branches/{b}/rename",
      branch_action(
          "branch rename", "branch.rename", 200,
          [&e, branch_result](const Req&, const json& body, const BranchRef& ref) -> Result<Work> {
            PGB_ASSIGN_OR_RETURN(std::string n, NewName(body, "branch"));
            return branch_result([&e, ref, n] { return e.RenameBranch(ref, n); });
          }));
  for (bool protect : {true, false}) {
    add("POST",
        fmt::format("/api/v1/projects/{{p}}/branches/{{b}}/{}", protect ? "protect" : "unprotect"),
        branch_action(protect ? "branch protect" : "branch unprotect",
                      protect ? "branch.protect" : "branch.unprotect", 200,
                      [&e, branch_result, protect](const Req&, const json& body,
                                                   const BranchRef& ref) -> Result<Work> {
                        PGB_RETURN_IF_ERROR(OnlyKeys(body, {}));
                        return branch_result(
                            [&e, ref, protect] { return e.ProtectBranch(ref, protect); });
                      }));
  }
  // `branch set`: TTL, idle TTL and labels ({"labels": {"k": "v", "gone": null}}).
  add("PATCH", "/api/v1/projects/{p}/branches/{b}",
      branch_action(
          "branch set", "branch.set", 200,
          [&e, branch_result](const Req&, const json& body, const BranchRef& ref) -> Result<Work> {
            PGB_RETURN_IF_ERROR(OnlyKeys(body, {"ttl_s", "idle_ttl_s", "no_ttl", "labels"}));
            BranchChanges c;
            PGB_ASSIGN_OR_RETURN(c.ttl_s, OptInt(body, "ttl_s", 1, kMaxLifetime));
            PGB_ASSIGN_OR_RETURN(c.idle_ttl_s, OptInt(body, "idle_ttl_s", 1, kMaxLifetime));
            PGB_ASSIGN_OR_RETURN(c.clear_ttl, OptBool(body, "no_ttl"));
            PGB_ASSIGN_OR_RETURN(auto labels, OptLabels(body, "labels", /*null_removes=*/true));
            for (const auto& [k, v] : labels) {
              if (v) {
                c.add_labels[k] = *v;
              } else {
                c.remove_labels.push_back(k);
              }
            }
            return branch_result([&e, ref, c] { return e.SetBranch(ref, c); });
          }));
  add("POST", "/api/v1/projects/{p}/branches/{b}/use",
      branch_action("use", "branch.use", 200,
                    [&e](const Req&, const json& body, const BranchRef& ref) -> Result<Work> {
                      PGB_RETURN_IF_ERROR(OnlyKeys(body, {"terminate"}));
                      PGB_ASSIGN_OR_RETURN(bool terminate, OptBool(body, "terminate"));
                      return Work([&e, ref, terminate]() -> Result<json> {
                        PGB_ASSIGN_OR_RETURN(std::string before, e.UseBranch(ref, terminate));
                        return json{{"project", ref.project},
                                    {"branch", ref.branch},
                                    {"previous", before.empty() ? json() : json(before)}};
                      });
                    }));
  add("POST", "/api/v1/projects/{p}/branches/{b}/snapshots",
      branch_action("snapshot create", "snapshot.create", 201,
                    [&e](const Req&, const json& body, const BranchRef& ref) -> Result<Work> {
                      PGB_RETURN_IF_ERROR(OnlyKeys(body, {"label", "fast"}));
                      PGB_ASSIGN_OR_RETURN(auto label, OptString(body, "label"));
                      PGB_ASSIGN_OR_RETURN(bool fast, OptBool(body, "fast"));
                      std::string l = label.value_or("");
                      return Work([&e, ref, l, fast]() -> Result<json> {
                        PGB_ASSIGN_OR_RETURN(SnapshotInfo s, e.CreateSnapshot(ref, l, fast));
                        return ToJson(s);
                      });
                    }));
  add("POST", "/api/v1/projects/{p}/branches/{b}/wal/cleanup",
      branch_action("wal cleanup", "wal.cleanup", 200,
                    [&e](const Req&, const json& body, const BranchRef& ref) -> Result<Work> {
                      PGB_RETURN_IF_ERROR(OnlyKeys(body, {"days", "dry_run"}));
                      PGB_ASSIGN_OR_RETURN(auto days, OptInt(body, "days", 0, 36500));
                      if (!days) return Status::InvalidArgument("\"days\" is required");
                      PGB_ASSIGN_OR_RETURN(bool dry, OptBool(body, "dry_run"));
                      int d = static_cast<int>(*days);
                      return Work([&e, ref, d, dry]() -> Result<json> {
                        PGB_ASSIGN_OR_RETURN(WalCleanupReport r, e.CleanupWal(ref, d, dry));
                        return ToJson(r, dry);
                      });
                    }));

  // Snapshots by id, and cleanups.
  add("DELETE", "/api/v1/snapshots/{id}", [h, &e](const Req& req, Res& res) {
    auto who = h->Auth(req, res, "write");
    if (!who) return;
    std::string text = Param(req, 1);
    std::string prefix = "snapshot delete " + text;
    Guard(res, prefix, [&]() -> Status {
      PGB_RETURN_IF_ERROR(h->CheckWaitParams(req));
      PGB_ASSIGN_OR_RETURN(bool recursive, QueryBool(req, "recursive"));
      int64_t id = std::stoll(text);
      PGB_ASSIGN_OR_RETURN(SnapshotInfo snap, e.GetSnapshot(id));
      h->Submit(req, res, *who, "snapshot.delete", "snapshot " + text, snap.branch, prefix, 200,
                [&e, id, recursive]() -> Result<json> {
                  PGB_RETURN_IF_ERROR(e.DeleteSnapshot(id, recursive));
                  return json();
                });
      return Status::OK();
    });
  });
  add("POST", "/api/v1/snapshots/cleanup", [h, &e](const Req& req, Res& res) {
    auto who = h->Auth(req, res, "write");
    if (!who) return;
    Guard(res, "snapshot cleanup", [&]() -> Status {
      PGB_RETURN_IF_ERROR(h->CheckWaitParams(req));
      PGB_ASSIGN_OR_RETURN(json body, BodyObject(req));
      PGB_RETURN_IF_ERROR(OnlyKeys(body, {"days", "dry_run", "branch"}));
      PGB_ASSIGN_OR_RETURN(auto days, OptInt(body, "days", 0, 36500));
      if (!days) return Status::InvalidArgument("\"days\" is required");
      PGB_ASSIGN_OR_RETURN(bool dry, OptBool(body, "dry_run"));
      PGB_ASSIGN_OR_RETURN(auto branch, OptString(body, "branch"));
      std::optional<BranchRef> ref;
      if (branch) {
        PGB_ASSIGN_OR_RETURN(ref, ParseBranchRef(*branch));
        PGB_RETURN_IF_ERROR(e.GetBranch(*ref).status());
      }
      int d = static_cast<int>(*days);
      std::string target = ref ? ref->ToString() : "all snapshots";
      h->Submit(req, res, *who, "snapshot.cleanup", target, ref ? ref->ToString() : "snapshots",
                "snapshot cleanup", 200, [&e, ref, d, dry]() -> Result<json> {
                  PGB_ASSIGN_OR_RETURN(CleanupReport r, e.CleanupSnapshots(ref, d, dry));
                  return ToJson(r, dry);
                });
      return Status::OK();
    });
  });
  add("POST", "/api/v1/doctor", [h, &e](const Req& req, Res& res) {
    json body;
    {
      auto parsed = BodyObject(req);
      if (!parsed.ok()) {
        if (h->Auth(req, res, "write")) SendError(res, parsed.status(), "doctor");
        return;
      }
      body = *parsed;
    }
    bool fix = body.contains("fix") && body["fix"].is_boolean() && body["fix"].get<bool>();
    auto who = h->Auth(req, res, fix ? "admin" : "write");
    if (!who) return;
    Guard(res, "doctor", [&]() -> Status {
      PGB_RETURN_IF_ERROR(h->CheckWaitParams(req));
      PGB_RETURN_IF_ERROR(OnlyKeys(body, {"fix"}));
      PGB_RETURN_IF_ERROR(OptBool(body, "fix").status());
      h->Submit(req, res, *who, "doctor", fix ? "doctor --fix" : "doctor", "doctor", "doctor", 200,
                [&e, fix]() -> Result<json> {
                  PGB_ASSIGN_OR_RETURN(auto findings, e.Doctor(fix));
                  return ToJsonArray(findings);
                });
      return Status::OK();
    });
  });

  // --- Tokens (admin) ---
  add("GET", "/api/v1/tokens", [h, &e](const Req& req, Res& res) {
    if (!h->Auth(req, res, "admin")) return;
    Guard(res, "token list", [&]() -> Status {
      PGB_ASSIGN_OR_RETURN(auto tokens, e.ListTokens());
      SendJson(res, 200, ToJsonArray(tokens));
      return Status::OK();
    });
  });
  add("POST", "/api/v1/tokens", [h, &e](const Req& req, Res& res) {
    if (!h->Auth(req, res, "admin")) return;
    Guard(res, "token create", [&]() -> Status {
      PGB_ASSIGN_OR_RETURN(json body, BodyObject(req));
      PGB_RETURN_IF_ERROR(OnlyKeys(body, {"name", "scope"}));
      PGB_ASSIGN_OR_RETURN(auto name, OptString(body, "name"));
      PGB_ASSIGN_OR_RETURN(auto scope, OptString(body, "scope"));
      if (!name) return Status::InvalidArgument("\"name\" is required");
      PGB_ASSIGN_OR_RETURN(NewToken t, e.CreateToken(*name, scope.value_or("read")));
      json j = ToJson(t.info);
      j["token"] = t.token;
      SendJson(res, 201, j);
      return Status::OK();
    });
  });
  // Snapshot schedules (`pgbranch schedule`): changes take effect at serve's next look.
  add("GET", "/api/v1/schedules", [h, &e](const Req& req, Res& res) {
    if (!h->Auth(req, res, "read")) return;
    std::string project = req.get_param_value("project");
    Guard(res, "schedule list " + Named(project), [&]() -> Status {
      PGB_ASSIGN_OR_RETURN(auto schedules, e.ListSchedules(project));
      SendJson(res, 200, ToJsonArray(schedules));
      return Status::OK();
    });
  });
  add("POST", "/api/v1/projects/{p}/branches/{b}/schedules", [h, &e](const Req& req, Res& res) {
    if (!h->Auth(req, res, "write")) return;
    std::string text = Param(req, 1) + "/" + Param(req, 2);
    Guard(res, "schedule add " + Named(text), [&]() -> Status {
      PGB_ASSIGN_OR_RETURN(BranchRef ref, ParseBranchRef(text));
      PGB_ASSIGN_OR_RETURN(json body, BodyObject(req));
      PGB_RETURN_IF_ERROR(OnlyKeys(body, {"snapshot", "refresh", "keep", "max_age_s", "from_dump",
                                          "from_server", "logical", "transforms"}));
      ScheduleOptions o;
      PGB_ASSIGN_OR_RETURN(auto cron, OptString(body, "snapshot"));
      PGB_ASSIGN_OR_RETURN(auto refresh, OptString(body, "refresh"));
      if (!cron == !refresh) {
        return Status::InvalidArgument(
            "\"snapshot\" or \"refresh\" (a cron expression) is required, not both");
      }
      if (cron) o.snapshot_cron = *cron;
      if (refresh) o.refresh_cron = *refresh;
      PGB_RETURN_IF_ERROR(ReadDataSource(body, &o.source));
      PGB_ASSIGN_OR_RETURN(o.keep, OptInt(body, "keep", 1, 100000));
      PGB_ASSIGN_OR_RETURN(o.max_age_s, OptInt(body, "max_age_s", 1, kMaxLifetime));
      PGB_ASSIGN_OR_RETURN(ScheduleInfo info, e.AddSchedule(ref, o));
      SendJson(res, 201, ToJson(info));
      return Status::OK();
    });
  });
  add("DELETE", "/api/v1/schedules/{id}", [h, &e](const Req& req, Res& res) {
    if (!h->Auth(req, res, "write")) return;
    std::string id = Param(req, 1);
    Guard(res, "schedule remove " + Named(id), [&]() -> Status {
      int64_t n = 0;
      auto [end, ec] = std::from_chars(id.data(), id.data() + id.size(), n);
      if (ec != std::errc() || end != id.data() + id.size() || n < 1) {
        return Status::InvalidArgument("the schedule id must be a positive integer");
      }
      PGB_RETURN_IF_ERROR(e.RemoveSchedule(n));
      res.status = 204;
      return Status::OK();
    });
  });
  add("DELETE", "/api/v1/tokens/{name}", [h, &e](const Req& req, Res& res) {
    if (!h->Auth(req, res, "admin")) return;
    std::string name = Param(req, 1);
    Guard(res, "token revoke " + Named(name), [&]() -> Status {
      PGB_RETURN_IF_ERROR(e.RevokeToken(name));
      res.status = 204;
      return Status::OK();
    });
  });

  // --- The dashboard ---
  std::string index = JoinPath(options_.web_dir, "index.html");
  if (!options_.web_dir.empty() && std::filesystem::exists(index)) {
    srv.set_mount_point("/", options_.web_dir);
  } else {
    std::string dir = options_.web_dir;
    add("GET", "/", [dir](const Req&, Res& res) {
      res.status = 200;
      res.set_content(fmt::format("<!doctype html><title>pgbranch</title><p>The dashboard is not "
                                  "installed{}{}: build it with scripts/build-web.sh. The API is "
                                  "at /api/v1/.</p>",
                                  dir.empty() ? "" : " in ", dir),
                      "text/html; charset=utf-8");
    });
  }
  return table;
}

}  // namespace pgb::server
