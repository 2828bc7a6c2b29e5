#include "proxy/messages.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace pgb::proxy {
namespace {

using namespace std::string_literals;

std::string Int32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}

// The one whole message `bytes` must be: PeekMessage finds it, of type `type`, spanning every
// byte; returns its body.
std::string WholeBody(const std::string& bytes, char type) {
  Result<std::optional<Message>> m = PeekMessage(bytes);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  if (!m.ok() || !m->has_value()) {
    ADD_FAILURE() << "no whole message";
    return {};
  }
  EXPECT_EQ((*m)->type, type);
  EXPECT_EQ((*m)->size, bytes.size());
  EXPECT_EQ((*m)->body.data(), bytes.data() + 5);
  return std::string((*m)->body);
}

// PeekMessage waits for five bytes and then for the whole message; it refuses a length word
// below 4 (a negative Int32 included) and a message longer than max_size before its bytes
// arrive, and ignores what follows the message.
TEST(MessagesTest, PeekMessage) {
  struct Case {
    std::string name;
    std::string buffer;
    size_t max_size;
    std::string error;           // non-empty: InvalidArgument with this message
    std::optional<size_t> size;  // nullopt: more bytes needed
    std::string body;
  };
  const size_t kMax = kMaxParsedMessage;
  const std::vector<Case> cases = {
      {"empty", "", kMax, "", std::nullopt, ""},
      {"type only", "R", kMax, "", std::nullopt, ""},
      {"partial length", "R\0\0\0"s, kMax, "", std::nullopt, ""},
      {"partial body", "R\0\0\0\x08\0\0"s, kMax, "", std::nullopt, ""},
      {"whole", "R\0\0\0\x08\0\0\0\0"s, kMax, "", 9, "\0\0\0\0"s},
      {"empty body", "X\0\0\0\x04"s, kMax, "", 5, ""},
      {"whole and more",
       "S\0\0\0\x06"
       "ab"s +
           "Z\0\0\0\x05I"s,
       kMax, "", 7, "ab"},
      {"length 3", "R\0\0\0\x03"s, kMax, "invalid message length 3 (type 0x52)", std::nullopt, ""},
      {"length 0", "E\0\0\0\0"s, kMax, "invalid message length 0 (type 0x45)", std::nullopt, ""},
      {"negative length", "R" + Int32(0xffffffff), kMax, "invalid message length -1 (type 0x52)",
       std::nullopt, ""},
      {"too big", "E" + Int32(kMax), kMax,
       "message of 65537 bytes (type 0x45) exceeds the limit of 65536 bytes", std::nullopt, ""},
      {"largest allowed, partial", "E" + Int32(kMax - 1), kMax, "", std::nullopt, ""},
      {"huge", "E" + Int32(0x7fffffff), kMax,
       "message of 2147483648 bytes (type 0x45) exceeds the limit of 65536 bytes", std::nullopt,
       ""},
      {"small max_size",
       "S\0\0\0\x06"
       "ab"s,
       6, "message of 7 bytes (type 0x53) exceeds the limit of 6 bytes", std::nullopt, ""},
      {"max_size exact",
       "S\0\0\0\x06"
       "ab"s,
       7, "", 7, "ab"},
  };
  for (const Case& c : cases) {
    Result<std::optional<Message>> got = PeekMessage(c.buffer, c.max_size);
    if (!c.error.empty()) {
      ASSERT_FALSE(got.ok()) << c.name;
      EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument) << c.name;
      EXPECT_EQ(got.status().message(), c.error) << c.name;
      continue;
    }
    ASSERT_TRUE(got.ok()) << c.name << ": " << got.status().ToString();
    if (!c.size) {
      EXPECT_FALSE(got->has_value()) << c.name;
      continue;
    }
    ASSERT_TRUE(got->has_value()) << c.name;
    EXPECT_EQ((*got)->type, c.buffer[0]) << c.name;
    EXPECT_EQ((*got)->size, *c.size) << c.name;
    EXPECT_EQ((*got)->body, c.body) << c.name;
  }
}

