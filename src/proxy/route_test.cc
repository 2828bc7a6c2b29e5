#include "proxy/route.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <random>

namespace pgb::proxy {
namespace {

Route R(std::string project, std::optional<std::string> branch) {
  return Route{std::move(project), std::move(branch)};
}

TEST(RouteTest, DatabaseNames) {
  struct Case {
    std::string database;
    std::optional<Route> route;
    std::string real;
  };
  const std::vector<Case> cases = {
      {"postgres", std::nullopt, "postgres"},
      {"app_db", std::nullopt, "app_db"},
      {"", std::nullopt, ""},
      {"demo/dev", R("demo", "dev"), "postgres"},
      {"demo/dev/app", R("demo", "dev"), "app"},
      {"demo/dev/a/b", R("demo", "dev"), "a/b"},
      {"demo/@", R("demo", std::nullopt), "postgres"},
      {"demo/@/app", R("demo", std::nullopt), "app"},
      {"Demo/Dev", R("Demo", "Dev"), "postgres"},  // names are checked by the router
  };
  for (const auto& c : cases) {
    auto r = ParseDatabaseRoute(c.database);
    ASSERT_TRUE(r.ok()) << c.database << ": " << r.status().ToString();
    EXPECT_EQ(r->route, c.route) << c.database;
    EXPECT_EQ(r->database, c.real) << c.database;
  }
  for (std::string bad : {"/", "demo/", "/dev", "demo//x", "demo/dev/", "@/dev", "//"}) {
    EXPECT_FALSE(ParseDatabaseRoute(bad).ok()) << bad;
  }
}

TEST(RouteTest, OptionsWords) {
  struct Case {
    std::string options;
    std::optional<Route> route;
    std::string rest;
  };
  const std::vector<Case> cases = {
      {"", std::nullopt, ""},
      {"-c work_mem=64MB", std::nullopt, "-c work_mem=64MB"},
      {"-c pgbranch.branch=demo/dev", R("demo", "dev"), ""},
      {"-cpgbranch.branch=demo/dev -c work_mem=1MB", R("demo", "dev"), "-c work_mem=1MB"},
      {"--pgbranch.branch=demo/@", R("demo", std::nullopt), ""},
      {"branch=demo/dev", R("demo", "dev"), ""},
      {"-c search_path=a\\ b branch=demo/x", R("demo", "x"), "-c search_path=a\\ b"},
      {"  -c  pgbranch.branch=p/b   -c x=y ", R("p", "b"), "-c x=y"},
  };
  for (const auto& c : cases) {
    auto r = ParseOptionsRoute(c.options);
    ASSERT_TRUE(r.ok()) << c.options << ": " << r.status().ToString();
    EXPECT_EQ(r->route, c.route) << c.options;
    EXPECT_EQ(r->rest, c.rest) << c.options;
    EXPECT_EQ(r->changed, c.route.has_value()) << c.options;
  }
  for (std::string bad : {"branch=demo", "branch=demo/dev/x", "branch=/dev",
                          "-c pgbranch.branch=", "branch=a/b branch=a/b"}) {
    EXPECT_FALSE(ParseOptionsRoute(bad).ok()) << bad;
  }
}

TEST(RouteTest, ServerNames) {
  EXPECT_EQ(ParseSniRoute("dev.demo.localhost", "localhost"), R("demo", "dev"));
  EXPECT_EQ(ParseSniRoute("DEV.Demo.LocalHost", "localhost"), R("demo", "dev"));
  EXPECT_EQ(ParseSniRoute("demo.localhost", "localhost"), R("demo", std::nullopt));
  EXPECT_EQ(ParseSniRoute("dev.demo.db.example.com", "db.example.com"), R("demo", "dev"));
  EXPECT_EQ(ParseSniRoute("localhost", "localhost"), std::nullopt);
  EXPECT_EQ(ParseSniRoute("x.dev.demo.localhost", "localhost"), std::nullopt);
  EXPECT_EQ(ParseSniRoute("dev.demo.example.com", "localhost"), std::nullopt);
  EXPECT_EQ(ParseSniRoute("evillocalhost", "localhost"), std::nullopt);
  EXPECT_EQ(ParseSniRoute(".localhost", "localhost"), std::nullopt);
}

TEST(RouteTest, WaysMustAgree) {
  auto one = RouteStartup("demo/dev/app", "-c pgbranch.branch=demo/dev", "dev.demo.localhost",
                          "localhost");
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  EXPECT_EQ(one->route, R("demo", "dev"));
  EXPECT_EQ(one->database, "app");
  EXPECT_EQ(one->options, "");
  EXPECT_TRUE(one->options_changed);

  auto sni_only = RouteStartup("app", "", "demo.localhost", "localhost");
  ASSERT_TRUE(sni_only.ok());
  EXPECT_EQ(sni_only->route, R("demo", std::nullopt));
  EXPECT_EQ(sni_only->database, "app");

  auto none = RouteStartup("postgres", "-c x=y", "", "localhost");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->route, std::nullopt);
  EXPECT_FALSE(none->options_changed);

  auto clash = RouteStartup("demo/dev", "branch=demo/main", "", "localhost");
  ASSERT_FALSE(clash.ok());
  EXPECT_EQ(clash.status().message(),
            "route: the database name names demo/dev but options names demo/main");
  // The active branch and a named branch are different routes, even if they lead to one place.
  EXPECT_FALSE(RouteStartup("demo/@", "", "dev.demo.localhost", "localhost").ok());
}

// Random and mutated inputs: no crash, and a route that parses names non-empty parts without
// '/' in them.
TEST(RouteTest, Fuzz) {
  const char* env = std::getenv("PGB_FUZZ_ITERATIONS");
  const long iterations = env ? std::atol(env) : 200000;
  std::mt19937_64 rng(env && std::getenv("PGB_FUZZ_SEED") ? std::atoll(std::getenv("PGB_FUZZ_SEED"))
                                                          : 20261202);
  const std::string alphabet = "ab/@.\\ -c=_pgbranch.branch=\x00\xff";
  const std::vector<std::string> seeds = {"demo/dev/app", "-c pgbranch.branch=demo/dev",
                                          "dev.demo.localhost", "branch=p/@", "p/@/x"};
  auto random_text = [&] {
    std::string s = seeds[rng() % seeds.size()];
    int edits = static_cast<int>(rng() % 6);
    for (int i = 0; i < edits; ++i) {
      size_t at = s.empty() ? 0 : rng() % (s.size() + 1);
      char c = alphabet[rng() % alphabet.size()];
      switch (rng() % 3) {
        case 0:
          s.insert(s.begin() + static_cast<long>(at), c);
          break;
        case 1:
          if (at < s.size()) s.erase(at, 1);
          break;
        default:
          if (at < s.size()) s[at] = c;
          break;
      }
    }
    return s;
  };
  for (long i = 0; i < iterations; ++i) {
    std::string db = random_text(), opts = random_text(), sni = random_text();
    auto r = RouteStartup(db, opts, sni, "localhost");
    if (!r.ok() || !r->route) continue;
    ASSERT_FALSE(r->route->project.empty());
    ASSERT_EQ(r->route->project.find('/'), std::string::npos);
    if (r->route->branch) {
      ASSERT_FALSE(r->route->branch->empty());
      ASSERT_EQ(r->route->branch->find('/'), std::string::npos);
    }
  }
}

}  // namespace
}  // namespace pgb::proxy
