// Deterministic random fuzzing of the proxy's pure parsers: the startup packet, typed messages
// and their body parsers, and the server side of SCRAM. Each test draws inputs from a seeded
// generator: valid messages, valid messages mutated (bit flips, truncation, a corrupted length
// word, inserted, deleted, overwritten and duplicated bytes) and plain random bytes. It asserts
// that nothing crashes (run under ASan/UBSan to make that check sharp) and that what parses
// obeys invariants: a parsed startup packet re-serializes to the same bytes and re-parses to
// the same parameters, a parsed body rebuilds to itself, and SCRAM accepts exactly the one
// valid exchange.
//
// PGB_FUZZ_SEED picks the seed (default kDefaultSeed; every test prints the one it used, so a
// failure can be replayed). PGB_FUZZ_ITERATIONS sets the iterations of every test (defaults:
// kStartupIterations, kMessageIterations, kScramIterations). The default run, 2,000,000 inputs
// (1,000,000 startup packets, 500,000 message streams, 500,000 SCRAM exchanges), took 9.7 s
// (6.5 + 2.3 + 0.9) on a busy 2-core machine with -O2, and 20 s for 200,000 of each under
// ASan+UBSan at -O1.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "proxy/messages.h"
#include "proxy/scram.h"
#include "proxy/startup.h"

namespace pgb::proxy {
namespace {

constexpr uint64_t kDefaultSeed = 0x70676272616e6368;  // "pgbranch"
constexpr uint64_t kStartupIterations = 1'000'000;
constexpr uint64_t kMessageIterations = 500'000;
constexpr uint64_t kScramIterations = 500'000;

uint64_t EnvNumber(const char* name, uint64_t fallback) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  char* end = nullptr;
  unsigned long long v = std::strtoull(text, &end, 0);
  if (*end != '\0') {
    ADD_FAILURE() << name << "=" << text << " is not a number";
    return fallback;
  }
  return v;
}

uint64_t Seed() { return EnvNumber("PGB_FUZZ_SEED", kDefaultSeed); }
uint64_t Iterations(uint64_t fallback) { return EnvNumber("PGB_FUZZ_ITERATIONS", fallback); }

void Announce(const char* what, uint64_t seed, uint64_t iterations) {
  std::cout << "[ fuzz     ] " << what << ": PGB_FUZZ_SEED=" << seed
            << " PGB_FUZZ_ITERATIONS=" << iterations << std::endl;
}

class Rng {
 public:
  // Each test mixes its own salt into the seed, so a test replays alone.
  Rng(uint64_t seed, uint64_t salt) : gen_(seed ^ (salt * 0x9e3779b97f4a7c15ull)) {}

  // Uniform enough in [0, n); 0 when n == 0.
  uint64_t Below(uint64_t n) { return n == 0 ? 0 : gen_() % n; }
  bool OneIn(uint64_t n) { return Below(n) == 0; }
  char Byte() { return static_cast<char>(gen_()); }

  // Bytes that sit on a parser's edges more often than chance would have them.
  char Interesting() {
    static constexpr char kBytes[] = {'\0', '\x01', '\x7f', '\x80', '\xff', ',', '=',
                                      'n',  'p',    'y',    'r',    'c',    '/', '+'};
    return kBytes[Below(sizeof(kBytes))];
  }

  std::string Bytes(size_t n) {
    std::string s(n, '\0');
    for (char& c : s) c = OneIn(4) ? Interesting() : Byte();
    return s;
  }

  // `n` bytes without NUL: what a startup parameter or a C string may hold.
  std::string NonNul(size_t n) {
    std::string s = OneIn(2) ? Printable(n) : Bytes(n);
    std::replace(s.begin(), s.end(), '\0', 'z');
    return s;
  }

  std::string Printable(size_t n) {
    std::string s(n, '\0');
    for (char& c : s) c = static_cast<char>(0x20 + Below(0x5f));
    return s;
  }

  // Short usually, long sometimes.
  size_t Length(size_t usual, size_t rare) {
    return OneIn(20) ? Below(rare + 1) : Below(usual + 1);
  }

