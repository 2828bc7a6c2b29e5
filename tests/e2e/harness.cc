#include "tests/e2e/harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "common/fs.h"
#include "common/random.h"
#include "engine/ports.h"
#include "storage/pool.h"

namespace pgb::e2e {
namespace {

// zfs-fuse must run for the zfs backend; scripts/daemon.sh zfs-fuse starts it (CI starts it before
// the tests; this covers a developer running the binary by hand).
void EnsureZfsDaemon() {
  auto runner = NewRealProcessRunner();
  Command list;
  list.argv = {"zpool", "list", "-H"};
  list.timeout = std::chrono::seconds(20);
  auto r = runner->Run(list);
  if (r.ok() && r->Succeeded()) return;
  MustRun({std::string(PGBRANCH_SOURCE_DIR) + "/scripts/daemon.sh", "zfs-fuse", "start"});
}

}  // namespace

// Port ranges handed to homes: far from the default range, one block of 40 per home.
// PGB_E2E_PORT_BASE moves the first block, so two test binaries (two work trees, or suites
// run in parallel) never hand out the same ports.
int NextPortBlock() {
  static int next = [] {
    const char* base = std::getenv("PGB_E2E_PORT_BASE");
    return base && *base ? std::atoi(base) : 56000;
  }();
  int first = next;
  next += 40;
  return first;
}

std::string PsqlValue(const Home& home, const std::string& ref, const std::string& sql) {
  CliResult r = home.Run({"psql", ref, "--", "-XAtc", sql});
  EXPECT_EQ(r.exit_code, 0) << ref << ": " << r.err;
  std::string out = r.out;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

std::string DumpBranch(const Home& home, const std::string& ref, const std::string& format,
                       const std::string& file) {
  std::vector<std::pair<std::string, std::string>> env;
  nlohmann::json vars = home.Ok({"branch", "env", ref, "--json"}).Json();
  for (const auto& [k, v] : vars.items()) {
    if (v.is_string()) env.emplace_back(k, v.get<std::string>());
  }
  auto runner = NewRealProcessRunner();
  Command c;
  c.argv = {"pg_dump", "-F" + format, "-f", file, "postgres"};
  c.env = env;
  c.timeout = std::chrono::minutes(2);
  auto r = runner->Run(c);
  EXPECT_TRUE(r.ok() && r->Succeeded()) << (r.ok() ? r->err : r.status().ToString());
  return file;
}

CommandResult MustRun(const std::vector<std::string>& argv) {
  auto runner = NewRealProcessRunner();
  Command c;
  c.argv = argv;
  c.timeout = std::chrono::minutes(2);
  auto r = RunChecked(*runner, c);
  if (!r.ok()) {
    ADD_FAILURE() << r.status().ToString();
    return CommandResult{};
  }
  return *r;
}

nlohmann::json CliResult::Json() const {
  try {
    return nlohmann::json::parse(out);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not JSON: " << e.what() << "\nstdout: " << out << "\nstderr: " << err;
    return nullptr;
  }
}

Home::Home(const std::string& backend, const std::string& size, const std::string& ports)
    : backend_(backend) {
  char tmpl[] = "/tmp/pgb-e2e-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) {
    ADD_FAILURE() << "mkdtemp failed";
    return;
  }
  path_ = tmpl;
  // The servers run as another OS user, which must traverse to the pool.
  chmod(path_.c_str(), 0711);
  int first = NextPortBlock();
  std::string range = ports.empty() ? fmt::format("{}-{}", first, first + 39) : ports;
  std::vector<std::string> init = {"init", "--port-range", range};
  if (backend == "btrfs" || backend == "xfs") {
    config_.kind = "image";
    config_.fs = backend;
    config_.image = path_ + "/pool.img";
    config_.root = path_ + "/pool";
    init.insert(init.end(), {"--image", config_.image, "--size", size, "--fs", backend});
  } else if (backend == "zfs") {
    EnsureZfsDaemon();
    zpool_ = "pgbe2e" + RandomHex(4);
    std::string file = path_ + "/zpool.img";
    MustRun({"truncate", "-s", size, file});
    MustRun({"zpool", "create", "-m", "none", zpool_, file});
    config_.kind = "zfs";
    config_.dataset = zpool_ + "/pgbranch";
    config_.root = path_ + "/zfs";
    init.insert(init.end(), {"--zfs", config_.dataset});
  } else if (backend == "copy") {
    std::string image = path_ + "/ext4.img";
    ext4_mount_ = path_ + "/ext4";
    MustRun({"truncate", "-s", size, image});
    MustRun({"mkfs.ext4", "-q", "-F", image});
    mkdir(ext4_mount_.c_str(), 0711);
    MustRun({"mount", "-o", "loop,noatime", image, ext4_mount_});
    chmod(ext4_mount_.c_str(), 0711);
    config_.kind = "copy";
    config_.root = ext4_mount_ + "/pool";
    mkdir(config_.root.c_str(), 0711);
    init.insert(init.end(), {"--copy", config_.root});
  } else if (!backend.empty()) {
    ADD_FAILURE() << "unknown backend " << backend;
    return;
  }
  ready_ = backend.empty() || Ok(init).exit_code == 0;
}

Home::~Home() {
  if (path_.empty()) return;
  CliResult list = Run({"project", "list", "--json"});
  if (list.exit_code == 0) {
    for (const auto& p : nlohmann::json::parse(list.out)) {
      CliResult del = Run({"project", "delete", p["name"].get<std::string>(), "--force"});
      if (del.exit_code != 0) ADD_FAILURE() << "teardown: " << del.err;
    }
  }
  if (config_.kind == "image") {
    Status s = ClosePool(config_);
    if (!s.ok()) ADD_FAILURE() << "teardown: unmount pool: " << s.ToString();
  }
  auto runner = NewRealProcessRunner();
  if (!zpool_.empty()) {
    // zfs-fuse may answer "pool is busy" for a while after the last dataset is unmounted
    // (seconds, on a loaded machine after a pool was filled): retry for up to 60 s.
    bool gone = false;
    std::string last;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!gone && std::chrono::steady_clock::now() < deadline) {
      Command destroy;
      destroy.argv = {"zpool", "destroy", "-f", zpool_};
      destroy.timeout = std::chrono::seconds(30);
      auto r = runner->Run(destroy);
      gone = r.ok() && r->Succeeded();
      if (!gone) {
        last = r.ok() ? r->err : r.status().ToString();
        usleep(250000);
      }
    }
    if (!gone) ADD_FAILURE() << "teardown: zpool destroy " << zpool_ << " failed: " << last;
  }
  if (!ext4_mount_.empty()) {
    Command umount;
    umount.argv = {"umount", ext4_mount_};
    auto r = runner->Run(umount);
    if (!r.ok() || !r->Succeeded()) ADD_FAILURE() << "teardown: umount " << ext4_mount_;
  }
  // OS accounts of this home's projects (engine_users.cc) that a failed delete left: their
  // comment names the home.
  std::vector<std::string> accounts;
  setpwent();
  while (passwd* pw = getpwent()) {
    if (pw->pw_gecos && std::string(pw->pw_gecos) == "pgbranch project in " + path_) {
      accounts.emplace_back(pw->pw_name);
    }
  }
  endpwent();
  for (const auto& name : accounts) {
    Command del;
    del.argv = {"userdel", "--force", name};
    auto r = runner->Run(del);
    if (!r.ok() || !r->Succeeded()) ADD_FAILURE() << "teardown: userdel " << name;
  }
  // Never remove a home with something still mounted in it (a pool whose unmount failed):
  // remove_all would delete data under a live server. Leave it, and say so.
  std::string mounts;
  if (auto text = ReadFile("/proc/mounts"); text.ok()) mounts = *text;
  if (mounts.find(" " + path_ + "/") != std::string::npos) {
    ADD_FAILURE() << "teardown: " << path_ << " still has a mount in it; left in place";
    return;
  }
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

CliResult Home::Run(const std::vector<std::string>& args,
                    const std::vector<std::pair<std::string, std::string>>& env) const {
  auto runner = NewRealProcessRunner();
  Command c;
  c.argv = {PGBRANCH_BINARY};
  c.argv.insert(c.argv.end(), args.begin(), args.end());
  // The caller's variables come last, so a test may point PGBRANCH_HOME elsewhere.
  c.env = {{"PGBRANCH_HOME", path_}, {"NO_COLOR", "1"}};
  c.env.insert(c.env.end(), env.begin(), env.end());
  c.timeout = std::chrono::minutes(5);
  auto r = runner->Run(c);
  CliResult out;
  if (!r.ok()) {
    ADD_FAILURE() << FormatArgv(c.argv) << ": " << r.status().ToString();
    return out;
  }
  out.exit_code = r->term_signal ? 128 + r->term_signal : r->exit_code;
  out.out = r->out;
  out.err = r->err;
  return out;
}

CliResult Home::Ok(const std::vector<std::string>& args) const {
  CliResult r = Run(args);
  if (r.exit_code != 0) {
    ADD_FAILURE() << "pgbranch " << FormatArgv(args) << " exited " << r.exit_code
                  << "\nstderr: " << r.err << "\nstdout: " << r.out;
  }
  return r;
}

nlohmann::json Home::Branch(const std::string& ref) const {
  return Ok({"branch", "get", ref, "--json"}).Json();
}

std::set<std::string> Home::Volumes() const {
  auto runner = NewRealProcessRunner();
  auto pool = OpenPool(config_, *runner);
  if (!pool.ok()) {
    ADD_FAILURE() << "open pool: " << pool.status().ToString();
    return {};
  }
  auto names = (*pool)->ListVolumes();
  if (!names.ok()) ADD_FAILURE() << names.status().ToString();
  return names.ok() ? std::set<std::string>(names->begin(), names->end()) : std::set<std::string>();
}

std::set<std::string> Home::Snapshots() const {
  auto runner = NewRealProcessRunner();
  auto pool = OpenPool(config_, *runner);
  if (!pool.ok()) {
    ADD_FAILURE() << "open pool: " << pool.status().ToString();
    return {};
  }
  auto names = (*pool)->ListSnapshots();
  if (!names.ok()) ADD_FAILURE() << names.status().ToString();
  return names.ok() ? std::set<std::string>(names->begin(), names->end()) : std::set<std::string>();
}

std::unique_ptr<Connection> Connect(const std::string& uri) {
  auto params = ConnParamsFromUri(uri);
  if (!params.ok()) {
    ADD_FAILURE() << params.status().ToString();
    return nullptr;
  }
  auto conn = Connection::Open(*params);
  if (!conn.ok()) {
    ADD_FAILURE() << "connect " << uri << ": " << conn.status().ToString();
    return nullptr;
  }
  return std::move(conn).value();
}

void Sql(const std::string& uri, const std::string& sql) {
  auto conn = Connect(uri);
  if (!conn) return;
  Status s = conn->Exec(sql);
  if (!s.ok()) ADD_FAILURE() << sql << ": " << s.ToString();
}

std::vector<std::string> Column(const std::string& uri, const std::string& sql) {
  std::vector<std::string> out;
  auto conn = Connect(uri);
  if (!conn) return out;
  auto rows = conn->Query(sql);
  if (!rows.ok()) {
    ADD_FAILURE() << sql << ": " << rows.status().ToString();
    return out;
  }
  for (const auto& row : *rows) out.push_back(row.empty() ? "" : row[0].value_or("NULL"));
  return out;
}

bool PortIsFree(int port) {
  // pgbranch's own probe: binds with SO_REUSEADDR as PostgreSQL does, so a connection of the
  // stopped server lingering in TIME_WAIT does not count; a listener does.
  return NewBindPortProbe()->IsFree("127.0.0.1", port);
}

std::vector<int> PostmastersOf(const std::string& data_dir) {
  std::vector<int> pids;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    // A process may exit while it is read: ReadFile fails (ESRCH) rather than throwing, as
    // an istreambuf_iterator over /proc would.
    Result<std::string> stat = ReadFile((e.path() / "stat").string());
    if (!stat.ok()) continue;
    const std::string& line = *stat;
    size_t close_paren = line.rfind(')');
    if (close_paren == std::string::npos || close_paren + 2 >= line.size() ||
        line[close_paren + 2] == 'Z') {
      continue;
    }
    Result<std::string> cmdline = ReadFile((e.path() / "cmdline").string());
    if (!cmdline.ok()) continue;
    const std::string& args = *cmdline;
    if (args.find("postgres") != std::string::npos && args.find(data_dir) != std::string::npos) {
      pids.push_back(std::stoi(name));
    }
  }
  return pids;
}

