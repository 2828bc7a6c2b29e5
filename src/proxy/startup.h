// The startup phase of the PostgreSQL wire protocol as a pure parser: bytes in, a struct or an
// error out, no sockets (PostgreSQL docs 55.2.1 "Start-up", 55.7 "Message Formats").
//
// The first packet a client sends has no type byte: Int32 length (itself included), Int32 code,
// then the body. The code says what it is (pgbouncer's habit: classify by code first):
//   80877103 SSLRequest, 80877104 GSSENCRequest (length 8, no body);
//   80877102 CancelRequest: Int32 pid, then the secret key (4 bytes in protocol 3.0; 4 to 256
//            bytes in 3.2, so the packet is 16 to 268 bytes long);
//   (major << 16 | minor), major 3: StartupMessage: pairs of NUL-terminated strings (name, value)
//            ended by one more NUL, which must be the packet's last byte.
// Lengths are checked before anything else ("don't believe nonsense"): below 8 or above
// kMaxStartupPacket is refused, as PostgreSQL's own postmaster refuses (MAX_STARTUP_PACKET_LENGTH).
//
// Thread-safety: every function here is pure and may run on any thread.

#ifndef PGBRANCH_PROXY_STARTUP_H_
#define PGBRANCH_PROXY_STARTUP_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace pgb::proxy {

inline constexpr uint32_t kSslRequestCode = 80877103;
inline constexpr uint32_t kGssEncRequestCode = 80877104;
inline constexpr uint32_t kCancelRequestCode = 80877102;
inline constexpr uint32_t kProtocol30 = 3u << 16;  // 196608
// PostgreSQL's MAX_STARTUP_PACKET_LENGTH (src/include/libpq/pqcomm.h).
inline constexpr size_t kMaxStartupPacket = 10000;
// The longest cancel key protocol 3.2 allows (docs 55.7, BackendKeyData).
inline constexpr size_t kMaxCancelKey = 256;

enum class StartupKind { kStartup, kSslRequest, kGssEncRequest, kCancel };

struct StartupPacket {
  StartupKind kind = StartupKind::kStartup;
  // kStartup: the protocol the client asked for (3.0 is major 3, minor 0).
  uint16_t major = 0;
  uint16_t minor = 0;
  // kStartup: the parameters in the order sent ("user", "database", "options",
  // "application_name", "_pq_.xxx" protocol options, ...). Names are unique.
  std::vector<std::pair<std::string, std::string>> params;
  // kCancel: the backend key data the client was given.
  int32_t cancel_pid = 0;
  std::string cancel_key;  // 4 bytes for 3.0, up to kMaxCancelKey

  // The value of parameter `name`, or nullopt.
  std::optional<std::string> Get(std::string_view name) const;
  // Sets (replacing) or, with nullopt, removes parameter `name`, keeping the others' order.
  void Set(std::string_view name, std::optional<std::string> value);
};

// The whole length of the packet whose first four bytes are `header` (network byte order).
// InvalidArgument when header.size() != 4, or the length is below 8 or above kMaxStartupPacket
// ("invalid length of startup packet: N").
Result<size_t> StartupPacketLength(std::string_view header);

// Parses one whole packet (its length word included). InvalidArgument, with a message fit for
// an ErrorResponse, when: the length word disagrees with packet.size() or is out of range; an
// SSLRequest/GSSENCRequest is not exactly 8 bytes; a CancelRequest is not 16..268 bytes; the
// code is neither a request code nor protocol major 3 ("unsupported frontend protocol 2.0");
// a StartupMessage lacks its terminator as its last byte, has a name without a value, an empty
// name before the end, a repeated name, or no "user" (PostgreSQL: "no PostgreSQL user name
// specified in startup packet").
Result<StartupPacket> ParseStartupPacket(std::string_view packet);

// The packet that sends `startup` as protocol 3.0 (whatever minor it asked for), parameters in
// order. REQUIRES: kind == kStartup, no NUL inside any name or value.
std::string SerializeStartupMessage(const StartupPacket& startup);

// A CancelRequest packet for (pid, key). REQUIRES: 4 <= key.size() <= kMaxCancelKey.
std::string SerializeCancelRequest(int32_t pid, std::string_view key);

}  // namespace pgb::proxy

#endif  // PGBRANCH_PROXY_STARTUP_H_
