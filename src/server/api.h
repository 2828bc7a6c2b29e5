// The HTTP API and dashboard of `pgbranch serve` (api/openapi.json is its contract; README
// "The HTTP API"). Served by cpp-httplib on a pool of threads, beside the proxy's event loop.
//
// Every route is under /api/v1/. Reads answer at once with the CLI's JSON shapes (engine/
// json.h). A mutation is checked (names, body, that what it names exists) and then queued as
// an operation (operations.h): 202 with the operation, pollable at /api/v1/operations/{id},
// streamed over /api/v1/events (SSE), or awaited with ?wait=true. Errors are
// {"error": {"code", "message"}} with the HTTP status of common/error_class.h.
//
// Auth: a bearer token (`pgbranch token`) or the session cookie the dashboard gets from
// POST /api/v1/session (HttpOnly, SameSite=Strict; its writes carry the X-CSRF-Token header).
// Scopes: read (GET), write (changes), admin (tokens, doctor repairs). Ten failed attempts in
// a minute from one address get 429 for a minute. No CORS headers: browsers keep other origins
// out. A non-loopback address needs TLS unless `insecure_http`.
//
// Thread-safety: ApiServer's methods may be called from any thread.

#ifndef PGBRANCH_SERVER_API_H_
#define PGBRANCH_SERVER_API_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/status.h"
#include "engine/engine.h"
#include "server/operations.h"

namespace httplib {
class Server;
}

namespace pgb::server {

struct ApiOptions {
  std::string host = "127.0.0.1";
  int port = 8432;
  bool port_given = false;  // --api-listen named the port: no falling back to the next one
  // TLS: the user's certificate and key (PEM), or with `tls` alone one issued by the home's CA
  // (Engine::ProxyCertificate). Required for a non-loopback host unless `insecure_http`.
  bool tls = false;
  std::string tls_cert;
  std::string tls_key;
  bool insecure_http = false;
  std::string sni_domain = "localhost";
  // The dashboard's built assets (index.html ...); empty or missing: / says how to build them.
  std::string web_dir;
  size_t max_body_bytes = 1 << 20;        // 413 beyond
  std::chrono::seconds read_timeout{10};  // a client that sends nothing for this long is cut
  size_t threads = 64;                    // requests (and SSE streams) served at once
  std::chrono::seconds max_wait{3600};    // the longest ?wait=true
};

// Reads shared by concurrent requests. An answer is reused for up to `max_age`; after that the
// next request reads again while the others keep getting the previous answer until it is done
// (stale while revalidating: one request pays for a refresh, not every one). Invalidate()
// makes every answer read before it unusable: requests then wait for a new read. Errors are
// not kept. Thread-safe.
class ReadCache {
 public:
  Result<nlohmann::json> Get(const std::string& key, std::chrono::milliseconds max_age,
                             const std::function<Result<nlohmann::json>()>& read);
  void Invalidate();

 private:
  struct Slot {
    nlohmann::json value;
    std::chrono::steady_clock::time_point at;
    uint64_t generation = 0;
    bool valid = false;
    bool loading = false;
  };
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Slot> slots_;
  uint64_t generation_ = 0;
};

class ApiServer {
 public:
  ApiServer(Engine& engine, ApiOptions options);
  ~ApiServer();
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // Binds the address (the given port, or up to 20 next ones when the default is taken; 0: any).
  // InvalidArgument for a non-loopback host without TLS or `insecure_http`; Unavailable when
  // it cannot listen.
  Status Listen(const std::function<void(const std::string&)>& note);
  // Serves on a thread of its own until Stop.
  void Start();
  // Stops accepting, ends the event streams, waits up to `grace` for operations to end.
  void Stop(std::chrono::milliseconds grace);

  int port() const { return port_; }
  const std::string& host() const { return options_.host; }
  bool tls() const { return tls_; }
  // "http://127.0.0.1:8432"
  std::string BaseUrl() const;

  // Every route the server has: (method, path as api/openapi.json writes it). Call before Listen.
  std::vector<std::pair<std::string, std::string>> RouteTable();

  // A line of serve's own log for GET /api/v1/serve/log (the newest 1000 are kept).
  void Log(const std::string& line);
  // Compares `targets` (every branch in the catalog, as the scheduler just read them) with the
  // last look and publishes a "branch" event for each one created, deleted or changed state
  // (from any source: the CLI too). The scheduler calls it every second.
  void PollBranches(const std::vector<ProxyTarget>& targets);

 private:
  struct Principal {
    std::string name;
    std::string scope;
    bool by_cookie = false;
  };
  struct Session {
    std::string token;  // the token presented at login, checked again at each request
    std::string csrf;
    std::chrono::steady_clock::time_point expires;
  };
  // Registers every route on http_; returns them as (method, path template).
  std::vector<std::pair<std::string, std::string>> Routes();

  Engine& engine_;
  ApiOptions options_;
  EventHub events_;
  // Branch lists and status: the engine describes every branch (its runtime's view, sizes)
  // for each, so a dashboard's and a CI fleet's polling share one read per second. Dropped at
  // the end of every operation and when the poll sees a branch change.
  ReadCache reads_;
  OperationRunner runner_{events_, [this] { reads_.Invalidate(); }};
  std::unique_ptr<httplib::Server> http_;
  std::thread thread_;
  std::atomic<bool> stopped_{false};  // listen_after_bind returned
  int port_ = 0;
  bool tls_ = false;

  std::mutex mu_;
  std::map<std::string, Session> sessions_;                                            // by cookie
  std::map<std::string, std::deque<std::chrono::steady_clock::time_point>> failures_;  // by address
  std::deque<std::string> log_;
  std::map<std::string, std::string> branch_states_;  // "p/b" -> state, from the last poll
  bool polled_ = false;

  friend class ApiHandlers;
};

}  // namespace pgb::server

#endif  // PGBRANCH_SERVER_API_H_
