// End-to-end tests of the HTTP API of `pgbranch serve` (api/openapi.json), with the real binary
// as a child process, a Btrfs image pool, PostgreSQL 15, and cpp-httplib's client (plus raw
// sockets where a client must misbehave). Every response a test receives is recorded and, after
// the test, checked against the OpenAPI document by tests/api/openapi_check.py (jsonschema,
// Draft 2020-12): a response the document does not describe fails the test.
//
// One home and one project "api" serve the suite, with one serve started for the whole suite;
// each test makes and deletes its own branches.

#include <arpa/inet.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <mutex>
#include <thread>

#include "common/fs.h"
#include "common/subprocess.h"
#include "tests/e2e/harness.h"

namespace pgb::e2e {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

struct Reply {
  int status = 0;
  json body;  // null when the body is empty or not JSON
  std::string text;
  httplib::Headers headers;
  std::string Header(const std::string& key) const {
    auto it = headers.find(key);
    return it == headers.end() ? "" : it->second;
  }
};

class ApiE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    home_ = new Home("btrfs", "3G");
    if (!home_->ready()) return;
    if (home_->Run({"project", "create", "api"}).exit_code != 0) return;
    for (const auto& [name, scope] : {std::pair{"w", "write"}, {"r", "read"}, {"a", "admin"}}) {
      CliResult t = home_->Run({"token", "create", name, "--scope", scope});
      if (t.exit_code != 0) return;
      std::string out = t.out;
      while (!out.empty() && out.back() == '\n') out.pop_back();
      tokens_[name] = out.substr(out.rfind('\n') + 1);  // alone on the last line
    }
    log_ = home_->path() + "/serve.log";
    serve_pid_ = SpawnServe(
        home_->path(),
        {"--proxy-listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0", "--grace", "5"}, log_, "");
    const auto deadline = Clock::now() + 60s;
    while (Clock::now() < deadline && base_.empty()) {
      auto record = ReadFile(home_->path() + "/serve.json");
      if (record.ok()) {
        json j = json::parse(*record, nullptr, false);
        if (!j.is_discarded() && j.value("pid", 0) == serve_pid_) base_ = j.value("api_url", "");
      }
      if (base_.empty()) std::this_thread::sleep_for(50ms);
    }
  }

  static void TearDownTestSuite() {
    if (serve_pid_ > 0) {
      ::kill(serve_pid_, SIGTERM);
      int status = 0;
      ::waitpid(serve_pid_, &status, 0);
    }
    delete home_;
    home_ = nullptr;
  }

  void SetUp() override {
    ASSERT_FALSE(base_.empty()) << "serve did not start:\n" << LogText();
    records_ = home_->path() + "/records-" +
               ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".jsonl";
    ::unlink(records_.c_str());
  }

  // Every response of the test against api/openapi.json.
  void TearDown() override {
    for (const auto& ref : branches_) {
      home_->Run({"branch", "delete", ref, "--recursive", "--force"});
    }
    if (!PathExists(records_)) return;
    auto runner = NewRealProcessRunner();
    Command c;
    c.argv = {"/usr/bin/python3", std::string(PGBRANCH_SOURCE_DIR) + "/tests/api/openapi_check.py",
              std::string(PGBRANCH_SOURCE_DIR) + "/api/openapi.json", records_};
    c.timeout = 2min;
    auto r = runner->Run(c);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->exit_code, 0) << "responses the OpenAPI document does not describe:\n"
                               << r->out << r->err;
  }

  static std::string LogText() {
    auto t = ReadFile(log_);
    return t.ok() ? *t : "";
  }

  static httplib::Client Client() {
    httplib::Client c(base_);
    c.set_connection_timeout(5s);
    c.set_read_timeout(120s);
    return c;
  }

  // One request, recorded for the OpenAPI check. `token` names a token of the suite ("w", "r",
  // "a"), or is a literal header value when it starts with "Bearer ", or "" for none.
  Reply Call(const std::string& method, const std::string& path, const std::string& token = "w",
             const std::string& body = "", httplib::Headers headers = {}) {
    httplib::Client c = Client();
    if (!token.empty()) {
      headers.emplace("Authorization",
                      token.rfind("Bearer ", 0) == 0 ? token : "Bearer " + tokens_[token]);
    }
    httplib::Result r = method == "GET"     ? c.Get(path, headers)
                        : method == "POST"  ? c.Post(path, headers, body, "application/json")
                        : method == "PUT"   ? c.Put(path, headers, body, "application/json")
                        : method == "PATCH" ? c.Patch(path, headers, body, "application/json")
                                            : c.Delete(path, headers, body, "application/json");
    Reply reply;
    if (!r) {
      ADD_FAILURE() << method << " " << path << ": " << httplib::to_string(r.error());
      return reply;
    }
    reply.status = r->status;
    reply.text = r->body;
    reply.headers = r->headers;
    reply.body = json::parse(r->body, nullptr, false);
    if (reply.body.is_discarded()) reply.body = json();
    Record(method, path, reply);
    return reply;
  }

  void Record(const std::string& method, const std::string& path, const Reply& reply) {
    if (unrecorded_) return;
    std::lock_guard<std::mutex> lock(record_mu_);
    std::ofstream out(records_, std::ios::app);
    out << json{{"method", method}, {"path", path}, {"status", reply.status}, {"body", reply.body}}
               .dump()
        << "\n";
  }

  // POST/PUT/DELETE with ?wait=true: the finished operation (or its error).
  Reply Wait(const std::string& method, const std::string& path, const std::string& body = "{}",
             const std::string& token = "w") {
    std::string sep = path.find('?') == std::string::npos ? "?" : "&";
    return Call(method, path + sep + "wait=true", token, body);
  }

  // Polls GET /api/v1/operations/{id} until it ends (at most 2 minutes).
  json Poll(const std::string& id) {
    const auto deadline = Clock::now() + 120s;
    json op;
    while (Clock::now() < deadline) {
      op = Call("GET", "/api/v1/operations/" + id, "r").body;
      if (op.is_object() && !op["ended_at"].is_null()) return op;
      std::this_thread::sleep_for(100ms);
    }
    ADD_FAILURE() << "operation " << id << " did not end: " << op.dump();
    return op;
  }

  std::string Branches() { return "/api/v1/projects/api/branches"; }

  static Home* home_;
  static std::map<std::string, std::string> tokens_;
  static std::string base_;
  static std::string log_;
  static pid_t serve_pid_;
  std::string records_;
  std::mutex record_mu_;
  bool unrecorded_ = false;
  std::vector<std::string> branches_;  // deleted after the test
};

