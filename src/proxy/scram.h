// SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL speaks it (docs 55.3.1 "SASL
// Authentication", 21.5 "Password Authentication"): the server side, so the proxy can
// authenticate a client against a stored verifier without ever holding the password, and the
// client side, so the proxy can log in to a branch with the password pgbranch gave it.
//
// As in PostgreSQL, the user name in the client-first-message is ignored (the startup
// message's "user" counts), and channel binding (SCRAM-SHA-256-PLUS) is not offered: a client
// sending gs2 flag 'n' or 'y' is accepted, 'p' refused. Passwords are used as given (no
// SASLprep): the passwords pgbranch makes are printable ASCII, for which SASLprep is the identity.
//
// Thread-safety: a ScramServer or ScramClient is one exchange, used by one thread at a time;
// the free functions are pure apart from drawing random salts and nonces.

#ifndef PGBRANCH_PROXY_SCRAM_H_
#define PGBRANCH_PROXY_SCRAM_H_

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace pgb::proxy {

inline constexpr const char* kScramSha256 = "SCRAM-SHA-256";
inline constexpr int kDefaultScramIterations = 4096;  // PostgreSQL's scram_iterations default

// A stored SCRAM secret, as in pg_authid.rolpassword:
// "SCRAM-SHA-256$<iterations>:<base64 salt>$<base64 StoredKey>:<base64 ServerKey>".
struct ScramVerifier {
  int iterations = 0;
  std::string salt;  // raw bytes
  std::array<uint8_t, 32> stored_key{};
  std::array<uint8_t, 32> server_key{};

  // InvalidArgument for anything not of the form above (an MD5 or plain password included).
  static Result<ScramVerifier> Parse(std::string_view text);
  // The verifier of `password` with `salt` (raw bytes) and `iterations`.
  static ScramVerifier FromPassword(std::string_view password, std::string_view salt,
                                    int iterations = kDefaultScramIterations);
  // FromPassword with a random 16-byte salt.
  static ScramVerifier Make(std::string_view password);
  std::string ToString() const;
};

// The server side of one exchange. Calls out of order (ClientFinal before ClientFirst, either
// one twice) return FailedPrecondition.
class ScramServer {
 public:
  // `nonce`: the server's nonce part (printable, no ','); empty draws 18 random bytes (base64).
  explicit ScramServer(ScramVerifier verifier, std::string nonce = {});
  // Takes the client-first-message (from SASLInitialResponse) and returns the
  // server-first-message ("r=...,s=...,i=..."). InvalidArgument for a malformed message or a
  // channel-binding request ('p').
  Result<std::string> ClientFirst(std::string_view message);
  // Takes the client-final-message and returns the server-final-message ("v=..."), after
  // checking the channel binding echo, the nonce and the proof. InvalidArgument for a malformed
  // message; Unauthenticated for a wrong proof (a wrong password).
  Result<std::string> ClientFinal(std::string_view message);

 private:
  ScramVerifier verifier_;
  std::string server_nonce_;
  std::string client_first_bare_, server_first_, nonce_;
  char cbind_flag_ = 'n';  // the client's gs2 flag, which client-final must echo
  bool first_done_ = false;
};

// The client side of one exchange.
class ScramClient {
 public:
  // `nonce`: the client nonce (printable, no ','); empty draws 18 random bytes (base64).
  explicit ScramClient(std::string password, std::string nonce = {});
  // As above, with `user` sent as the client-first-message's "n=" (escaped as RFC 5802 5.1
  // says). PostgreSQL ignores it; it is here for RFC 7677's test vector, which uses "user".
  ScramClient(std::string password, std::string nonce, std::string_view user);
  // The client-first-message: "n,,n=,r=<nonce>".
  std::string ClientFirst();
  // Takes the server-first-message and returns the client-final-message. InvalidArgument for a
  // malformed message, a nonce that does not extend ours, or fewer than 4096 iterations.
  Result<std::string> ServerFirst(std::string_view message);
  // Checks the server-final-message's signature. InvalidArgument if malformed or carrying an
  // error ("e=..."); Unauthenticated if the signature is wrong (the server does not know the
  // password).
  Status ServerFinal(std::string_view message);

 private:
  std::string password_, nonce_;
  std::string client_first_bare_;
  std::array<uint8_t, 32> server_signature_{};
  bool final_ready_ = false;
};

}  // namespace pgb::proxy

#endif  // PGBRANCH_PROXY_SCRAM_H_
