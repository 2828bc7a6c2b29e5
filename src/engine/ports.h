// Choosing TCP ports for branch servers.

#ifndef PGBRANCH_ENGINE_PORTS_H_
#define PGBRANCH_ENGINE_PORTS_H_

#include <memory>
#include <optional>
#include <set>
#include <string>

#include "common/status.h"

namespace pgb {

struct PortRange {
  int first = 54320;
  int last = 54999;
};

// Parses "54320-54999" (1024 <= first <= last <= 65535). InvalidArgument otherwise.
Result<PortRange> ParsePortRange(const std::string& text);
std::string FormatPortRange(const PortRange& range);

// Whether a TCP port is free to listen on. Abstract so tests control what is "taken".
class PortProbe {
 public:
  virtual ~PortProbe() = default;
  // True if a server could listen on `address`:`port` now. The real probe binds with
  // SO_REUSEADDR, as PostgreSQL does: a port held by a listener (or by a socket bound without
  // SO_REUSEADDR) counts as taken, one with only TIME_WAIT connections left as free.
  virtual bool IsFree(const std::string& address, int port) = 0;
};

// Binds a real socket and closes it again.
std::unique_ptr<PortProbe> NewBindPortProbe();

// Picks a port for a new server listening on `address`.
// With `requested`: that port, if it is in no catalog row (`reserved`) and binds
// (AlreadyExists / Unavailable naming the holder otherwise); it may lie outside the range.
// Without: the lowest port of `range` that is neither reserved nor taken.
// ResourceExhausted when the range has no free port left.
Result<int> PickPort(const PortRange& range, const std::set<int>& reserved,
                     const std::string& address, PortProbe& probe,
                     std::optional<int> requested = std::nullopt);

}  // namespace pgb

#endif  // PGBRANCH_ENGINE_PORTS_H_
