// End-to-end tests of `pgbranch serve`: one PostgreSQL port in front of every branch. Routes
// (database name, options, TLS server name), the project's proxy password, the active branch
// (`pgbranch use`), wake of suspended branches, cancel keys, the connection limit, a reset under
// connections and the daemon's lifecycle, with the real pgbranch binary, PostgreSQL 15, libpq,
// psql, pgbench, psycopg2, node-postgres and pgjdbc.
//
// One home (a Btrfs image pool) and one project "demo" (branches main and dev, a database appdb
// and a role app on dev) serve the whole suite; each test starts its own `pgbranch serve` as a
// child process (stdout and stderr to a log file in the home) and stops it with SIGTERM in
// TearDown, so one test's daemon options never leak into the next. Branches a test makes for
// itself are deleted after it.

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/fs.h"
#include "tests/e2e/harness.h"

extern char** environ;

namespace pgb::e2e {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Params = std::vector<std::pair<std::string, std::string>>;

constexpr char kAppPassword[] = "app-Secret-4711";

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The file's text, "" if it cannot be read.
std::string FileText(const std::string& path) {
  Result<std::string> text = ReadFile(path);
  return text.ok() ? *text : "";
}

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// `params` with `overrides` replacing entries of the same key (or appended).
Params With(Params params, const Params& overrides) {
  for (const auto& [key, value] : overrides) {
    bool replaced = false;
    for (auto& p : params) {
      if (p.first == key) {
        p.second = value;
        replaced = true;
      }
    }
    if (!replaced) params.emplace_back(key, value);
  }
  return params;
}

// ---------------------------------------------------------------------------------------------
// libpq

struct PgConnDeleter {
  void operator()(PGconn* c) const { PQfinish(c); }
};
using PgConnPtr = std::unique_ptr<PGconn, PgConnDeleter>;

// A connection attempt: the connection, or how it was refused.
struct Attempt {
  PgConnPtr conn;
  std::string sqlstate;  // of a refused connection
  std::string error;     // libpq's message
  bool ok() const { return conn != nullptr; }
};

// Connects with libpq keywords `params` (expand_dbname: "dbname" may hold a URI), waiting up to
// `timeout`. libpq has no call that returns the SQLSTATE of a refused connection; with verbose
// errors switched on before the first poll, the message holds it ("FATAL:  3D000: ...").
Attempt Open(const Params& params, std::chrono::milliseconds timeout = 60s) {
  std::vector<const char*> keys, values;
  for (const auto& [k, v] : params) {
    keys.push_back(k.c_str());
    values.push_back(v.c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  Attempt a;
  PgConnPtr conn(PQconnectStartParams(keys.data(), values.data(), 1));
  if (!conn) {
    a.error = "PQconnectStartParams: out of memory";
    return a;
  }
  PGconn* c = conn.get();
  PQsetErrorVerbosity(c, PQERRORS_VERBOSE);
  // Notices during login (a shutdown's WARNING) are not the test's output.
  PQsetNoticeProcessor(
      c, [](void*, const char*) {}, nullptr);
  const auto deadline = Clock::now() + timeout;
  PostgresPollingStatusType st =
      PQstatus(c) == CONNECTION_BAD ? PGRES_POLLING_FAILED : PGRES_POLLING_WRITING;
  while (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left <= 0ms) {
      a.error = fmt::format("connection not made within {} ms", timeout.count());
      return a;
    }
    pollfd p{};
    p.fd = PQsocket(c);
    p.events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT;
    int n = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
    if (n == 0) continue;
    st = PQconnectPoll(c);
  }
  if (st == PGRES_POLLING_FAILED) {
    a.error = PQerrorMessage(c);
    static const std::regex kState(R"((?:FATAL|ERROR|PANIC):  ([0-9A-Z]{5}): )");
    std::smatch m;
    if (std::regex_search(a.error, m, kState)) a.sqlstate = m[1];
    return a;
  }
  PQsetErrorVerbosity(c, PQERRORS_DEFAULT);
  a.conn = std::move(conn);
  return a;
}

struct QueryResult {
  bool ok = false;
  std::string sqlstate;
  std::string error;
  std::vector<std::vector<std::string>> rows;  // NULL as "NULL"
  std::string Value() const { return rows.empty() || rows[0].empty() ? "" : rows[0][0]; }
};

QueryResult FromResult(PGconn* c, PGresult* res) {
  QueryResult out;
  ExecStatusType st = PQresultStatus(res);
  if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
    out.ok = true;
    for (int r = 0; r < PQntuples(res); ++r) {
      std::vector<std::string> row;
      for (int f = 0; f < PQnfields(res); ++f) {
        row.push_back(PQgetisnull(res, r, f) ? "NULL" : PQgetvalue(res, r, f));
      }
      out.rows.push_back(std::move(row));
    }
  } else {
    const char* state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
    out.sqlstate = state ? state : "";
    const char* primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
    out.error = primary ? primary : PQerrorMessage(c);
  }
  PQclear(res);
  return out;
}

QueryResult Query(PGconn* c, const std::string& sql) {
  if (!c) return QueryResult{false, "", "no connection", {}};
  return FromResult(c, PQexec(c, sql.c_str()));
}

// Sends a CancelRequest (docs 55.2.8) for `pid`/`key` to 127.0.0.1:`port`; true once the other
// side has closed the connection (within `timeout`), as a server does after one.
bool SendCancelRequest(int port, int32_t pid, uint32_t key,
                       std::chrono::milliseconds timeout = 5s) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool closed = false;
  uint32_t packet[4] = {htonl(16), htonl(80877102), htonl(static_cast<uint32_t>(pid)), htonl(key)};
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::write(fd, packet, sizeof(packet)) == static_cast<ssize_t>(sizeof(packet))) {
    pollfd p{fd, POLLIN, 0};
    char byte;
    closed = ::poll(&p, 1, static_cast<int>(timeout.count())) > 0 && ::read(fd, &byte, 1) == 0;
  }
  ::close(fd);
  return closed;
}

// ---------------------------------------------------------------------------------------------
// Sockets in /proc

// The inode of the socket listening on 127.0.0.1:`port` (/proc/net/tcp, state 0A), 0 if none.
uint64_t ListeningInode(int port) {
  std::ifstream tcp("/proc/net/tcp");
  std::string line;
  std::getline(tcp, line);  // header
  const std::string local = fmt::format("0100007F:{:04X}", port);
  while (std::getline(tcp, line)) {
    std::istringstream words(line);
    std::vector<std::string> f;
    for (std::string w; words >> w;) f.push_back(w);
    if (f.size() > 9 && f[1] == local && f[3] == "0A") return std::stoull(f[9]);
  }
  return 0;
}

// The inodes of the sockets process `pid` holds open.
std::set<uint64_t> SocketInodes(int pid) {
  std::set<uint64_t> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(fmt::format("/proc/{}/fd", pid), ec)) {
    std::string target = std::filesystem::read_symlink(e.path(), ec).string();
    if (ec || !target.starts_with("socket:[")) continue;
    out.insert(std::stoull(target.substr(8, target.size() - 9)));
  }
  return out;
}