Home* ApiE2eTest::home_ = nullptr;
std::map<std::string, std::string> ApiE2eTest::tokens_;
std::string ApiE2eTest::base_;
std::string ApiE2eTest::log_;
pid_t ApiE2eTest::serve_pid_ = -1;

// The document is served as the repository holds it, without a token; health too.
TEST_F(ApiE2eTest, OpenApiAndHealthNeedNoToken) {
  Reply doc = Call("GET", "/api/v1/openapi.json", "");
  ASSERT_EQ(doc.status, 200);
  auto file = ReadFile(std::string(PGBRANCH_SOURCE_DIR) + "/api/openapi.json");
  ASSERT_TRUE(file.ok());
  EXPECT_EQ(doc.body, json::parse(*file));
  EXPECT_EQ(doc.body["openapi"], "3.1.0");
  Reply health = Call("GET", "/api/v1/health", "");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.body["status"], "ok");
  EXPECT_EQ(health.Header("Access-Control-Allow-Origin"), "") << "no CORS by default";
  EXPECT_EQ(health.Header("X-Content-Type-Options"), "nosniff");
}

// A branch's life over HTTP: create (202, then polled), get (with its password), list (masked),
// snapshot, reset, stop/start, suspend/resume, rename, use, delete; every result as the CLI
// shows it.
TEST_F(ApiE2eTest, BranchLifecycle) {
  branches_ = {"api/life", "api/life2"};
  Reply created = Call("POST", Branches(), "w", R"({"name": "life"})");
  ASSERT_EQ(created.status, 202) << created.text;
  EXPECT_EQ(created.Header("Location"),
            "/api/v1/operations/" + created.body["id"].get<std::string>());
  EXPECT_EQ(created.body["kind"], "branch.create");
  EXPECT_EQ(created.body["target"], "api/life");
  EXPECT_EQ(created.body["token"], "w");
  json op = Poll(created.body["id"]);
  ASSERT_EQ(op["status"], "succeeded") << op.dump();
  EXPECT_EQ(op["result"]["name"], "life");
  EXPECT_EQ(op["result"]["state"], "running");
  std::vector<std::string> steps;
  for (const auto& s : op["steps"]) steps.push_back(s["name"]);
  EXPECT_FALSE(steps.empty()) << op.dump();
  for (const auto& s : op["steps"]) EXPECT_TRUE(s["seconds"].is_number()) << op.dump();

  // The same data from the CLI and from the API.
  Reply got = Call("GET", Branches() + "/life", "r");
  ASSERT_EQ(got.status, 200) << got.text;
  json cli = home_->Branch("api/life");
  EXPECT_EQ(got.body["uri"], cli["uri"]);
  EXPECT_EQ(got.body["port"], cli["port"]);
  EXPECT_EQ(got.body["uri"].get<std::string>().find("****"), std::string::npos);
  Sql(got.body["uri"], "CREATE TABLE t (x int); INSERT INTO t VALUES (1)");

  Reply list = Call("GET", Branches(), "r");
  ASSERT_EQ(list.status, 200);
  bool seen = false;
  for (const auto& b : list.body) {
    EXPECT_NE(b["uri"].get<std::string>().find("****"), std::string::npos)
        << "a password in a list";
    seen |= b["name"] == "life";
  }
  EXPECT_TRUE(seen);
  std::string password = got.body["uri"];
  password = password.substr(password.find(':', 14) + 1);
  password = password.substr(0, password.find('@'));
  ASSERT_GE(password.size(), 16u);
  EXPECT_EQ(list.text.find(password), std::string::npos) << "a password in a list";
  // The create's own operation shows it; the list of operations does not.
  EXPECT_NE(
      Call("GET", "/api/v1/operations/" + op["id"].get<std::string>(), "r").text.find(password),
      std::string::npos);
  EXPECT_EQ(Call("GET", "/api/v1/operations", "r").text.find(password), std::string::npos);

  Reply snap = Wait("POST", Branches() + "/life/snapshots", R"({"label": "before"})");
  ASSERT_EQ(snap.status, 201) << snap.text;
  EXPECT_EQ(snap.body["result"]["label"], "before");
  Reply snaps = Call("GET", Branches() + "/life/snapshots", "r");
  ASSERT_EQ(snaps.status, 200);
  EXPECT_EQ(snaps.body.size(), 1u);

  Sql(got.body["uri"], "INSERT INTO t VALUES (2)");
  Reply reset =
      Wait("POST", Branches() + "/life/reset",
           fmt::format(R"({{"snapshot": {}}})", snap.body["result"]["id"].get<int64_t>()));
  ASSERT_EQ(reset.status, 200) << reset.text;
  EXPECT_EQ(Column(got.body["uri"], "SELECT count(*) FROM t"), std::vector<std::string>{"1"});
  // A rebase takes no snapshot id: it is the parent's data as it is now.
  EXPECT_EQ(Wait("POST", Branches() + "/life/rebase", R"({"snapshot": 1})").status, 400);
  Reply rebased = Wait("POST", Branches() + "/life/rebase", "{}");
  ASSERT_EQ(rebased.status, 200) << rebased.text;
  EXPECT_EQ(rebased.body["result"]["uri"], got.body["uri"]);
  Reply no_dump =
      Wait("POST", "/api/v1/projects/api/refresh", R"({"from_dump": "/nonexistent.dump"})");
  EXPECT_EQ(no_dump.status, 400) << no_dump.text;
  EXPECT_NE(no_dump.text.find("the dump"), std::string::npos) << no_dump.text;
  EXPECT_EQ(Wait("POST", "/api/v1/projects/api/refresh", R"({"from_tape": "x"})").status, 400);

  for (const char* verb : {"stop", "start", "suspend", "resume"}) {
    Reply r = Wait("POST", Branches() + "/life/" + verb);
    ASSERT_EQ(r.status, 200) << verb << ": " << r.text;
    EXPECT_EQ(r.body["result"]["state"], std::string(verb) == "stop"      ? "stopped"
                                         : std::string(verb) == "suspend" ? "suspended"
                                                                          : "running")
        << verb;
  }
  Reply renamed = Wait("POST", Branches() + "/life/rename", R"({"new_name": "life2"})");
  ASSERT_EQ(renamed.status, 200) << renamed.text;
  EXPECT_EQ(renamed.body["result"]["name"], "life2");
  Reply use = Wait("POST", Branches() + "/life2/use");
  ASSERT_EQ(use.status, 200) << use.text;
  EXPECT_EQ(use.body["result"]["branch"], "life2");
  EXPECT_EQ(home_->Ok({"project", "get", "api", "--json"}).Json()["active_branch"], "life2");
  Wait("POST", Branches() + "/main/use");

  Reply history = Call("GET", Branches() + "/life2/history", "r");
  EXPECT_EQ(history.status, 200);
  Reply logs = Call("GET", Branches() + "/life2/logs?tail=5", "r");
  EXPECT_EQ(logs.status, 200);
  EXPECT_LE(logs.body["lines"].size(), 5u);
  Reply wal = Call("GET", Branches() + "/life2/wal", "r");
  EXPECT_EQ(wal.status, 200) << wal.text;

  Reply gone = Wait("DELETE", Branches() + "/life2");
  ASSERT_EQ(gone.status, 200) << gone.text;
  EXPECT_EQ(Call("GET", Branches() + "/life2", "r").status, 404);
}

