// Typed protocol messages after the startup packet (PostgreSQL docs 55.7 "Message Formats"):
// one type byte, Int32 length (itself included), body. Builders for what the proxy sends and
// pure parsers for what it reads during authentication and until the first ReadyForQuery;
// after that the proxy relays bytes without parsing them.
//
// Thread-safety: pure functions.

#ifndef PGBRANCH_PROXY_MESSAGES_H_
#define PGBRANCH_PROXY_MESSAGES_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace pgb::proxy {

// The largest message the proxy reads while it parses (authentication, ParameterStatus,
// ErrorResponse, BackendKeyData): larger is a protocol violation there.
inline constexpr size_t kMaxParsedMessage = 64 * 1024;

struct Message {
  char type = 0;
  std::string_view body;  // without type and length; points into the caller's buffer
  size_t size = 0;        // the whole message: 1 + 4 + body.size()
};

// The first whole message at the front of `buffer`, or nullopt if more bytes are needed.
// InvalidArgument if its length word is below 4 or the message would exceed `max_size`.
Result<std::optional<Message>> PeekMessage(std::string_view buffer,
                                           size_t max_size = kMaxParsedMessage);

// --- Backend messages the proxy sends to clients ---

// ErrorResponse (type 'E') with fields S and V = `severity` ("FATAL", "ERROR"), C = `sqlstate`
// (five characters, docs Appendix A), M = `message`, and D/H when not empty.
std::string ErrorResponse(std::string_view severity, std::string_view sqlstate,
                          std::string_view message, std::string_view detail = {},
                          std::string_view hint = {});
std::string AuthenticationOk();                                            // R, 0
std::string AuthenticationSasl(const std::vector<std::string>& mechanisms);  // R, 10
std::string AuthenticationSaslContinue(std::string_view data);             // R, 11
std::string AuthenticationSaslFinal(std::string_view data);                // R, 12
std::string BackendKeyData(int32_t pid, std::string_view key);             // K
std::string ParameterStatus(std::string_view name, std::string_view value);  // S
// NegotiateProtocolVersion ('v'): the newest minor version of the requested major the proxy
// speaks, and the protocol options ("_pq_.*") it did not recognize.
std::string NegotiateProtocolVersion(int32_t newest_minor,
                                     const std::vector<std::string>& unrecognized);

// --- Frontend messages the proxy sends to a branch when it logs in itself ---
std::string SaslInitialResponse(std::string_view mechanism, std::string_view data);  // p
std::string SaslResponse(std::string_view data);                                     // p
std::string PasswordMessage(std::string_view password);                              // p
std::string Terminate();                                                             // X

// --- Parsers of message bodies (from PeekMessage) ---

// An Authentication ('R') body: its Int32 code (0 ok, 3 cleartext, 5 MD5, 10 SASL, 11 SASL
// continue, 12 SASL final, ...) and the rest. For code 10, `mechanisms` lists the names.
struct Authentication {
  int32_t code = 0;
  std::string data;
  std::vector<std::string> mechanisms;
};
Result<Authentication> ParseAuthentication(std::string_view body);

// BackendKeyData ('K'): pid and a 4..256 byte key.
struct KeyData {
  int32_t pid = 0;
  std::string key;
};
Result<KeyData> ParseBackendKeyData(std::string_view body);

// ErrorResponse or NoticeResponse ('E'/'N') fields by code ('S', 'V', 'C', 'M', 'D', ...).
Result<std::map<char, std::string>> ParseErrorFields(std::string_view body);

// SASLInitialResponse ('p' during SASL): mechanism name and the client-first-message (an Int32
// length of -1 means none, which is an error here).
struct SaslInitial {
  std::string mechanism;
  std::string data;
};
Result<SaslInitial> ParseSaslInitialResponse(std::string_view body);

}  // namespace pgb::proxy

#endif  // PGBRANCH_PROXY_MESSAGES_H_