// The pids of the processes whose parent is `parent`.
std::vector<int> ChildrenOf(int parent) {
  std::vector<int> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    Result<std::string> stat = ReadFile((e.path() / "stat").string());
    if (!stat.ok()) continue;
    size_t close_paren = stat->rfind(')');
    if (close_paren == std::string::npos) continue;
    std::istringstream rest(stat->substr(close_paren + 2));
    std::string state;
    int ppid = 0;
    rest >> state >> ppid;
    if (ppid == parent) out.push_back(std::stoi(name));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// `pgbranch serve` as a child process

class ServeProcess {
 public:
  // Starts `pgbranch --home HOME serve ARGS` with stdout and stderr appended to `log_path`, and
  // waits until serve.json names it; with `probe`, also until the proxy has answered a
  // CancelRequest (its event loop runs, so its signal handlers are in place). On failure (it
  // exited, or was not ready within a minute) the test fails and running() is false.
  ServeProcess(const Home& home, const std::vector<std::string>& args, std::string log_path,
               bool probe = true)
      : log_path_(std::move(log_path)) {
    std::vector<std::string> argv_s = {PGBRANCH_BINARY, "--home", home.path(), "serve"};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<std::string> env_s;
    for (char** e = environ; *e; ++e) {
      std::string var = *e;
      if (!var.starts_with("PGBRANCH_HOME=") && !var.starts_with("NO_COLOR=")) env_s.push_back(var);
    }
    env_s.push_back("PGBRANCH_HOME=" + home.path());
    env_s.push_back("NO_COLOR=1");
    std::vector<char*> argv, envp;
    for (auto& s : argv_s) argv.push_back(s.data());
    argv.push_back(nullptr);
    for (auto& s : env_s) envp.push_back(s.data());
    envp.push_back(nullptr);

    // serve.json appears by rename (temp + rename): inotify tells the moment it does, so a test
    // can signal serve as soon as it says it is ready, as systemd or a script would.
    int watch = ::inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (watch >= 0) ::inotify_add_watch(watch, home.path().c_str(), IN_MOVED_TO | IN_CLOSE_WRITE);
    int log = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (log < 0 || devnull < 0) {
      ADD_FAILURE() << "open " << log_path_ << " or /dev/null";
      return;
    }
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ == 0) {
      // Only async-signal-safe calls from here on. A serve whose test binary died gets SIGTERM.
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) ::_exit(127);
      ::dup2(devnull, 0);
      ::dup2(log, 1);
      ::dup2(log, 2);
      ::syscall(SYS_close_range, 3U, ~0U, 0U);
      sigset_t none;
      ::sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      ::execve(argv[0], argv.data(), envp.data());
      ::_exit(127);
    }
    ::close(log);
    ::close(devnull);
    if (pid_ < 0) {
      ADD_FAILURE() << "fork failed";
      return;
    }
    const auto deadline = Clock::now() + 60s;
    struct CloseWatch {
      int fd;
      ~CloseWatch() {
        if (fd >= 0) ::close(fd);
      }
    } close_watch{watch};
    while (Clock::now() < deadline) {
      if (Reap(0ms)) {
        ADD_FAILURE() << "serve exited (status " << status_ << ") before it listened:\n" << Log();
        return;
      }
      auto record = ReadFile(home.path() + "/serve.json");
      int port = 0;
      if (record.ok()) {
        try {
          auto j = nlohmann::json::parse(*record);
          if (j.value("pid", 0) == pid_) port = j.value("proxy_port", 0);
        } catch (const std::exception&) {
        }
      }
      if (port != 0 && (!probe || SendCancelRequest(port, 1, 1, 30s))) {
        started_ = true;
        return;
      }
      if (watch >= 0) {
        pollfd p{watch, POLLIN, 0};
        if (::poll(&p, 1, 20) > 0) {
          char events[4096];
          while (::read(watch, events, sizeof(events)) > 0) {
          }
        }
      } else {
        std::this_thread::sleep_for(2ms);
      }
    }
    ADD_FAILURE() << "serve did not write serve.json within a minute:\n" << Log();
  }

  ~ServeProcess() {
    if (pid_ <= 0 || exited_) return;
    if (!Stop(SIGTERM, 60s)) {
      ADD_FAILURE() << "serve " << pid_ << " ignored SIGTERM for a minute; killed";
      ::kill(pid_, SIGKILL);
      Reap(std::chrono::milliseconds::max());
    }
  }
  ServeProcess(const ServeProcess&) = delete;
  ServeProcess& operator=(const ServeProcess&) = delete;

  // Whether it started and has not exited (as far as we reaped it).
  bool running() { return started_ && !Reap(0ms); }
  pid_t pid() const { return pid_; }
  // Sends `signo` and waits up to `timeout` for it to exit; true once it has exited.
  bool Stop(int signo, std::chrono::milliseconds timeout) {
    if (pid_ <= 0) return true;
    Signal(signo);
    return Reap(timeout);
  }
  void Signal(int signo) {
    if (pid_ <= 0 || exited_) return;
    signaled_ |= signo != SIGHUP;
    ::kill(pid_, signo);
  }
  // Whether it was sent a signal that ends it (so an exit is no surprise).
  bool signaled() const { return signaled_; }
  // Its exit code once it exited normally, else -1 (signal, or not exited).
  int exit_code() const { return exited_ && WIFEXITED(status_) ? WEXITSTATUS(status_) : -1; }
  // How it ended, for messages.
  std::string How() const {
    if (!exited_) return "still running";
    if (WIFSIGNALED(status_)) return fmt::format("killed by signal {}", WTERMSIG(status_));
    return fmt::format("exit {}", WEXITSTATUS(status_));
  }
  std::string Log() const {
    auto text = ReadFile(log_path_);
    return text.ok() ? *text : "";
  }

  // Waits up to `timeout` for the child to exit (waitpid: PID 1 here reaps nothing of ours).
  bool Reap(std::chrono::milliseconds timeout) {
    if (exited_) return true;
    if (pid_ <= 0) return false;
    const auto deadline = timeout == std::chrono::milliseconds::max() ? Clock::time_point::max()
                                                                      : Clock::now() + timeout;
    for (;;) {
      int status = 0;
      pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        exited_ = true;
        status_ = status;
        return true;
      }
      if (r < 0 && errno != EINTR) return false;
      if (Clock::now() >= deadline) return false;
      std::this_thread::sleep_for(10ms);
    }
  }

 private:
  std::string log_path_;
  pid_t pid_ = -1;
  bool started_ = false;
  bool signaled_ = false;
  bool exited_ = false;
  int status_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Programs

CommandResult RunProgram(const std::vector<std::string>& argv, const Params& env,
                         const std::vector<std::string>& unset = {},
                         std::chrono::milliseconds timeout = 2min,
                         const std::string& stdin_data = "") {
  auto runner = NewRealProcessRunner();
  Command c;
  c.argv = argv;
  c.env = env;
  c.env_unset = unset;
  c.timeout = timeout;
  c.stdin_data = stdin_data;
  Result<CommandResult> r = runner->Run(c);
  EXPECT_TRUE(r.ok()) << FormatArgv(argv) << ": " << r.status().ToString();
  return r.ok() ? *r : CommandResult{};
}

// What a test client (tests/clients) printed: its one JSON line, and its exit code.
struct ClientOutput {
  int exit_code = -1;
  nlohmann::json json;
  std::string raw;
};

// ---------------------------------------------------------------------------------------------
// The fixture

