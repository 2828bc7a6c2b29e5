#include "engine/ports.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <charconv>
#include <cstring>

namespace pgb {
namespace {

class BindPortProbe : public PortProbe {
 public:
  bool IsFree(const std::string& address, int port) override {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    // Listening on all interfaces collides with any address; probe the wildcard then.
    std::string a = (address == "*" || address.empty()) ? "0.0.0.0" : address;
    if (inet_pton(AF_INET, a.c_str(), &addr.sin_addr) != 1) {
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    }
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    // As PostgreSQL's own listening socket does (StreamServerPort): a connection of a stopped
    // server lingering in TIME_WAIT does not keep a new server off the port, so it must not
    // make the probe call the port taken either. A listener still refuses the bind.
    int one = 1;
    bool ok = ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
              ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    ::close(fd);
    return ok;
  }
};

bool ParseInt(std::string_view s, int* out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

std::unique_ptr<PortProbe> NewBindPortProbe() { return std::make_unique<BindPortProbe>(); }

Result<PortRange> ParsePortRange(const std::string& text) {
  size_t dash = text.find('-');
  PortRange r;
  if (dash == std::string::npos || !ParseInt(std::string_view(text).substr(0, dash), &r.first) ||
      !ParseInt(std::string_view(text).substr(dash + 1), &r.last) || r.first < 1024 ||
      r.last > 65535 || r.first > r.last) {
    return Status::InvalidArgument(fmt::format(
        "invalid port range \"{}\": write FIRST-LAST with 1024 <= FIRST <= LAST <= 65535", text));
  }
  return r;
}

std::string FormatPortRange(const PortRange& range) {
  return fmt::format("{}-{}", range.first, range.last);
}

Result<int> PickPort(const PortRange& range, const std::set<int>& reserved,
                     const std::string& address, PortProbe& probe, std::optional<int> requested) {
  if (requested) {
    int port = *requested;
    if (port < 1024 || port > 65535) {
      return Status::InvalidArgument(fmt::format("port {} is outside 1024-65535", port));
    }
    if (reserved.count(port)) {
      return Status::AlreadyExists(fmt::format("port {} belongs to another branch", port));
    }
    if (!probe.IsFree(address, port)) {
      return Status::Unavailable(
          fmt::format("port {} is in use by another program on {}", port, address));
    }
    return port;
  }
  for (int port = range.first; port <= range.last; ++port) {
    if (!reserved.count(port) && probe.IsFree(address, port)) return port;
  }
  return Status::ResourceExhausted(
      fmt::format("no free port in {}; widen it with 'pgbranch init --port-range FIRST-LAST' or "
                  "delete unused branches",
                  FormatPortRange(range)));
}

}  // namespace pgb
