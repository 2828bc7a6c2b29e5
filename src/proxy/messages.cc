#include "proxy/messages.h"

#include <fmt/format.h>

#include "proxy/wire.h"

namespace pgb::proxy {

namespace {

constexpr size_t kHeader = 5;  // type byte + Int32 length
constexpr size_t kMinKey = 4;
constexpr size_t kMaxKey = 256;

// A protocol String. A NUL inside `s` would end it early and shift every field after it, so
// the string is cut at its first NUL instead: the message stays well-formed.
void AppendCString(std::string& out, std::string_view s) {
  out.append(s.substr(0, s.find('\0')));
  out.push_back('\0');
}

// A message being built: its type, a length word filled in by Finish(), then the body.
class Builder {
 public:
  explicit Builder(char type) : out_(kHeader, '\0') { out_[0] = type; }
  Builder& Int32(int32_t v) {
    AppendInt32(out_, v);
    return *this;
  }
  Builder& CString(std::string_view s) {
    AppendCString(out_, s);
    return *this;
  }
  Builder& Bytes(std::string_view s) {
    out_.append(s);
    return *this;
  }
  Builder& Byte(char c) {
    out_.push_back(c);
    return *this;
  }
  std::string Finish() {
    const auto n = static_cast<uint32_t>(out_.size() - 1);
    out_[1] = static_cast<char>(n >> 24);
    out_[2] = static_cast<char>(n >> 16);
    out_[3] = static_cast<char>(n >> 8);
    out_[4] = static_cast<char>(n);
    return std::move(out_);
  }