class ProxyE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    home_ = new Home("btrfs", "3G");
    if (!home_->ready()) return;
    nlohmann::json main = home_->Ok({"project", "create", "demo", "--json"}).Json();
    nlohmann::json dev = home_->Ok({"branch", "create", "demo/dev", "--json"}).Json();
    if (main.is_null() || dev.is_null()) return;
    main_port_ = main["port"];
    dev_port_ = dev["port"];
    // On dev only: a database and a role with a password of its own.
    Sql(dev["uri"], "CREATE DATABASE appdb");
    Sql(dev["uri"], fmt::format("CREATE ROLE app LOGIN PASSWORD '{}'", kAppPassword));
    int block = NextPortBlock();
    proxy_port_ = block;
    spare_port_ = block + 1;
    suite_ready_ = true;
  }

  static void TearDownTestSuite() {
    delete home_;  // deletes the projects, unmounts the pool
    home_ = nullptr;
  }

  void SetUp() override {
    ASSERT_TRUE(suite_ready_) << "the suite's home or project could not be made";
    StartServe();
    ASSERT_TRUE(serve_ && serve_->running());
    if (password_.empty()) {
      std::string uri = Cli({"branch", "url", "demo/dev", "--proxy"});
      size_t start = uri.find("postgres:") + 9;
      password_ = uri.substr(start, uri.find('@') - start);
      ASSERT_GE(password_.size(), 16u) << uri;
    }
  }

  void TearDown() override {
    StopServe();
    home_->Run({"use", "demo/main"});
    for (const auto& b : branches_) home_->Run({"branch", "delete", b});
  }

  // Runs the CLI (test fails unless it exits 0) and returns stdout without its last '\n'.
  static std::string Cli(const std::vector<std::string>& args) {
    std::string out = home_->Ok(args).out;
    if (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
  }

  // Starts serve on the suite's proxy port (unless `args` name another) with a short grace,
  // so a test that leaves a session open does not stall TearDown.
  void StartServe(std::vector<std::string> args = {}, bool probe = true) {
    bool listen = false, grace = false;
    for (const auto& a : args) {
      listen |= a == "--proxy-listen";
      grace |= a == "--grace";
    }
    if (!listen)
      args.insert(args.end(), {"--proxy-listen", fmt::format("127.0.0.1:{}", proxy_port_)});
    if (!grace) args.insert(args.end(), {"--grace", "2"});
    // The API on a port of the kernel's choosing: tests in parallel never contend for 8432.
    if (std::find(args.begin(), args.end(), "--api-listen") == args.end() &&
        std::find(args.begin(), args.end(), "--no-api") == args.end()) {
      args.insert(args.end(), {"--api-listen", "127.0.0.1:0"});
    }
    serve_log_ = fmt::format("{}/serve-{}.log", home_->path(), ++serve_count_);
    serve_ = std::make_unique<ServeProcess>(*home_, args, serve_log_, probe);
  }

  // SIGTERM; the test fails unless serve exits 0 within 30 s and removes serve.json.
  void StopServe() {
    if (!serve_) return;
    if (serve_->running()) {
      EXPECT_TRUE(serve_->Stop(SIGTERM, 30s)) << "serve did not exit within 30 s of SIGTERM";
      EXPECT_EQ(serve_->exit_code(), 0) << serve_->How() << "\n" << serve_->Log();
      EXPECT_FALSE(PathExists(home_->path() + "/serve.json"));
    } else if (serve_->pid() > 0 && !serve_->signaled()) {
      ADD_FAILURE() << "serve exited by itself during the test (" << serve_->How() << "):\n"
                    << serve_->Log();
    }
    serve_.reset();
  }

  // A branch of demo made for this test (deleted after it).
  nlohmann::json CreateBranch(const std::string& name, std::vector<std::string> extra = {}) {
    branches_.push_back("demo/" + name);
    std::vector<std::string> args = {"branch", "create", "demo/" + name, "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    return home_->Ok(args).Json();
  }

  static std::string StateOf(const std::string& ref) {
    return home_->Branch(ref).value("state", std::string());
  }

  // libpq parameters through the proxy as the project's superuser, without TLS.
  Params Proxy(const std::string& dbname, const Params& overrides = {}) const {
    return With({{"host", "127.0.0.1"},
                 {"port", std::to_string(proxy_port_)},
                 {"user", "postgres"},
                 {"password", password_},
                 {"dbname", dbname},
                 {"sslmode", "disable"},
                 {"application_name", "proxy-e2e"}},
                overrides);
  }
  // ... verified TLS with the home's CA, server name `host` (SNI), address 127.0.0.1.
  Params ProxyTls(const std::string& host, const std::string& dbname,
                  const Params& overrides = {}) const {
    return With(Proxy(dbname), With({{"host", host},
                                     {"hostaddr", "127.0.0.1"},
                                     {"sslmode", "verify-full"},
                                     {"sslrootcert", home_->path() + "/tls/ca.crt"}},
                                    overrides));
  }

  // Connects and runs `sql`; a refused connection is a failed QueryResult with its SQLSTATE.
  static QueryResult Ask(const Params& params, const std::string& sql) {
    Attempt a = Open(params);
    if (!a.ok()) return QueryResult{false, a.sqlstate, a.error, {}};
    return Query(a.conn.get(), sql);
  }

  // "port|database" of a session of `params`, or the error.
  static std::string Where(const Params& params) {
    QueryResult r = Ask(params, "SELECT current_setting('port'), current_database()");
    if (!r.ok) return "error " + r.sqlstate + ": " + r.error;
    return r.rows.at(0).at(0) + "|" + r.rows.at(0).at(1);
  }

  // The environment of a test client through the proxy to demo/dev, with `overrides`.
  Params ClientEnv(const Params& overrides = {}) const {
    return With({{"PGHOST", "127.0.0.1"},
                 {"PGPORT", std::to_string(proxy_port_)},
                 {"PGUSER", "postgres"},
                 {"PGPASSWORD", password_},
                 {"PGDATABASE", "demo/dev"},
                 {"PGSSLMODE", "disable"},
                 {"PGCONNECT_TIMEOUT", "30"}},
                overrides);
  }

  ClientOutput RunClient(const std::vector<std::string>& argv, const Params& overrides = {}) {
    Params env = ClientEnv(overrides);
    std::vector<std::string> unset;
    for (const char* name : {"PGOPTIONS", "PGSSLROOTCERT"}) {
      bool given = false;
      for (const auto& [k, v] : env) given |= k == name;
      if (!given) unset.push_back(name);
    }
    CommandResult r = RunProgram(argv, env, unset, 2min);
    ClientOutput out;
    out.exit_code = r.term_signal ? 128 + r.term_signal : r.exit_code;
    out.raw = r.out + r.err;
    std::vector<std::string> lines = SplitLines(r.out);
    if (lines.empty()) {
      ADD_FAILURE() << FormatArgv(argv) << " printed nothing; stderr: " << r.err;
      return out;
    }
    try {
      out.json = nlohmann::json::parse(lines.back());
    } catch (const std::exception& e) {
      ADD_FAILURE() << FormatArgv(argv) << " printed no JSON: " << r.out << r.err;
    }
    return out;
  }

  // What every test client (tests/clients: `info`, `query SQL`, `cancel`, settings from PG*
  // variables, one JSON line) must see through the proxy: demo/dev by database name (the
  // branch's cluster_name) and by route P/B/DB and options (the branch's port, the database, the
  // other options kept); role app relayed (inet_server_port is the branch's: the superuser's
  // sessions come over the branch's socket, where it is NULL); verified TLS; a cancel ending
  // pg_sleep with 57014; 3D000 for an unknown branch and 28P01 for a wrong password.
  // `reports_client_ssl`: the client can tell whether its own socket is TLS (pgjdbc cannot).
  void CheckClient(const std::vector<std::string>& client, bool reports_client_ssl) {
    const std::string dev_port = std::to_string(dev_port_);
    SCOPED_TRACE(FormatArgv(client));

    // info: the route demo/dev reaches dev (cluster_name is the branch's ref).
    ClientOutput info = RunClient(with(client, "info"));
    EXPECT_EQ(info.exit_code, 0) << info.raw;
    EXPECT_EQ(info.json.value("cluster_name", ""), "demo/dev") << info.raw;
    EXPECT_EQ(info.json.value("database", ""), "postgres") << info.raw;
    EXPECT_EQ(info.json.value("user", ""), "postgres") << info.raw;

    // A database on the branch by route P/B/DB, and the server's port.
    ClientOutput q = RunClient(with(client, "query",
                                    "select current_setting('port'), "
                                    "current_database()"),
                               {{"PGDATABASE", "demo/dev/appdb"}});
    EXPECT_EQ(q.exit_code, 0) << q.raw;
    EXPECT_EQ(q.json, nlohmann::json::array({nlohmann::json::array({dev_port, "appdb"})})) << q.raw;

    // The route in options; the other options still reach the branch.
    q = RunClient(
        with(client, "query",
             "select current_setting('port'), "
             "current_setting('work_mem')"),
        {{"PGDATABASE", "postgres"}, {"PGOPTIONS", "-c pgbranch.branch=demo/dev -c work_mem=7MB"}});
    EXPECT_EQ(q.exit_code, 0) << q.raw;
    EXPECT_EQ(q.json, nlohmann::json::array({nlohmann::json::array({dev_port, "7MB"})})) << q.raw;

    // Another role: relayed over TCP, so the branch's own port is the server port.
    info = RunClient(with(client, "info"), {{"PGUSER", "app"}, {"PGPASSWORD", kAppPassword}});
    EXPECT_EQ(info.exit_code, 0) << info.raw;
    EXPECT_EQ(info.json.value("user", ""), "app") << info.raw;
    EXPECT_EQ(info.json["port"], dev_port_) << info.raw;

    // Verified TLS to the proxy with the home's CA.
    info = RunClient(with(client, "info"), {{"PGSSLMODE", "verify-full"},
                                            {"PGSSLROOTCERT", home_->path() + "/tls/ca.crt"}});
    EXPECT_EQ(info.exit_code, 0) << info.raw;
    EXPECT_EQ(info.json.value("cluster_name", ""), "demo/dev") << info.raw;
    if (reports_client_ssl) {
      EXPECT_EQ(info.json["client_ssl"], true) << info.raw;
    }

    // Cancel through the proxy's key.
    ClientOutput cancel = RunClient(with(client, "cancel"));
    EXPECT_EQ(cancel.exit_code, 0) << cancel.raw;
    EXPECT_EQ(cancel.json["cancelled"], true) << cancel.raw;
    EXPECT_EQ(cancel.json["sqlstate"], "57014") << cancel.raw;
    EXPECT_EQ(cancel.json["after"], 1) << cancel.raw;

    // A branch that does not exist; a wrong proxy password.
    ClientOutput nope = RunClient(with(client, "info"), {{"PGDATABASE", "demo/nope"}});
    EXPECT_EQ(nope.exit_code, 1) << nope.raw;
    EXPECT_EQ(nope.json["sqlstate"], "3D000") << nope.raw;
    EXPECT_TRUE(Contains(nope.json.value("error", ""), "project demo has no branch nope"))
        << nope.raw;
    ClientOutput wrong = RunClient(with(client, "info"), {{"PGPASSWORD", "not-the-password"}});
    EXPECT_EQ(wrong.exit_code, 1) << wrong.raw;
    EXPECT_EQ(wrong.json["sqlstate"], "28P01") << wrong.raw;
  }

  static std::vector<std::string> with(std::vector<std::string> argv, const std::string& a,
                                       const std::string& b = "") {
    argv.push_back(a);
    if (!b.empty()) argv.push_back(b);
    return argv;
  }

  static Home* home_;
  static bool suite_ready_;
  static int main_port_, dev_port_, proxy_port_, spare_port_;
  static std::string password_;  // the project's proxy password
  static int serve_count_;

  std::unique_ptr<ServeProcess> serve_;
  std::string serve_log_;
  std::vector<std::string> branches_;
};

Home* ProxyE2eTest::home_ = nullptr;
bool ProxyE2eTest::suite_ready_ = false;
int ProxyE2eTest::main_port_ = 0;
int ProxyE2eTest::dev_port_ = 0;
int ProxyE2eTest::proxy_port_ = 0;
int ProxyE2eTest::spare_port_ = 0;
std::string ProxyE2eTest::password_;
int ProxyE2eTest::serve_count_ = 0;

// ---------------------------------------------------------------------------------------------
// 1. Routing

// Given demo/main, demo/dev and a database appdb on dev: the database name P/B reaches B's
// "postgres", P/B/DB its DB, P/@ the active branch (main); a database the branch lacks is the
// branch's own 3D000; a table made through demo/dev is not visible through demo/main.
TEST_F(ProxyE2eTest, RoutesByDatabaseName) {
  const std::string main = std::to_string(main_port_), dev = std::to_string(dev_port_);
  EXPECT_EQ(Where(Proxy("demo/dev")), dev + "|postgres");
  EXPECT_EQ(Where(Proxy("demo/dev/appdb")), dev + "|appdb");
  EXPECT_EQ(Where(Proxy("demo/main")), main + "|postgres");
  EXPECT_EQ(Where(Proxy("demo/@")), main + "|postgres");
  EXPECT_EQ(Where(Proxy("demo/@/template1")), main + "|template1");

  QueryResult missing = Ask(Proxy("demo/main/appdb"), "SELECT 1");
  EXPECT_EQ(missing.sqlstate, "3D000") << missing.error;
  EXPECT_TRUE(Contains(missing.error, "database \"appdb\" does not exist")) << missing.error;

  // Isolation: written through dev, absent from main.
  QueryResult made = Ask(Proxy("demo/dev"),
                         "CREATE TABLE iso_t(x int); INSERT INTO iso_t VALUES (1), (2); "
                         "SELECT count(*) FROM iso_t");
  ASSERT_TRUE(made.ok) << made.error;
  EXPECT_EQ(made.Value(), "2");
  EXPECT_EQ(Ask(Proxy("demo/dev"), "SELECT count(*) FROM iso_t").Value(), "2");
  EXPECT_EQ(Ask(Proxy("demo/main"), "SELECT to_regclass('iso_t') IS NULL").Value(), "t");
  EXPECT_TRUE(Ask(Proxy("demo/dev"), "DROP TABLE iso_t").ok);
}

// The route in the options parameter (both spellings, the other options passed on to the
// branch) and in the TLS server name (BRANCH.PROJECT.localhost, PROJECT.localhost for the
// active branch), verified against the home's CA; SNI and a database route that agree.
TEST_F(ProxyE2eTest, RoutesByOptionsAndTlsServerName) {
  const std::string main = std::to_string(main_port_), dev = std::to_string(dev_port_);
  EXPECT_EQ(Where(Proxy("postgres", {{"options", "-c pgbranch.branch=demo/dev"}})),
            dev + "|postgres");
  EXPECT_EQ(Where(Proxy("appdb", {{"options", "branch=demo/dev"}})), dev + "|appdb");
  EXPECT_EQ(Where(Proxy("postgres", {{"options", "branch=demo/@"}})), main + "|postgres");
  QueryResult passed = Ask(Proxy("postgres", {{"options", "-c work_mem=7MB branch=demo/dev"}}),
                           "SELECT current_setting('port'), current_setting('work_mem')");
  ASSERT_TRUE(passed.ok) << passed.error;
  EXPECT_EQ(passed.rows, (std::vector<std::vector<std::string>>{{dev, "7MB"}}));

  // SNI, verify-full.
  Attempt tls = Open(ProxyTls("dev.demo.localhost", "postgres"));
  ASSERT_TRUE(tls.ok()) << tls.error;
  EXPECT_EQ(PQsslInUse(tls.conn.get()), 1);
  EXPECT_EQ(Query(tls.conn.get(), "SELECT current_setting('port')").Value(), dev);
  EXPECT_EQ(Where(ProxyTls("demo.localhost", "postgres")), main + "|postgres");
  EXPECT_EQ(Where(ProxyTls("dev.demo.localhost", "demo/dev/appdb")), dev + "|appdb");
  EXPECT_EQ(Where(ProxyTls("dev.demo.localhost", "appdb")), dev + "|appdb");
}

// Routes that lead nowhere or disagree: FATAL 3D000, naming what exists where that helps.
TEST_F(ProxyE2eTest, RoutesThatLeadNowhereAre3D000) {
  QueryResult r = Ask(Proxy("demo/nope"), "SELECT 1");
  EXPECT_EQ(r.sqlstate, "3D000") << r.error;
  EXPECT_TRUE(Contains(r.error, "project demo has no branch nope; its branches: dev, main"))
      << r.error;

  r = Ask(Proxy("nope/main"), "SELECT 1");
  EXPECT_EQ(r.sqlstate, "3D000") << r.error;
  EXPECT_TRUE(Contains(r.error, "project nope")) << r.error;

  r = Ask(Proxy("postgres"), "SELECT 1");
  EXPECT_EQ(r.sqlstate, "3D000") << r.error;
  EXPECT_TRUE(Contains(r.error, "database \"postgres\" names no branch")) << r.error;

  r = Ask(Proxy("/dev"), "SELECT 1");
  EXPECT_EQ(r.sqlstate, "3D000") << r.error;

  // Disagreeing routes: database vs options, SNI vs database, two options words.
  r = Ask(Proxy("demo/main", {{"options", "branch=demo/dev"}}), "SELECT 1");
  EXPECT_EQ(r.sqlstate, "3D000") << r.error;
  EXPECT_TRUE(Contains(r.error, "demo/main") && Contains(r.error, "demo/dev")) << r.error;
  r = Ask(ProxyTls("dev.demo.localhost", "demo/main"), "SELECT 1");
  EXPECT_EQ(r.sqlstate, "3D000") << r.error;
  r = Ask(Proxy("postgres", {{"options", "branch=demo/dev -c pgbranch.branch=demo/main"}}),
          "SELECT 1");
  EXPECT_EQ(r.sqlstate, "3D000") << r.error;
}

// ---------------------------------------------------------------------------------------------
// 2. Authentication

// The project's superuser proves the proxy password (SCRAM): a wrong one, or the branch's own
// password, is 28P01; with TLS (require, and verify-full by the URI `branch url --proxy
// --verify` prints) it connects. The printed URIs name the proxy's port and the route.
TEST_F(ProxyE2eTest, SuperuserProvesTheProxyPassword) {
  const std::string dev = std::to_string(dev_port_);
  QueryResult r = Ask(Proxy("demo/dev", {{"password", "wrong-password"}}), "SELECT 1");
  EXPECT_EQ(r.sqlstate, "28P01") << r.error;
  EXPECT_TRUE(Contains(r.error, "password authentication failed for user \"postgres\"")) << r.error;
  std::string branch_uri = home_->Branch("demo/dev")["uri"];
  std::string branch_password = branch_uri.substr(
      branch_uri.find("postgres:") + 9, branch_uri.find('@') - branch_uri.find("postgres:") - 9);
  ASSERT_NE(branch_password, password_);
  r = Ask(Proxy("demo/dev", {{"password", branch_password}}), "SELECT 1");
  EXPECT_EQ(r.sqlstate, "28P01") << r.error;

  Attempt tls = Open(Proxy("demo/dev", {{"sslmode", "require"}}));
  ASSERT_TRUE(tls.ok()) << tls.error;
  EXPECT_EQ(PQsslInUse(tls.conn.get()), 1);
  EXPECT_EQ(Query(tls.conn.get(), "SELECT current_setting('port')").Value(), dev);

  const std::string base =
      fmt::format("postgresql://postgres:{}@127.0.0.1:{}/", password_, proxy_port_);
  EXPECT_EQ(Cli({"branch", "url", "demo/dev", "--proxy"}), base + "demo/dev");
  EXPECT_EQ(Cli({"project", "url", "demo"}), base + "demo/@");
  std::string verify = Cli({"branch", "url", "demo/dev", "--proxy", "--verify"});
  EXPECT_EQ(verify,
            base + "demo/dev?sslmode=verify-full&sslrootcert=" + home_->path() + "/tls/ca.crt");
  Attempt verified = Open({{"dbname", verify}});
  ASSERT_TRUE(verified.ok()) << verified.error;
  EXPECT_EQ(PQsslInUse(verified.conn.get()), 1);
  EXPECT_EQ(Query(verified.conn.get(), "SELECT current_setting('port')").Value(), dev);
  EXPECT_EQ(Where({{"dbname", Cli({"project", "url", "demo", "--verify"})}}),
            std::to_string(main_port_) + "|postgres");
}

// Any other role is relayed over TCP and the branch checks its password: app (made on dev)
// gets in with its own password, not with a wrong one nor with the proxy password.
TEST_F(ProxyE2eTest, OtherRolesAreCheckedByTheBranch) {
  QueryResult r = Ask(Proxy("demo/dev", {{"user", "app"}, {"password", kAppPassword}}),
                      "SELECT current_user, inet_server_port()");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.rows, (std::vector<std::vector<std::string>>{{"app", std::to_string(dev_port_)}}));
  r = Ask(Proxy("demo/dev", {{"user", "app"}, {"password", kAppPassword}, {"sslmode", "require"}}),
          "SELECT current_user");
  EXPECT_EQ(r.Value(), "app") << r.error;

  r = Ask(Proxy("demo/dev", {{"user", "app"}, {"password", "wrong-password"}}), "SELECT 1");
  EXPECT_EQ(r.sqlstate, "28P01") << r.error;
  EXPECT_TRUE(Contains(r.error, "password authentication failed for user \"app\"")) << r.error;
  r = Ask(Proxy("demo/dev", {{"user", "app"}}), "SELECT 1");  // the proxy password
  EXPECT_EQ(r.sqlstate, "28P01") << r.error;
}

