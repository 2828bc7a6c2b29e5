// The HTTP API's parts that need no server process: every route is in api/openapi.json (and
// every documented route is served), tokens (engine_tokens.cc), and the operation runner's
// ordering, waiting and events (operations.h). The API over HTTP is tested end to end in
// tests/e2e/api_e2e_test.cc.

#include "server/api.h"

#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "common/fs.h"
#include "engine/engine_testutil.h"
#include "server/operations.h"

namespace pgb::server {
namespace {

using namespace std::chrono_literals;

class ApiEngineTest : public engine_test::EngineFixture {};

TEST_F(ApiEngineTest, EveryRouteIsInTheOpenApiDocumentAndBack) {
  std::ifstream in(std::string(PGBRANCH_SOURCE_DIR) + "/api/openapi.json");
  nlohmann::json spec = nlohmann::json::parse(in);
  std::set<std::pair<std::string, std::string>> documented;
  for (const auto& [path, item] : spec["paths"].items()) {
    for (const char* m : {"get", "post", "put", "delete", "patch"}) {
      if (item.contains(m)) {
        std::string method = m;
        for (auto& c : method) c = static_cast<char>(std::toupper(c));
        documented.emplace(method, path);
      }
    }
  }
  ApiServer api(*engine_, ApiOptions{});
  std::set<std::pair<std::string, std::string>> served;
  for (const auto& route : api.RouteTable()) {
    if (route.second.rfind("/api/", 0) == 0) served.insert(route);
  }
  for (const auto& r : served) {
    EXPECT_TRUE(documented.count(r)) << r.first << " " << r.second << " is not in openapi.json";
  }
  for (const auto& r : documented) {
    EXPECT_TRUE(served.count(r)) << r.first << " " << r.second << " is documented, not served";
  }
  EXPECT_GE(served.size(), 40u);
}

TEST_F(ApiEngineTest, TokensAreShownOnceStoredHashedAndChecked) {
  auto t = engine_->CreateToken("ci", "write");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_TRUE(t->token.rfind("pgbt_", 0) == 0) << t->token;
  EXPECT_EQ(t->token.size(), 5 + 1 + 1 + 43u) << t->token;  // pgbt_<id 1>_<43>
  auto who = engine_->AuthenticateToken(t->token);
  ASSERT_TRUE(who.ok()) << who.status().ToString();
  EXPECT_EQ(who->name, "ci");
  EXPECT_EQ(who->scope, "write");

  // The catalog holds no trace of the secret.
  auto db = ReadFile(home_ + "/state.db");
  ASSERT_TRUE(db.ok());
  std::string secret = t->token.substr(t->token.rfind('_') + 1);
  EXPECT_EQ(db->find(secret), std::string::npos);

  // A wrong secret, a wrong id, garbage: all the same refusal.
  std::string wrong = t->token;
  wrong.back() = wrong.back() == 'A' ? 'B' : 'A';
  for (const std::string& bad :
       {wrong, std::string("pgbt_99_") + secret, std::string("pgbt_"), std::string("Bearer x"),
        std::string(200, 'a'), std::string("pgbt_1_")}) {
    auto r = engine_->AuthenticateToken(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_TRUE(r.status().Is(StatusCode::kUnauthenticated)) << r.status().ToString();
  }

  EXPECT_TRUE(engine_->CreateToken("ci", "read").status().Is(StatusCode::kAlreadyExists));
  EXPECT_TRUE(engine_->CreateToken("x", "root").status().Is(StatusCode::kInvalidArgument));
  EXPECT_TRUE(engine_->CreateToken("Bad Name", "read").status().Is(StatusCode::kInvalidArgument));

  auto list = engine_->ListTokens();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_TRUE((*list)[0].last_used_at.has_value());

  ASSERT_TRUE(engine_->RevokeToken("ci").ok());
  EXPECT_TRUE(engine_->AuthenticateToken(t->token).status().Is(StatusCode::kUnauthenticated));
  EXPECT_TRUE(engine_->RevokeToken("ci").Is(StatusCode::kNotFound));
}

TEST(ScopeTest, ReadWriteAdminAreOrdered) {
  EXPECT_TRUE(ScopeAllows("read", "read"));
  EXPECT_FALSE(ScopeAllows("read", "write"));
  EXPECT_TRUE(ScopeAllows("write", "read"));
  EXPECT_FALSE(ScopeAllows("write", "admin"));
  EXPECT_TRUE(ScopeAllows("admin", "write"));
  EXPECT_FALSE(ScopeAllows("", "read"));
  EXPECT_FALSE(ScopeAllows("root", "read"));
}

OperationRunner::Request Work(const std::string& key, std::function<Result<nlohmann::json>()> fn) {
  OperationRunner::Request r;
  r.kind = "test.work";
  r.target = key;
  r.key = key;
  r.error_prefix = "work " + key;
  r.token = "t";
  r.body = std::move(fn);
  return r;
}

TEST(OperationRunnerTest, SameKeyRunsInOrderOtherKeysAtOnce) {
  EventHub events;
  OperationRunner runner(events);
  std::atomic<int> running_a{0}, max_a{0}, running_total{0}, max_total{0};
  std::vector<std::string> order;
  std::mutex mu;
  auto body = [&](const std::string& key, int n) {
    return [&, key, n]() -> Result<nlohmann::json> {
      int total = ++running_total;
      max_total = std::max(max_total.load(), total);
      if (key == "a") {
        int a = ++running_a;
        max_a = std::max(max_a.load(), a);
      }
      std::this_thread::sleep_for(50ms);
      {
        std::lock_guard<std::mutex> lock(mu);
        order.push_back(key + std::to_string(n));
      }
      if (key == "a") --running_a;
      --running_total;
      return nlohmann::json(n);
    };
  };
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) ids.push_back(*runner.Submit(Work("a", body("a", i))));
  ids.push_back(*runner.Submit(Work("b", body("b", 0))));
  for (const auto& id : ids) {
    auto op = runner.Wait(id, 10s);
    ASSERT_TRUE(op);
    EXPECT_EQ(op->status, "succeeded");
  }
  EXPECT_EQ(max_a.load(), 1) << "two operations on the same key ran at once";
  EXPECT_EQ(max_total.load(), 2) << "operations on different keys did not overlap";
  std::vector<std::string> a_order;
  for (const auto& o : order) {
    if (o[0] == 'a') a_order.push_back(o);
  }
  EXPECT_EQ(a_order, (std::vector<std::string>{"a0", "a1", "a2", "a3"}));
}

TEST(OperationRunnerTest, RecordsStepsErrorsAndPublishesEveryChange) {
  EventHub events;
  auto sub = events.Subscribe();
  OperationRunner runner(events);
  auto id = runner.Submit(Work("x", [&]() -> Result<nlohmann::json> {
    runner.StepStarted("Checkpoint");
    runner.Step("Checkpoint", 30ms);
    runner.Note("waiting for demo/x");
    return Status::AlreadyExists("branch demo/x already exists");
  }));
  ASSERT_TRUE(id.ok());
  auto op = runner.Wait(*id, 10s);
  ASSERT_TRUE(op);
  EXPECT_EQ(op->status, "failed");
  nlohmann::json j = ToJson(*op);
  EXPECT_EQ(j["error"]["code"], "already_exists");
  EXPECT_EQ(j["error"]["message"], "work x: branch demo/x already exists");
  ASSERT_EQ(j["steps"].size(), 1u);
  EXPECT_EQ(j["steps"][0]["name"], "Checkpoint");
  EXPECT_NEAR(j["steps"][0]["seconds"].get<double>(), 0.03, 1e-9);
  EXPECT_EQ(j["notes"][0], "waiting for demo/x");
  std::vector<std::string> statuses;
  while (auto e = sub->Next(100ms)) {
    EXPECT_EQ(e->name, "operation");
    statuses.push_back(e->data["status"]);
  }
  ASSERT_GE(statuses.size(), 4u);  // queued, running, step started, step ended, note, failed
  EXPECT_EQ(statuses.front(), "queued");
  EXPECT_EQ(statuses.back(), "failed");
  EXPECT_FALSE(runner.Get("op-000000000000"));
}

TEST(OperationRunnerTest, ShutdownRefusesNewWorkAndWaitsForRunning) {
  EventHub events;
  OperationRunner runner(events);
  auto id = runner.Submit(Work("k", [] {
    std::this_thread::sleep_for(100ms);
    return Result<nlohmann::json>(nlohmann::json());
  }));
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(runner.Shutdown(10s), 0u);
  EXPECT_EQ(runner.Get(*id)->status, "succeeded");
  EXPECT_TRUE(runner.Submit(Work("k", [] { return Result<nlohmann::json>(nlohmann::json()); }))
                  .status()
                  .Is(StatusCode::kUnavailable));
}

}  // namespace
}  // namespace pgb::server
