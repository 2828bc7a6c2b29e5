#include "pg/client.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <string>

#include "common/fs.h"
#include "runtime/test_instance.h"

namespace pgb {
namespace {

using std::chrono::milliseconds;
using test::TestInstance;
using SteadyClock = std::chrono::steady_clock;

// One running server shared by the tests of this suite (starting one per test costs ~1 s here,
// mostly copying the data directory). Tests use their own object names.
class PgClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    Result<std::unique_ptr<TestInstance>> pg = TestInstance::Create("PgClientTest");
    setup_ = pg.status();
    if (!pg.ok()) return;
    pg_ = std::move(pg).value();
    setup_ = pg_->StartAndWait();
  }
  static void TearDownTestSuite() { pg_.reset(); }

  void SetUp() override {
    if (setup_.Is(StatusCode::kNotFound)) GTEST_SKIP() << setup_.ToString();
    ASSERT_TRUE(setup_.ok()) << setup_.ToString() << "\n" << (pg_ ? pg_->Log() : "");
    auto conn = Connection::Open(pg_->AdminParams());
    ASSERT_TRUE(conn.ok()) << conn.status().ToString();
    admin_ = std::move(conn).value();
  }

  static inline std::unique_ptr<TestInstance> pg_;
  static inline Status setup_;
  std::unique_ptr<Connection> admin_;
};

// With the server running, a query returns its rows as text with NULL as nullopt, parameters
// are bound as $1..$n, a command returns no rows, and the server version is 15.
TEST_F(PgClientTest, QueryReturnsRowsNullsAndParameters) {
  Result<std::vector<Row>> rows =
      admin_->Query("SELECT 1, NULL::text, $1::text UNION ALL SELECT 2, 'x', $2", {"a'b", "c"});
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0], (Row{"1", std::nullopt, "a'b"}));
  EXPECT_EQ((*rows)[1], (Row{"2", "x", "c"}));
  Result<std::vector<Row>> none = admin_->Query("CREATE TABLE query_test (id int)");
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_TRUE(none->empty());
  EXPECT_EQ(admin_->QueryValue("SELECT NULL").status().code(), StatusCode::kInternal);
  EXPECT_EQ(admin_->QueryValue("SELECT 1 WHERE false").status().code(), StatusCode::kNotFound);
  EXPECT_GE(admin_->ServerVersion(), 150000);
  EXPECT_LT(admin_->ServerVersion(), 160000);
}

// A failing statement is CommandFailed carrying the server's message and SQLSTATE, and the
// connection stays usable.
TEST_F(PgClientTest, QueryErrorCarriesSqlstate) {
  Status s = admin_->Exec("SELECT * FROM no_such_table");
  EXPECT_EQ(s.code(), StatusCode::kCommandFailed);
  EXPECT_NE(s.message().find("relation \"no_such_table\" does not exist"), std::string::npos)
      << s.message();
  EXPECT_NE(s.message().find("SQLSTATE 42P01"), std::string::npos) << s.message();
  EXPECT_TRUE(admin_->Exec("SELECT 1").ok());
}

// Identifiers and literals quoted by the connection round-trip through the server: a role
// named with a quote and a space can be created and found, and a literal with quotes and a
// backslash comes back unchanged.
TEST_F(PgClientTest, QuoteIdentifierAndLiteralRoundTrip) {
  const std::string role = R"(we"ird role)";
  const std::string value = R"(it's "quoted" \ here)";
  Result<std::string> ident = admin_->QuoteIdentifier(role);
  Result<std::string> literal = admin_->QuoteLiteral(value);
  ASSERT_TRUE(ident.ok() && literal.ok());
  EXPECT_EQ(*ident, R"("we""ird role")");
  ASSERT_TRUE(admin_->Exec("CREATE ROLE " + *ident).ok());
  Result<std::string> found =
      admin_->QueryValue("SELECT count(*) FROM pg_roles WHERE rolname = $1", {role});
  ASSERT_TRUE(found.ok()) << found.status().ToString();
  EXPECT_EQ(*found, "1");
  Result<std::string> back = admin_->QueryValue("SELECT " + *literal);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, value);
}

// Given a role whose password SetRolePassword set on a session that logs every statement, a
// TCP login with that password works; a wrong or missing password is FailedPrecondition; the
// server log holds the ALTER ROLE with a SCRAM verifier but never the plain password.
TEST_F(PgClientTest, SetRolePasswordAllowsTcpLoginAndNeverSendsPlainPassword) {
  const std::string password = "s3cret-Pa55'word";
  ASSERT_TRUE(admin_->Exec("SET log_statement = 'all'").ok());
  ASSERT_TRUE(admin_->Exec("CREATE ROLE app LOGIN").ok());
  Status set = SetRolePassword(*admin_, "app", password);
  ASSERT_TRUE(set.ok()) << set.ToString();
  Result<std::string> stored =
      admin_->QueryValue("SELECT rolpassword FROM pg_authid WHERE rolname = 'app'");
  ASSERT_TRUE(stored.ok()) << stored.status().ToString();
  EXPECT_TRUE(stored->starts_with("SCRAM-SHA-256$4096:")) << *stored;

  auto conn = Connection::Open(pg_->TcpParams("app", password));
  ASSERT_TRUE(conn.ok()) << conn.status().ToString();
  Result<std::string> who = (*conn)->QueryValue("SELECT current_user");
  ASSERT_TRUE(who.ok());
  EXPECT_EQ(*who, "app");

  auto wrong = Connection::Open(pg_->TcpParams("app", "not-the-password"));
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().code(), StatusCode::kFailedPrecondition) << wrong.status().ToString();
  EXPECT_NE(wrong.status().message().find("password authentication failed"), std::string::npos);
  auto missing = Connection::Open(pg_->TcpParams("app", ""));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kFailedPrecondition)
      << missing.status().ToString();

  std::string log = pg_->Log();
  EXPECT_NE(log.find("ALTER ROLE \"app\" PASSWORD 'SCRAM-SHA-256$"), std::string::npos) << log;
  EXPECT_EQ(log.find(password), std::string::npos) << log;
  EXPECT_EQ(log.find("s3cret"), std::string::npos);
}