// The proxy password appears in no log line of serve, in no list, status, serve.json or branch
// log, after connections that used it (right and wrong).
TEST_F(ProxyE2eTest, ProxyPasswordStaysOutOfLogsAndLists) {
  EXPECT_TRUE(Ask(Proxy("demo/dev"), "SELECT 1").ok);
  EXPECT_TRUE(Ask(Proxy("demo/@", {{"sslmode", "require"}}), "SELECT 1").ok);
  EXPECT_EQ(Ask(Proxy("demo/dev", {{"password", password_ + "x"}}), "SELECT 1").sqlstate, "28P01");
  EXPECT_EQ(Ask(Proxy("demo/dev", {{"user", "app"}}), "SELECT 1").sqlstate, "28P01");

  const std::string log = serve_->Log();
  EXPECT_TRUE(Contains(log, "refused (28P01)")) << log;
  EXPECT_FALSE(Contains(log, password_)) << log;
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"branch", "list"},
                                             {"branch", "list", "--json"},
                                             {"status"},
                                             {"status", "--json"},
                                             {"project", "list"},
                                             {"project", "list", "--json"},
                                             {"branch", "get", "demo/dev", "--json"}}) {
    CliResult r = home_->Ok(args);
    EXPECT_FALSE(Contains(r.out + r.err, password_)) << FormatArgv(args) << ":\n" << r.out;
  }
  EXPECT_FALSE(Contains(FileText(home_->path() + "/serve.json"), password_));
  std::string branch_log = home_->Branch("demo/dev")["log_path"];
  EXPECT_FALSE(Contains(FileText(branch_log), password_));
}

