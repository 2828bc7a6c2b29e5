#include "proxy/startup.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace pgb::proxy {
namespace {

using namespace std::string_literals;
using Params = std::vector<std::pair<std::string, std::string>>;

std::string Int32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}

// A packet whose length word is right: length, code, body.
std::string Packet(uint32_t code, std::string_view body) {
  return Int32(static_cast<uint32_t>(8 + body.size())) + Int32(code) + std::string(body);
}

uint32_t Version(uint16_t major, uint16_t minor) { return uint32_t{major} << 16 | minor; }

// The four-byte header decides how many bytes to read: 8 to 10000 inclusive, and nothing else
// (a negative int32 is a huge uint32 and refused the same way).
TEST(StartupTest, PacketLength) {
  struct Case {
    std::string header;
    std::optional<size_t> want;
    std::string error;
  };
  const std::vector<Case> cases = {
      {Int32(8), 8, ""},
      {Int32(9), 9, ""},
      {Int32(10000), 10000, ""},
      {Int32(3), std::nullopt, "invalid length of startup packet: 3"},
      {Int32(7), std::nullopt, "invalid length of startup packet: 7"},
      {Int32(0), std::nullopt, "invalid length of startup packet: 0"},
      {Int32(10001), std::nullopt, "invalid length of startup packet: 10001"},
      {Int32(0xffffffff), std::nullopt, "invalid length of startup packet: 4294967295"},
      {"\0\0\0"s, std::nullopt, "invalid length of startup packet: header of 3 bytes"},
      {"\0\0\0\x08\0"s, std::nullopt, "invalid length of startup packet: header of 5 bytes"},
  };
  for (const Case& c : cases) {
    Result<size_t> got = StartupPacketLength(c.header);
    if (c.want) {
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      EXPECT_EQ(*got, *c.want);
    } else {
      ASSERT_FALSE(got.ok()) << *got;
      EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument);
      EXPECT_EQ(got.status().message(), c.error);
    }
  }
}

// SSLRequest and GSSENCRequest are exactly eight bytes; CancelRequest carries a pid and a key
// of 4 bytes (protocol 3.0) up to 256 bytes (3.2). Each is classified by its code.
TEST(StartupTest, RequestCodes) {
  const std::string key30 = "\x01\x02\x03\x04";
  const std::string key32(32, 'k');
  const std::string key_max(kMaxCancelKey, '\xff');
  struct Case {
    std::string packet;
    StartupKind kind;
    int32_t pid = 0;
    std::string key = {};
  };
  const std::vector<Case> cases = {
      {Packet(kSslRequestCode, ""), StartupKind::kSslRequest},
      {Packet(kGssEncRequestCode, ""), StartupKind::kGssEncRequest},
      {Packet(kCancelRequestCode, Int32(4242) + key30), StartupKind::kCancel, 4242, key30},
      {Packet(kCancelRequestCode, Int32(7) + key32), StartupKind::kCancel, 7, key32},
      {Packet(kCancelRequestCode, Int32(0x80000001) + key_max), StartupKind::kCancel,
       static_cast<int32_t>(0x80000001), key_max},
  };
  for (const Case& c : cases) {
    Result<StartupPacket> got = ParseStartupPacket(c.packet);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(got->kind, c.kind);
    EXPECT_EQ(got->cancel_pid, c.pid);
    EXPECT_EQ(got->cancel_key, c.key);
    EXPECT_TRUE(got->params.empty());
  }
}

