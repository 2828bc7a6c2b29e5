#include "tests/e2e/harness.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "common/fs.h"
#include "storage/pool.h"

namespace pgb::e2e {
namespace {

// Port ranges handed to homes: far from the default range, one block of 40 per home.
int NextPortBlock() {
  static int next = 56000;
  int first = next;
  next += 40;
  return first;
}

std::set<std::string> ListDir(const std::string& dir) {
  std::set<std::string> names;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    names.insert(e.path().filename().string());
  }
  return names;
}

}  // namespace

nlohmann::json CliResult::Json() const {
  try {
    return nlohmann::json::parse(out);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not JSON: " << e.what() << "\nstdout: " << out << "\nstderr: " << err;
    return nullptr;
  }
}

Home::Home(const std::string& pool_size, const std::string& ports) {
  char tmpl[] = "/tmp/pgb-e2e-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) {
    ADD_FAILURE() << "mkdtemp failed";
    return;
  }
  path_ = tmpl;
  // The servers run as another OS user, which must traverse to the pool.
  chmod(path_.c_str(), 0711);
  first_port_ = NextPortBlock();
  std::string range = ports.empty() ? fmt::format("{}-{}", first_port_, first_port_ + 39) : ports;
  if (!pool_size.empty()) {
    Ok({"init", "--image", path_ + "/pool.img", "--size", pool_size, "--port-range", range});
  }
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
  PoolConfig pool;
  pool.kind = "image";
  pool.image = path_ + "/pool.img";
  pool.root = pool_root();
  Status s = ClosePool(pool);
  if (!s.ok()) ADD_FAILURE() << "teardown: unmount pool: " << s.ToString();
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

CliResult Home::Run(const std::vector<std::string>& args,
                    const std::vector<std::pair<std::string, std::string>>& env) const {
  auto runner = NewRealProcessRunner();
  Command c;
  c.argv = {PGBRANCH_BINARY};
  c.argv.insert(c.argv.end(), args.begin(), args.end());
  c.env = env;
  c.env.push_back({"PGBRANCH_HOME", path_});
  c.env.push_back({"NO_COLOR", "1"});
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

std::set<std::string> Home::Volumes() const { return ListDir(pool_root() + "/volumes"); }
std::set<std::string> Home::Snapshots() const { return ListDir(pool_root() + "/snapshots"); }

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
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool free = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return free;
}

std::vector<int> PostmastersOf(const std::string& data_dir) {
  std::vector<int> pids;
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(e.path() / "stat");
    std::string line;
    std::getline(stat, line);
    size_t close_paren = line.rfind(')');
    if (close_paren == std::string::npos || close_paren + 2 >= line.size() ||
        line[close_paren + 2] == 'Z') {
      continue;
    }
    std::ifstream cmdline(e.path() / "cmdline");
    std::string args((std::istreambuf_iterator<char>(cmdline)), std::istreambuf_iterator<char>());
    if (args.find("postgres") != std::string::npos && args.find(data_dir) != std::string::npos) {
      pids.push_back(std::stoi(name));
    }
  }
  return pids;
}

}  // namespace pgb::e2e
