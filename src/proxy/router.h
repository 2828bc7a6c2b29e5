// The proxy's one question to the rest of pgbranch (DESIGN.md "Layers"): where does a route
// lead now? Implemented by server/ over the engine; the proxy knows nothing of the catalog.

#ifndef PGBRANCH_PROXY_ROUTER_H_
#define PGBRANCH_PROXY_ROUTER_H_

#include <memory>
#include <string>

#include "common/status.h"
#include "proxy/route.h"
#include "proxy/scram.h"

namespace pgb::proxy {

// A branch's server, ready to be connected to.
struct Endpoint {
  std::string project;
  std::string branch;
  // The superuser's way in: a Unix-domain socket path ("<dir>/.s.PGSQL.<port>") that the
  // branch trusts. Used only after the client proved it knows the project's proxy password
  // against `verifier`.
  std::string socket_path;
  std::string superuser;
  std::shared_ptr<const ScramVerifier> verifier;
  // Every other role's way in: TCP, where the branch checks the role's password itself.
  std::string host;
  int port = 0;
  std::string Ref() const { return project + "/" + branch; }
};

class Router {
 public:
  virtual ~Router() = default;
  // Where `route` leads, starting the branch first if it is suspended (a wake). Blocks for as
  // long as that takes: the proxy calls it on a worker thread, never on its event loop, and
  // calls it again (bounded) while a connection to the endpoint is refused, as during a reset.
  // Errors: NotFound for a project or branch that does not exist (the message names what
  // exists); FailedPrecondition for a branch that cannot take connections now (stopped by a
  // user, being created or deleted); others as the engine reports them. Thread-safe.
  virtual Result<Endpoint> Resolve(const Route& route) = 0;
};

}  // namespace pgb::proxy

#endif  // PGBRANCH_PROXY_ROUTER_H_