// ---------------------------------------------------------------------------------------------
// 3. The active branch

// `project url` leads to main; after `use demo/dev` new connections to demo/@ reach dev while a
// session opened before stays on main; `use demo/main --terminate` ends the sessions of dev (the
// branch active before) and leaves main's.
TEST_F(ProxyE2eTest, UseMovesTheActiveBranch) {
  const std::string main = std::to_string(main_port_), dev = std::to_string(dev_port_);
  const std::string project_uri = Cli({"project", "url", "demo"});
  EXPECT_EQ(Where({{"dbname", project_uri}}), main + "|postgres");
  Attempt on_main = Open({{"dbname", project_uri}});
  ASSERT_TRUE(on_main.ok()) << on_main.error;

  home_->Ok({"use", "demo/dev"});
  EXPECT_EQ(Where({{"dbname", project_uri}}), dev + "|postgres");
  EXPECT_EQ(Where(ProxyTls("demo.localhost", "postgres")), dev + "|postgres");
  EXPECT_EQ(Query(on_main.conn.get(), "SELECT current_setting('port')").Value(), main);
  nlohmann::json list = home_->Ok({"branch", "list", "--json"}).Json();
  std::map<std::string, bool> active;
  for (const auto& b : list) active[b["name"]] = b.value("active", false);
  EXPECT_TRUE(active["dev"]);
  EXPECT_FALSE(active["main"]);
  EXPECT_EQ(home_->Branch("demo/dev")["active"], true);

  Attempt on_dev = Open({{"dbname", project_uri}});
  ASSERT_TRUE(on_dev.ok()) << on_dev.error;
  EXPECT_EQ(Query(on_dev.conn.get(), "SELECT current_setting('port')").Value(), dev);
  home_->Ok({"use", "demo/main", "--terminate"});
  QueryResult ended = Query(on_dev.conn.get(), "SELECT 1");
  EXPECT_FALSE(ended.ok) << "the session on dev survived use --terminate";
  EXPECT_EQ(Query(on_main.conn.get(), "SELECT current_setting('port')").Value(), main);
  EXPECT_EQ(Where({{"dbname", project_uri}}), main + "|postgres");
}

// ---------------------------------------------------------------------------------------------
// 4. Suspend and wake

// A suspended branch (no server process) is woken by a connection through the proxy: it
// connects, reaches the branch's port, and the branch is running again. Four connections at once
// to a suspended branch all get in.
TEST_F(ProxyE2eTest, ConnectionWakesASuspendedBranch) {
  nlohmann::json wake = CreateBranch("wake");
  const std::string port = std::to_string(wake["port"].get<int>());
  const std::string data_dir = wake["data_dir"];
  home_->Ok({"branch", "suspend", "demo/wake"});
  nlohmann::json got = home_->Branch("demo/wake");
  EXPECT_EQ(got["state"], "suspended");
  EXPECT_TRUE(got["pid"].is_null());
  EXPECT_TRUE(PostmastersOf(data_dir).empty());

  auto start = Clock::now();
  QueryResult r = Ask(Proxy("demo/wake"), "SELECT current_setting('port')");
  double latency = SecondsSince(start);
  std::cout << "[ wake     ] demo/wake answered through the proxy " << latency * 1000
            << " ms after connecting\n";
  ASSERT_TRUE(r.ok) << r.sqlstate << " " << r.error;
  EXPECT_EQ(r.Value(), port);
  EXPECT_LT(latency, 30.0);
  EXPECT_EQ(StateOf("demo/wake"), "running");
  EXPECT_FALSE(PostmastersOf(data_dir).empty());
  EXPECT_TRUE(Contains(serve_->Log(), "serve: woke demo/wake in")) << serve_->Log();

  // Several first connections at once.
  home_->Ok({"branch", "suspend", "demo/wake"});
  ASSERT_EQ(StateOf("demo/wake"), "suspended");
  std::vector<std::future<QueryResult>> clients;
  for (int i = 0; i < 4; ++i) {
    clients.push_back(std::async(std::launch::async, [&] {
      return Ask(Proxy("demo/wake"), "SELECT current_setting('port')");
    }));
  }
  for (auto& c : clients) {
    QueryResult each = c.get();
    EXPECT_TRUE(each.ok) << each.sqlstate << " " << each.error;
    EXPECT_EQ(each.Value(), port);
  }
  EXPECT_EQ(StateOf("demo/wake"), "running");
}

// A branch a user stopped is not woken: 55000, telling to start it; it stays stopped.
TEST_F(ProxyE2eTest, StoppedBranchIsNotWoken) {
  CreateBranch("stopped");
  home_->Ok({"branch", "stop", "demo/stopped"});
  QueryResult r = Ask(Proxy("demo/stopped"), "SELECT 1");
  EXPECT_EQ(r.sqlstate, "55000") << r.error;
  EXPECT_TRUE(Contains(r.error, "pgbranch branch start demo/stopped")) << r.error;
  EXPECT_EQ(StateOf("demo/stopped"), "stopped");
}

// A branch made with --suspend-after 3s is not suspended while a session is open; after the
// last one closes, serve's scheduler suspends it within a few seconds, and the next connection
// wakes it.
TEST_F(ProxyE2eTest, IdleBranchIsSuspendedAndWokenAgain) {
  nlohmann::json idle = CreateBranch("idle", {"--suspend-after", "3s"});
  EXPECT_EQ(idle["suspend_after_s"], 3);
  const std::string port = std::to_string(idle["port"].get<int>());
  {
    Attempt session = Open(Proxy("demo/idle"));
    ASSERT_TRUE(session.ok()) << session.error;
    std::this_thread::sleep_for(6s);
    EXPECT_EQ(StateOf("demo/idle"), "running") << "suspended with a session open";
    EXPECT_EQ(Query(session.conn.get(), "SELECT current_setting('port')").Value(), port);
  }
  auto closed = Clock::now();
  std::string state;
  while (SecondsSince(closed) < 30 && (state = StateOf("demo/idle")) != "suspended") {
    std::this_thread::sleep_for(250ms);
  }
  double after = SecondsSince(closed);
  std::cout << "[ suspend  ] demo/idle suspended " << after << " s after its last session\n";
  ASSERT_EQ(state, "suspended") << serve_->Log();
  EXPECT_GE(after, 1.5);
  EXPECT_TRUE(Contains(serve_->Log(), "serve: suspended demo/idle after 3 s idle"))
      << serve_->Log();

  auto start = Clock::now();
  QueryResult r = Ask(Proxy("demo/idle"), "SELECT current_setting('port')");
  std::cout << "[ wake     ] demo/idle answered " << SecondsSince(start) * 1000 << " ms later\n";
  EXPECT_EQ(r.Value(), port) << r.sqlstate << " " << r.error;
  EXPECT_EQ(StateOf("demo/idle"), "running");
}

