// The API's bearer tokens (engine.h "API tokens"). A token is "pgbt_<id>_<secret>": the id
// finds the row, the secret (43 characters of base64url: 256 random bits) is checked against
// its stored SHA-256 in constant time. An unsalted, fast hash is enough for a secret of full
// entropy (no dictionary to try), and keeps a check cheap for every request.

#include <fmt/format.h>
#include <openssl/rand.h>

#include <array>
#include <charconv>
#include <cstdlib>

#include "common/digest.h"
#include "engine/engine.h"

namespace pgb {
namespace {

constexpr std::string_view kTokenPrefix = "pgbt_";

int ScopeRank(std::string_view scope) {
  if (scope == "read") return 1;
  if (scope == "write") return 2;
  if (scope == "admin") return 3;
  return 0;
}

// 32 random bytes as unpadded base64url (RFC 4648 section 5): 43 characters.
std::string RandomSecret() {
  std::array<unsigned char, 32> bytes{};
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) std::abort();
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char b : bytes) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kAlphabet[(acc >> bits) & 63]);
    }
  }
  if (bits > 0) out.push_back(kAlphabet[(acc << (6 - bits)) & 63]);
  return out;
}

TokenInfo InfoOf(const TokenRow& row) {
  TokenInfo info;
  info.name = row.name;
  info.scope = row.scope;
  info.created_at = row.created_at;
  if (!row.last_used_at.empty()) info.last_used_at = row.last_used_at;
  return info;
}

}  // namespace

bool ScopeAllows(std::string_view have, std::string_view need) {
  int h = ScopeRank(have);
  return h > 0 && h >= ScopeRank(need);
}

Result<NewToken> Engine::CreateToken(const std::string& name, const std::string& scope) {
  PGB_RETURN_IF_ERROR(ValidateName("token", name));
  if (ScopeRank(scope) == 0) {
    return Status::InvalidArgument(
        fmt::format("scope must be read, write or admin, not '{}'", scope));
  }
  std::string secret = RandomSecret();
  TokenRow row;
  row.name = name;
  row.scope = scope;
  row.secret_sha256 = Sha256Hex(secret);
  row.created_at = FormatTimestamp(env_.clock->Now());
  int64_t id = 0;
  PGB_RETURN_IF_ERROR(catalog_->Transaction([&]() -> Status {
    PGB_ASSIGN_OR_RETURN(auto rows, catalog_->ListTokens());
    for (const auto& r : rows) {
      if (r.name == name)
        return Status::AlreadyExists(fmt::format("token {} already exists", name));
    }
    PGB_ASSIGN_OR_RETURN(id, catalog_->InsertToken(row));
    return Status::OK();
  }));
  NewToken out;
  out.info = InfoOf(row);
  out.token = fmt::format("{}{}_{}", kTokenPrefix, id, secret);
  return out;
}

Result<std::vector<TokenInfo>> Engine::ListTokens() {
  PGB_ASSIGN_OR_RETURN(auto rows, catalog_->ListTokens());
  std::vector<TokenInfo> out;
  for (const auto& r : rows) out.push_back(InfoOf(r));
  return out;
}

Status Engine::RevokeToken(const std::string& name) {
  PGB_ASSIGN_OR_RETURN(bool gone, catalog_->DeleteToken(name));
  if (!gone) return Status::NotFound(fmt::format("token {} does not exist", name));
  return Status::OK();
}

Result<TokenInfo> Engine::AuthenticateToken(std::string_view presented) {
  const Status refused = Status::Unauthenticated("the token is not valid");
  if (presented.size() > 128 || presented.substr(0, kTokenPrefix.size()) != kTokenPrefix) {
    return refused;
  }
  std::string_view rest = presented.substr(kTokenPrefix.size());
  size_t sep = rest.find('_');
  if (sep == std::string_view::npos || sep == 0) return refused;
  int64_t id = 0;
  auto [end, ec] = std::from_chars(rest.data(), rest.data() + sep, id);
  if (ec != std::errc() || end != rest.data() + sep) return refused;
  auto row = catalog_->GetToken(id);
  if (!row.ok()) {
    if (row.status().code() == StatusCode::kNotFound) return refused;
    return row.status();
  }
  if (!ConstantTimeEqual(Sha256Hex(rest.substr(sep + 1)), row->secret_sha256)) return refused;
  TimePoint now = env_.clock->Now();
  bool stale = true;
  if (!row->last_used_at.empty()) {
    auto last = ParseTimestamp(row->last_used_at);
    stale = !last.ok() || now - *last >= std::chrono::minutes(1);
  }
  if (stale) {
    row->last_used_at = FormatTimestamp(now);
    (void)catalog_->TouchToken(row->id, row->last_used_at);  // a busy catalog only delays it
  }
  return InfoOf(*row);
}

}  // namespace pgb
