#include "proxy/scram.h"

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <vector>

namespace pgb::proxy {

namespace {

using Key = std::array<uint8_t, 32>;

constexpr size_t kNonceBytes = 18;  // as PostgreSQL's SCRAM_RAW_NONCE_LEN
constexpr size_t kSaltBytes = 16;   // as PostgreSQL's SCRAM_DEFAULT_SALT_LEN
constexpr int kMinClientIterations = 4096;
constexpr std::string_view kPrefix = "SCRAM-SHA-256$";
constexpr std::string_view kSecretForm =
    "invalid SCRAM secret: expected SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>";

// --- OpenSSL wrappers ---

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    std::fputs("pgbranch: OpenSSL RAND_bytes failed\n", stderr);
    std::abort();
  }
  return out;
}

std::string Base64(const void* data, size_t n) {
  std::string out(4 * ((n + 2) / 3) + 1, '\0');
  int written = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                static_cast<const unsigned char*>(data), static_cast<int>(n));
  out.resize(static_cast<size_t>(written));
  return out;
}
std::string Base64(std::string_view s) { return Base64(s.data(), s.size()); }
std::string Base64(const Key& k) { return Base64(k.data(), k.size()); }

// Decodes canonical padded base64 (RFC 4648 sections 3.5 and 4), nullopt for anything else. The
// characters are checked here because EVP_DecodeBlock skips surrounding whitespace and keeps
// the padding's zero bytes in its output.
std::optional<std::string> FromBase64(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  size_t padding = 0;
  while (padding < 2 && padding < text.size() && text[text.size() - 1 - padding] == '=') {
    ++padding;
  }
  for (size_t i = 0; i < text.size() - padding; ++i) {
    const char c = text[i];
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/';
    if (!ok) return std::nullopt;
  }
  std::string out(text.size() / 4 * 3, '\0');
  if (text.empty()) return out;
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(text.data()),
                          static_cast<int>(text.size()));
  if (n < 0 || static_cast<size_t>(n) != out.size()) return std::nullopt;
  out.resize(out.size() - padding);
  // Only the canonical spelling: the unused low bits of the last character must be zero, so
  // one key has one encoding.
  if (Base64(out) != text) return std::nullopt;
  return out;
}

// A base64 value that must decode to exactly 32 bytes.
std::optional<Key> KeyFromBase64(std::string_view text) {
  std::optional<std::string> raw = FromBase64(text);
  if (!raw || raw->size() != 32) return std::nullopt;
  Key k;
  std::copy(raw->begin(), raw->end(), k.begin());
  return k;
}

Key Hmac(const Key& key, std::string_view data) {
  Key out{};
  unsigned int n = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data(), &n);
  return out;
}

Key Sha256(const Key& data) {
  Key out{};
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), out.data(), &n, EVP_sha256(), nullptr);
  return out;
}

// SaltedPassword := Hi(Normalize(password), salt, i) (RFC 5802 section 3), Hi being PBKDF2
// with HMAC-SHA-256.
Key SaltedPassword(std::string_view password, std::string_view salt, int iterations) {
  Key out{};
  PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                    reinterpret_cast<const unsigned char*>(salt.data()),
                    static_cast<int>(salt.size()), iterations, EVP_sha256(),
                    static_cast<int>(out.size()), out.data());
  return out;
}

bool Equal(const Key& a, const Key& b) { return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0; }

Key Xor(const Key& a, const Key& b) {
  Key out{};
  for (size_t i = 0; i < out.size(); ++i) out[i] = a[i] ^ b[i];
  return out;
}

// --- Message syntax (RFC 5802 section 7) ---

// A positive decimal int without sign, nullopt for anything else or above INT_MAX.
std::optional<int> ParsePositive(std::string_view s) {
  if (s.empty() || s.size() > 10) return std::nullopt;
  long long v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  if (v < 1 || v > INT_MAX) return std::nullopt;
  return static_cast<int>(v);
}

// printable = %x21-2B / %x2D-7E: what a nonce is made of.
bool IsPrintableNonce(std::string_view s) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x21 && c <= 0x7e && c != ','; });
}

