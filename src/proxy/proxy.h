// The PostgreSQL wire-protocol proxy of `pgbranch serve`: one listening port for every branch.
//
// Per connection (PostgreSQL docs 55.2 "Message Flow"):
//   1. The first packet: SSLRequest gets 'S' and a TLS handshake when a certificate is set
//      (else 'N'); bytes sent after an SSLRequest before the handshake are refused, as the
//      server refuses them (CVE-2021-23214); GSSENCRequest gets 'N'; a CancelRequest is
//      forwarded to the backend its key was given for, and the socket closed.
//   2. The StartupMessage names a route (proxy/route.h). The router says where it leads (and
//      wakes a suspended branch). The startup message is rewritten: the real database name,
//      the options without the route, protocol 3.0 (a client asking for a newer minor or for
//      "_pq_." options first gets NegotiateProtocolVersion, docs 55.2.1).
//   3. Authentication is never weaker than connecting directly: the project's superuser proves
//      the project's proxy password to the proxy by SCRAM-SHA-256, and the proxy then logs in
//      over the branch's trusted Unix socket; any other role is relayed over TCP and the
//      branch checks its password itself.
//   4. Until the first ReadyForQuery the proxy reads the branch's messages and replaces
//      BackendKeyData with a key of its own, so a CancelRequest reaches the right backend.
//      After that it relays bytes both ways and parses nothing.
// Errors a client can act on are ErrorResponses (SQLSTATE 3D000 for a route that leads
// nowhere, 28P01 for a wrong password, 53300 for too many connections, 57P03 for a branch that
// cannot take connections), never a dropped socket or a hang.
//
// Thread-safety: a Proxy lives on one io_context run by one thread; its public methods other
// than the constructor must be called on that thread (post() to it). Router::Resolve runs on
// the proxy's own worker threads.

#ifndef PGBRANCH_PROXY_PROXY_H_
#define PGBRANCH_PROXY_PROXY_H_

#include <asio.hpp>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "proxy/route.h"
#include "proxy/router.h"

namespace pgb::proxy {

struct ProxyOptions {
  // Where to listen: an address ("127.0.0.1", "::1", "0.0.0.0") and a port (0: any free one).
  std::string listen_host = "127.0.0.1";
  int listen_port = 5432;
  // SNI routes are BRANCH.PROJECT.<sni_domain> (route.h).
  std::string sni_domain = "localhost";
  // PEM files of the proxy's certificate (chain) and key; empty: no TLS (SSLRequest gets 'N').
  std::string tls_cert;
  std::string tls_key;
  // Sessions at once, including those still starting; one more gets SQLSTATE 53300.
  size_t max_connections = 1000;
  // How long a client may take from connecting to its first ReadyForQuery (PostgreSQL's
  // authentication_timeout is 60 s).
  std::chrono::milliseconds startup_timeout{60'000};
  // How long a connection waits for a branch that refuses connections while it is recorded
  // as able to take them (restarting, being reset, waking).
  std::chrono::milliseconds connect_wait{30'000};
  // Worker threads for Router::Resolve (which may start a branch).
  int workers = 4;
};

struct ProxyStats {
  size_t sessions = 0;    // open now
  uint64_t accepted = 0;  // since start
  uint64_t refused = 0;   // ended with an ErrorResponse before relaying
  uint64_t cancels = 0;   // CancelRequests forwarded
};

class Proxy {
 public:
  Proxy(asio::io_context& io, Router& router, ProxyOptions options);
  ~Proxy();
  Proxy(const Proxy&) = delete;
  Proxy& operator=(const Proxy&) = delete;

  // Loads the TLS files (if set) and binds the listening socket (close-on-exec, as every
  // socket of the proxy). InvalidArgument for a bad address or TLS file; Unavailable
  // ("address in use") when the port is taken.
  Status Listen();
  // The port it listens on (the one the kernel gave for port 0).
  int port() const;
  // Reads the TLS files again; new connections use them, open ones keep theirs. On error the
  // old ones stay in use.
  Status ReloadTls();
  // Scale-to-zero on a branch's own connection string: listens on `host`:`port` (a suspended
  // branch's address) until the first client comes; then the listener closes (so the branch's
  // server can bind the port), the router wakes the branch, and that client's connection is
  // relayed to it over TCP unchanged (the branch checks the password). Clients that come
  // while it starts are refused by the kernel, as by any server that is starting. Not listened
  // on again for 10 s after a wake. OK if already listening; Unavailable if the port is taken
  // (the branch runs).
  Status ListenForBranch(const std::string& host, int port, const Route& route);
  void StopListeningForBranch(int port);
  std::vector<int> BranchListenerPorts() const;
  // Stops accepting (the proxy's port and the branches' own); open sessions go on.
  void StopAccepting();
  // Closes every open session.
  void CloseAll();
  ProxyStats stats() const;

 private:
  class Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace pgb::proxy

#endif  // PGBRANCH_PROXY_PROXY_H_