 private:
  std::mt19937_64 gen_;
};

void PutUint32(std::string& s, size_t offset, uint32_t v) {
  for (int i = 0; i < 4; ++i) s[offset + i] = static_cast<char>(v >> (24 - 8 * i));
}

uint32_t GetUint32(std::string_view s, size_t offset) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = v << 8 | static_cast<unsigned char>(s[offset + i]);
  return v;
}

constexpr size_t kNoLengthWord = std::string::npos;

// One to four mutations of `s`. `length_at` is where its Int32 length word sits (0 for a
// startup packet, 1 for a typed message, kNoLengthWord for SCRAM text), which one mutation
// corrupts: a random value, an off-by-a-little value, or a value at an edge.
std::string Mutate(std::string s, Rng& rng, size_t length_at) {
  const uint64_t rounds = 1 + rng.Below(4);
  for (uint64_t r = 0; r < rounds; ++r) {
    switch (rng.Below(7)) {
      case 0:  // bit flip
        if (!s.empty()) s[rng.Below(s.size())] ^= static_cast<char>(1u << rng.Below(8));
        break;
      case 1:  // truncation
        s.resize(rng.Below(s.size() + 1));
        break;
      case 2:  // length word
        if (length_at != kNoLengthWord && s.size() >= length_at + 4) {
          const uint32_t now = GetUint32(s, length_at);
          static constexpr uint32_t kEdges[] = {
              0,   3,     4,     5,     7,     8,     9,          15,         16,        268,
              269, 10000, 10001, 65535, 65536, 65537, 0x7fffffff, 0x80000000, 0xffffffff};
          uint32_t v;
          switch (rng.Below(3)) {
            case 0:
              v = static_cast<uint32_t>(rng.Below(uint64_t{1} << 32));
              break;
            case 1:
              v = now + static_cast<uint32_t>(rng.Below(9)) - 4;
              break;
            default:
              v = kEdges[rng.Below(std::size(kEdges))];
          }
          PutUint32(s, length_at, v);
        } else if (!s.empty()) {  // text: a separator where it hurts
          s.insert(s.begin() + rng.Below(s.size() + 1), rng.OneIn(2) ? ',' : '=');
        }
        break;
      case 3:  // insertion
        s.insert(s.begin() + rng.Below(s.size() + 1),
                 rng.OneIn(2) ? rng.Interesting() : rng.Byte());
        break;
      case 4:  // deletion of a short run
        if (!s.empty()) {
          size_t at = rng.Below(s.size());
          s.erase(at, 1 + rng.Below(std::min<size_t>(8, s.size() - at)));
        }
        break;
      case 5:  // overwrite with an edge byte
        if (!s.empty()) s[rng.Below(s.size())] = rng.Interesting();
        break;
      default:  // duplicate a chunk (repeated parameters, fields, attributes)
        if (!s.empty()) {
          size_t at = rng.Below(s.size());
          std::string chunk = s.substr(at, 1 + rng.Below(32));
          s.insert(rng.Below(s.size() + 1), chunk);
        }
    }
  }
  return s;
}

// --- Startup packets ---

struct Generated {
  std::string bytes;
  bool valid = false;  // must parse
};

Generated ValidStartupPacket(Rng& rng) {
  static const std::vector<std::string> kNames = {"database",        "options",  "application_name",
                                                  "client_encoding", "_pq_.x",   "_pq_.compression",
                                                  "replication",     "DateStyle"};
  switch (rng.Below(10)) {
    case 0:
      return {SerializeCancelRequest(static_cast<int32_t>(rng.Below(uint64_t{1} << 32)),
                                     rng.Bytes(4 + rng.Below(kMaxCancelKey - 3))),
              true};
    case 1:
      return {std::string("\0\0\0\x08\x04\xd2\x16\x2f", 8), true};  // SSLRequest
    case 2:
      return {std::string("\0\0\0\x08\x04\xd2\x16\x30", 8), true};  // GSSENCRequest
    default:
      break;
  }
  StartupPacket p;
  bool valid = true;
  if (!rng.OneIn(20)) {
    std::string user = rng.NonNul(1 + rng.Length(12, 200));
    p.Set("user", user);
  } else {
    valid = false;
  }
  const uint64_t n = rng.Below(7);
  for (uint64_t i = 0; i < n; ++i) {
    std::string name =
        rng.OneIn(4) ? rng.NonNul(1 + rng.Below(20)) : kNames[rng.Below(kNames.size())];
    if (p.Get(name)) continue;
    p.params.emplace_back(name, rng.NonNul(rng.Length(30, 3000)));
  }
  if (rng.OneIn(3)) std::shuffle(p.params.begin(), p.params.end(), std::mt19937(rng.Below(1000)));
  std::string bytes = SerializeStartupMessage(p);
  static constexpr uint16_t kMinors[] = {0, 0, 0, 1, 2, 3, 0xffff};
  PutUint32(bytes, 4, 3u << 16 | kMinors[rng.Below(std::size(kMinors))]);
  if (bytes.size() > kMaxStartupPacket) valid = false;
  return {bytes, valid};
}