// While a branch is suspended, serve listens on the branch's own port: a client with the
// branch's own connection string (its port and password, no proxy) wakes it and gets in; from
// then on its server holds the port. `branch resume` by hand while serve holds the port works.
TEST_F(ProxyE2eTest, OwnPortWakesASuspendedBranch) {
  nlohmann::json own = CreateBranch("own");
  const int port = own["port"];
  std::string uri = Cli({"branch", "url", "demo/own"});
  size_t colon = uri.find(':', uri.find("postgres:")) + 1;
  const std::string password = uri.substr(colon, uri.find('@') - colon);
  const Params direct = {
      {"host", "127.0.0.1"},           {"port", std::to_string(port)}, {"user", "postgres"},
      {"password", password},          {"dbname", "postgres"},         {"sslmode", "disable"},
      {"application_name", "own-port"}};
  auto held_by_serve = [&](double seconds) {
    auto start = Clock::now();
    while (SecondsSince(start) < seconds && PortIsFree(port)) std::this_thread::sleep_for(100ms);
    return !PortIsFree(port);
  };

  home_->Ok({"branch", "suspend", "demo/own"});
  ASSERT_TRUE(held_by_serve(10)) << "serve did not listen on the suspended branch's port\n"
                                 << serve_->Log();
  EXPECT_EQ(StateOf("demo/own"), "suspended");
  // doctor knows whose port it is.
  CliResult doctor = home_->Run({"doctor"});
  EXPECT_FALSE(Contains(doctor.out, fmt::format("port {} of demo/own", port))) << doctor.out;

  auto start = Clock::now();
  QueryResult r = Ask(direct, "SELECT current_setting('port')");
  std::cout << "[ wake     ] demo/own answered on its own port " << SecondsSince(start) * 1000
            << " ms after connecting\n";
  ASSERT_TRUE(r.ok) << r.sqlstate << " " << r.error << "\n" << serve_->Log();
  EXPECT_EQ(r.Value(), std::to_string(port));
  EXPECT_EQ(StateOf("demo/own"), "running");
  EXPECT_TRUE(Contains(serve_->Log(), fmt::format("a client on port {} wakes demo/own", port)))
      << serve_->Log();
  // A wrong password on the own port is the branch's to refuse.
  EXPECT_EQ(Ask(With(direct, {{"password", "wrong"}}), "SELECT 1").sqlstate, "28P01");

  // Suspended again (serve listens once the wake's grace is over), then resumed by hand.
  home_->Ok({"branch", "suspend", "demo/own"});
  ASSERT_TRUE(held_by_serve(20)) << serve_->Log();
  home_->Ok({"branch", "resume", "demo/own"});
  EXPECT_EQ(StateOf("demo/own"), "running");
  EXPECT_EQ(Ask(direct, "SELECT current_setting('port')").Value(), std::to_string(port));
}

// serve killed with SIGKILL leaves serve.json behind: doctor says serve is not running; a new
// serve takes over (same port), keeps the active branch, and wakes what was suspended meanwhile.
TEST_F(ProxyE2eTest, KilledServeRestartedPicksUpWhereItWas) {
  nlohmann::json phoenix = CreateBranch("phoenix");
  const std::string port = std::to_string(phoenix["port"].get<int>());
  home_->Ok({"use", "demo/phoenix"});
  EXPECT_EQ(Ask(Proxy("demo/@"), "SELECT current_setting('port')").Value(), port);

  const pid_t old_pid = serve_->pid();
  ASSERT_TRUE(serve_->Stop(SIGKILL, 10s));
  EXPECT_TRUE(PathExists(home_->path() + "/serve.json"));
  CliResult doctor = home_->Run({"doctor"});
  EXPECT_TRUE(Contains(doctor.out, fmt::format("pid {} of serve.json is gone", old_pid)))
      << doctor.out;
  home_->Ok({"branch", "suspend", "demo/phoenix"});

  StartServe();
  ASSERT_TRUE(serve_ && serve_->running());
  QueryResult r = Ask(Proxy("demo/@"), "SELECT current_setting('port')");
  EXPECT_EQ(r.Value(), port) << r.sqlstate << " " << r.error;
  EXPECT_EQ(StateOf("demo/phoenix"), "running");
  EXPECT_TRUE(Contains(home_->Run({"doctor"}).out, "pgbranch serve runs"));
}

// ---------------------------------------------------------------------------------------------
// 5. Cancel

// The proxy hands out cancel keys of its own (the key's pid is not the backend's); a
// CancelRequest with a key it did not give out cancels nothing; PQcancel with its key ends
// pg_sleep(30) with 57014 within seconds, and the session goes on. For the superuser (over the
// branch's socket) and for another role (over TCP).
TEST_F(ProxyE2eTest, PqCancelReachesTheBackend) {
  for (const Params& who : {Params{}, Params{{"user", "app"}, {"password", kAppPassword}}}) {
    Attempt a = Open(Proxy("demo/dev", who));
    ASSERT_TRUE(a.ok()) << a.error;
    PGconn* c = a.conn.get();
    SCOPED_TRACE(PQuser(c));
    std::string backend = Query(c, "SELECT pg_backend_pid()").Value();
    ASSERT_FALSE(backend.empty());
    EXPECT_NE(std::to_string(PQbackendPID(c)), backend) << "the backend's key reached the client";

    ASSERT_EQ(PQsendQuery(c, "SELECT pg_sleep(30)"), 1) << PQerrorMessage(c);
    std::this_thread::sleep_for(500ms);
    // Keys it did not give out: the backend's real pid, and its own pid with another secret.
    EXPECT_TRUE(SendCancelRequest(proxy_port_, std::stoi(backend), 0));
    EXPECT_TRUE(SendCancelRequest(proxy_port_, PQbackendPID(c), 12345));
    std::this_thread::sleep_for(1s);
    ASSERT_EQ(PQconsumeInput(c), 1) << PQerrorMessage(c);
    EXPECT_EQ(PQisBusy(c), 1) << "a cancel with a wrong key ended the query";

    auto start = Clock::now();
    PGcancel* cancel = PQgetCancel(c);
    ASSERT_NE(cancel, nullptr);
    char err[256] = "";
    EXPECT_EQ(PQcancel(cancel, err, sizeof(err)), 1) << err;
    PQfreeCancel(cancel);
    QueryResult r;
    bool first = true;
    while (PGresult* res = PQgetResult(c)) {
      QueryResult each = FromResult(c, res);
      if (first) r = each;
      first = false;
    }
    double seconds = SecondsSince(start);
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.sqlstate, "57014") << r.error;
    EXPECT_LT(seconds, 5.0);
    EXPECT_EQ(Query(c, "SELECT 1").Value(), "1");
  }
}

// ---------------------------------------------------------------------------------------------
// 6. Real clients

// psql: a database by route P/B/DB, TLS with SNI verified, COPY FROM STDIN through the relay,
// a query error with its SQLSTATE, an unknown branch and a wrong password.
TEST_F(ProxyE2eTest, Psql) {
  const Params env = {{"PGPASSWORD", password_}, {"PGCONNECT_TIMEOUT", "30"}};
  const std::string conn =
      fmt::format("host=127.0.0.1 port={} user=postgres sslmode=disable ", proxy_port_);
  CommandResult r =
      RunProgram({"psql", "-X", "-Atc", "select current_setting('port'), current_database()",
                  conn + "dbname=demo/dev/appdb"},
                 env);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, fmt::format("{}|appdb\n", dev_port_));

  r = RunProgram({"psql", "-X", "-Atc", "\\conninfo",
                  fmt::format("hostaddr=127.0.0.1 host=dev.demo.localhost port={} user=postgres "
                              "dbname=postgres sslmode=verify-full sslrootcert={}/tls/ca.crt",
                              proxy_port_, home_->path())},
                 env);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Contains(r.out, "SSL connection")) << r.out;

  r = RunProgram({"psql", "-X", "-Aqt", "-v", "ON_ERROR_STOP=1", conn + "dbname=demo/dev"}, env, {},
                 1min,
                 "CREATE TEMP TABLE c(x int);\nCOPY c FROM STDIN;\n1\n2\n3\n\\.\n"
                 "SELECT sum(x) FROM c;\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "6\n") << r.err;

  r = RunProgram({"psql", "-X", "-Atc", "select * from no_such_table", "-v", "VERBOSITY=verbose",
                  conn + "dbname=demo/dev"},
                 env);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(Contains(r.err, "ERROR:  42P01:")) << r.err;

  r = RunProgram({"psql", "-X", "-Atc", "select 1", conn + "dbname=demo/nope"}, env);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(Contains(r.err, "project demo has no branch nope; its branches: dev, main")) << r.err;
  r = RunProgram({"psql", "-X", "-Atc", "select 1", conn + "dbname=demo/dev"},
                 {{"PGPASSWORD", "wrong-password"}});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(Contains(r.err, "password authentication failed for user \"postgres\"")) << r.err;
}

// pgbench -i, then 4 clients on 2 threads for 3 s through the proxy: no failed transaction.
TEST_F(ProxyE2eTest, Pgbench) {
  const Params env = {{"PGPASSWORD", password_}};
  const std::vector<std::string> where = {"-h", "127.0.0.1", "-p", std::to_string(proxy_port_),
                                          "-U", "postgres"};
  std::vector<std::string> init = {"pgbench", "-i", "-s", "1", "-q"};
  init.insert(init.end(), where.begin(), where.end());
  init.push_back("demo/dev");
  CommandResult r = RunProgram(init, env);
  ASSERT_EQ(r.exit_code, 0) << r.err;

  std::vector<std::string> run = {"pgbench", "-c", "4", "-j", "2", "-T", "3"};
  run.insert(run.end(), where.begin(), where.end());
  run.push_back("demo/dev");
  r = RunProgram(run, env);
  std::cout << r.out;
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Contains(r.out, "number of clients: 4")) << r.out;
  EXPECT_TRUE(Contains(r.out, "number of failed transactions: 0 (0.000%)")) << r.out;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.out, m,
                                std::regex(R"(number of transactions actually processed: (\d+))")))
      << r.out;
  EXPECT_GT(std::stoll(m[1]), 0);
  EXPECT_TRUE(Ask(Proxy("demo/dev"),
                  "DROP TABLE pgbench_accounts, pgbench_branches, "
                  "pgbench_history, pgbench_tellers")
                  .ok);
}