// PUT creates once and then answers with what exists, so a CI job may retry it safely.
TEST_F(ApiE2eTest, PutIsIdempotent) {
  branches_ = {"api/pr-1"};
  Reply first = Wait("PUT", Branches() + "/pr-1", R"({"parent": "main"})");
  ASSERT_EQ(first.status, 201) << first.text;
  Reply again = Call("PUT", Branches() + "/pr-1", "w", R"({"parent": "main"})");
  ASSERT_EQ(again.status, 200) << again.text;
  EXPECT_EQ(again.body["port"], first.body["result"]["port"]);
  EXPECT_EQ(again.body["created_at"], first.body["result"]["created_at"]);
}

// TTL, idle TTL, protection and labels, over HTTP and the CLI, with serve's expiry running:
// an expired branch goes, a protected one stays (said in serve's log) until unprotected, a
// branch with a session outlives its idle TTL and goes once idle, and lists filter by label.
TEST_F(ApiE2eTest, LifetimeProtectionAndLabels) {
  branches_ = {"api/ttl-a", "api/keep", "api/busy", "api/idle"};
  ASSERT_EQ(Wait("POST", Branches(), R"({"name": "keep", "ttl_s": 4, "protect": true,
                                        "labels": {"ci": "yes", "pr": "7"}})")
                .status,
            201);
  auto start = Clock::now();
  ASSERT_EQ(
      Wait("POST", Branches(), R"({"name": "ttl-a", "ttl_s": 4, "labels": {"ci": "yes"}})").status,
      201);
  // A session held open past its idle TTL of 3 s (psql through the CLI: no password in argv).
  ASSERT_EQ(Wait("POST", Branches(), R"({"name": "busy", "idle_ttl_s": 3})").status, 201);
  std::thread session([] { home_->Run({"psql", "api/busy", "--", "-Xc", "SELECT pg_sleep(14)"}); });

  auto names = [&](const std::string& query) {
    std::vector<std::string> out;
    for (const auto& b : Call("GET", Branches() + "?sizes=false" + query, "r").body) {
      out.push_back(b["name"]);
    }
    std::sort(out.begin(), out.end());
    return out;
  };
  EXPECT_EQ(names("&label=ci=yes"), (std::vector<std::string>{"keep", "ttl-a"}));
  EXPECT_EQ(names("&label=ci%3Dyes"), (std::vector<std::string>{"keep", "ttl-a"}));
  EXPECT_EQ(names("&label=pr&label=ci=yes"), (std::vector<std::string>{"keep"}));
  EXPECT_EQ(Call("GET", Branches() + "?label=-bad", "r").status, 400);
  Reply got = Call("GET", Branches() + "/keep", "r");
  EXPECT_EQ(got.body["protected"], true);
  EXPECT_FALSE(got.body["expires_at"].is_null());

  // Protection refuses delete and reset, over HTTP and in the CLI.
  Reply refused = Wait("DELETE", Branches() + "/keep");
  EXPECT_EQ(refused.status, 409) << refused.text;
  EXPECT_NE(refused.text.find("api/keep is protected"), std::string::npos) << refused.text;
  EXPECT_EQ(Wait("POST", Branches() + "/keep/reset", "{}").status, 409);
  EXPECT_EQ(Wait("POST", Branches() + "/keep/rebase", "{}").status, 409);
  CliResult cli_delete = home_->Run({"branch", "delete", "api/keep"});
  EXPECT_NE(cli_delete.exit_code, 0);
  EXPECT_NE(cli_delete.err.find("protected"), std::string::npos) << cli_delete.err;

  // PATCH: a label removed, another added.
  Reply patched =
      Wait("PATCH", Branches() + "/keep", R"({"labels": {"pr": null, "owner": "ann"}})");
  ASSERT_EQ(patched.status, 200) << patched.text;
  EXPECT_EQ(patched.body["result"]["labels"], (json{{"ci", "yes"}, {"owner", "ann"}}));
  EXPECT_EQ(Call("PATCH", Branches() + "/keep", "w", R"({"ttl_s": 0})").status, 400);

  // serve looks every 5 s: ttl-a goes; keep stays and the log says why; busy stays while its
  // session lasts.
  auto gone = [&](const std::string& name, std::chrono::seconds within) {
    const auto deadline = Clock::now() + within;
    while (Clock::now() < deadline) {
      if (Call("GET", Branches() + "/" + name, "r").status == 404) return true;
      std::this_thread::sleep_for(250ms);
    }
    return false;
  };
  EXPECT_TRUE(gone("ttl-a", 30s));
  EXPECT_GE(Clock::now() - start, 4s);
  EXPECT_EQ(Call("GET", Branches() + "/keep", "r").status, 200);
  std::this_thread::sleep_for(6s);  // another look by serve
  EXPECT_EQ(Call("GET", Branches() + "/keep", "r").status, 200);
  std::string log = LogText();
  EXPECT_NE(log.find("serve: deleted api/ttl-a: its TTL ended at"), std::string::npos) << log;
  EXPECT_NE(log.find("serve: kept api/keep although its TTL ended"), std::string::npos) << log;
  EXPECT_EQ(Call("GET", Branches() + "/busy", "r").status, 200) << "deleted with a session open";
  session.join();
  EXPECT_TRUE(gone("busy", 30s));

  // The CLI: an idle TTL set afterwards, shown by branch get; unprotect lets expiry take keep.
  home_->Ok({"branch", "create", "api/idle", "--label", "ci=no"});
  EXPECT_EQ(home_->Branch("api/idle")["labels"], (json{{"ci", "no"}}));
  home_->Ok({"branch", "set", "api/idle", "--idle-ttl", "2s"});
  CliResult shown = home_->Ok({"branch", "get", "api/idle"});
  EXPECT_NE(shown.out.find("after 2s without a session"), std::string::npos) << shown.out;
  EXPECT_NE(home_->Run({"branch", "set", "api/idle", "--ttl", "never"}).exit_code, 0);
  home_->Ok({"branch", "unprotect", "api/keep"});
  EXPECT_TRUE(gone("keep", 30s));
  EXPECT_TRUE(gone("idle", 30s));
  bool audited = false;
  for (const auto& row : Call("GET", "/api/v1/audit?limit=500", "r").body) {
    audited |=
        row["command"].get<std::string>().rfind("serve: expire api/keep (its TTL ended", 0) == 0;
  }
  EXPECT_TRUE(audited) << "the audit trail does not name the expiry";
}