Generated RandomStartupPacket(Rng& rng) {
  std::string bytes = rng.Bytes(rng.Length(24, 400));
  if (bytes.size() >= 4 && rng.OneIn(2)) PutUint32(bytes, 0, static_cast<uint32_t>(bytes.size()));
  if (bytes.size() >= 8 && rng.OneIn(2)) PutUint32(bytes, 4, 3u << 16);
  return {bytes, false};
}

// A parsed packet holds everything its kind promises, and serializes back to the bytes read
// (the protocol word aside, which becomes 3.0).
void CheckParsedStartup(const std::string& packet, const StartupPacket& p) {
  Result<size_t> length = StartupPacketLength(std::string_view(packet).substr(0, 4));
  ASSERT_TRUE(length.ok());
  ASSERT_EQ(*length, packet.size());
  switch (p.kind) {
    case StartupKind::kSslRequest:
    case StartupKind::kGssEncRequest:
      ASSERT_EQ(packet.size(), 8u);
      return;
    case StartupKind::kCancel:
      ASSERT_GE(p.cancel_key.size(), 4u);
      ASSERT_LE(p.cancel_key.size(), kMaxCancelKey);
      ASSERT_EQ(SerializeCancelRequest(p.cancel_pid, p.cancel_key), packet);
      return;
    case StartupKind::kStartup:
      break;
  }
  ASSERT_EQ(p.major, 3);
  std::set<std::string> names;
  for (const auto& [name, value] : p.params) {
    ASSERT_FALSE(name.empty());
    ASSERT_EQ(name.find('\0'), std::string::npos);
    ASSERT_EQ(value.find('\0'), std::string::npos);
    ASSERT_TRUE(names.insert(name).second) << "repeated " << name;
  }
  ASSERT_TRUE(p.Get("user").has_value() && !p.Get("user")->empty());
  std::string again = SerializeStartupMessage(p);
  std::string expected = packet;
  PutUint32(expected, 4, kProtocol30);
  ASSERT_EQ(again, expected);
  Result<StartupPacket> reparsed = ParseStartupPacket(again);
  ASSERT_TRUE(reparsed.ok()) << reparsed.status().ToString();
  ASSERT_EQ(reparsed->kind, StartupKind::kStartup);
  ASSERT_EQ(reparsed->minor, 0);
  ASSERT_EQ(reparsed->params, p.params);
}

// Startup packets, valid, mutated and random: valid ones parse, nothing crashes, every failure
// is an InvalidArgument with a one-line message, and every success re-serializes exactly.
TEST(FuzzTest, StartupPacket) {
  const uint64_t seed = Seed(), iterations = Iterations(kStartupIterations);
  Announce("startup packet", seed, iterations);
  Rng rng(seed, 1);
  uint64_t parsed[4] = {}, refused = 0;
  for (uint64_t i = 0; i < iterations; ++i) {
    Generated g = rng.OneIn(10) ? RandomStartupPacket(rng) : ValidStartupPacket(rng);
    const bool mutated = !rng.OneIn(4);
    if (mutated) g.bytes = Mutate(std::move(g.bytes), rng, 0);
    Result<StartupPacket> got = ParseStartupPacket(g.bytes);
    if (!got.ok()) {
      ASSERT_FALSE(g.valid && !mutated) << got.status().ToString() << " at iteration " << i;
      ASSERT_EQ(got.status().code(), StatusCode::kInvalidArgument);
      ASSERT_FALSE(got.status().message().empty());
      ASSERT_EQ(got.status().message().find('\n'), std::string::npos);
      ++refused;
      continue;
    }
    ++parsed[static_cast<int>(got->kind)];
    CheckParsedStartup(g.bytes, *got);
    if (HasFatalFailure()) {
      FAIL() << "iteration " << i << " (PGB_FUZZ_SEED=" << seed << ")";
    }
  }
  std::cout << "[ fuzz     ] parsed startup " << parsed[0] << ", ssl " << parsed[1] << ", gssenc "
            << parsed[2] << ", cancel " << parsed[3] << "; refused " << refused << std::endl;
  if (iterations >= 10000) {  // both paths are exercised, not just one
    EXPECT_GT(parsed[0], iterations / 20);
    EXPECT_GT(refused, iterations / 4);
  }
}