// The test clients, each against CheckClient's list.
TEST_F(ProxyE2eTest, Psycopg2) {
  CheckClient(
      {"/usr/bin/python3", std::string(PGBRANCH_SOURCE_DIR) + "/tests/clients/psycopg2_client.py"},
      true);
}

TEST_F(ProxyE2eTest, NodePostgres) {
  if (RunProgram({"sh", "-c", "command -v node && command -v npm"}, {}).exit_code != 0) {
    GTEST_SKIP() << "node is not installed: node-postgres client not run";
  }
  const std::string dir = std::string(PGBRANCH_SOURCE_DIR) + "/tests/clients/node";
  CommandResult install = RunProgram({"sh", dir + "/install.sh"}, {}, {}, 5min);
  ASSERT_EQ(install.exit_code, 0) << "tests/clients/node/install.sh: " << install.err;
  CheckClient({"node", dir + "/client.js"}, true);
}

TEST_F(ProxyE2eTest, Pgjdbc) {
  if (RunProgram({"sh", "-c", "command -v java && command -v javac"}, {}).exit_code != 0) {
    GTEST_SKIP() << "java or javac is not installed: pgjdbc client not run";
  }
  if (!PathExists("/usr/share/java/postgresql.jar")) {
    GTEST_SKIP() << "pgjdbc (libpostgresql-jdbc-java) is not installed";
  }
  CheckClient({"sh", std::string(PGBRANCH_SOURCE_DIR) + "/tests/clients/jdbc/run.sh"}, false);
}

// ---------------------------------------------------------------------------------------------
// 7. Lifecycle

// serve.json names the running serve: its pid, address, the port it listens on (also when
// asked for port 0: the port it got), its SNI domain; `branch url --proxy` uses that port.
TEST_F(ProxyE2eTest, ServeRecordNamesTheRunningDaemon) {
  nlohmann::json record = nlohmann::json::parse(FileText(home_->path() + "/serve.json"));
  EXPECT_EQ(record["pid"], serve_->pid());
  EXPECT_EQ(record["proxy_host"], "127.0.0.1");
  EXPECT_EQ(record["proxy_port"], proxy_port_);
  EXPECT_EQ(record["sni_domain"], "localhost");
  EXPECT_FALSE(record.value("started_at", "").empty());
  EXPECT_TRUE(Contains(serve_->Log(), fmt::format("proxy listening on 127.0.0.1:{}", proxy_port_)))
      << serve_->Log();

  StopServe();
  StartServe({"--proxy-listen", "127.0.0.1:0"});
  ASSERT_TRUE(serve_->running());
  record = nlohmann::json::parse(FileText(home_->path() + "/serve.json"));
  EXPECT_EQ(record["pid"], serve_->pid());
  int port = record.value("proxy_port", 0);
  ASSERT_GT(port, 0);
  EXPECT_NE(ListeningInode(port), 0u) << "nothing listens on the port serve.json names";
  EXPECT_TRUE(Contains(serve_->Log(), fmt::format("proxy listening on 127.0.0.1:{}", port)))
      << serve_->Log();
  EXPECT_EQ(Where(Proxy("demo/dev", {{"port", std::to_string(port)}})),
            std::to_string(dev_port_) + "|postgres");
  EXPECT_EQ(Cli({"branch", "url", "demo/dev", "--proxy"}),
            fmt::format("postgresql://postgres:{}@127.0.0.1:{}/demo/dev", password_, port));
}

// A second serve in the same home while one runs exits 1 naming the running one, and leaves its
// serve.json alone. With none running, --proxy-listen naming a port another program listens on:
// serve exits 1 at once with exactly one line, and writes no serve.json.
TEST_F(ProxyE2eTest, TakenPortIsAOneLineError) {
  const std::string before = FileText(home_->path() + "/serve.json");
  auto run_serve = [&](int port) {
    auto start = Clock::now();
    CommandResult r = RunProgram({PGBRANCH_BINARY, "--home", home_->path(), "serve",
                                  "--proxy-listen", fmt::format("127.0.0.1:{}", port)},
                                 {{"NO_COLOR", "1"}}, {}, 30s);
    EXPECT_LT(SecondsSince(start), 10.0);
    EXPECT_EQ(r.out, "");
    return r;
  };
  CommandResult twice = run_serve(spare_port_);
  EXPECT_EQ(twice.exit_code, 1);
  EXPECT_TRUE(Contains(twice.err, fmt::format("serve: pgbranch serve already runs for {} (pid {}",
                                              home_->path(), serve_->pid())))
      << twice.err;
  EXPECT_EQ(SplitLines(twice.err).size(), 1u) << twice.err;
  EXPECT_EQ(FileText(home_->path() + "/serve.json"), before);
  EXPECT_TRUE(serve_->running());
  StopServe();

  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(spare_port_));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0) << strerror(errno);
  ASSERT_EQ(::listen(fd, 4), 0);
  CommandResult taken = run_serve(spare_port_);
  ::close(fd);
  EXPECT_EQ(taken.exit_code, 1);
  EXPECT_EQ(taken.err, fmt::format("serve: listen on 127.0.0.1:{}: address in use\n", spare_port_));
  EXPECT_FALSE(PathExists(home_->path() + "/serve.json"));
}

// SIGTERM with an idle session open: serve stops listening at once, lets the session work
// until the grace period (3 s) ends, then closes it, removes serve.json and exits 0. With a
// long grace, it exits as soon as the last session ends.
TEST_F(ProxyE2eTest, SigtermWaitsForSessionsUpToTheGrace) {
  StopServe();
  StartServe({"--grace", "3"});
  ASSERT_TRUE(serve_->running());
  Attempt session = Open(Proxy("demo/dev"));
  ASSERT_TRUE(session.ok()) << session.error;

  auto start = Clock::now();
  serve_->Signal(SIGTERM);
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(Query(session.conn.get(), "SELECT 1").Value(), "1") << "closed before the grace";
  Attempt refused = Open(Proxy("demo/dev"), 5s);
  EXPECT_FALSE(refused.ok()) << "serve accepted a connection while stopping";
  EXPECT_TRUE(serve_->Reap(15s)) << "serve still runs 15 s after SIGTERM";
  double seconds = SecondsSince(start);
  std::cout << "[ stop     ] serve exited " << seconds << " s after SIGTERM (grace 3 s)\n";
  EXPECT_GE(seconds, 2.5);
  EXPECT_LT(seconds, 8.0);
  EXPECT_EQ(serve_->exit_code(), 0) << serve_->Log();
  EXPECT_FALSE(PathExists(home_->path() + "/serve.json"));
  EXPECT_FALSE(Query(session.conn.get(), "SELECT 1").ok) << "the session outlived serve";
  const std::string log = serve_->Log();
  EXPECT_TRUE(Contains(log, "stopping: 1 session(s) open, waiting up to 3 s for them")) << log;
  EXPECT_TRUE(Contains(log, "closing 1 session(s) still open")) << log;

  // A long grace: done when the session ends.
  StartServe({"--grace", "60"});
  ASSERT_TRUE(serve_->running());
  session = Open(Proxy("demo/dev"));
  ASSERT_TRUE(session.ok()) << session.error;
  start = Clock::now();
  serve_->Signal(SIGTERM);
  std::this_thread::sleep_for(1s);
  EXPECT_FALSE(serve_->Reap(0ms)) << "serve did not wait for the open session";
  session.conn.reset();
  EXPECT_TRUE(serve_->Reap(10s));
  seconds = SecondsSince(start);
  std::cout << "[ stop     ] serve exited " << seconds
            << " s after SIGTERM (session closed at 1 s)\n";
  EXPECT_LT(seconds, 5.0);
  EXPECT_EQ(serve_->exit_code(), 0) << serve_->Log();
  EXPECT_FALSE(PathExists(home_->path() + "/serve.json"));
}