// ErrorResponse carries S and V (severity), C, M and, only when given, D and H, each
// NUL-terminated, then a final NUL; ParseErrorFields reads them back.
TEST(MessagesTest, ErrorResponseFields) {
  std::string bytes = ErrorResponse("FATAL", "3D000", "database \"x\" does not exist");
  EXPECT_EQ(bytes, "E" + Int32(55) + "SFATAL\0VFATAL\0C3D000\0Mdatabase \"x\" does not exist\0\0"s);
  Result<std::map<char, std::string>> fields = ParseErrorFields(WholeBody(bytes, 'E'));
  ASSERT_TRUE(fields.ok()) << fields.status().ToString();
  EXPECT_EQ(
      *fields,
      (std::map<char, std::string>{
          {'S', "FATAL"}, {'V', "FATAL"}, {'C', "3D000"}, {'M', "database \"x\" does not exist"}}));

  bytes = ErrorResponse("ERROR", "57P03", "branch is starting", "it was suspended", "retry");
  fields = ParseErrorFields(WholeBody(bytes, 'E'));
  ASSERT_TRUE(fields.ok()) << fields.status().ToString();
  EXPECT_EQ(*fields, (std::map<char, std::string>{{'S', "ERROR"},
                                                  {'V', "ERROR"},
                                                  {'C', "57P03"},
                                                  {'M', "branch is starting"},
                                                  {'D', "it was suspended"},
                                                  {'H', "retry"}}));

  // A NUL inside a field cuts it there instead of shifting the fields after it.
  bytes = ErrorResponse("FATAL", "28P01", "bad\0tail"s, "", "h");
  fields = ParseErrorFields(WholeBody(bytes, 'E'));
  ASSERT_TRUE(fields.ok()) << fields.status().ToString();
  EXPECT_EQ((*fields)['M'], "bad");
  EXPECT_EQ((*fields)['H'], "h");
  EXPECT_EQ(fields->count('D'), 0u);
}

// ParseErrorFields refuses a body without its final NUL, a field without its NUL, and bytes
// after the final NUL.
TEST(MessagesTest, ParseErrorFieldsRefusesMalformed) {
  for (const std::string& body : {""s, "SFATAL\0"s, "SFATAL"s, "SFATAL\0\0x"s, "S"s}) {
    Result<std::map<char, std::string>> got = ParseErrorFields(body);
    EXPECT_FALSE(got.ok()) << body;
    EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument);
  }
  Result<std::map<char, std::string>> empty = ParseErrorFields("\0"s);
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

// Every Authentication builder gives its code, the SASL ones their data or mechanism list, in
// the bytes PostgreSQL sends; ParseAuthentication reads each back.
TEST(MessagesTest, AuthenticationRoundTrip) {
  struct Case {
    std::string bytes;
    std::string want;
    int32_t code;
    std::string data;
    std::vector<std::string> mechanisms;
  };
  const std::vector<Case> cases = {
      {AuthenticationOk(), "R\0\0\0\x08\0\0\0\0"s, 0, "", {}},
      {AuthenticationSasl({"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"}),
       "R\0\0\0\x2a\0\0\0\x0aSCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0"s,
       10,
       "SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0"s,
       {"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"}},
      {AuthenticationSasl({"SCRAM-SHA-256"}),
       "R\0\0\0\x17\0\0\0\x0aSCRAM-SHA-256\0\0"s,
       10,
       "SCRAM-SHA-256\0\0"s,
       {"SCRAM-SHA-256"}},
      {AuthenticationSasl({}), "R\0\0\0\x09\0\0\0\x0a\0"s, 10, "\0"s, {}},
      {AuthenticationSaslContinue("r=abc,s=c2FsdA==,i=4096"),
       "R\0\0\0\x1f\0\0\0\x0br=abc,s=c2FsdA==,i=4096"s,
       11,
       "r=abc,s=c2FsdA==,i=4096",
       {}},
      {AuthenticationSaslFinal("v=xyz"), "R\0\0\0\x0d\0\0\0\x0cv=xyz"s, 12, "v=xyz", {}},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(c.bytes, c.want);
    Result<Authentication> a = ParseAuthentication(WholeBody(c.bytes, 'R'));
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    EXPECT_EQ(a->code, c.code);
    EXPECT_EQ(a->data, c.data);
    EXPECT_EQ(a->mechanisms, c.mechanisms);
  }
}

// ParseAuthentication needs the Int32 code, and for SASL a NUL-ended list with nothing after.
TEST(MessagesTest, ParseAuthenticationRefusesMalformed) {
  for (const std::string& body : {""s, "\0\0\0"s, "\0\0\0\x0a"s, "\0\0\0\x0aSCRAM-SHA-256"s,
                                  "\0\0\0\x0aSCRAM-SHA-256\0"s, "\0\0\0\x0aSCRAM-SHA-256\0\0x"s}) {
    Result<Authentication> got = ParseAuthentication(body);
    EXPECT_FALSE(got.ok()) << got->code;
    EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument);
  }
  // MD5's salt and cleartext are other codes, with their data as is.
  Result<Authentication> md5 = ParseAuthentication("\0\0\0\x05salt"s);
  ASSERT_TRUE(md5.ok());
  EXPECT_EQ(md5->code, 5);
  EXPECT_EQ(md5->data, "salt");
}