struct Attribute {
  char name;
  std::string_view value;
};

// Splits "a=x,b=y" into attributes; nullopt unless every part is a letter, '=', a value.
std::optional<std::vector<Attribute>> SplitAttributes(std::string_view text) {
  std::vector<Attribute> out;
  while (true) {
    size_t comma = text.find(',');
    std::string_view part = text.substr(0, comma);
    if (part.size() < 2 || part[1] != '=') return std::nullopt;
    const char c = part[0];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) return std::nullopt;
    out.push_back({c, part.substr(2)});
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return out;
}

Status Malformed(std::string_view what) {
  return Status::InvalidArgument(fmt::format("malformed SCRAM message: {}", what));
}

// The checks every SCRAM message gets before it is split.
Status CheckMessage(std::string_view message) {
  if (message.empty()) return Malformed("the message is empty");
  if (message.find('\0') != std::string_view::npos) return Malformed("the message contains NUL");
  return Status::OK();
}

// saslname (RFC 5802 section 5.1): ',' and '=' escaped.
std::string EscapeSaslName(std::string_view name) {
  std::string out;
  for (char c : name) {
    if (c == ',') {
      out += "=2C";
    } else if (c == '=') {
      out += "=3D";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string NewNonce() { return Base64(RandomBytes(kNonceBytes)); }

}  // namespace

// --- ScramVerifier ---

Result<ScramVerifier> ScramVerifier::Parse(std::string_view text) {
  // The error never quotes `text`: it is a secret.
  if (text.substr(0, kPrefix.size()) != kPrefix) {
    return Status::InvalidArgument(std::string(kSecretForm));
  }
  text.remove_prefix(kPrefix.size());
  size_t dollar = text.find('$');
  if (dollar == std::string_view::npos) return Status::InvalidArgument(std::string(kSecretForm));
  std::string_view head = text.substr(0, dollar), keys = text.substr(dollar + 1);
  size_t colon1 = head.find(':'), colon2 = keys.find(':');
  if (colon1 == std::string_view::npos || colon2 == std::string_view::npos) {
    return Status::InvalidArgument(std::string(kSecretForm));
  }
  ScramVerifier v;
  std::optional<int> iterations = ParsePositive(head.substr(0, colon1));
  if (!iterations) return Status::InvalidArgument("invalid SCRAM secret: bad iteration count");
  std::optional<std::string> salt = FromBase64(head.substr(colon1 + 1));
  if (!salt || salt->empty()) return Status::InvalidArgument("invalid SCRAM secret: bad salt");
  std::optional<Key> stored = KeyFromBase64(keys.substr(0, colon2));
  std::optional<Key> server = KeyFromBase64(keys.substr(colon2 + 1));
  if (!stored || !server) return Status::InvalidArgument("invalid SCRAM secret: bad key");
  v.iterations = *iterations;
  v.salt = std::move(*salt);
  v.stored_key = *stored;
  v.server_key = *server;
  return v;
}

ScramVerifier ScramVerifier::FromPassword(std::string_view password, std::string_view salt,
                                          int iterations) {
  ScramVerifier v;
  v.iterations = std::max(iterations, 1);
  v.salt = std::string(salt);
  Key salted = SaltedPassword(password, salt, v.iterations);
  Key client_key = Hmac(salted, "Client Key");
  v.stored_key = Sha256(client_key);
  v.server_key = Hmac(salted, "Server Key");
  OPENSSL_cleanse(salted.data(), salted.size());
  OPENSSL_cleanse(client_key.data(), client_key.size());
  return v;
}

ScramVerifier ScramVerifier::Make(std::string_view password) {
  return FromPassword(password, RandomBytes(kSaltBytes));
}

std::string ScramVerifier::ToString() const {
  return fmt::format("{}{}:{}${}:{}", kPrefix, iterations, Base64(salt), Base64(stored_key),
                     Base64(server_key));
}

// --- ScramServer ---

ScramServer::ScramServer(ScramVerifier verifier, std::string nonce)
    : verifier_(std::move(verifier)),
      server_nonce_(nonce.empty() ? NewNonce() : std::move(nonce)) {}

Result<std::string> ScramServer::ClientFirst(std::string_view message) {
  if (first_done_ || !nonce_.empty()) {
    return Status::FailedPrecondition("SCRAM exchange out of order: client-first-message again");
  }
  PGB_RETURN_IF_ERROR(CheckMessage(message));
  // gs2-header: gs2-cbind-flag "," [ authzid ] ","
  const char flag = message[0];
  if (flag == 'p') {
    return Malformed(
        "the client selected SCRAM-SHA-256 without channel binding, but the message includes "
        "channel binding data");
  }
  if (flag != 'n' && flag != 'y') return Malformed("unexpected channel-binding flag");
  if (message.size() < 2 || message[1] != ',') return Malformed("comma expected after flag");
  std::string_view rest = message.substr(2);
  if (rest.substr(0, 2) == "a=") {
    return Malformed("client uses authorization identity, but it is not supported");
  }
  if (rest.empty() || rest[0] != ',') return Malformed("unexpected attribute in gs2 header");
  std::string_view bare = rest.substr(1);
  std::optional<std::vector<Attribute>> attrs = SplitAttributes(bare);
  if (!attrs) return Malformed("invalid attribute in client-first-message");
  if ((*attrs)[0].name == 'm') return Malformed("client requires an unsupported SCRAM extension");
  // n= is ignored, as PostgreSQL does: the startup message's user counts.
  if (attrs->size() < 2 || (*attrs)[0].name != 'n' || (*attrs)[1].name != 'r') {
    return Malformed("client-first-message must start with n= and r=");
  }
  std::string_view client_nonce = (*attrs)[1].value;
  if (!IsPrintableNonce(client_nonce)) return Malformed("invalid client nonce");
  // Further attributes are extensions, which PostgreSQL ignores too.

  nonce_ = std::string(client_nonce) + server_nonce_;
  client_first_bare_ = std::string(bare);
  server_first_ =
      fmt::format("r={},s={},i={}", nonce_, Base64(verifier_.salt), verifier_.iterations);
  cbind_flag_ = flag;
  first_done_ = true;
  return server_first_;
}

Result<std::string> ScramServer::ClientFinal(std::string_view message) {
  if (!first_done_) {
    return Status::FailedPrecondition(
        "SCRAM exchange out of order: client-final-message without client-first-message");
  }
  // One proof per exchange, whatever happens below.
  first_done_ = false;
  PGB_RETURN_IF_ERROR(CheckMessage(message));
  std::optional<std::vector<Attribute>> attrs = SplitAttributes(message);
  if (!attrs) return Malformed("invalid attribute in client-final-message");
  if (attrs->size() < 3 || (*attrs)[0].name != 'c' || (*attrs)[1].name != 'r' ||
      attrs->back().name != 'p') {
    return Malformed("client-final-message must be c=...,r=...,p=...");
  }
  // Without channel binding the echo is the gs2 header: "n,," or "y,," in base64.
  std::string_view expected_cbind = cbind_flag_ == 'y' ? "eSws" : "biws";
  if ((*attrs)[0].value != expected_cbind) {
    return Status::InvalidArgument(
        "unexpected SCRAM channel-binding attribute in client-final-message");
  }
  if ((*attrs)[1].value != nonce_) {
    return Status::InvalidArgument("invalid SCRAM response: nonce does not match");
  }
  std::optional<Key> proof = KeyFromBase64(attrs->back().value);
  if (!proof) return Malformed("malformed proof in client-final-message");

  std::string_view without_proof =
      message.substr(0, message.size() - attrs->back().value.size() - 3);  // ",p="
  std::string auth_message =
      fmt::format("{},{},{}", client_first_bare_, server_first_, without_proof);
  Key client_signature = Hmac(verifier_.stored_key, auth_message);
  Key client_key = Xor(*proof, client_signature);
  bool ok = Equal(Sha256(client_key), verifier_.stored_key);
  OPENSSL_cleanse(client_key.data(), client_key.size());
  if (!ok) return Status::Unauthenticated("password authentication failed");
  return "v=" + Base64(Hmac(verifier_.server_key, auth_message));
}

// --- ScramClient ---

ScramClient::ScramClient(std::string password, std::string nonce)
    : ScramClient(std::move(password), std::move(nonce), std::string_view()) {}

ScramClient::ScramClient(std::string password, std::string nonce, std::string_view user)
    : password_(std::move(password)), nonce_(nonce.empty() ? NewNonce() : std::move(nonce)) {
  client_first_bare_ = fmt::format("n={},r={}", EscapeSaslName(user), nonce_);
}

std::string ScramClient::ClientFirst() { return "n,," + client_first_bare_; }

Result<std::string> ScramClient::ServerFirst(std::string_view message) {
  PGB_RETURN_IF_ERROR(CheckMessage(message));
  std::optional<std::vector<Attribute>> attrs = SplitAttributes(message);
  if (!attrs) return Malformed("invalid attribute in server-first-message");
  if ((*attrs)[0].name == 'm') return Malformed("server requires an unsupported SCRAM extension");
  if (attrs->size() < 3 || (*attrs)[0].name != 'r' || (*attrs)[1].name != 's' ||
      (*attrs)[2].name != 'i') {
    return Malformed("server-first-message must be r=...,s=...,i=...");
  }
  std::string_view nonce = (*attrs)[0].value;
  if (nonce.size() <= nonce_.size() || nonce.substr(0, nonce_.size()) != nonce_ ||
      !IsPrintableNonce(nonce)) {
    return Status::InvalidArgument("invalid SCRAM response: nonce mismatch");
  }
  std::optional<std::string> salt = FromBase64((*attrs)[1].value);
  if (!salt || salt->empty()) return Malformed("invalid salt");
  std::optional<int> iterations = ParsePositive((*attrs)[2].value);
  if (!iterations) return Malformed("invalid iteration count");
  if (*iterations < kMinClientIterations) {
    return Status::InvalidArgument(fmt::format(
        "SCRAM iteration count {} is below the minimum of {}", *iterations, kMinClientIterations));
  }

  const std::string without_proof = fmt::format("c=biws,r={}", nonce);
  const std::string auth_message =
      fmt::format("{},{},{}", client_first_bare_, message, without_proof);
  Key salted = SaltedPassword(password_, *salt, *iterations);
  Key client_key = Hmac(salted, "Client Key");
  Key proof = Xor(client_key, Hmac(Sha256(client_key), auth_message));
  server_signature_ = Hmac(Hmac(salted, "Server Key"), auth_message);
  final_ready_ = true;
  OPENSSL_cleanse(salted.data(), salted.size());
  OPENSSL_cleanse(client_key.data(), client_key.size());
  return fmt::format("{},p={}", without_proof, Base64(proof));
}

Status ScramClient::ServerFinal(std::string_view message) {
  if (!final_ready_) {
    return Status::FailedPrecondition(
        "SCRAM exchange out of order: server-final-message before server-first-message");
  }
  PGB_RETURN_IF_ERROR(CheckMessage(message));
  std::optional<std::vector<Attribute>> attrs = SplitAttributes(message);
  if (!attrs) return Malformed("invalid attribute in server-final-message");
  if ((*attrs)[0].name == 'e') {
    return Status::InvalidArgument(fmt::format("SCRAM authentication failed on the server: {}",
                                               (*attrs)[0].value.substr(0, 100)));
  }
  if ((*attrs)[0].name != 'v') return Malformed("server-final-message must be v=...");
  std::optional<Key> signature = KeyFromBase64((*attrs)[0].value);
  if (!signature) return Malformed("malformed server signature");
  if (!Equal(*signature, server_signature_)) {
    return Status::Unauthenticated(
        "incorrect server signature: the server does not know the password");
  }
  return Status::OK();
}

}  // namespace pgb::proxy
