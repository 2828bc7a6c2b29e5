// Integers as the PostgreSQL wire protocol writes them: big-endian (network byte order), docs
// 55.7 "Message Data Types" (Int32). Shared by the parsers and builders of proxy/.
//
// Thread-safety: pure functions.

#ifndef PGBRANCH_PROXY_WIRE_H_
#define PGBRANCH_PROXY_WIRE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace pgb::proxy {

// The Int32 at `offset`. REQUIRES: offset + 4 <= bytes.size().
inline uint32_t ReadUint32(std::string_view bytes, size_t offset) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data() + offset);
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

inline void AppendUint32(std::string& out, uint32_t value) {
  out.push_back(static_cast<char>(value >> 24));
  out.push_back(static_cast<char>(value >> 16));
  out.push_back(static_cast<char>(value >> 8));
  out.push_back(static_cast<char>(value));
}

inline void AppendInt32(std::string& out, int32_t value) {
  AppendUint32(out, static_cast<uint32_t>(value));
}

}  // namespace pgb::proxy

#endif  // PGBRANCH_PROXY_WIRE_H_