namespace {

std::map<std::string, std::unique_ptr<Home>>& BackendHomes() {
  static std::map<std::string, std::unique_ptr<Home>> homes;
  return homes;
}

class BackendHomesEnvironment : public ::testing::Environment {
 public:
  void TearDown() override { BackendHomes().clear(); }
};
const auto* const kBackendHomesEnvironment =
    ::testing::AddGlobalTestEnvironment(new BackendHomesEnvironment());

}  // namespace

void BackendTest::TearDown() {
  for (const auto& p : projects_) home().Run({"project", "delete", p, "--force"});
}

const Home& BackendTest::home() {
  auto& slot = BackendHomes()[GetParam()];
  if (!slot) slot = std::make_unique<Home>(GetParam(), "4G");
  return *slot;
}

bool Eventually(const std::function<bool()>& done, std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (done()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
}

pid_t SpawnServe(const std::string& home, const std::vector<std::string>& args,
                 const std::string& log, const std::string& notify_socket) {
  std::vector<std::string> argv_s = {PGBRANCH_BINARY, "--home", home, "serve"};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid != 0) return pid;
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // a serve whose test binary died goes too
  if (::getppid() != parent) ::_exit(127);
  int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  ::dup2(out, 1);
  ::dup2(out, 2);
  if (!notify_socket.empty()) ::setenv("NOTIFY_SOCKET", notify_socket.c_str(), 1);
  ::execv(PGBRANCH_BINARY, argv.data());
  ::_exit(127);
}

}  // namespace pgb::e2e