// Schedules: added, listed with their next run, refused with the parser's message, removed.
TEST_F(ApiE2eTest, SchedulesOverHttp) {
  Reply bad = Call("POST", Branches() + "/main/schedules", "w", R"({"snapshot": "61 * * * *"})");
  EXPECT_EQ(bad.status, 400) << bad.text;
  EXPECT_EQ(bad.body["error"]["message"],
            "schedule add api/main: parse schedule \"61 * * * *\": minute 61 is out of range 0-59");
  EXPECT_EQ(Call("POST", Branches() + "/nope/schedules", "w", R"({"snapshot": "@daily"})").status,
            404);
  EXPECT_EQ(Call("POST", Branches() + "/main/schedules", "r", R"({"snapshot": "@daily"})").status,
            403);
  Reply made =
      Call("POST", Branches() + "/main/schedules", "w", R"({"snapshot": "@daily", "keep": 3})");
  ASSERT_EQ(made.status, 201) << made.text;
  EXPECT_EQ(made.body["cron"], "@daily");
  EXPECT_EQ(made.body["keep"], 3);
  EXPECT_EQ(made.body["next_run"].get<std::string>().substr(11), "00:00:00.000Z");
  std::string id = std::to_string(made.body["id"].get<int64_t>());
  Reply list = Call("GET", "/api/v1/schedules?project=api", "r");
  ASSERT_EQ(list.status, 200);
  ASSERT_EQ(list.body.size(), 1u);
  EXPECT_EQ(list.body[0]["branch"], "api/main");
  EXPECT_EQ(Call("DELETE", "/api/v1/schedules/" + id, "w").status, 204);
  EXPECT_EQ(Call("DELETE", "/api/v1/schedules/" + id, "w").status, 404);
  EXPECT_EQ(Call("GET", "/api/v1/schedules", "r").body.size(), 0u);

  // A refresh schedule: main's, from a dump that exists now; one cron, not two.
  Reply both = Call("POST", Branches() + "/main/schedules", "w",
                    R"({"snapshot": "@daily", "refresh": "@daily"})");
  EXPECT_EQ(both.status, 400) << both.text;
  Reply missing = Call("POST", Branches() + "/main/schedules", "w",
                       R"({"refresh": "@daily", "from_dump": "/nonexistent.dump"})");
  EXPECT_EQ(missing.status, 404) << missing.text;
  std::string dump = e2e::DumpBranch(*home_, "api/main", "c", home_->path() + "/api.dump");
  Reply refresh = Call("POST", Branches() + "/main/schedules", "w",
                       nlohmann::json{{"refresh", "0 3 * * *"}, {"from_dump", dump}}.dump());
  ASSERT_EQ(refresh.status, 201) << refresh.text;
  EXPECT_EQ(refresh.body["kind"], "refresh");
  EXPECT_EQ(refresh.body["source"], "dump " + dump);
  EXPECT_EQ(
      Call("DELETE", "/api/v1/schedules/" + std::to_string(refresh.body["id"].get<int64_t>()), "w")
          .status,
      204);
}