// CHECKPOINT succeeds and moves the checkpoint location past a write made just before.
TEST_F(PgClientTest, CheckpointAdvancesCheckpointLsn) {
  const std::string kLsn = "SELECT checkpoint_lsn FROM pg_control_checkpoint()";
  Result<std::string> before = admin_->QueryValue(kLsn);
  ASSERT_TRUE(before.ok());
  ASSERT_TRUE(
      admin_->Exec("CREATE TABLE checkpoint_test AS SELECT generate_series(1, 1000) AS id").ok());
  Status s = Checkpoint(*admin_);
  ASSERT_TRUE(s.ok()) << s.ToString();
  Result<std::string> after = admin_->QueryValue(kLsn);
  ASSERT_TRUE(after.ok());
  Result<std::string> moved =
      admin_->QueryValue("SELECT $1::pg_lsn > $2::pg_lsn", {*after, *before});
  ASSERT_TRUE(moved.ok()) << moved.status().ToString();
  EXPECT_EQ(*moved, "t") << *before << " -> " << *after;
}

// Where nothing listens (a socket directory without a server, a free TCP port), Open is
// Unavailable and Ping says kNoResponse; the running server answers Ping with kReady.
TEST_F(PgClientTest, OpenAndPingWhereNothingListens) {
  ConnParams socket = pg_->AdminParams();
  socket.host = pg_->dir;
  auto conn = Connection::Open(socket);
  ASSERT_FALSE(conn.ok());
  EXPECT_EQ(conn.status().code(), StatusCode::kUnavailable) << conn.status().ToString();
  EXPECT_EQ(Ping(socket), PingResult::kNoResponse);

  Result<int> free_port = test::FreePort();
  ASSERT_TRUE(free_port.ok());
  ConnParams tcp = pg_->TcpParams("postgres", "x");
  tcp.port = *free_port;
  auto refused = Connection::Open(tcp);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kUnavailable) << refused.status().ToString();
  EXPECT_EQ(Ping(tcp), PingResult::kNoResponse);

  EXPECT_EQ(Ping(pg_->AdminParams()), PingResult::kReady);
  EXPECT_EQ(Ping(pg_->TcpParams("nobody", "")), PingResult::kReady);  // no login needed
}

// With nothing listening, WaitUntilReady gives up after about its timeout (Unavailable, with
// the last connection error), polling at the requested interval rather than pg_ctl's 100 ms.
TEST(PgWaitTest, WaitUntilReadyTimesOutWhenNothingListens) {
  ConnParams params;
  params.host = "/nonexistent-socket-dir";
  params.port = 1;
  int polls = 0;
  auto start = SteadyClock::now();
  Status s = WaitUntilReady(params, milliseconds(60), milliseconds(5), [&polls] {
    ++polls;
    return Status::OK();
  });
  auto elapsed = SteadyClock::now() - start;
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("/nonexistent-socket-dir"), std::string::npos) << s.message();
  EXPECT_GE(elapsed, milliseconds(60));
  EXPECT_LT(elapsed, milliseconds(1000));
  EXPECT_GE(polls, 5);  // ~12 at 5 ms; at least a few even on a loaded machine
}

// When still_alive reports the server dead, WaitUntilReady returns that error at once.
TEST(PgWaitTest, WaitUntilReadyReturnsStillAliveErrorAtOnce) {
  ConnParams params;
  params.host = "/nonexistent-socket-dir";
  auto start = SteadyClock::now();
  Status s = WaitUntilReady(params, std::chrono::seconds(10), milliseconds(5),
                            [] { return Status::FailedPrecondition("postgres exited"); });
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(s.message(), "postgres exited");
  EXPECT_LT(SteadyClock::now() - start, milliseconds(5000))
      << "at once, not after the 10 s timeout";
}

// Every libpq default variable goes (and comes back as the removed list); others stay.
TEST(LibpqEnvironmentTest, ClearRemovesLibpqVariablesOnly) {
  setenv("PGOPTIONS", "-c work_mem=1MB", 1);
  setenv("PGSERVICE", "nope", 1);
  setenv("PGAPPNAME", "x", 1);
  setenv("PGB_NOT_LIBPQ", "kept", 1);
  std::vector<std::pair<std::string, std::string>> removed = ClearLibpqEnvironment();
  for (const char* name : {"PGOPTIONS", "PGSERVICE", "PGAPPNAME"}) {
    EXPECT_EQ(std::getenv(name), nullptr) << name;
  }
  EXPECT_STREQ(std::getenv("PGB_NOT_LIBPQ"), "kept");
  EXPECT_NE(std::find(removed.begin(), removed.end(),
                      std::pair<std::string, std::string>("PGOPTIONS", "-c work_mem=1MB")),
            removed.end());
  unsetenv("PGB_NOT_LIBPQ");
}

}  // namespace
}  // namespace pgb
