#include "proxy/startup.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "common/bytes.h"
#include "proxy/wire.h"

namespace pgb::proxy {

namespace {

// The protocol versions the proxy (and the PostgreSQL it fronts) speaks: 3.0 to 3.2.
constexpr uint16_t kEarliestMajor = 3;
constexpr uint16_t kLatestMajor = 3;
constexpr uint16_t kLatestMinor = 2;

// A CancelRequest: length, code, pid, then the key.
constexpr size_t kCancelHeader = 12;
constexpr size_t kMinCancelKey = 4;

// Writes the total length into the first four bytes of `packet`.
void PatchLength(std::string& packet) {
  const auto n = static_cast<uint32_t>(packet.size());
  packet[0] = static_cast<char>(n >> 24);
  packet[1] = static_cast<char>(n >> 16);
  packet[2] = static_cast<char>(n >> 8);
  packet[3] = static_cast<char>(n);
}

// A parameter name for an error message: quoted when it is short printable text; the bytes a
// client sent are otherwise not echoed into an ErrorResponse.
std::string Describe(std::string_view name) {
  if (name.size() <= 64 && IsPrintableText(name)) return fmt::format("\"{}\"", name);
  return "with an unprintable name";
}

// The NUL-terminated strings of a StartupMessage body (everything after the code), as
// PostgreSQL's ProcessStartupPacket reads them, with a stricter end: the terminator must be
// the last byte, every name has a value, no name repeats, and "user" is present and not empty.
Status ParseParams(std::string_view body,
                   std::vector<std::pair<std::string, std::string>>& params) {
  if (body.empty() || body.back() != '\0') {
    return Status::InvalidArgument(
        "invalid startup packet layout: expected terminator as last byte");
  }
  size_t offset = 0;
  while (offset < body.size()) {
    size_t name_end = body.find('\0', offset);  // never npos: the last byte is NUL
    if (name_end == offset) break;              // the terminator
    std::string_view name = body.substr(offset, name_end - offset);
    size_t value_start = name_end + 1;
    if (value_start >= body.size()) {
      return Status::InvalidArgument(
          fmt::format("invalid startup packet layout: parameter {} has no value", Describe(name)));
    }
    size_t value_end = body.find('\0', value_start);
    std::string_view value = body.substr(value_start, value_end - value_start);
    bool repeated =
        std::any_of(params.begin(), params.end(), [&](const auto& p) { return p.first == name; });
    if (repeated) {
      return Status::InvalidArgument(
          fmt::format("invalid startup packet layout: parameter {} given twice", Describe(name)));
    }
    params.emplace_back(std::string(name), std::string(value));
    offset = value_end + 1;
  }
  // The terminator must be exactly the last byte: an empty name ends the list, and anything
  // after it (or a value that ran into the terminator) leaves offset elsewhere.
  if (offset != body.size() - 1) {
    return Status::InvalidArgument(
        "invalid startup packet layout: expected terminator as last byte");
  }
  return Status::OK();
}

}  // namespace

std::optional<std::string> StartupPacket::Get(std::string_view name) const {
  for (const auto& [n, v] : params) {
    if (n == name) return v;
  }
  return std::nullopt;
}

void StartupPacket::Set(std::string_view name, std::optional<std::string> value) {
  auto it =
      std::find_if(params.begin(), params.end(), [&](const auto& p) { return p.first == name; });
  if (!value) {
    if (it != params.end()) params.erase(it);
  } else if (it != params.end()) {
    it->second = std::move(*value);
  } else {
    params.emplace_back(std::string(name), std::move(*value));
  }
}

Result<size_t> StartupPacketLength(std::string_view header) {
  if (header.size() != 4) {
    return Status::InvalidArgument(
        fmt::format("invalid length of startup packet: header of {} bytes", header.size()));
  }
  uint32_t length = ReadUint32(header, 0);
  if (length < 8 || length > kMaxStartupPacket) {
    return Status::InvalidArgument(fmt::format("invalid length of startup packet: {}", length));
  }
  return static_cast<size_t>(length);
}

Result<StartupPacket> ParseStartupPacket(std::string_view packet) {
  if (packet.size() < 4) {
    return Status::InvalidArgument(
        fmt::format("invalid length of startup packet: {} bytes received", packet.size()));
  }
  PGB_ASSIGN_OR_RETURN(size_t length, StartupPacketLength(packet.substr(0, 4)));
  if (length != packet.size()) {
    return Status::InvalidArgument(
        fmt::format("invalid length of startup packet: {} says the length word, {} bytes received",
                    length, packet.size()));
  }
  const uint32_t code = ReadUint32(packet, 4);
  StartupPacket out;
  switch (code) {
    case kSslRequestCode:
    case kGssEncRequestCode: {
      const bool ssl = code == kSslRequestCode;
      if (length != 8) {
        return Status::InvalidArgument(fmt::format("invalid length of {} packet: {}",
                                                   ssl ? "SSLRequest" : "GSSENCRequest", length));
      }
      out.kind = ssl ? StartupKind::kSslRequest : StartupKind::kGssEncRequest;
      return out;
    }
    case kCancelRequestCode: {
      if (length < kCancelHeader + kMinCancelKey || length > kCancelHeader + kMaxCancelKey) {
        return Status::InvalidArgument(
            fmt::format("invalid length of cancel request packet: {}", length));
      }
      out.kind = StartupKind::kCancel;
      out.cancel_pid = static_cast<int32_t>(ReadUint32(packet, 8));
      out.cancel_key = std::string(packet.substr(kCancelHeader));
      return out;
    }
    default:
      break;
  }
  const auto major = static_cast<uint16_t>(code >> 16);
  const auto minor = static_cast<uint16_t>(code & 0xffff);
  if (major < kEarliestMajor || major > kLatestMajor) {
    return Status::InvalidArgument(
        fmt::format("unsupported frontend protocol {}.{}: server supports {}.0 to {}.{}", major,
                    minor, kEarliestMajor, kLatestMajor, kLatestMinor));
  }
  out.kind = StartupKind::kStartup;
  out.major = major;
  out.minor = minor;
  PGB_RETURN_IF_ERROR(ParseParams(packet.substr(8), out.params));
  std::optional<std::string> user = out.Get("user");
  if (!user || user->empty()) {
    return Status::InvalidArgument("no PostgreSQL user name specified in startup packet");
  }
  return out;
}

std::string SerializeStartupMessage(const StartupPacket& startup) {
  std::string out(4, '\0');
  AppendUint32(out, kProtocol30);
  for (const auto& [name, value] : startup.params) {
    out.append(name);
    out.push_back('\0');
    out.append(value);
    out.push_back('\0');
  }
  out.push_back('\0');
  PatchLength(out);
  return out;
}

std::string SerializeCancelRequest(int32_t pid, std::string_view key) {
  std::string out(4, '\0');
  AppendUint32(out, kCancelRequestCode);
  AppendUint32(out, static_cast<uint32_t>(pid));
  out.append(key);
  PatchLength(out);
  return out;
}

}  // namespace pgb::proxy