// --- Typed messages ---

std::string ValidMessage(Rng& rng) {
  auto strings = [&](size_t max_count) {
    std::vector<std::string> v(rng.Below(max_count + 1));
    for (std::string& s : v) s = rng.NonNul(1 + rng.Length(16, 300));
    return v;
  };
  switch (rng.Below(13)) {
    case 0:
      return ErrorResponse(rng.OneIn(2) ? "FATAL" : "ERROR", rng.Printable(5),
                           rng.NonNul(rng.Length(40, 2000)),
                           rng.OneIn(2) ? rng.NonNul(rng.Length(40, 500)) : "",
                           rng.OneIn(2) ? rng.NonNul(rng.Length(40, 500)) : "");
    case 1:
      return AuthenticationOk();
    case 2:
      return AuthenticationSasl(strings(3));
    case 3:
      return AuthenticationSaslContinue(rng.Bytes(rng.Length(90, 1000)));
    case 4:
      return AuthenticationSaslFinal(rng.Bytes(rng.Length(50, 500)));
    case 5:
      return BackendKeyData(static_cast<int32_t>(rng.Below(uint64_t{1} << 32)),
                            rng.Bytes(rng.OneIn(8) ? rng.Below(300) : 4 + rng.Below(253)));
    case 6:
      return ParameterStatus(rng.NonNul(rng.Length(20, 100)), rng.NonNul(rng.Length(20, 100)));
    case 7:
      return NegotiateProtocolVersion(static_cast<int32_t>(rng.Below(3)), strings(4));
    case 8:
      return SaslInitialResponse(rng.OneIn(2) ? "SCRAM-SHA-256" : rng.NonNul(rng.Below(30)),
                                 rng.Bytes(rng.Length(60, 600)));
    case 9:
      return SaslResponse(rng.Bytes(rng.Length(100, 600)));
    case 10:
      return PasswordMessage(rng.NonNul(rng.Length(30, 300)));
    case 11:
      return Terminate();
    default: {  // any type, any body
      std::string body = rng.Bytes(rng.Length(30, 300));
      std::string m(5, rng.Byte());
      PutUint32(m, 1, static_cast<uint32_t>(body.size() + 4));
      return m + body;
    }
  }
}

std::string BodyOf(const std::string& message) { return message.substr(5); }

// Every body parser on `body`, whatever the type: no crash, and what parses rebuilds to the
// same bytes (for the messages that have a builder).
void CheckBodyParsers(std::string_view body) {
  Result<Authentication> auth = ParseAuthentication(body);
  if (auth.ok()) {
    ASSERT_GE(body.size(), 4u);
    ASSERT_EQ(auth->data, body.substr(4));
    if (auth->code == 10) {
      ASSERT_EQ(BodyOf(AuthenticationSasl(auth->mechanisms)), body);
    }
  } else {
    ASSERT_EQ(auth.status().code(), StatusCode::kInvalidArgument);
  }
  Result<KeyData> key = ParseBackendKeyData(body);
  if (key.ok()) {
    ASSERT_EQ(BodyOf(BackendKeyData(key->pid, key->key)), body);
  } else {
    ASSERT_EQ(key.status().code(), StatusCode::kInvalidArgument);
  }
  Result<std::map<char, std::string>> fields = ParseErrorFields(body);
  if (fields.ok()) {
    ASSERT_EQ(body.back(), '\0');
    size_t bytes = 1;
    for (const auto& [code, value] : *fields) {
      ASSERT_NE(code, '\0');
      ASSERT_EQ(value.find('\0'), std::string::npos);
      bytes += 2 + value.size();
    }
    ASSERT_LE(bytes, body.size());  // repeated codes keep the last value only
  } else {
    ASSERT_EQ(fields.status().code(), StatusCode::kInvalidArgument);
  }
  Result<SaslInitial> sasl = ParseSaslInitialResponse(body);
  if (sasl.ok()) {
    ASSERT_EQ(BodyOf(SaslInitialResponse(sasl->mechanism, sasl->data)), body);
  } else {
    ASSERT_EQ(sasl.status().code(), StatusCode::kInvalidArgument);
  }
}