// Every malformed packet is refused with InvalidArgument and a message PostgreSQL would give
// (or close to it), whatever comes after the fault.
TEST(StartupTest, RefusesMalformedPackets) {
  const uint32_t v30 = kProtocol30;
  struct Case {
    std::string name;
    std::string packet;
    std::string error;
  };
  const std::vector<Case> cases = {
      {"shorter than a length word", "\0\0\0"s,
       "invalid length of startup packet: 3 bytes received"},
      {"length 3", Int32(3) + "\0\0\0\0"s, "invalid length of startup packet: 3"},
      {"length 7", Int32(7) + "\0\0\0"s, "invalid length of startup packet: 7"},
      {"length above 10000", Int32(10001) + std::string(9997, 'x'),
       "invalid length of startup packet: 10001"},
      {"length word larger than packet", Int32(20) + Int32(v30) + "user\0a\0\0"s,
       "invalid length of startup packet: 20 says the length word, 16 bytes received"},
      {"length word smaller than packet", Int32(8) + Int32(kSslRequestCode) + "x",
       "invalid length of startup packet: 8 says the length word, 9 bytes received"},
      {"SSLRequest with a body", Packet(kSslRequestCode, "abcd"),
       "invalid length of SSLRequest packet: 12"},
      {"GSSENCRequest with a body", Packet(kGssEncRequestCode, "a"),
       "invalid length of GSSENCRequest packet: 9"},
      {"cancel without key", Packet(kCancelRequestCode, Int32(1)),
       "invalid length of cancel request packet: 12"},
      {"cancel with 3-byte key", Packet(kCancelRequestCode, Int32(1) + "abc"),
       "invalid length of cancel request packet: 15"},
      {"cancel with 257-byte key", Packet(kCancelRequestCode, Int32(1) + std::string(257, 'k')),
       "invalid length of cancel request packet: 269"},
      {"cancel without pid", Packet(kCancelRequestCode, ""),
       "invalid length of cancel request packet: 8"},
      {"protocol 2.0", Packet(Version(2, 0), "user\0a\0\0"s),
       "unsupported frontend protocol 2.0: server supports 3.0 to 3.2"},
      {"protocol 4.0", Packet(Version(4, 0), "user\0a\0\0"s),
       "unsupported frontend protocol 4.0: server supports 3.0 to 3.2"},
      {"unknown request code 1234.5681", Packet(80877105, ""),
       "unsupported frontend protocol 1234.5681: server supports 3.0 to 3.2"},
      {"no parameters and no terminator", Packet(v30, ""),
       "invalid startup packet layout: expected terminator as last byte"},
      {"no terminator", Packet(v30, "user\0bob"s),
       "invalid startup packet layout: expected terminator as last byte"},
      {"terminator used as value's end", Packet(v30, "user\0bob\0"s),
       "invalid startup packet layout: expected terminator as last byte"},
      {"trailing bytes after terminator", Packet(v30, "user\0bob\0\0xyz"s),
       "invalid startup packet layout: expected terminator as last byte"},
      {"pair after terminator", Packet(v30, "user\0bob\0\0database\0d\0\0"s),
       "invalid startup packet layout: expected terminator as last byte"},
      {"name without value", Packet(v30, "user\0bob\0options\0"s),
       "invalid startup packet layout: parameter \"options\" has no value"},
      {"repeated name", Packet(v30, "user\0bob\0database\0d\0user\0eve\0\0"s),
       "invalid startup packet layout: parameter \"user\" given twice"},
      {"repeated unprintable name", Packet(v30, "\x1b[2J\0a\0\x1b[2J\0b\0user\0u\0\0"s),
       "invalid startup packet layout: parameter with an unprintable name given twice"},
      {"no user", Packet(v30, "database\0d\0\0"s),
       "no PostgreSQL user name specified in startup packet"},
      {"empty user", Packet(v30, "user\0\0\0"s),
       "no PostgreSQL user name specified in startup packet"},
      {"only the terminator", Packet(v30, "\0"s),
       "no PostgreSQL user name specified in startup packet"},
  };
  for (const Case& c : cases) {
    Result<StartupPacket> got = ParseStartupPacket(c.packet);
    ASSERT_FALSE(got.ok()) << c.name;
    EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument) << c.name;
    EXPECT_EQ(got.status().message(), c.error) << c.name;
  }
}

// A StartupMessage keeps its parameters in the order sent, empty values included, and
// records the minor version asked for (3.2 is accepted; so is a future 3.x, which the proxy
// answers with NegotiateProtocolVersion).
TEST(StartupTest, StartupMessage) {
  struct Case {
    uint16_t minor;
    std::string body;
    Params params;
  };
  const std::vector<Case> cases = {
      {0, "user\0bob\0\0"s, {{"user", "bob"}}},
      {0,
       "database\0shop\0user\0bob\0options\0-c geqo=off\0application_name\0\0\0"s,
       {{"database", "shop"},
        {"user", "bob"},
        {"options", "-c geqo=off"},
        {"application_name", ""}}},
      {2, "user\0bob\0_pq_.test_option\0x\0\0"s, {{"user", "bob"}, {"_pq_.test_option", "x"}}},
      {7, "user\0caf\xc3\xa9\0\0"s, {{"user", "caf\xc3\xa9"}}},
  };
  for (const Case& c : cases) {
    Result<StartupPacket> got = ParseStartupPacket(Packet(Version(3, c.minor), c.body));
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(got->kind, StartupKind::kStartup);
    EXPECT_EQ(got->major, 3);
    EXPECT_EQ(got->minor, c.minor);
    EXPECT_EQ(got->params, c.params);
  }
}