// A branch woken by serve runs postgres processes that hold none of serve's sockets: not the
// proxy's listening socket (found by its port in /proc/net/tcp), not any other.
TEST_F(ProxyE2eTest, NoPostmasterInheritsServesSockets) {
  nlohmann::json fds = CreateBranch("fds");
  home_->Ok({"branch", "suspend", "demo/fds"});
  Attempt session = Open(Proxy("demo/fds"));  // wakes it: serve starts the postmaster
  ASSERT_TRUE(session.ok()) << session.error;
  EXPECT_EQ(Query(session.conn.get(), "SELECT 1").Value(), "1");

  const uint64_t listening = ListeningInode(proxy_port_);
  ASSERT_NE(listening, 0u) << "no listening socket on " << proxy_port_ << " in /proc/net/tcp";
  std::set<uint64_t> serve_sockets = SocketInodes(serve_->pid());
  EXPECT_TRUE(serve_sockets.count(listening)) << "the listening socket is not serve's";
  nlohmann::json got = home_->Branch("demo/fds");
  ASSERT_TRUE(got["pid"].is_number());
  const int postmaster = got["pid"];
  std::vector<int> pids = ChildrenOf(postmaster);
  EXPECT_GE(pids.size(), 3u) << "postmaster " << postmaster << " has no children?";
  pids.push_back(postmaster);
  for (int pid : pids) {
    for (uint64_t inode : SocketInodes(pid)) {
      EXPECT_NE(inode, listening) << "postgres " << pid << " holds the proxy's listening socket";
      EXPECT_FALSE(serve_sockets.count(inode))
          << "postgres " << pid << " holds serve's socket inode " << inode;
    }
  }
}

// SIGHUP reloads the certificate; a project made while serve runs gets its SNI names in the
// proxy's certificate without a restart.
TEST_F(ProxyE2eTest, SighupAndNewProjectsReloadTheCertificate) {
  // serve answered StartServe's probe, so its handlers are in place (the moment serve.json
  // appears is SignalsRightAfterReadinessAreHandled's matter).
  serve_->Signal(SIGHUP);
  auto start = Clock::now();
  while (SecondsSince(start) < 15 && !Contains(serve_->Log(), "TLS certificate reloaded")) {
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(Contains(serve_->Log(), "serve: TLS certificate reloaded")) << serve_->Log();
  EXPECT_TRUE(serve_->running());
  EXPECT_EQ(Where(ProxyTls("dev.demo.localhost", "postgres")),
            std::to_string(dev_port_) + "|postgres");

  nlohmann::json other = home_->Ok({"project", "create", "other", "--json"}).Json();
  const std::string route_ok = std::to_string(other.value("port", 0)) + "|postgres";
  // Each project has a proxy password of its own.
  const std::string uri = Cli({"project", "url", "other"});
  const std::string other_password =
      uri.substr(uri.find("postgres:") + 9, uri.find('@') - uri.find("postgres:") - 9);
  EXPECT_NE(other_password, password_);
  EXPECT_EQ(
      Ask(ProxyTls("main.other.localhost", "other/main", {{"sslmode", "require"}}), "SELECT 1")
          .sqlstate,
      "28P01");
  std::string where;
  start = Clock::now();
  while (SecondsSince(start) < 15 &&
         (where = Where(ProxyTls("main.other.localhost", "postgres",
                                 {{"password", other_password}}))) != route_ok) {
    std::this_thread::sleep_for(250ms);
  }
  EXPECT_EQ(where, route_ok) << serve_->Log();
  home_->Ok({"project", "delete", "other", "--force"});
}

// serve.json says serve is ready (the tests, `branch url --proxy` and scripts wait for it): a
// SIGHUP or SIGTERM sent the moment it appears is handled as at any later time. SIGHUP reloads
// and serve goes on; SIGTERM stops it (exit 0, serve.json removed). Four rounds of each, each
// signal sent as soon as inotify reports serve.json.
TEST_F(ProxyE2eTest, SignalsRightAfterReadinessAreHandled) {
  StopServe();
  for (int round = 1; round <= 4; ++round) {
    SCOPED_TRACE(fmt::format("round {}", round));
    StartServe({}, /*probe=*/false);
    ASSERT_TRUE(serve_->running());
    serve_->Signal(SIGHUP);
    std::this_thread::sleep_for(300ms);
    EXPECT_TRUE(serve_->running())
        << "SIGHUP right after serve.json: serve " << serve_->How()
        << "; serve.json left behind: " << PathExists(home_->path() + "/serve.json");
    if (!serve_->running()) {  // what is left of it
      serve_.reset();
      std::remove((home_->path() + "/serve.json").c_str());
    }
    StopServe();

    StartServe({}, /*probe=*/false);
    ASSERT_TRUE(serve_->running());
    serve_->Signal(SIGTERM);
    EXPECT_TRUE(serve_->Reap(5s)) << "SIGTERM right after serve.json: serve still runs 5 s later";
    EXPECT_EQ(serve_->exit_code(), 0) << serve_->How() << "\n" << serve_->Log();
    EXPECT_FALSE(PathExists(home_->path() + "/serve.json"));
    StopServe();  // a second SIGTERM if the first was lost
  }
}

// ---------------------------------------------------------------------------------------------
// 8. Connection limit

// serve --max-connections 2: with two sessions open a third gets 53300; once one closes, a new
// one gets in.
TEST_F(ProxyE2eTest, MaxConnectionsRefusesTheOneTooMany) {
  StopServe();
  StartServe({"--max-connections", "2"});
  ASSERT_TRUE(serve_->running());
  Attempt one = Open(Proxy("demo/dev"));
  Attempt two = Open(Proxy("demo/main"));
  ASSERT_TRUE(one.ok() && two.ok()) << one.error << two.error;
  QueryResult third = Ask(Proxy("demo/dev"), "SELECT 1");
  EXPECT_EQ(third.sqlstate, "53300") << third.error;
  EXPECT_TRUE(Contains(third.error, "sorry, too many clients already")) << third.error;
  EXPECT_EQ(Query(one.conn.get(), "SELECT 1").Value(), "1");
  EXPECT_EQ(Query(two.conn.get(), "SELECT 1").Value(), "1");

  one.conn.reset();
  QueryResult again;
  auto start = Clock::now();
  do {
    again = Ask(Proxy("demo/dev"), "SELECT 1");
  } while (!again.ok && SecondsSince(start) < 5 && (std::this_thread::sleep_for(100ms), true));
  EXPECT_TRUE(again.ok) << again.sqlstate << " " << again.error;
}

// ---------------------------------------------------------------------------------------------
// 9. Reset under connections

// While `branch reset demo/rst` runs twice, three clients connect through the proxy in a loop:
// every connection attempt gets in (waiting while the branch restarts) and reaches the branch's
// port. (A session that got in before a reset may be ended by it: that is the reset's right.)
TEST_F(ProxyE2eTest, ConnectionsWaitWhileTheBranchIsReset) {
  nlohmann::json rst = CreateBranch("rst");
  const std::string port = std::to_string(rst["port"].get<int>());
  ASSERT_TRUE(Ask(Proxy("demo/rst"), "CREATE TABLE marker(x int)").ok);

  std::atomic<bool> running{true}, resetting{false};
  std::atomic<int> attempts{0}, during{0}, ended{0};
  std::mutex mu;
  std::vector<std::string> failures;  // GUARDED_BY(mu)
  double slowest = 0;                 // GUARDED_BY(mu)
  auto connector = [&] {
    while (running) {
      bool in_reset = resetting;
      auto start = Clock::now();
      Attempt a = Open(Proxy("demo/rst"));
      double took = SecondsSince(start);
      ++attempts;
      if (in_reset || resetting) ++during;
      std::string failure;
      if (!a.ok()) {
        failure = a.sqlstate + ": " + a.error;
      } else {
        QueryResult r = Query(a.conn.get(), "SELECT current_setting('port')");
        if (!r.ok) ++ended;
        if (r.ok && r.Value() != port) failure = "port " + r.Value();
      }
      std::lock_guard<std::mutex> lock(mu);
      slowest = std::max(slowest, took);
      if (!failure.empty()) failures.push_back(failure);
    }
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) threads.emplace_back(connector);
  std::this_thread::sleep_for(200ms);
  resetting = true;
  CliResult first = home_->Run({"branch", "reset", "demo/rst"});
  CliResult second = home_->Run({"branch", "reset", "demo/rst"});
  resetting = false;
  std::this_thread::sleep_for(200ms);
  running = false;
  for (auto& t : threads) t.join();
  EXPECT_EQ(first.exit_code, 0) << first.err;
  EXPECT_EQ(second.exit_code, 0) << second.err;
  std::cout << "[ reset    ] " << attempts << " connection attempts (" << during
            << " during the resets), slowest " << slowest * 1000 << " ms, " << failures.size()
            << " refused, " << ended << " sessions ended by a reset after they got in\n";
  EXPECT_GT(during, 3);
  std::map<std::string, int> kinds;  // the first line of each error, counted
  for (const auto& f : failures) ++kinds[f.substr(0, f.find('\n'))];
  std::string summary;
  for (const auto& [first_line, n] : kinds) summary += fmt::format("\n  {} x {}", n, first_line);
  std::string log;  // serve's lines about the branch
  for (const auto& line : SplitLines(serve_->Log())) {
    // (A line "-> demo/rst (N ms)" is also written for a login the branch refused.)
    if (Contains(line, "demo/rst") && !Contains(line, "-> demo/rst") && log.size() < 4000) {
      log += "\n  " + line;
    }
  }
  EXPECT_TRUE(failures.empty()) << failures.size() << " of " << attempts << " failed:" << summary
                                << "\nserve's log:" << log;
  EXPECT_EQ(Ask(Proxy("demo/rst"), "SELECT to_regclass('marker') IS NULL").Value(), "t");
}

}  // namespace
}  // namespace pgb::e2e