// Every class of error: one JSON shape, the CLI's codes, nothing created.
TEST_F(ApiE2eTest, ErrorsAreClearAndChangeNothing) {
  branches_ = {"api/parent", "api/child"};
  auto error_of = [](const Reply& r) { return r.body["error"]["code"].get<std::string>(); };
  Reply bad_json = Call("POST", Branches(), "w", "{not json");
  EXPECT_EQ(bad_json.status, 400);
  EXPECT_EQ(error_of(bad_json), "invalid_argument");
  EXPECT_EQ(bad_json.body["error"]["message"],
            "branch create api: the request body is not valid JSON");
  Reply bad_name = Call("POST", Branches(), "w", R"({"name": "Bad Name!"})");
  EXPECT_EQ(bad_name.status, 400);
  Reply unknown_field = Call("POST", Branches(), "w", R"({"name": "x1", "parnet": "main"})");
  EXPECT_EQ(unknown_field.status, 400);
  EXPECT_NE(unknown_field.body["error"]["message"].get<std::string>().find("parnet"),
            std::string::npos);
  EXPECT_EQ(Call("POST", Branches(), "w", R"({"name": 7})").status, 400);
  EXPECT_EQ(Call("GET", "/api/v1/projects/nope", "r").status, 404);
  EXPECT_EQ(Call("GET", "/api/v1/projects/nope/branches", "r").status, 404);
  EXPECT_EQ(Call("GET", Branches() + "/nope", "r").status, 404);
  EXPECT_EQ(Call("POST", Branches() + "/nope/reset", "w", "{}").status, 404);
  EXPECT_EQ(Call("GET", "/api/v1/operations/op-000000000000", "r").status, 404);
  unrecorded_ = true;  // a route the document rightly does not have
  Reply no_route = Call("GET", "/api/v1/nothing", "r");
  unrecorded_ = false;
  EXPECT_EQ(no_route.status, 404);
  EXPECT_EQ(error_of(no_route), "not_found");
  EXPECT_EQ(Call("GET", "/api/v1/audit?limit=0", "r").status, 400);

  // 409: a name that exists (the operation fails; ?wait=true says so with the operation).
  Reply dup = Wait("POST", Branches(), R"({"name": "main"})");
  EXPECT_EQ(dup.status, 409) << dup.text;
  EXPECT_EQ(error_of(dup), "already_exists");
  EXPECT_EQ(dup.body["operation"]["status"], "failed");
  // 409: children, unless recursive; the parent stays.
  ASSERT_EQ(Wait("POST", Branches(), R"({"name": "parent"})").status, 201);
  ASSERT_EQ(Wait("POST", Branches(), R"({"name": "child", "parent": "parent"})").status, 201);
  Reply refused = Wait("DELETE", Branches() + "/parent");
  EXPECT_EQ(refused.status, 409) << refused.text;
  EXPECT_NE(refused.body["error"]["message"].get<std::string>().find("child"), std::string::npos);
  EXPECT_EQ(Call("GET", Branches() + "/parent", "r").status, 200);
  Reply recursive = Wait("DELETE", Branches() + "/parent?recursive=true");
  EXPECT_EQ(recursive.status, 200) << recursive.text;
  EXPECT_EQ(Call("GET", Branches() + "/child", "r").status, 404);
  // Nothing left behind by the failures.
  Reply doctor = Call("GET", "/api/v1/doctor", "r");
  ASSERT_EQ(doctor.status, 200);
  for (const auto& f : doctor.body) EXPECT_NE(f["status"], "fail") << f.dump();
}