// Streams of one to four messages, valid, mutated and random, walked with PeekMessage as the
// proxy walks its buffer, with every body parser run on every message found.
TEST(FuzzTest, Messages) {
  const uint64_t seed = Seed(), iterations = Iterations(kMessageIterations);
  Announce("messages", seed, iterations);
  Rng rng(seed, 2);
  uint64_t found = 0, refused = 0;
  for (uint64_t i = 0; i < iterations; ++i) {
    std::string buffer;
    const uint64_t count = 1 + rng.Below(4);
    bool intact = true;
    for (uint64_t m = 0; m < count; ++m) {
      std::string message = ValidMessage(rng);
      if (rng.OneIn(3)) {
        message = Mutate(std::move(message), rng, 1);
        intact = false;
      }
      buffer += message;
    }
    if (rng.OneIn(20)) {
      buffer = rng.Bytes(rng.Length(40, 400));
      intact = false;
    }
    const size_t max_size = rng.OneIn(8) ? rng.Below(400) : kMaxParsedMessage;
    if (max_size != kMaxParsedMessage) intact = false;
    uint64_t seen = 0;
    std::string_view rest = buffer;
    while (true) {
      Result<std::optional<Message>> peek = PeekMessage(rest, max_size);
      if (!peek.ok()) {
        ASSERT_EQ(peek.status().code(), StatusCode::kInvalidArgument);
        ASSERT_GE(rest.size(), 5u);
        ++refused;
        break;
      }
      if (!peek->has_value()) {
        if (rest.size() >= 5) {
          ASSERT_GT(uint64_t{GetUint32(rest, 1)} + 1, rest.size());
        }
        break;
      }
      const Message& m = **peek;
      ASSERT_EQ(m.type, rest[0]);
      ASSERT_EQ(m.size, 5 + m.body.size());
      ASSERT_LE(m.size, rest.size());
      ASSERT_LE(m.size, max_size);
      ASSERT_EQ(GetUint32(rest, 1), m.body.size() + 4);
      ASSERT_EQ(m.body.data(), rest.data() + 5);
      CheckBodyParsers(m.body);
      if (HasFatalFailure()) FAIL() << "iteration " << i << " (PGB_FUZZ_SEED=" << seed << ")";
      ++seen;
      ++found;
      rest.remove_prefix(m.size);
    }
    if (intact) {
      ASSERT_EQ(seen, count) << "iteration " << i;
      ASSERT_TRUE(rest.empty());
    }
  }
  std::cout << "[ fuzz     ] messages found " << found << ", streams refused " << refused
            << std::endl;
}

// --- SCRAM ---

