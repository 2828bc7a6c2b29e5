// End-to-end tests of bad input: every value a new user got through (issue 10) gets a clear
// error from the real binary, and the catalog, the pool and the image file are as they were.

#include <arpa/inet.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "storage/image.h"
#include "storage/pool.h"
#include "tests/e2e/harness.h"

namespace pgb::e2e {
namespace {

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// What a refused command must leave alone: the catalog's branches and snapshots and the
// pool's volumes and snapshots.
struct State {
  std::set<std::string> branches, snapshot_ids, volumes, pool_snapshots;
  bool operator==(const State&) const = default;
};

State StateOf(const Home& home) {
  State s;
  for (const auto& b : home.Ok({"branch", "list", "--json"}).Json()) {
    s.branches.insert(b["project"].get<std::string>() + "/" + b["name"].get<std::string>());
  }
  for (const auto& snap : home.Ok({"snapshot", "list", "--json"}).Json()) {
    s.snapshot_ids.insert(std::to_string(snap["id"].get<int64_t>()));
  }
  s.volumes = home.Volumes();
  s.pool_snapshots = home.Snapshots();
  return s;
}

// Given a project with main's base snapshot and a labelled one, each bad value below is a
// usage error (exit 2) or a failure (exit 1) with its reason, and nothing changes: the day
// counts that overflowed or read "" as 0, the empty --pitr/--snapshot/--parent that were
// ignored, hexadecimal ports, labels that are not printable UTF-8. A day count at the bound
// works and spares snapshots made seconds earlier, which a count of 0 would take.
TEST(InputE2eTest, BadValuesAreRefusedAndChangeNothing) {
  Home home("btrfs", "2G");
  home.Ok({"project", "create", "p-in"});
  home.Ok({"snapshot", "create", "p-in/main", "--label", "kept"});
  const State before = StateOf(home);
  ASSERT_EQ(before.snapshot_ids.size(), 2u);

  struct Case {
    std::vector<std::string> args;
    int code;
    std::string why;
  };
  const std::vector<Case> cases = {
      {{"snapshot", "cleanup", "--all", "--days", "200000"},
       2,
       "snapshot cleanup: --days: 200000 is out of range: give 0 to 36500 days (100 years)"},
      {{"snapshot", "cleanup", "--all", "--days", "200000", "--dry-run"}, 2, "out of range"},
      {{"snapshot", "cleanup", "--all", "--days", ""},
       2,
       "snapshot cleanup: --days: an empty value is not allowed"},
      {{"snapshot", "cleanup", "--all", "--days", "-1"}, 2, "out of range"},
      {{"snapshot", "cleanup", "--all", "--days", "0x10"}, 2, "not a decimal number"},
      {{"snapshot", "cleanup", "", "--days", "0"}, 2, "empty value"},
      {{"wal", "cleanup", "p-in/main", "--days", "200000"}, 2, "out of range"},
      {{"wal", "cleanup", "p-in/main", "--days", ""}, 2, "empty value"},
      {{"branch", "create", "p-in/x", "--pitr", ""},
       2,
       "branch create: --pitr: an empty value is not allowed"},
      {{"branch", "create", "p-in/x", "--snapshot", ""}, 2, "empty value"},
      {{"branch", "create", "p-in/x", "--parent", ""}, 2, "empty value"},
      {{"branch", "create", "p-in/x", "--port", "0x1f90"},
       2,
       "branch create: --port: \"0x1f90\" is not a decimal number"},
      {{"branch", "create", "p-in/x", "--port", "80"}, 2, "give 1024 to 65535"},
      {{"branch", "create", "p-in/x", "--pitr", "100000000 days ago"}, 1, "too far in the past"},
      {{"branch", "reset", "p-in/main", "--snapshot", "0b1"}, 2, "not a decimal number"},
      {{"snapshot", "create", "p-in/main", "--label", "bad \xff"},
       2,
       "snapshot create: --label: \"bad \\xff\" is not valid UTF-8"},
      {{"snapshot", "create", "p-in/main", "--label",
        "\xe2\x80\xae"
        "evil"},
       2,
       "has a control character"},
      {{"snapshot", "create", "p-in/main", "--label", "clear\x1b[2J"},
       2,
       "has a control character"},
      {{"snapshot", "create", "p-in/main", "--label", ""}, 2, "empty value"},
      {{"snapshot", "delete", "0x1"}, 2, "not a decimal number"},
      {{"project", "create", "q-in", "--port", "0x1f90"}, 2, "not a decimal number"},
      {{"project", "create", ""}, 2, "empty value"},
      {{"--home", "", "status"}, 2, "--home: an empty value is not allowed"},
  };
  for (const Case& c : cases) {
    CliResult r = home.Run(c.args);
    EXPECT_EQ(r.exit_code, c.code) << FormatArgv(c.args) << "\n" << r.err;
    EXPECT_TRUE(Contains(r.err, c.why)) << FormatArgv(c.args) << "\n" << r.err;
    EXPECT_EQ(r.err.find('\x1b'), std::string::npos) << "raw escape on stderr: " << r.err;
  }
  EXPECT_EQ(StateOf(home), before);

  CliResult century = home.Ok({"snapshot", "cleanup", "--all", "--days", "36500", "--dry-run"});
  EXPECT_TRUE(Contains(century.out, "no snapshot is older than 36500 days")) << century.out;
  CliResult today = home.Ok({"snapshot", "cleanup", "--all", "--days", "0", "--dry-run"});
  EXPECT_TRUE(Contains(today.out, "would delete snapshot")) << today.out;
  CliResult wal = home.Ok({"wal", "cleanup", "p-in/main", "--days", "36500", "--dry-run"});
  EXPECT_TRUE(Contains(wal.out, "would free 0 segments")) << wal.out;
  EXPECT_EQ(StateOf(home), before);
}

// Given a label that is not UTF-8 already in the catalog (stored before labels were checked),
// the JSON listings that used to abort (rc 134, nlohmann type_error.316) print valid JSON with
// U+FFFD in its place, and the table shows the byte as an escape.
TEST(InputE2eTest, StoredInvalidLabelStillLists) {
  Home home("btrfs", "2G");
  home.Ok({"project", "create", "p-utf"});
  std::string id = home.Ok({"snapshot", "create", "p-utf/main", "--label", "x"}).out;
  id.erase(id.find_last_not_of('\n') + 1);
  MustRun(
      {"sqlite3", home.path() + "/state.db",
       fmt::format("UPDATE snapshots SET label = CAST(X'6F6B20FF' AS TEXT) WHERE id = {}", id)});

  const std::string replaced = "ok \xef\xbf\xbd";
  nlohmann::json list = home.Ok({"snapshot", "list", "--json"}).Json();
  bool found = false;
  for (const auto& s : list) found |= s["label"] == replaced;
  EXPECT_TRUE(found) << list.dump();
  EXPECT_EQ(home.Ok({"snapshot", "get", id, "--json"}).Json()["label"], replaced);
  nlohmann::json log = home.Ok({"log", "p-utf/main", "--json"}).Json();
  EXPECT_TRUE(Contains(log.dump(), "ok \\ufffd") || Contains(log.dump(), replaced)) << log.dump();
  CliResult table = home.Ok({"snapshot", "list"});
  EXPECT_TRUE(Contains(table.out, "ok \\xff")) << table.out;
  EXPECT_EQ(table.out.find('\xff'), std::string::npos);
  CliResult text_log = home.Ok({"log", "p-utf/main"});
  EXPECT_TRUE(Contains(text_log.out, "ok \\xff")) << text_log.out;
}

// Given a home without a pool: image sizes of 0 (which made a 60 GiB image), negative,
// fractional, and larger than the free space (1P, 20T on a small disk) are refused and leave
// no image; so does an init whose mount step fails (fail point). The corrected init then works.
TEST(InputE2eTest, FailedInitLeavesNoImage) {
  Home home(/*backend=*/"");
  PoolConfig config;
  config.kind = "image";
  config.fs = "btrfs";
  config.image = home.path() + "/pool.img";
  config.root = home.path() + "/pool";
  // Unmounted however the test ends; Home cannot, since it did not make this pool.
  std::unique_ptr<PoolConfig, void (*)(PoolConfig*)> unmount(&config, [](PoolConfig* c) {
    Status s = ClosePool(*c);
    if (!s.ok()) ADD_FAILURE() << "teardown: " << s.ToString();
  });
  struct statvfs vfs {};
  ASSERT_EQ(statvfs(home.path().c_str(), &vfs), 0);
  const uint64_t free_gib = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize / kGiB;

  struct Case {
    std::string size;
    int code;
    std::string why;
  };
  const std::vector<Case> cases = {
      {"0", 2, "init: --size: \"0\" is too small: an image pool needs at least 1.0 GiB"},
      {"512M", 2, "too small"},
      {"-1", 2, "--size"},
      {"1.5G", 2, "is not a size"},
      {"0x10G", 2, "is not a size"},
      {"", 2, "empty value"},
      {fmt::format("{}G", free_gib + 2), 1, "does not fit in the"},
      {"1P", 1, "does not fit in the"},
  };
  for (const Case& c : cases) {
    CliResult r = home.Run({"init", "--image", config.image, "--size", c.size});
    EXPECT_EQ(r.exit_code, c.code) << c.size << "\n" << r.err;
    EXPECT_TRUE(Contains(r.err, c.why)) << c.size << "\n" << r.err;
    EXPECT_FALSE(std::filesystem::exists(config.image)) << c.size;
    EXPECT_FALSE(std::filesystem::exists(config.root)) << c.size;
  }

  CliResult failed = home.Run({"init", "--image", config.image, "--size", "1G"},
                              {{"PGBRANCH_FAILPOINTS", "storage.image_pool.after_mount"}});
  EXPECT_EQ(failed.exit_code, 1) << failed.err;
  EXPECT_FALSE(std::filesystem::exists(config.image));
  EXPECT_FALSE(std::filesystem::exists(config.root));
  EXPECT_TRUE(LoopDevicesBackedBy(config.image)->empty());
  EXPECT_FALSE(home.Ok({"status", "--json"}).Json()["pool"]["configured"].get<bool>());

  nlohmann::json status =
      home.Ok({"init", "--image", config.image, "--size", "1G", "--json"}).Json();
  EXPECT_EQ(status["pool"]["kind"], "image");
  EXPECT_EQ(std::filesystem::file_size(config.image), kGiB);
  EXPECT_TRUE(*IsMounted(config.root));
}

// Given a stopped branch whose port still has a connection in TIME_WAIT (the server side
// closed first, as a stopping server does), doctor does not report the port as held by another
// program, and the branch starts on it: PostgreSQL binds with SO_REUSEADDR, and so does the
// probe.
TEST(InputE2eTest, TimeWaitPortIsNotHeld) {
  Home home("btrfs", "2G");
  nlohmann::json main = home.Ok({"project", "create", "p-tw", "--json"}).Json();
  const int port = main["port"];
  home.Ok({"branch", "stop", "p-tw/main"});

  int listener = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(listener, 1), 0);
  int client = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_EQ(connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  int accepted = accept(listener, nullptr, nullptr);
  ASSERT_GE(accepted, 0);
  close(accepted);
  char byte;
  EXPECT_EQ(read(client, &byte, 1), 0);
  close(client);
  close(listener);
  // The scenario holds: a bind without SO_REUSEADDR is refused (PortIsFree, like PostgreSQL,
  // binds with it and would not see the TIME_WAIT socket).
  int plain = socket(AF_INET, SOCK_STREAM, 0);
  bool refused = bind(plain, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0;
  close(plain);
  ASSERT_TRUE(refused) << "no TIME_WAIT socket on " << port;
  EXPECT_TRUE(PortIsFree(port));

  CliResult doctor = home.Run({"doctor", "--json"});
  for (const auto& finding : doctor.Json()) {
    EXPECT_FALSE(finding["check"] == "port" && finding["status"] == "fail") << finding.dump();
  }
  home.Ok({"branch", "start", "p-tw/main"});
  EXPECT_EQ(home.Branch("p-tw/main")["state"], "running");
}

}  // namespace
}  // namespace pgb::e2e