// 401 without or with a wrong token; 403 for a read token writing and for an admin route; 429
// after ten failures from one address (another address is not affected); revoked tokens stop.
TEST_F(ApiE2eTest, TokensAndScopes) {
  Reply none = Call("GET", "/api/v1/projects", "");
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(none.body["error"]["code"], "unauthenticated");
  EXPECT_NE(none.Header("WWW-Authenticate"), "");
  EXPECT_EQ(Call("GET", "/api/v1/projects", "Bearer pgbt_1_wrong").status, 401);
  Reply read_writes = Call("POST", Branches(), "r", R"({"name": "nope"})");
  EXPECT_EQ(read_writes.status, 403);
  EXPECT_EQ(read_writes.body["error"]["code"], "permission_denied");
  EXPECT_EQ(Call("GET", "/api/v1/tokens", "w").status, 403);
  EXPECT_EQ(Call("GET", Branches() + "/nope", "r").status, 404);  // nothing was made

  Reply made = Call("POST", "/api/v1/tokens", "a", R"({"name": "temp", "scope": "read"})");
  ASSERT_EQ(made.status, 201) << made.text;
  std::string temp = made.body["token"];
  Reply listed = Call("GET", "/api/v1/tokens", "a");
  ASSERT_EQ(listed.status, 200);
  EXPECT_EQ(listed.text.find(temp), std::string::npos) << "a token's secret in a list";
  EXPECT_EQ(Call("GET", "/api/v1/projects", "Bearer " + temp).status, 200);
  EXPECT_EQ(Call("DELETE", "/api/v1/tokens/temp", "a").status, 204);
  EXPECT_EQ(Call("GET", "/api/v1/projects", "Bearer " + temp).status, 401);

  // Ten failures from 127.0.0.7, then 429 there, with the right token too; 127.0.0.1 is fine.
  int port = std::stoi(base_.substr(base_.rfind(':') + 1));
  auto from_7 = [&](const std::string& auth) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in src{};
    src.sin_family = AF_INET;
    src.sin_addr.s_addr = inet_addr("127.0.0.7");
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src), 0);
    sockaddr_in dst{};
    dst.sin_family = AF_INET;
    dst.sin_port = htons(static_cast<uint16_t>(port));
    dst.sin_addr.s_addr = inet_addr("127.0.0.1");
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst), 0);
    std::string req =
        "GET /api/v1/projects HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        "Authorization: Bearer " +
        auth + "\r\n\r\n";
    ::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
    char buf[64] = {};
    ssize_t n = ::recv(fd, buf, sizeof buf - 1, 0);
    ::close(fd);
    return n > 12 ? std::atoi(buf + 9) : 0;
  };
  for (int i = 0; i < 10; ++i) EXPECT_EQ(from_7("pgbt_1_guess" + std::to_string(i)), 401);
  EXPECT_EQ(from_7("pgbt_1_guess"), 429);
  EXPECT_EQ(from_7(tokens_["r"]), 429);
  EXPECT_EQ(Call("GET", "/api/v1/projects", "r").status, 200);
}

// The dashboard's session: an HttpOnly, SameSite=Strict cookie; writes need the CSRF header.
TEST_F(ApiE2eTest, SessionCookieAndCsrf) {
  branches_ = {"api/cookie"};
  Reply login = Call("POST", "/api/v1/session", "", json{{"token", tokens_["w"]}}.dump());
  ASSERT_EQ(login.status, 200) << login.text;
  std::string cookie = login.Header("Set-Cookie");
  EXPECT_NE(cookie.find("HttpOnly"), std::string::npos) << cookie;
  EXPECT_NE(cookie.find("SameSite=Strict"), std::string::npos) << cookie;
  std::string id = cookie.substr(0, cookie.find(';'));
  std::string csrf = login.body["csrf_token"];
  EXPECT_EQ(Call("POST", "/api/v1/session", "", R"({"token": "pgbt_1_nope"})").status, 401);

  httplib::Headers with_cookie = {{"Cookie", id}};
  Reply me = Call("GET", "/api/v1/session", "", "", with_cookie);
  EXPECT_EQ(me.status, 200);
  EXPECT_EQ(me.body["name"], "w");
  EXPECT_EQ(Call("GET", Branches(), "", "", with_cookie).status, 200);
  Reply no_csrf = Call("POST", Branches(), "", R"({"name": "cookie"})", with_cookie);
  EXPECT_EQ(no_csrf.status, 403) << no_csrf.text;
  httplib::Headers with_csrf = {{"Cookie", id}, {"X-CSRF-Token", csrf}};
  Reply made = Call("POST", Branches() + "?wait=true", "", R"({"name": "cookie"})", with_csrf);
  EXPECT_EQ(made.status, 201) << made.text;
  EXPECT_EQ(Call("DELETE", "/api/v1/session", "", "", with_csrf).status, 204);
  EXPECT_EQ(Call("GET", Branches(), "", "", with_cookie).status, 401);
}