 private:
  std::string out_;
};

// Reads the NUL-terminated string at the front of `body` and removes it (and its NUL);
// nullopt when there is no NUL.
std::optional<std::string_view> TakeCString(std::string_view& body) {
  size_t end = body.find('\0');
  if (end == std::string_view::npos) return std::nullopt;
  std::string_view s = body.substr(0, end);
  body.remove_prefix(end + 1);
  return s;
}

}  // namespace

Result<std::optional<Message>> PeekMessage(std::string_view buffer, size_t max_size) {
  if (buffer.size() < kHeader) return std::optional<Message>();
  // An Int32, as PostgreSQL reads it: a negative length is as invalid as a short one.
  const auto length = static_cast<int32_t>(ReadUint32(buffer, 1));
  const char type = buffer[0];
  if (length < 4) {
    return Status::InvalidArgument(fmt::format("invalid message length {} (type 0x{:02x})", length,
                                               static_cast<unsigned char>(type)));
  }
  const uint64_t size = static_cast<uint64_t>(length) + 1;
  if (size > max_size) {
    return Status::InvalidArgument(
        fmt::format("message of {} bytes (type 0x{:02x}) exceeds the limit of {} bytes", size,
                    static_cast<unsigned char>(type), max_size));
  }
  if (buffer.size() < size) return std::optional<Message>();
  Message m;
  m.type = type;
  m.size = static_cast<size_t>(size);
  m.body = buffer.substr(kHeader, m.size - kHeader);
  return std::optional<Message>(m);
}

std::string ErrorResponse(std::string_view severity, std::string_view sqlstate,
                          std::string_view message, std::string_view detail,
                          std::string_view hint) {
  Builder b('E');
  b.Byte('S').CString(severity).Byte('V').CString(severity);
  b.Byte('C').CString(sqlstate).Byte('M').CString(message);
  if (!detail.empty()) b.Byte('D').CString(detail);
  if (!hint.empty()) b.Byte('H').CString(hint);
  return b.Byte('\0').Finish();
}

std::string AuthenticationOk() { return Builder('R').Int32(0).Finish(); }

std::string AuthenticationSasl(const std::vector<std::string>& mechanisms) {
  Builder b('R');
  b.Int32(10);
  for (const std::string& m : mechanisms) {
    if (!m.empty()) b.CString(m);  // an empty name would end the list
  }
  return b.Byte('\0').Finish();
}

std::string AuthenticationSaslContinue(std::string_view data) {
  return Builder('R').Int32(11).Bytes(data).Finish();
}

std::string AuthenticationSaslFinal(std::string_view data) {
  return Builder('R').Int32(12).Bytes(data).Finish();
}

std::string BackendKeyData(int32_t pid, std::string_view key) {
  return Builder('K').Int32(pid).Bytes(key).Finish();
}

std::string ParameterStatus(std::string_view name, std::string_view value) {
  return Builder('S').CString(name).CString(value).Finish();
}

std::string NegotiateProtocolVersion(int32_t newest_minor,
                                     const std::vector<std::string>& unrecognized) {
  Builder b('v');
  b.Int32(newest_minor).Int32(static_cast<int32_t>(unrecognized.size()));
  for (const std::string& option : unrecognized) b.CString(option);
  return b.Finish();
}

std::string SaslInitialResponse(std::string_view mechanism, std::string_view data) {
  return Builder('p')
      .CString(mechanism)
      .Int32(static_cast<int32_t>(data.size()))
      .Bytes(data)
      .Finish();
}

std::string SaslResponse(std::string_view data) { return Builder('p').Bytes(data).Finish(); }

std::string PasswordMessage(std::string_view password) {
  return Builder('p').CString(password).Finish();
}

std::string Terminate() { return Builder('X').Finish(); }

Result<Authentication> ParseAuthentication(std::string_view body) {
  if (body.size() < 4) {
    return Status::InvalidArgument(
        fmt::format("invalid authentication request: {} bytes, expected at least 4", body.size()));
  }
  Authentication a;
  a.code = static_cast<int32_t>(ReadUint32(body, 0));
  body.remove_prefix(4);
  a.data = std::string(body);
  if (a.code == 10) {
    while (true) {
      std::optional<std::string_view> name = TakeCString(body);
      if (!name) {
        return Status::InvalidArgument(
            "invalid SASL authentication request: mechanism list without terminator");
      }
      if (name->empty()) break;
      a.mechanisms.emplace_back(*name);
    }
    if (!body.empty()) {
      return Status::InvalidArgument(
          "invalid SASL authentication request: bytes after the mechanism list");
    }
  }
  return a;
}

Result<KeyData> ParseBackendKeyData(std::string_view body) {
  if (body.size() < 4 + kMinKey || body.size() > 4 + kMaxKey) {
    return Status::InvalidArgument(fmt::format("invalid BackendKeyData: {} bytes, expected 8 to {}",
                                               body.size(), 4 + kMaxKey));
  }
  KeyData k;
  k.pid = static_cast<int32_t>(ReadUint32(body, 0));
  k.key = std::string(body.substr(4));
  return k;
}

Result<std::map<char, std::string>> ParseErrorFields(std::string_view body) {
  std::map<char, std::string> fields;
  while (true) {
    if (body.empty()) {
      return Status::InvalidArgument("invalid error message: fields without terminator");
    }
    const char code = body[0];
    body.remove_prefix(1);
    if (code == '\0') break;
    std::optional<std::string_view> value = TakeCString(body);
    if (!value) {
      return Status::InvalidArgument(
          fmt::format("invalid error message: field '{}' without terminator",
                      code >= 0x20 && code < 0x7f ? code : '?'));
    }
    fields[code] = std::string(*value);
  }
  if (!body.empty()) {
    return Status::InvalidArgument("invalid error message: bytes after the terminator");
  }
  return fields;
}

Result<SaslInitial> ParseSaslInitialResponse(std::string_view body) {
  std::optional<std::string_view> mechanism = TakeCString(body);
  if (!mechanism || mechanism->empty()) {
    return Status::InvalidArgument("invalid SASL initial response: no mechanism name");
  }
  if (body.size() < 4) {
    return Status::InvalidArgument("invalid SASL initial response: no data length");
  }
  const auto length = static_cast<int32_t>(ReadUint32(body, 0));
  body.remove_prefix(4);
  if (length == -1) {
    return Status::InvalidArgument(
        "invalid SASL initial response: no client-first-message (length -1)");
  }
  if (length < 0 || static_cast<size_t>(length) != body.size()) {
    return Status::InvalidArgument(fmt::format(
        "invalid SASL initial response: data length {} but {} bytes follow", length, body.size()));
  }
  SaslInitial s;
  s.mechanism = std::string(*mechanism);
  s.data = std::string(body);
  return s;
}

}  // namespace pgb::proxy