// The server side of SCRAM against mutated client messages: it accepts the one valid exchange
// and refuses everything else as InvalidArgument (malformed) or Unauthenticated (wrong proof).
// The server never runs PBKDF2 (it holds StoredKey and ServerKey), so each iteration costs a
// few HMACs whatever the verifier's count; the one real PBKDF2 is the client's, made once to
// produce the valid client-final-message. The client's server-final check is fuzzed too.
TEST(FuzzTest, ScramServer) {
  const uint64_t seed = Seed(), iterations = Iterations(kScramIterations);
  Announce("scram", seed, iterations);
  Rng rng(seed, 3);
  const ScramVerifier verifier = ScramVerifier::FromPassword("pencil", "fuzzsalt", 4096);
  const std::string kServerNonce = "fuzzservernonce";
  ScramClient client("pencil", "fuzzclientnonce");
  const std::string client_first = client.ClientFirst();
  Result<std::string> server_first = ScramServer(verifier, kServerNonce).ClientFirst(client_first);
  ASSERT_TRUE(server_first.ok());
  Result<std::string> client_final = client.ServerFirst(*server_first);
  ASSERT_TRUE(client_final.ok()) << client_final.status().ToString();
  ScramServer check(verifier, kServerNonce);
  ASSERT_TRUE(check.ClientFirst(client_first).ok());
  Result<std::string> server_final = check.ClientFinal(*client_final);
  ASSERT_TRUE(server_final.ok()) << server_final.status().ToString();

  uint64_t firsts = 0, accepted = 0, unauthenticated = 0;
  for (uint64_t i = 0; i < iterations; ++i) {
    ScramServer server(verifier, kServerNonce);
    std::string first;
    switch (rng.Below(10)) {
      case 0:
        first = rng.Bytes(rng.Length(30, 200));
        break;
      case 1:
      case 2:
      case 3:
      case 4:
        first = client_first;
        break;
      default:
        first = Mutate(client_first, rng, kNoLengthWord);
    }
    Result<std::string> got_first = server.ClientFirst(first);
    if (!got_first.ok()) {
      ASSERT_EQ(got_first.status().code(), StatusCode::kInvalidArgument) << first;
      ASSERT_EQ(server.ClientFinal(*client_final).status().code(), StatusCode::kFailedPrecondition);
      continue;
    }
    ++firsts;
    ASSERT_EQ(got_first->substr(0, 2), "r=");
    ASSERT_NE(got_first->find(kServerNonce + ",s=ZnV6enNhbHQ=,i=4096"), std::string::npos);

    std::string final_message;
    bool wrong_proof_only = false;
    switch (rng.Below(10)) {
      case 0:
        final_message = rng.Bytes(rng.Length(60, 300));
        break;
      case 1: {  // well-formed, right nonce, random proof
        std::string nonce = got_first->substr(2, got_first->find(',') - 2);
        std::string proof;
        static constexpr char kB64[] =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        for (int k = 0; k < 42; ++k) proof += kB64[rng.Below(64)];
        proof += kB64[4 * rng.Below(16)];  // 32 bytes end in a character with 2 bits used
        final_message = "c=biws,r=" + nonce + ",p=" + proof + "=";
        wrong_proof_only = first[0] == 'n';
        break;
      }
      case 2:
      case 3:
      case 4:
        final_message = *client_final;
        break;
      default:
        final_message = Mutate(*client_final, rng, kNoLengthWord);
    }
    Result<std::string> got_final = server.ClientFinal(final_message);
    const bool exact = first == client_first && final_message == *client_final;
    if (got_final.ok()) {
      ASSERT_TRUE(exact) << first << " / " << final_message;
      ASSERT_EQ(*got_final, *server_final);
      ++accepted;
    } else {
      ASSERT_FALSE(exact) << got_final.status().ToString();
      const StatusCode code = got_final.status().code();
      ASSERT_TRUE(code == StatusCode::kInvalidArgument || code == StatusCode::kUnauthenticated)
          << got_final.status().ToString();
      if (wrong_proof_only) {
        ASSERT_EQ(code, StatusCode::kUnauthenticated) << final_message;
      }
      if (code == StatusCode::kUnauthenticated) ++unauthenticated;
    }
    // One exchange checks one proof.
    ASSERT_EQ(server.ClientFinal(*client_final).status().code(), StatusCode::kFailedPrecondition);

    // The client's check of the server-final-message: only the real signature passes (an
    // extension after it is allowed by RFC 5802).
    std::string server_message =
        rng.OneIn(4) ? *server_final : Mutate(*server_final, rng, kNoLengthWord);
    Status st = client.ServerFinal(server_message);
    if (st.ok()) {
      ASSERT_EQ(server_message.substr(0, server_final->size()), *server_final);
      ASSERT_TRUE(server_message.size() == server_final->size() ||
                  server_message[server_final->size()] == ',')
          << server_message;
    } else {
      ASSERT_TRUE(st.code() == StatusCode::kInvalidArgument ||
                  st.code() == StatusCode::kUnauthenticated)
          << st.ToString();
    }
  }
  std::cout << "[ fuzz     ] scram client-first accepted " << firsts << ", exchanges accepted "
            << accepted << ", wrong proofs " << unauthenticated << std::endl;
  if (iterations >= 1000) {
    EXPECT_GT(accepted, iterations / 10);
    EXPECT_GT(unauthenticated, 0u);
  }
}

}  // namespace
}  // namespace pgb::proxy