// Creates over HTTP and from the CLI at the same moment: every one recorded, none orphaned.
TEST_F(ApiE2eTest, ConcurrentCreatesOverHttpAndCli) {
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) {
    branches_.push_back(fmt::format("api/http-{}", i));
    Reply r = Call("POST", Branches(), "w", fmt::format(R"({{"name": "http-{}"}})", i));
    ASSERT_EQ(r.status, 202) << r.text;
    ids.push_back(r.body["id"]);
  }
  std::vector<std::thread> cli;
  std::vector<int> codes(2, -1);
  for (int i = 0; i < 2; ++i) {
    branches_.push_back(fmt::format("api/cli-{}", i));
    cli.emplace_back([&, i] {
      codes[i] = home_->Run({"branch", "create", fmt::format("api/cli-{}", i)}).exit_code;
    });
  }
  for (const auto& id : ids) EXPECT_EQ(Poll(id)["status"], "succeeded");
  for (auto& t : cli) t.join();
  EXPECT_EQ(codes, (std::vector<int>{0, 0}));
  Reply list = Call("GET", Branches() + "?sizes=false", "r");
  // Sizes: none, the last measurement, or measured now; anything else is refused.
  for (const auto& b : list.body) EXPECT_TRUE(b["sizes_measured_at"].is_null()) << b.dump();
  for (const char* query : {"", "?sizes=true", "?sizes=fresh"}) {
    for (const auto& b : Call("GET", Branches() + query, "r").body) {
      EXPECT_TRUE(b["sizes_measured_at"].is_string()) << query << " " << b.dump();
      EXPECT_GT(b["size_bytes"].get<uint64_t>(), 0u) << query;
    }
  }
  Reply bad = Call("GET", Branches() + "?sizes=later", "r");
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.text.find("?sizes= must be true, false or fresh"), std::string::npos) << bad.text;
  std::set<std::string> names;
  for (const auto& b : list.body) {
    names.insert(b["name"]);
    EXPECT_EQ(b["state"], "running") << b.dump();
  }
  for (const auto& ref : branches_) EXPECT_TRUE(names.count(ref.substr(4))) << ref;
  for (const auto& f : Call("GET", "/api/v1/doctor", "r").body) {
    EXPECT_NE(f["status"], "fail") << f.dump();
  }
}

// The event stream: an operation's changes, and a branch the CLI made, arrive as events.
TEST_F(ApiE2eTest, EventsStreamOperationsAndCliChanges) {
  branches_ = {"api/ev-http", "api/ev-cli"};
  std::mutex mu;
  std::string stream;
  std::atomic<bool> stop{false};
  std::thread reader([&] {
    httplib::Client c = Client();
    c.Get("/api/v1/events", {{"Authorization", "Bearer " + tokens_["r"]}},
          [&](const char* data, size_t n) {
            std::lock_guard<std::mutex> lock(mu);
            stream.append(data, n);
            return !stop.load();
          });
  });
  auto has = [&](const std::string& part) {
    const auto deadline = Clock::now() + 60s;
    while (Clock::now() < deadline) {
      {
        std::lock_guard<std::mutex> lock(mu);
        if (stream.find(part) != std::string::npos) return true;
      }
      std::this_thread::sleep_for(50ms);
    }
    return false;
  };
  EXPECT_TRUE(has("event: hello"));
  Reply r = Call("POST", Branches(), "w", R"({"name": "ev-http"})");
  ASSERT_EQ(r.status, 202);
  std::string id = r.body["id"];
  EXPECT_TRUE(has("\"id\":\"" + id + "\""));
  EXPECT_TRUE(has("\"status\":\"succeeded\"")) << stream;
  home_->Ok({"branch", "create", "api/ev-cli"});
  EXPECT_TRUE(has("\"branch\":\"ev-cli\"")) << stream;
  std::string password = home_->Branch("api/ev-http")["uri"];
  password = password.substr(password.find(':', 14) + 1);
  password = password.substr(0, password.find('@'));
  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_NE(stream.find("event: branch"), std::string::npos);
    EXPECT_EQ(stream.find(password), std::string::npos) << "a password in the event stream";
  }
  stop = true;
  Call("POST", Branches() + "/ev-cli/stop", "w", "{}");  // one more event ends the reader
  reader.join();
}

// A 1 MiB body is refused with 413; a client that sends its request a byte at a time, and one
// that sends nothing, do not hold up anyone else.
TEST_F(ApiE2eTest, LargeBodiesAndSlowClientsDoNotStall) {
  Reply big = Call("POST", Branches(), "w", std::string(2 << 20, 'x'));
  EXPECT_EQ(big.status, 413);
  int port = std::stoi(base_.substr(base_.rfind(':') + 1));
  std::vector<int> slow;
  for (int i = 0; i < 8; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in dst{};
    dst.sin_family = AF_INET;
    dst.sin_port = htons(static_cast<uint16_t>(port));
    dst.sin_addr.s_addr = inet_addr("127.0.0.1");
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst), 0);
    ::send(fd, "GET /api/v1/pro", 15, MSG_NOSIGNAL);  // and then nothing
    slow.push_back(fd);
  }
  for (int i = 0; i < 20; ++i) {
    auto start = Clock::now();
    EXPECT_EQ(Call("GET", "/api/v1/health", "").status, 200);
    EXPECT_LT(Clock::now() - start, 2s);
  }
  for (int fd : slow) ::close(fd);
}

