// Cryptographically strong random strings (OpenSSL RAND_bytes).

#ifndef PGBRANCH_COMMON_RANDOM_H_
#define PGBRANCH_COMMON_RANDOM_H_

#include <string>

namespace pgb {

// `length` characters drawn uniformly from [A-Za-z0-9] (rejection sampling, so no modulo
// bias): about 5.95 bits each, 190 bits for the 32 used as branch passwords. Safe inside a URI
// without escaping. Aborts if the OS random source fails (a bug-level condition).
std::string RandomPassword(size_t length);

// 2 * `bytes` lower-case hex characters.
std::string RandomHex(size_t bytes);

}  // namespace pgb

#endif  // PGBRANCH_COMMON_RANDOM_H_