// The largest packet PostgreSQL accepts, 10000 bytes, parses.
TEST(StartupTest, LargestPacket) {
  std::string body = "user\0bob\0options\0"s;
  body += std::string(10000 - 8 - body.size() - 2, 'o');
  body += "\0\0"s;
  std::string packet = Packet(kProtocol30, body);
  ASSERT_EQ(packet.size(), 10000u);
  Result<StartupPacket> got = ParseStartupPacket(packet);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->Get("options")->size(), 10000 - 8 - 17 - 2);
}

// Get finds a parameter by exact name; Set replaces in place, appends a new one at the end,
// and removes with nullopt, leaving the others in order.
TEST(StartupTest, GetAndSet) {
  StartupPacket p;
  p.params = {{"user", "bob"}, {"database", "shop"}, {"options", "-c x=1"}};
  EXPECT_EQ(p.Get("user"), "bob");
  EXPECT_EQ(p.Get("database"), "shop");
  EXPECT_EQ(p.Get("User"), std::nullopt);
  EXPECT_EQ(p.Get("missing"), std::nullopt);

  p.Set("database", "shop_dev");
  EXPECT_EQ(p.params, (Params{{"user", "bob"}, {"database", "shop_dev"}, {"options", "-c x=1"}}));
  p.Set("application_name", "psql");
  EXPECT_EQ(p.params, (Params{{"user", "bob"},
                              {"database", "shop_dev"},
                              {"options", "-c x=1"},
                              {"application_name", "psql"}}));
  p.Set("options", std::nullopt);
  EXPECT_EQ(p.params,
            (Params{{"user", "bob"}, {"database", "shop_dev"}, {"application_name", "psql"}}));
  p.Set("not_there", std::nullopt);
  EXPECT_EQ(p.params.size(), 3u);
  p.Set("user", "");
  EXPECT_EQ(p.Get("user"), "");
}

// Serializing writes protocol 3.0 whatever minor was parsed, the parameters in order, and the
// exact bytes PostgreSQL expects; parsing the result gives the same parameters back.
TEST(StartupTest, SerializeStartupMessageRoundTrip) {
  const std::string body = "user\0bob\0database\0shop\0_pq_.x\0y\0options\0\0\0"s;
  for (uint16_t minor : {0, 2, 9}) {
    Result<StartupPacket> parsed = ParseStartupPacket(Packet(Version(3, minor), body));
    ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
    std::string bytes = SerializeStartupMessage(*parsed);
    EXPECT_EQ(bytes, Packet(kProtocol30, body)) << "minor " << minor;
    Result<StartupPacket> again = ParseStartupPacket(bytes);
    ASSERT_TRUE(again.ok()) << again.status().ToString();
    EXPECT_EQ(again->major, 3);
    EXPECT_EQ(again->minor, 0);
    EXPECT_EQ(again->params, parsed->params);
  }

  // A message edited by Set serializes what was set.
  StartupPacket p;
  p.Set("user", "alice");
  p.Set("database", "db");
  EXPECT_EQ(SerializeStartupMessage(p), Packet(kProtocol30, "user\0alice\0database\0db\0\0"s));
}

// A CancelRequest serializes to length, code, pid, key and parses back, for the 3.0 key size,
// a 3.2 key and the longest key.
TEST(StartupTest, SerializeCancelRequestRoundTrip) {
  EXPECT_EQ(SerializeCancelRequest(0x01020304, "\xaa\xbb\xcc\xdd"),
            "\0\0\0\x10\x04\xd2\x16\x2e\x01\x02\x03\x04\xaa\xbb\xcc\xdd"s);
  for (size_t n : {size_t{4}, size_t{32}, kMaxCancelKey}) {
    std::string key;
    for (size_t i = 0; i < n; ++i) key.push_back(static_cast<char>(i * 7));
    std::string bytes = SerializeCancelRequest(-5, key);
    EXPECT_EQ(bytes.size(), 12 + n);
    Result<StartupPacket> got = ParseStartupPacket(bytes);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(got->kind, StartupKind::kCancel);
    EXPECT_EQ(got->cancel_pid, -5);
    EXPECT_EQ(got->cancel_key, key);
  }
}

}  // namespace
}  // namespace pgb::proxy
