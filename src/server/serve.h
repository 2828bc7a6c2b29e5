// `pgbranch serve`: the daemon. One process hosting the proxy (proxy/proxy.h) over the engine,
// the HTTP API and dashboard (api.h), and the scheduler that suspends idle branches.
//
// Lifecycle: listen (the given port, or the next free one when the default is taken) →
// write $PGBRANCH_HOME/serve.json (engine.h ServeRecord) → tell systemd READY=1
// (sd_notify(3), for Type=notify; a no-op without $NOTIFY_SOCKET) → run. SIGHUP reloads the TLS
// certificate (and reissues the proxy's own when projects changed). SIGTERM or SIGINT: stop
// accepting, let sessions finish for the grace period, close the rest, remove serve.json.

#ifndef PGBRANCH_SERVER_SERVE_H_
#define PGBRANCH_SERVER_SERVE_H_

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "common/status.h"
#include "engine/engine.h"
#include "proxy/router.h"
#include "server/api.h"

namespace pgb::server {

struct ServeOptions {
  std::string listen_host = "127.0.0.1";
  int listen_port = 5432;
  bool port_given = false;  // --proxy-listen named the port: no falling back to the next one
  std::string sni_domain = "localhost";
  // The user's certificate and key (PEM); empty: one from the home's CA (Engine::ProxyCertificate).
  std::string tls_cert;
  std::string tls_key;
  size_t max_connections = 1000;
  std::chrono::seconds grace{30};              // SIGTERM: how long sessions may go on
  std::chrono::milliseconds idle_check{1000};  // how often the scheduler looks at idle branches
  // The HTTP API and dashboard (api.h); nullopt: none (--no-api).
  std::optional<ApiOptions> api = ApiOptions{};
};

// The proxy's Router over the engine: resolves routes from the catalog as it is at each
// connection (so new branches, `use`, renames and port changes apply without a restart), and
// wakes a suspended branch (Engine::StartBranch) before answering. Thread-safe.
class EngineRouter : public proxy::Router {
 public:
  explicit EngineRouter(Engine& engine) : engine_(engine) {}
  Result<proxy::Endpoint> Resolve(const proxy::Route& route) override;

 private:
  Engine& engine_;
  std::mutex mu_;
  // SCRAM verifiers of the projects' proxy passwords, by password (PBKDF2 runs once each).
  std::map<std::string, std::shared_ptr<const proxy::ScramVerifier>> verifiers_;
};

// Runs the daemon until SIGTERM or SIGINT. `note` prints a line for the user (where it
// listens). Errors: Unavailable when it cannot listen, others from the engine.
Status Serve(Engine& engine, const ServeOptions& options,
             const std::function<void(const std::string&)>& note);

}  // namespace pgb::server

#endif  // PGBRANCH_SERVER_SERVE_H_
