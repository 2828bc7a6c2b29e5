// Byte counts for people.

#ifndef PGBRANCH_COMMON_BYTES_H_
#define PGBRANCH_COMMON_BYTES_H_

#include <cstdint>
#include <string>

namespace pgb {

inline constexpr uint64_t kKiB = 1024;
inline constexpr uint64_t kMiB = 1024 * kKiB;
inline constexpr uint64_t kGiB = 1024 * kMiB;

// Binary units with one decimal: "512 B", "1.5 KiB", "160.0 MiB", "64.0 GiB".
std::string FormatBytes(uint64_t bytes);

}  // namespace pgb

#endif  // PGBRANCH_COMMON_BYTES_H_
