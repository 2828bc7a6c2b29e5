// Digests and comparisons of secrets (OpenSSL).

#ifndef PGBRANCH_COMMON_DIGEST_H_
#define PGBRANCH_COMMON_DIGEST_H_

#include <string>
#include <string_view>

namespace pgb {

// SHA-256 (FIPS 180-4) of `data` as 64 lower-case hex characters. Thread-safe.
std::string Sha256Hex(std::string_view data);

// Whether `a` and `b` are equal, in time that depends only on their lengths (CRYPTO_memcmp), so
// a secret compared with it leaks nothing through timing but its length. Thread-safe.
bool ConstantTimeEqual(std::string_view a, std::string_view b);

}  // namespace pgb

#endif  // PGBRANCH_COMMON_DIGEST_H_