// Snapshots by id, cleanups as dry runs, WAL info, audit, status, project routes, serve's log.
TEST_F(ApiE2eTest, ReadsAndCleanups) {
  Reply status = Call("GET", "/api/v1/status", "r");
  ASSERT_EQ(status.status, 200) << status.text;
  EXPECT_EQ(status.body["pool"]["configured"], true);
  EXPECT_EQ(status.body["projects"].size(), 1u);
  EXPECT_EQ(Call("GET", "/api/v1/projects", "r").status, 200);
  Reply project = Call("GET", "/api/v1/projects/api", "r");
  ASSERT_EQ(project.status, 200);
  EXPECT_FALSE(project.body["branches"].empty());
  Reply snap = Wait("POST", Branches() + "/main/snapshots", R"({"label": "read"})");
  ASSERT_EQ(snap.status, 201) << snap.text;
  int64_t id = snap.body["result"]["id"];
  EXPECT_EQ(Call("GET", fmt::format("/api/v1/snapshots/{}", id), "r").status, 200);
  EXPECT_EQ(Call("GET", "/api/v1/snapshots", "r").status, 200);
  Reply dry = Wait("POST", "/api/v1/snapshots/cleanup", R"({"days": 0, "dry_run": true})");
  EXPECT_EQ(dry.status, 200) << dry.text;
  EXPECT_EQ(dry.body["result"]["dry_run"], true);
  EXPECT_EQ(Call("GET", fmt::format("/api/v1/snapshots/{}", id), "r").status, 200)
      << "dry run deleted";
  Reply wal_dry = Wait("POST", Branches() + "/main/wal/cleanup", R"({"days": 0, "dry_run": true})");
  EXPECT_EQ(wal_dry.status, 200) << wal_dry.text;
  EXPECT_EQ(Wait("DELETE", fmt::format("/api/v1/snapshots/{}", id)).status, 200);
  EXPECT_EQ(Call("GET", fmt::format("/api/v1/snapshots/{}", id), "r").status, 404);
  EXPECT_EQ(Call("GET", "/api/v1/wal", "r").status, 200);
  Reply audit = Call("GET", "/api/v1/audit?limit=5", "r");
  EXPECT_EQ(audit.status, 200);
  EXPECT_LE(audit.body.size(), 5u);
  EXPECT_EQ(Call("GET", "/api/v1/operations", "r").status, 200);
  Reply log = Call("GET", "/api/v1/serve/log", "r");
  EXPECT_EQ(log.status, 200);
  EXPECT_NE(log.text.find("API and dashboard on"), std::string::npos) << log.text;
  // Passwords never in the audit trail or serve's log.
  std::string password = home_->Branch("api/main")["uri"];
  password = password.substr(password.find(':', 14) + 1);
  password = password.substr(0, password.find('@'));
  EXPECT_EQ(Call("GET", "/api/v1/audit?limit=1000", "r").text.find(password), std::string::npos);
  EXPECT_EQ(LogText().find(password), std::string::npos);
  // Doctor with repairs needs admin.
  EXPECT_EQ(Call("POST", "/api/v1/doctor", "w", R"({"fix": true})").status, 403);
  EXPECT_EQ(Wait("POST", "/api/v1/doctor", R"({"fix": false})").status, 200);
}

// The API refuses plain HTTP on an address other than loopback, in one line, before it starts;
// --api-tls serves HTTPS with a certificate of the home's CA, which a client verifies.
TEST(ApiListenTest, NonLoopbackNeedsTlsAndTlsIsVerifiable) {
  Home home("");
  auto runner = NewRealProcessRunner();
  Command c;
  c.argv = {PGBRANCH_BINARY,  "--home",      home.path(),    "serve",
            "--proxy-listen", "127.0.0.1:0", "--api-listen", "0.0.0.0:0"};
  c.env = {{"NO_COLOR", "1"}};
  c.timeout = 30s;
  auto r = runner->Run(c);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->exit_code, 1);
  EXPECT_NE(r->err.find("needs TLS"), std::string::npos) << r->err;
  EXPECT_EQ(std::count(r->err.begin(), r->err.end(), '\n'), 1) << r->err;
  EXPECT_FALSE(PathExists(home.path() + "/serve.json"));

  std::string log = home.path() + "/serve.log";
  pid_t pid = SpawnServe(
      home.path(), {"--proxy-listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0", "--api-tls"},
      log, "");
  std::string url;
  for (int i = 0; i < 600 && url.empty(); ++i) {
    auto record = ReadFile(home.path() + "/serve.json");
    if (record.ok()) {
      json j = json::parse(*record, nullptr, false);
      if (!j.is_discarded()) url = j.value("api_url", "");
    }
    if (url.empty()) std::this_thread::sleep_for(50ms);
  }
  ASSERT_EQ(url.rfind("https://127.0.0.1:", 0), 0u) << url;
  auto ca = ReadFile(home.path() + "/tls/ca.crt");
  ASSERT_TRUE(ca.ok()) << "no CA at " << home.path() << "/tls/ca.crt";
  httplib::SSLClient client("127.0.0.1", std::stoi(url.substr(url.rfind(':') + 1)));
  client.set_ca_cert_path((home.path() + "/tls/ca.crt").c_str());
  client.enable_server_certificate_verification(true);
  auto health = client.Get("/api/v1/health");
  ASSERT_TRUE(health) << httplib::to_string(health.error());
  EXPECT_EQ(health->status, 200);
  ::kill(pid, SIGTERM);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

}  // namespace
}  // namespace pgb::e2e
