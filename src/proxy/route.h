// How a client connection through `pgbranch serve` names a branch: pure functions from the
// startup message's parameters and the TLS server name to a route (DESIGN.md "route").
//
// Three ways, checked for agreement when several are given:
//   database   "P/B"        branch B of project P, database "postgres"
//              "P/B/DB"     ... database DB (everything after the second '/', may hold '/')
//              "P/@"        the project's active branch (`pgbranch use`), database "postgres"
//              "P/@/DB"     ... database DB
//              Project and branch names are [a-z0-9_-] (engine/names.h), so they never hold
//              '/' or '@'; a database name without '/' is not a route and passes unchanged.
//   options    "-c pgbranch.branch=P/B", "-cpgbranch.branch=P/B", "--pgbranch.branch=P/B",
//              or Neon's style "branch=P/B" (P/@ for the active branch) among the other
//              words of the options parameter (docs 20.1.4 and 55.7 StartupMessage
//              "options"; words split at spaces, '\' escapes the next character, as the
//              server's pg_split_opts does). The word is removed before the branch sees it.
//   TLS SNI    "B.P.<domain>" for a branch, "P.<domain>" for the project's active branch
//              (RFC 6066 server_name; libpq sends it with sslsni=1, its default).
//
// Thread-safety: pure functions.

#ifndef PGBRANCH_PROXY_ROUTE_H_
#define PGBRANCH_PROXY_ROUTE_H_

#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace pgb::proxy {

struct Route {
  std::string project;
  std::optional<std::string> branch;  // nullopt: the project's active branch
  bool operator==(const Route&) const = default;
  std::string ToString() const { return project + "/" + branch.value_or("@"); }
};

// What a startup message asks for once its route is taken out.
struct RoutedStartup {
  std::optional<Route> route;  // nullopt: no way named a branch
  std::string database;        // the database to ask the branch for
  std::string options;         // the options parameter without the route's word
  bool options_changed = false;
};

// The route in a database name ("P/B[/DB]", "P/@[/DB]"), with the real database name; nullopt
// route for a name without '/'. InvalidArgument for a name with '/' whose parts are empty.
struct DatabaseRoute {
  std::optional<Route> route;
  std::string database;
};
Result<DatabaseRoute> ParseDatabaseRoute(std::string_view database);

// The route word in an options parameter, and the parameter without it. InvalidArgument for a
// malformed value or two route words.
struct OptionsRoute {
  std::optional<Route> route;
  std::string rest;
  bool changed = false;
};
Result<OptionsRoute> ParseOptionsRoute(std::string_view options);

// The route in a TLS server name under `domain`; nullopt when the name is not under it (or is
// the domain itself). Case-insensitive, as DNS names are.
std::optional<Route> ParseSniRoute(std::string_view server_name, std::string_view domain);

// Combines the three: every route given must name the same project and branch.
// `database` is the startup message's (empty if absent), `options` its options, `sni` the
// server name (empty if none). InvalidArgument for disagreeing routes, naming both.
Result<RoutedStartup> RouteStartup(std::string_view database, std::string_view options,
                                   std::string_view sni, std::string_view domain);

}  // namespace pgb::proxy

#endif  // PGBRANCH_PROXY_ROUTE_H_