// BackendKeyData round-trips for the 3.0 key and 3.2's longest; its parser takes 4..256 key
// bytes after the pid and nothing else.
TEST(MessagesTest, BackendKeyData) {
  EXPECT_EQ(BackendKeyData(0x01020304, "\xaa\xbb\xcc\xdd"),
            "K\0\0\0\x0c\x01\x02\x03\x04\xaa\xbb\xcc\xdd"s);
  for (size_t n : {4, 32, 256}) {
    std::string key(n, '\x5a');
    Result<KeyData> got = ParseBackendKeyData(WholeBody(BackendKeyData(-77, key), 'K'));
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(got->pid, -77);
    EXPECT_EQ(got->key, key);
  }
  struct Bound {
    size_t body_size;
    bool ok;
  };
  for (Bound b : std::vector<Bound>{
           {0, false}, {4, false}, {7, false}, {8, true}, {260, true}, {261, false}}) {
    Result<KeyData> got = ParseBackendKeyData(std::string(b.body_size, '\1'));
    EXPECT_EQ(got.ok(), b.ok) << b.body_size;
    if (!got.ok()) {
      EXPECT_EQ(got.status().message(), "invalid BackendKeyData: " + std::to_string(b.body_size) +
                                            " bytes, expected 8 to 260");
    }
  }
}

// ParameterStatus, NegotiateProtocolVersion, PasswordMessage, SASLResponse and Terminate are
// the bytes the protocol documents.
TEST(MessagesTest, OtherBuilders) {
  EXPECT_EQ(ParameterStatus("server_version", "16.4"),
            "S\0\0\0\x18server_version\0"
            "16.4\0"s);
  EXPECT_EQ(WholeBody(ParameterStatus("a", ""), 'S'), "a\0\0"s);
  EXPECT_EQ(NegotiateProtocolVersion(0, {"_pq_.a", "_pq_.bc"}),
            "v\0\0\0\x1b\0\0\0\0\0\0\0\x02_pq_.a\0_pq_.bc\0"s);
  EXPECT_EQ(WholeBody(NegotiateProtocolVersion(2, {}), 'v'), "\0\0\0\x02\0\0\0\0"s);
  EXPECT_EQ(PasswordMessage("secret"), "p\0\0\0\x0bsecret\0"s);
  EXPECT_EQ(WholeBody(SaslResponse("c=biws,r=x,p=y"), 'p'), "c=biws,r=x,p=y");
  EXPECT_EQ(Terminate(), "X\0\0\0\x04"s);
}

// SASLInitialResponse carries the mechanism, the data's Int32 length and the data, and parses
// back; an empty client-first-message (length 0) is still data.
TEST(MessagesTest, SaslInitialResponseRoundTrip) {
  EXPECT_EQ(SaslInitialResponse("SCRAM-SHA-256", "n,,n=,r=abc"),
            "p\0\0\0\x21SCRAM-SHA-256\0\0\0\0\x0bn,,n=,r=abc"s);
  for (const std::string& data : {""s, "n,,n=,r=abc"s, std::string(1000, 'x')}) {
    Result<SaslInitial> got =
        ParseSaslInitialResponse(WholeBody(SaslInitialResponse("SCRAM-SHA-256", data), 'p'));
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(got->mechanism, "SCRAM-SHA-256");
    EXPECT_EQ(got->data, data);
  }
}

// A length of -1 (no data), a length that disagrees with the bytes that follow, a missing
// length or mechanism terminator are all refused.
TEST(MessagesTest, ParseSaslInitialResponseRefusesMalformed) {
  struct Case {
    std::string name;
    std::string body;
    std::string error;
  };
  const std::string mech = "SCRAM-SHA-256\0"s;
  const std::vector<Case> cases = {
      {"length -1", mech + Int32(0xffffffff),
       "invalid SASL initial response: no client-first-message (length -1)"},
      {"length -2", mech + Int32(0xfffffffe) + "ab",
       "invalid SASL initial response: data length -2 but 2 bytes follow"},
      {"truncated", mech + Int32(10) + "n,,n=,",
       "invalid SASL initial response: data length 10 but 6 bytes follow"},
      {"trailing bytes", mech + Int32(1) + "ab",
       "invalid SASL initial response: data length 1 but 2 bytes follow"},
      {"no length", mech + "\0\0"s, "invalid SASL initial response: no data length"},
      {"no mechanism terminator", "SCRAM-SHA-256",
       "invalid SASL initial response: no mechanism name"},
      {"empty mechanism", "\0"s + Int32(0), "invalid SASL initial response: no mechanism name"},
      {"empty", "", "invalid SASL initial response: no mechanism name"},
  };
  for (const Case& c : cases) {
    Result<SaslInitial> got = ParseSaslInitialResponse(c.body);
    ASSERT_FALSE(got.ok()) << c.name;
    EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument) << c.name;
    EXPECT_EQ(got.status().message(), c.error) << c.name;
  }
}

}  // namespace
}  // namespace pgb::proxy
