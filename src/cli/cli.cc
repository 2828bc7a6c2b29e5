#include "cli/cli.h"

#include <fmt/format.h>
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <charconv>
#include <chrono>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>

#include "cli/inputs.h"
#include "cli/output.h"
#include "cli/service_file.h"
#include "common/bytes.h"
#include "common/cancel.h"
#include "common/error_class.h"
#include "common/fs.h"
#include "common/os_user.h"
#include "common/subprocess.h"
#include "common/time.h"
#include "engine/engine.h"
#include "pg/client.h"
#include "server/serve.h"
#include "storage/image.h"

#ifndef PGBRANCH_VERSION
#define PGBRANCH_VERSION "0.1.0"
#endif

namespace pgb {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

std::string OrDash(const std::string& s) { return s.empty() ? "-" : s; }

std::string Age(const std::string& iso, const pgb::Clock& clock) {
  auto t = ParseTimestamp(iso);
  if (!t.ok()) return iso;
  return FormatAge(SecondsBetween(*t, clock.Now())) + " ago";
}

// Snapshot ids are positive (SQLite rowids).
constexpr int64_t kMaxId = std::numeric_limits<int64_t>::max();

std::string Bytes(const std::optional<uint64_t>& b) { return b ? FormatBytes(*b) : "-"; }

// Sizes older than this are said to be so (`serve` measures every minute).
constexpr auto kSizeAgeShown = std::chrono::seconds(90);

// How long ago the oldest of `branches`' sizes was measured, if that is more than
// kSizeAgeShown ("12m"); empty otherwise.
std::string OldestSizeAge(const std::vector<pgb::BranchInfo>& branches, const pgb::Clock& clock) {
  std::optional<std::chrono::seconds> oldest;
  for (const auto& b : branches) {
    if (!b.sizes_measured_at) continue;
    auto t = ParseTimestamp(*b.sizes_measured_at);
    if (!t.ok()) continue;
    auto age = SecondsBetween(*t, clock.Now());
    if (!oldest || age > *oldest) oldest = age;
  }
  if (!oldest || *oldest < kSizeAgeShown) return "";
  return FormatAge(*oldest);
}

// "ADDRESS:PORT" (an IPv6 address in brackets) of `option`: the address and the port (0-65535).
Result<std::pair<std::string, int>> ParseListenAddress(const char* option,
                                                       const std::string& text) {
  size_t colon = text.rfind(':');
  std::string host = colon == std::string::npos ? "127.0.0.1" : text.substr(0, colon);
  std::string port = colon == std::string::npos ? text : text.substr(colon + 1);
  if (host.size() > 1 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  int value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || end != port.data() + port.size() || value < 0 || value > 65535 ||
      host.empty()) {
    return Status::InvalidArgument(fmt::format(
        "{} {}: expected ADDRESS:PORT, e.g. 127.0.0.1:{}", option, QuoteForDisplay(text),
        std::string_view(option) == "--api-listen" ? 8432 : 5432));
  }
  return std::make_pair(host, value);
}

// Where the dashboard's built files are: $PGBRANCH_WEB_DIR, else installed beside the binary
// (<prefix>/share/pgbranch/web for <prefix>/bin/pgbranch), else a source tree's web/dist for a
// binary built in build/<kind>/. Empty when none has an index.html.
std::string DefaultWebDir() {
  if (const char* env = std::getenv("PGBRANCH_WEB_DIR"); env && *env) return env;
  std::error_code ec;
  std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "";
  for (const auto& dir :
       {exe.parent_path() / "../share/pgbranch/web", exe.parent_path() / "../../web/dist"}) {
    if (std::filesystem::exists(dir / "index.html", ec)) {
      return std::filesystem::weakly_canonical(dir, ec).string();
    }
  }
  return "";
}

// SIGINT and SIGTERM cancel what the engine is doing: the operation undoes its steps and the
// command exits 130 (ninja's Cleanup() on SIGINT). A second signal changes nothing: the undo
// must be allowed to finish.
CancelToken& InterruptToken() {
  static CancelToken token;
  return token;
}

void OnInterrupt(int signo) {
  CancelToken& token = InterruptToken();
  if (token.cancelled()) {
    static const char kWait[] = "pgbranch: undoing what was done; please wait\n";
    ssize_t ignored = ::write(STDERR_FILENO, kWait, sizeof(kWait) - 1);
    (void)ignored;
    return;
  }
  token.Cancel(signo == SIGTERM ? "interrupted by SIGTERM" : "interrupted by SIGINT");
}

void InstallInterruptHandlers() {
  struct sigaction sa {};
  sa.sa_handler = OnInterrupt;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: a blocking wait returns and looks at the token
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

// Everything one invocation needs, built after parsing (so --help never touches the disk).
struct Session {
  std::unique_ptr<ProcessRunner> runner = NewRealProcessRunner();
  std::unique_ptr<PortProbe> ports = NewBindPortProbe();
  std::unique_ptr<Engine> engine;
  Output* out = nullptr;
};

class Cli {
 public:
  Cli() : app_("pgbranch: instant copy-on-write branches of PostgreSQL", "pgbranch") {}

  int Run(int argc, char** argv) {
    Define();
    RequirePrintableValues(app_);
    DefinePsql();  // after the check: its arguments go to psql as they are (SQL has line breaks)
    app_.failure_message(UsageErrorMessage);
    try {
      app_.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      int code = app_.exit(e);
      return code == 0 ? 0 : kExitUsage;
    }
    spdlog::set_default_logger(spdlog::stderr_color_mt("pgbranch"));
    spdlog::set_level(verbose_ ? spdlog::level::debug : spdlog::level::warn);
    out_ = std::make_unique<Output>(quiet_);
    if (!action_) return kExitUsage;
    // pgbranch's own connections take no default from the caller's PG* variables; psql does.
    caller_pg_env_ = ClearLibpqEnvironment();
    InstallInterruptHandlers();
    int code = action_();
    if (code != 0 || !exec_after_) return code;
    // The engine is closed (its locks released): hand the process, terminal and all, to psql.
    Status s = ExecInPlace(*exec_after_);
    out_->Error("psql", ref_text_, s);
    return Classify(s.code()).exit_code;
  }

 private:
  // Opens the engine, runs `body`, and prints "<operation> <object>: <cause>" on failure.
  int With(const std::string& operation, const std::string& object,
           const std::function<Status(Engine&)>& body) {
    EngineEnv env;
    env.home = home_.empty() ? DefaultHome() : home_;
    env.runner = session_.runner.get();
    env.clock = &SystemClock();
    env.ports = session_.ports.get();
    env.progress = out_.get();
    env.cancel = &InterruptToken();
    env.allow_lost_catalog = allow_lost_catalog_;
    auto engine = Engine::Open(env);
    spdlog::debug("engine open");
    if (engine.ok()) (*engine)->SetCommand(object.empty() ? operation : operation + " " + object);
    Status s = engine.ok() ? body(**engine) : engine.status();
    if (!s.ok()) {
      if (s.Is(StatusCode::kCancelled)) {
        s = Status::Cancelled(fmt::format("{}; what it had done was undone", s.message()));
      }
      out_->Error(operation, object, s);
      return Classify(s.code()).exit_code;
    }
    return 0;
  }

  // The optional PROJECT/BRANCH argument of a listing: nullopt when it was not given.
  Result<std::optional<BranchRef>> OptionalRef() const {
    if (ref_text_.empty()) return std::optional<BranchRef>();
    PGB_ASSIGN_OR_RETURN(BranchRef ref, ParseBranchRef(ref_text_));
    return std::optional<BranchRef>(std::move(ref));
  }

  void AddJson(CLI::App* cmd) { cmd->add_flag("--json", json_, "Print JSON instead of text"); }
  // Listings show each branch's last measured sizes (`serve` renews them every minute).
  void AddRefreshSizes(CLI::App* cmd) {
    cmd->add_flag("--refresh", refresh_sizes_,
                  "Measure sizes now (walks every file's extents) instead of the last measurement");
  }
  SizeMode Sizes() const { return refresh_sizes_ ? SizeMode::kMeasure : SizeMode::kCached; }

  void Define() {
    app_.require_subcommand(1);
    app_.set_version_flag("--version", PGBRANCH_VERSION);
    app_.add_option("--home", home_,
                    "State directory (default: $PGBRANCH_HOME, "
                    "/var/lib/pgbranch as root, ~/.pgbranch otherwise)");
    app_.add_flag("-v,--verbose", verbose_, "Log what happens underneath");
    app_.add_flag("-q,--quiet", quiet_, "Print no step timings");
    DefineInit();
    DefineProject();
    DefineBranch();
    DefineSnapshot();
    DefineLog();
    DefineWal();
    DefineAudit();
    DefineDoctor();
    DefineOperations();
    DefineCatalog();
    DefineStatus();
    DefineImage();
    DefineCa();
    DefineSetup();
    DefineUse();
    DefineServe();
    DefineToken();
    DefineSchedule();
  }

  // `pgbranch schedule`: snapshots on a cron schedule with retention, run by `pgbranch serve`.
  void DefineSchedule() {
    auto* schedule =
        app_.add_subcommand("schedule", "Snapshots on a cron schedule, taken by 'pgbranch serve'");
    schedule->require_subcommand(1);
    auto* add = schedule->add_subcommand(
        "add",
        "Snapshot a branch on a schedule, keeping the newest N and/or those younger than D; or "
        "refresh a project's main from a dump or a server");
    add->add_option("branch", ref_text_, "PROJECT/BRANCH (PROJECT for --refresh)")->required();
    auto* snapshot_opt =
        add->add_option("--snapshot", cron_,
                        "When, as crontab(5) in UTC: \"0 */6 * * *\", \"@daily\"; a run missed "
                        "while serve was down is made once when it is back");
    auto* refresh_opt = add->add_option(
        "--refresh", refresh_cron_,
        "Instead: when to refresh main (as 'project refresh') from --from-dump FILE or "
        "--from-server URI [--logical], with --transform F...");
    snapshot_opt->excludes(refresh_opt);
    add->add_option("--from-dump", from_dump_, "With --refresh: the dump each run loads");
    add->add_option("--from-server", from_server_,
                    "With --refresh: the server each run copies (its password read now and kept "
                    "privately)");
    add->add_flag("--logical", logical_, "With --from-server: pg_dump instead of a copy");
    add->add_option("--transform", transforms_, "With --refresh: SQL run after each load");
    add->add_option("--keep", keep_, "Keep the newest N snapshots it made (older ones go)")
        ->transform(DecimalIn(1, 100000));
    add->add_option("--max-age", max_age_, "Delete the snapshots it made once older than this: 7d")
        ->transform(Lifetime());
    AddJson(add);
    add->callback([this] {
      action_ = [this] {
        return With("schedule add", ref_text_, [&](Engine& e) -> Status {
          // A refresh is the project's: `schedule add shop --refresh ...` means shop/main.
          std::string text = ref_text_;
          if (!refresh_cron_.empty() && text.find('/') == std::string::npos) text += "/main";
          PGB_ASSIGN_OR_RETURN(BranchRef ref, ParseBranchRef(text));
          ScheduleOptions o;
          o.snapshot_cron = cron_;
          o.refresh_cron = refresh_cron_;
          SetDataSource(&o.source);
          o.keep = keep_;
          o.max_age_s = max_age_;
          PGB_ASSIGN_OR_RETURN(ScheduleInfo info, e.AddSchedule(ref, o));
          if (json_) {
            out_->Json(ToJson(info));
            return Status::OK();
          }
          out_->Print(fmt::format("schedule {}: {} {} at \"{}\" (UTC); next {}", info.id, info.kind,
                                  info.branch, info.cron, info.next_run));
          if (!info.source.empty()) out_->Print(fmt::format("each run loads {}", info.source));
          out_->Print(out_->Paint("'pgbranch serve' takes them; it must be running", Tone::kDim));
          return Status::OK();
        });
      };
    });
    auto* list = schedule->add_subcommand("list", "The schedules, their last and next runs");
    list->add_option("project", name_, "Only this project");
    AddJson(list);
    list->callback([this] {
      action_ = [this] {
        return With("schedule list", name_, [&](Engine& e) -> Status {
          PGB_ASSIGN_OR_RETURN(auto schedules, e.ListSchedules(name_));
          if (json_) {
            out_->Json(ToJsonArray(schedules));
            return Status::OK();
          }
          std::vector<std::vector<Cell>> rows;
          for (const auto& s : schedules) {
            std::string keep = s.keep ? fmt::format("{} newest", *s.keep) : "";
            if (s.max_age_s) {
              keep += (keep.empty() ? "" : ", ") +
                      fmt::format("{} max", FormatAge(std::chrono::seconds(*s.max_age_s)));
            }
            std::string does = s.kind == "refresh" ? "refresh from " + s.source : s.kind;
            rows.push_back({std::to_string(s.id), s.branch, does, s.cron, OrDash(keep),
                            OrDash(s.last_run), OrDash(s.last_result), OrDash(s.next_run)});
          }
          out_->Table(
              {"ID", "BRANCH", "DOES", "CRON (UTC)", "KEEPS", "LAST RUN", "RESULT", "NEXT RUN"},
              rows);
          return Status::OK();
        });
      };
    });
    auto* remove =
        schedule->add_subcommand("remove", "Stop a schedule (its snapshots stay)")->alias("rm");
    remove->add_option("id", schedule_id_, "The schedule's id (schedule list)")
        ->required()
        ->transform(DecimalIn(1, kMaxId));
    remove->callback([this] {
      action_ = [this] {
        return With("schedule remove", std::to_string(schedule_id_), [&](Engine& e) -> Status {
          PGB_RETURN_IF_ERROR(e.RemoveSchedule(schedule_id_));
          out_->Note(fmt::format("schedule {} removed; its snapshots stay", schedule_id_));
          return Status::OK();
        });
      };
    });
  }

  // `pgbranch token`: the bearer tokens of the HTTP API (`pgbranch serve`).
  void DefineToken() {
    auto* token = app_.add_subcommand("token", "Bearer tokens of the HTTP API of 'pgbranch serve'");
    token->require_subcommand(1);
    auto* create = token->add_subcommand(
        "create", "Make a token; it is printed once, alone on the last line of stdout");
    create->add_option("name", name_, "A name for it (who or what uses it)")->required();
    create->add_option("--scope", scope_, "read, write (default) or admin")
        ->check(CLI::IsMember({"read", "write", "admin"}));
    AddJson(create);
    create->callback([this] {
      action_ = [this] {
        return With("token create", name_, [&](Engine& e) -> Status {
          PGB_ASSIGN_OR_RETURN(NewToken t, e.CreateToken(name_, scope_));
          if (json_) {
            nlohmann::json j = ToJson(t.info);
            j["token"] = t.token;
            out_->Json(j);
            return Status::OK();
          }
          out_->Print(fmt::format("token {} ({}); it is not shown again:", Shown(t.info.name),
                                  t.info.scope));
          out_->Print(t.token);
          return Status::OK();
        });
      };
    });
    auto* list = token->add_subcommand("list", "The tokens: name, scope, when made and last used");
    AddJson(list);
    list->callback([this] {
      action_ = [this] {
        return With("token list", "", [&](Engine& e) -> Status {
          PGB_ASSIGN_OR_RETURN(auto tokens, e.ListTokens());
          if (json_) {
            out_->Json(ToJsonArray(tokens));
            return Status::OK();
          }
          std::vector<std::vector<Cell>> rows;
          for (const auto& t : tokens) {
            rows.push_back({t.name, t.scope, t.created_at, t.last_used_at.value_or("never")});
          }
          out_->Table({"NAME", "SCOPE", "CREATED", "LAST USED"}, rows);
          return Status::OK();
        });
      };
    });
    auto* revoke = token->add_subcommand("revoke", "Delete a token: it stops working at once");
    revoke->add_option("name", name_, "The token's name")->required();
    revoke->callback([this] {
      action_ = [this] {
        return With("token revoke", name_, [&](Engine& e) -> Status {
          PGB_RETURN_IF_ERROR(e.RevokeToken(name_));
          out_->Print(fmt::format("revoked token {}", Shown(name_)));
          return Status::OK();
        });
      };
    });
  }

  void DefineUse() {
    auto* use = app_.add_subcommand(
        "use",
        "Make PROJECT/BRANCH the active branch: where the project's route through "
        "'pgbranch serve' (PROJECT/@, 'pgbranch project url') leads from the next "
        "connection on");
    use->add_option("branch", ref_text_, "PROJECT/BRANCH")->required();
    use->add_flag("--terminate", terminate_,
                  "Also end the client sessions of the branch that was active before");
    use->callback([this] {
      action_ = [this] {
        return With("use", ref_text_, [&](Engine& e) -> Status {
          PGB_ASSIGN_OR_RETURN(BranchRef ref, ParseBranchRef(ref_text_));
          PGB_ASSIGN_OR_RETURN(std::string before, e.UseBranch(ref, terminate_));
          out_->Note(before == ref.branch
                         ? fmt::format("{}/@ already leads to {}", ref.project, ref.ToString())
                         : fmt::format("{}/@ now leads to {} (was {}/{})", ref.project,
                                       ref.ToString(), ref.project, before));
          return Status::OK();
        });
      };
    });
  }

  void DefineServe() {
    auto* serve = app_.add_subcommand(
        "serve",
        "Run the daemon in the foreground: one PostgreSQL port for every branch (routes: "
        "database PROJECT/BRANCH[/DATABASE], PROJECT/@ for the active branch; options "
        "'-c pgbranch.branch=PROJECT/BRANCH'; TLS server name BRANCH.PROJECT.<domain>), "
        "waking suspended branches on connect and suspending idle ones");
    serve->add_option("--proxy-listen", proxy_listen_,
                      "ADDRESS:PORT for the proxy (default 127.0.0.1:5432, or the next free "
                      "port when 5432 is taken)");
    auto* cert = serve->add_option("--tls-cert", tls_cert_,
                                   "The proxy's TLS certificate chain, PEM (default: one "
                                   "issued by pgbranch's CA)");
    auto* key = serve->add_option("--tls-key", tls_key_, "Its private key, PEM");
    cert->needs(key);
    key->needs(cert);
    serve->add_option("--sni-domain", sni_domain_,
                      "Domain of TLS server-name routes BRANCH.PROJECT.DOMAIN (default "
                      "localhost)");
    serve
        ->add_option("--max-connections", max_connections_,
                     "Client connections at once (default 1000)")
        ->transform(DecimalIn(1, 100000));
    serve
        ->add_option("--grace", grace_seconds_,
                     "On SIGTERM, seconds open sessions may go on (default 30)")
        ->transform(DecimalIn(0, 86400));
    auto* no_api = serve->add_flag("--no-api", no_api_, "Serve no HTTP API and dashboard");
    serve
        ->add_option("--api-listen", api_listen_,
                     "ADDRESS:PORT of the HTTP API and dashboard (default 127.0.0.1:8432, or "
                     "the next free port when 8432 is taken); an address other than loopback "
                     "needs TLS")
        ->excludes(no_api);
    serve->add_flag("--api-tls", api_tls_,
                    "Serve the API over HTTPS with a certificate from pgbranch's CA");
    auto* api_cert = serve->add_option("--api-tls-cert", api_tls_cert_,
                                       "The API's TLS certificate chain, PEM (implies HTTPS)");
    auto* api_key = serve->add_option("--api-tls-key", api_tls_key_, "Its private key, PEM");
    api_cert->needs(api_key);
    api_key->needs(api_cert);
    serve->add_flag("--insecure-http", insecure_http_,
                    "Allow plain HTTP on an address other than loopback (tokens then cross the "
                    "network readable)");
    serve->add_option("--web-dir", web_dir_,
                      "The dashboard's built files (default: installed beside pgbranch)");
    serve->callback([this] {
      action_ = [this] {
        return With("serve", "", [&](Engine& e) -> Status {
          server::ServeOptions o;
          PGB_ASSIGN_OR_RETURN(auto proxy_at, ParseListenAddress("--proxy-listen", proxy_listen_));
          auto [host, value] = proxy_at;
          o.listen_host = host;
          o.listen_port = value;
          o.port_given = proxy_listen_ != "127.0.0.1:5432";
          o.tls_cert = tls_cert_;
          o.tls_key = tls_key_;
          o.sni_domain = sni_domain_;
          o.max_connections = max_connections_;
          o.grace = std::chrono::seconds(grace_seconds_);
          if (no_api_) {
            o.api.reset();
          } else {
            PGB_ASSIGN_OR_RETURN(auto api_at, ParseListenAddress("--api-listen", api_listen_));
            o.api->host = api_at.first;
            o.api->port = api_at.second;
            o.api->port_given = api_listen_ != "127.0.0.1:8432";
            o.api->tls = api_tls_;
            o.api->tls_cert = api_tls_cert_;
            o.api->tls_key = api_tls_key_;
            o.api->insecure_http = insecure_http_;
            o.api->sni_domain = sni_domain_;
            o.api->web_dir = web_dir_.empty() ? DefaultWebDir() : web_dir_;
          }
          if (!verbose_) spdlog::set_level(spdlog::level::info);
          return server::Serve(e, o, [this](const std::string& line) { out_->Note(line); });
        });
      };
    });
  }

  // "snapshot <verb> ..." whose body gets the numeric id.
  void SnapshotVerb(CLI::App* snapshot, const std::string& verb, const std::string& help,
                    std::function<Status(Engine&)> body, CLI::App** out) {
    auto* cmd = snapshot->add_subcommand(verb, help);
    cmd->add_option("id", snapshot_arg_, "Snapshot id (see 'pgbranch snapshot list')")
        ->required()
        ->transform(DecimalIn(1, kMaxId));
    cmd->callback([this, verb, body] {
      action_ = [this, verb, body] {
        return With("snapshot " + verb, std::to_string(snapshot_arg_), body);
      };
    });
    *out = cmd;
  }

  void DefineSnapshot() {
    auto* snapshot =
        app_.add_subcommand("snapshot", "Named, immutable points of a branch")->alias("snap");
    snapshot->require_subcommand(1);

    auto* create = snapshot->add_subcommand("create", "Take a consistent snapshot of a branch");
    create->add_option("branch", ref_text_, "PROJECT/BRANCH")->required();
    create->add_option("--label", label_, "A note for people ('before the migration')");
    create->add_flag("--fast", fast_, "Skip the CHECKPOINT on a running branch");
    AddJson(create);
    create->callback([this] {
      action_ = [this] {
        return With("snapshot create", ref_text_, [&](Engine& e) -> Status {
          auto start = Clock::now();
          PGB_ASSIGN_OR_RETURN(BranchRef ref, ParseBranchRef(ref_text_));
          PGB_ASSIGN_OR_RETURN(SnapshotInfo snap, e.CreateSnapshot(ref, label_, fast_));
          out_->Done(fmt::format("Snapshot {} of {}", snap.id, snap.branch), Clock::now() - start);
          if (json_) {
            out_->Json(ToJson(snap));
          } else {
            out_->Print(std::to_string(snap.id));
          }
          return Status::OK();
        });
      };
    });

    auto* list = snapshot->add_subcommand("list", "List snapshots")->alias("ls");
    list->add_option("branch", ref_text_, "Only this PROJECT/BRANCH");
    AddJson(list);
    list->callback([this] {
      action_ = [this] {
        return With("snapshot list", ref_text_, [&](Engine& e) -> Status {
          PGB_ASSIGN_OR_RETURN(std::optional<BranchRef> ref, OptionalRef());
          PGB_ASSIGN_OR_RETURN(auto snaps, e.ListSnapshots(ref));
          PrintSnapshots(snaps);
          return Status::OK();
        });
      };
    });

    CLI::App* get = nullptr;
    SnapshotVerb(
        snapshot, "get", "Show one snapshot",
        [this](Engine& e) -> Status {
          PGB_ASSIGN_OR_RETURN(SnapshotInfo snap, e.GetSnapshot(snapshot_arg_));
          if (json_) {
            out_->Json(ToJson(snap));
            return Status::OK();
          }
          out_->Table(
              {"FIELD", "VALUE"},
              {{"id", std::to_string(snap.id)},
               {"branch", snap.branch},
               {"label", OrDash(snap.label)},
               {"kind", snap.implicit ? "implicit (made by a branch create or reset)" : "explicit"},
               {"created", snap.created_at},
               {"size",
                Bytes(snap.size_bytes) + " exclusive, " + Bytes(snap.logical_bytes) + " logical"},
               {"branches made from it", snap.dependents.empty()
                                             ? "-"
                                             : fmt::format("{}", fmt::join(snap.dependents, ", "))},
               {"pool name", snap.name}});
          return Status::OK();
        },
        &get);
    AddJson(get);

    CLI::App* del = nullptr;
    SnapshotVerb(
        snapshot, "delete", "Delete a snapshot",
        [this](Engine& e) -> Status {
          auto start = Clock::now();
          PGB_RETURN_IF_ERROR(e.DeleteSnapshot(snapshot_arg_, recursive_));
          out_->Done(fmt::format("Snapshot {} deleted", snapshot_arg_), Clock::now() - start);
          return Status::OK();
        },
        &del);
    del->alias("rm");
    del->add_flag("--recursive", recursive_, "Also delete the branches made from it");

    auto* cleanup =
        snapshot->add_subcommand("cleanup", "Delete old snapshots no branch was made from");
    auto* scope = cleanup->add_option("branch", ref_text_, "Only this PROJECT/BRANCH");
    auto* all = cleanup->add_flag("--all", all_, "Every branch of every project");
    scope->excludes(all);
    cleanup->add_option("--days", days_, "Older than this many days")
        ->required()
        ->transform(DecimalIn(0, kMaxDays, "days (100 years)"));
    cleanup->add_flag("--dry-run", dry_run_, "Only say what would go");
    AddJson(cleanup);
    cleanup->callback([this] {
      action_ = [this] {
        return With("snapshot cleanup", ref_text_, [&](Engine& e) -> Status {
          if (ref_text_.empty() && !all_) {
            return Status::InvalidArgument("name a PROJECT/BRANCH or pass --all");
          }
          PGB_ASSIGN_OR_RETURN(std::optional<BranchRef> ref, OptionalRef());
          PGB_ASSIGN_OR_RETURN(CleanupReport r, e.CleanupSnapshots(ref, days_, dry_run_));
          if (json_) {
            out_->Json(ToJson(r, dry_run_));
            return Status::OK();
          }
          for (const auto& snap : r.removed) {
            out_->Print(fmt::format("{} snapshot {} of {} ({}, {})",
                                    dry_run_ ? "would delete" : "deleted", snap.id, snap.branch,
                                    Shown(snap.created_at), Bytes(snap.size_bytes)));
          }
          for (const auto& [snap, why] : r.kept) {
            out_->Print(
                fmt::format("kept snapshot {} of {}: {}", snap.id, snap.branch, Shown(why)));
          }
          if (r.removed.empty() && r.kept.empty()) {
            out_->Print(fmt::format("no snapshot is older than {} days", days_));
          }
          return Status::OK();
        });
      };
    });
  }

  void DefineWal() {
    auto* wal = app_.add_subcommand("wal", "WAL archives and what branches can be recovered to");
    wal->require_subcommand(1);
    auto* info = wal->add_subcommand("info", "Archived WAL and the recoverable window");
    info->add_option("branch", ref_text_, "Only this PROJECT/BRANCH");
    AddJson(info);
    info->callback([this] {
      action_ = [this] {
        return With("wal info", ref_text_, [&](Engine& e) -> Status {
          PGB_ASSIGN_OR_RETURN(std::optional<BranchRef> ref, OptionalRef());
          PGB_ASSIGN_OR_RETURN(auto infos, e.WalInfos(ref));
          if (json_) {
            nlohmann::json arr = nlohmann::json::array();
            for (const auto& w : infos) arr.push_back(ToJson(w));
            out_->Json(ref ? arr[0] : arr);
            return Status::OK();
          }
          std::vector<std::vector<Cell>> rows;
          for (const auto& w : infos) {
            rows.push_back({w.branch, std::to_string(w.segments), FormatBytes(w.bytes),
                            w.oldest_segment.empty() ? "-" : w.oldest_segment + " " + w.oldest_at,
                            w.newest_segment.empty() ? "-" : w.newest_segment + " " + w.newest_at,
                            WindowText(w.window)});
          }
          out_->Table({"BRANCH", "SEGMENTS", "BYTES", "OLDEST", "NEWEST", "RECOVERABLE"}, rows);
          return Status::OK();
        });
      };
    });

    auto* cleanup = wal->add_subcommand(
        "cleanup", "Delete old archived WAL that no point of the recoverable window needs");
    cleanup->add_option("branch", ref_text_, "PROJECT/BRANCH")->required();
    cleanup->add_option("--days", days_, "Older than this many days")
        ->required()
        ->transform(DecimalIn(0, kMaxDays, "days (100 years)"));
    cleanup->add_flag("--dry-run", dry_run_, "Only say what would go");
    AddJson(cleanup);
    cleanup->callback([this] {
      action_ = [this] {
        return With("wal cleanup", ref_text_, [&](Engine& e) -> Status {
          PGB_ASSIGN_OR_RETURN(BranchRef ref, ParseBranchRef(ref_text_));
          PGB_ASSIGN_OR_RETURN(WalCleanupReport r, e.CleanupWal(ref, days_, dry_run_));
          if (json_) {
            out_->Json(ToJson(r, dry_run_));
            return Status::OK();
          }
          for (const auto& name : r.removed) {
            out_->Print(fmt::format("{} {}", dry_run_ ? "would delete" : "deleted", name));
          }
          out_->Print(fmt::format("{} {} segments ({})", dry_run_ ? "would free" : "freed",
                                  r.removed.size(), FormatBytes(r.removed_bytes)));
          if (r.kept_for_window > 0) {
            out_->Print(fmt::format(
                "kept {} older segments: recovery from snapshot {}, the oldest base, needs "
                "{} and after (delete old snapshots to shrink the window)",
                r.kept_for_window, r.oldest_base_snapshot, r.keep_from_segment));
          }
          return Status::OK();
        });
      };
    });
  }

  static std::string WindowText(const std::optional<WalWindow>& w) {
    if (!w) return "-";
    return fmt::format("{} .. {}", w->from_time, w->to);
  }

  void DefineLog() {
    auto* cmd = app_.add_subcommand("log",
                                    "A branch's history: snapshots, branches made from "
                                    "it, resets, renames");
    cmd->add_option("branch", ref_text_, "PROJECT/BRANCH")->required();
    AddJson(cmd);
    cmd->callback([this] {
      action_ = [this] {
        return With("log", ref_text_, [&](Engine& e) -> Status {
          PGB_ASSIGN_OR_RETURN(BranchRef ref, ParseBranchRef(ref_text_));
          PGB_ASSIGN_OR_RETURN(auto log, e.BranchLog(ref));
          if (json_) {
            out_->Json(ToJsonArray(log));
            return Status::OK();
          }
          for (const auto& l : log) {
            out_->Print(fmt::format("{} {}  {}", out_->Paint("*", Tone::kWarn),
                                    out_->Paint(Shown(l.at), Tone::kDim), Shown(l.text)));
          }
          return Status::OK();
        });
      };
    });
  }

  void DefineAudit() {
    auto* cmd = app_.add_subcommand("audit", "Every storage and runtime operation, newest last");
    cmd->add_option("--limit", limit_, "How many (default 50)")->transform(DecimalIn(1, 100000));
    AddJson(cmd);
    cmd->callback([this] {
      action_ = [this] {
        return With("audit", "", [&](Engine& e) -> Status {
          PGB_ASSIGN_OR_RETURN(auto rows, e.Audit(limit_));
          if (json_) {
            out_->Json(ToJsonArray(rows));
            return Status::OK();
          }
          std::vector<std::vector<Cell>> table;
          for (const auto& r : rows) {
            table.push_back(
                {r.at, r.command, r.operation, r.object, fmt::format("{:.1f}ms", r.duration_ms),
                 r.ok ? Cell("ok", Tone::kGood) : Cell("failed: " + r.error, Tone::kBad),
                 r.detail});
          }
          out_->Table({"AT", "COMMAND", "OPERATION", "OBJECT", "TOOK", "RESULT", "DETAIL"}, table);
          return Status::OK();
        });
      };
    });
  }

  void DefineDoctor() {
    auto* cmd = app_.add_subcommand("doctor", "Check tools, permissions, the pool and orphans");
    cmd->add_flag("--fix", fix_,
                  "Repair what is safe: finish or undo interrupted operations, quarantine data "
                  "no row refers to, start branches whose server died");
    cmd->add_flag("--adopt", adopt_,
                  "Rebuild catalog rows for data directories no row refers to (after a lost "
                  "catalog): project, branch, parent, port, a new password");
    auto* purge = cmd->add_flag("--purge", purge_, "Destroy quarantined data older than --grace");
    cmd->add_option("--grace", grace_days_, "Days quarantined data is kept (default 7)")
        ->transform(DecimalIn(0, 3650))
        ->needs(purge);
    AddJson(cmd);
    cmd->callback([this] {
      allow_lost_catalog_ = adopt_;
      action_ = [this] {
        bool failed = false;
        int code = With("doctor", "", [&](Engine& e) -> Status {
          DoctorOptions options;
          options.fix = fix_;
          options.adopt = adopt_;
          options.purge = purge_;
          options.grace = std::chrono::hours(24) * grace_days_;
          PGB_ASSIGN_OR_RETURN(auto findings, e.Doctor(options));
          for (const auto& f : findings) failed |= f.status == "fail";
          if (json_) {
            out_->Json(ToJsonArray(findings));
            return Status::OK();
          }
          for (const auto& f : findings) {
            Tone tone = f.status == "ok"      ? Tone::kGood
                        : f.status == "fixed" ? Tone::kGood
                        : f.status == "warn"  ? Tone::kWarn
                                              : Tone::kBad;
            out_->Print(fmt::format("{:<6} {:<17} {}", out_->Paint(f.status, tone), f.check,
                                    Shown(f.detail)));
          }
          return Status::OK();
        });
        return code != 0 ? code : failed ? kExitFailure : 0;
      };
    });
  }

  void DefineOperations() {
    auto* cmd = app_.add_subcommand(
        "operations", "Operations in progress or left unfinished (--all: the recent ones too)");
    cmd->alias("ops");
    cmd->add_flag("--all", all_, "Also the ones that ended");
    cmd->add_option("--limit", limit_, "With --all, how many (default 50)")
        ->transform(DecimalIn(1, 100000));
    AddJson(cmd);
    cmd->callback([this] {
      action_ = [this] {
        return With("operations", "", [&](Engine& e) -> Status {
          PGB_ASSIGN_OR_RETURN(auto ops, e.Operations(all_, limit_));
          if (json_) {
            nlohmann::json arr = nlohmann::json::array();
            for (const auto& o : ops) arr.push_back(ToJson(o));
            out_->Json(arr);
            return Status::OK();
          }
          if (ops.empty()) {
            out_->Print(all_ ? "No operations recorded yet." : "No operation is in progress.");
            return Status::OK();
          }
          std::vector<std::vector<Cell>> rows;
          for (const auto& o : ops) {
            std::string state = o.state;
            if (o.ended_at.empty() && !o.owner_alive)
              state += " (interrupted: pgbranch doctor --fix)";
            rows.push_back({std::to_string(o.id), o.kind, o.target, Cell(state, OperationTone(o)),
                            OrDash(o.step), std::to_string(o.pid), o.started_at, OrDash(o.error)});
          }
          out_->Table({"ID", "KIND", "TARGET", "STATE", "STEP", "PID", "STARTED", "ERROR"}, rows);
          return Status::OK();
        });
      };
    });
  }

  static Tone OperationTone(const OperationInfo& o) {
    if (o.state == "done") return Tone::kGood;
    if (o.ended_at.empty() && !o.owner_alive) return Tone::kBad;
    if (o.state == "failed") return Tone::kBad;
    return Tone::kWarn;
  }

  void DefineCatalog() {
    auto* catalog = app_.add_subcommand("catalog", "Back up and restore the catalog (state.db)");
    catalog->require_subcommand(1);
    auto* backup = catalog->add_subcommand(
        "backup",
        "Copy the catalog to $PGBRANCH_HOME/backups (also done daily and before every "
        "migration; the newest 10 are kept)");
    AddJson(backup);
    backup->callback([this] {
      action_ = [this] {
        return With("catalog backup", "", [&](Engine& e) -> Status {
          PGB_ASSIGN_OR_RETURN(CatalogBackup b, e.BackupCatalog("manual"));
          if (json_) {
            out_->Json(ToJson(b));
          } else {
            out_->Print(b.path);
          }
          return Status::OK();
        });
      };
    });
    auto* list = catalog->add_subcommand("list", "Catalog backups, newest first")->alias("ls");
    AddJson(list);
    list->callback([this] {
      allow_lost_catalog_ = true;
      action_ = [this] {
        return With("catalog list", "", [&](Engine& e) -> Status {
          PGB_ASSIGN_OR_RETURN(auto backups, e.ListCatalogBackups());
          if (json_) {
            nlohmann::json arr = nlohmann::json::array();
            for (const auto& b : backups) arr.push_back(ToJson(b));
            out_->Json(arr);
            return Status::OK();
          }
          std::vector<std::vector<Cell>> rows;
          for (const auto& b : backups) {
            rows.push_back({b.path, b.at, FormatBytes(b.bytes),
                            b.schema_version ? std::to_string(b.schema_version) : "unreadable"});
          }
          out_->Table({"BACKUP", "AT", "SIZE", "SCHEMA"}, rows);
          return Status::OK();
        });
      };
    });
    auto* restore = catalog->add_subcommand(
        "restore", "Replace the catalog with a backup (the current one is backed up first)");
    auto* file = restore->add_option("file", name_, "A backup file (see 'pgbranch catalog list')");
    auto* latest = restore->add_flag("--latest", latest_, "The newest backup");
    file->excludes(latest);
    restore->callback([this] {
      allow_lost_catalog_ = true;
      action_ = [this] {
        return With("catalog restore", name_, [&](Engine& e) -> Status {
          std::string path = name_;
          if (latest_) {
            PGB_ASSIGN_OR_RETURN(auto backups, e.ListCatalogBackups());
            for (const auto& b : backups) {
              if (b.schema_version > 0) {
                path = b.path;
                break;
              }
            }
            if (path.empty()) {
              return Status::NotFound(
                  "there is no readable backup in $PGBRANCH_HOME/backups; 'pgbranch doctor "
                  "--adopt' rebuilds the catalog from the pool instead");
            }
          }
          if (path.empty()) return Status::InvalidArgument("name a backup file or pass --latest");
          PGB_RETURN_IF_ERROR(e.RestoreCatalog(path));
          out_->Print(path);
          return Status::OK();
        });
      };
    });
  }

  void DefineInit() {
    auto* cmd = app_.add_subcommand("init",
                                    "Choose the pool and settings (optional: the first "
                                    "command picks the best pool the machine offers)");
    auto* image = cmd->add_option("--image", init_.image_text,
                                  "Image file to create, format and loop-mount (needs root)");
    cmd->add_option("--size", init_.size,
                    "Size of the image file, e.g. 20G: at least 1 GiB, at most the free space "
                    "next to it")
        ->transform(ImageSize())
        ->needs(image);
    cmd->add_option("--fs", init_.fs, "Filesystem of the image: btrfs or xfs (reflink)")
        ->check(CLI::IsMember({"btrfs", "xfs"}))
        ->needs(image);
    auto* btrfs = cmd->add_option("--btrfs", init_.btrfs_text, "An existing directory on Btrfs");
    auto* zfs = cmd->add_option("--zfs", init_.zfs_text,
                                "A ZFS dataset, POOL/DATASET (created if missing)");
    auto* reflink = cmd->add_option("--reflink", init_.reflink_text,
                                    "A directory on XFS (reflink=1) or Btrfs: reflinked copies");
    auto* copy =
        cmd->add_option("--copy", init_.copy_text, "Any directory: full copies (slow, no sharing)");
    std::vector<CLI::Option*> kinds = {image, btrfs, zfs, reflink, copy};
    for (auto* a : kinds) {
      for (auto* b : kinds) {
        if (a != b) a->excludes(b);
      }
    }
    cmd->add_option("--port-range", init_.port_range,
                    "Ports for branches, FIRST-LAST (default 54320-54999)");
    cmd->add_option(
        "--os-user", init_.os_user,
        "OS account that runs PostgreSQL when pgbranch runs as root (default postgres)");
    AddJson(cmd);
    cmd->callback([this] {
      action_ = [this] {
        InitOptions o;
        auto set = [](const std::string& v, std::optional<std::string>* to) {
          if (!v.empty()) *to = v;
        };
        set(init_.image_text, &o.image);
        set(init_.fs, &o.fs);
        set(init_.btrfs_text, &o.btrfs_dir);
        set(init_.zfs_text, &o.zfs_dataset);
        set(init_.reflink_text, &o.reflink_dir);
        set(init_.copy_text, &o.copy_dir);
        set(init_.port_range, &o.port_range);
        set(init_.os_user, &o.os_user);
        o.size_bytes = init_.size;
        return With("init", "", [&](Engine& e) -> Status {
          PGB_ASSIGN_OR_RETURN(StatusInfo s, e.Init(o));
          if (json_) {
            out_->Json(ToJson(s));
          } else {
            PrintStatusHeader(s);
          }
          return Status::OK();
        });
      };
    });
  }

  void DefineProject() {
    auto* project = app_.add_subcommand("project", "Create, list and delete projects");
    project->require_subcommand(1);

    auto* create = project->add_subcommand("create",
                                           "Create a project and its main branch "
                                           "(initdb + start)");
    create->add_option("name", name_, "Project name")->required();
    create
        ->add_option("--runtime", runtime_,
                     "Where its servers run: native (default), docker or podman")
        ->check(CLI::IsMember({"native", "docker", "podman"}));
    create->add_option("--image", image_,
                       "Container image laid out like the official postgres images "
                       "(docker/podman)");
    create
        ->add_option("--pg-version", pg_version_,
                     "PostgreSQL major version: runs pgbranch/postgres:N (docker/podman)")
        ->transform(DecimalIn(9, 99));
    create->add_option("--pg-bin", pg_bin_, "Directory of the PostgreSQL server binaries (native)");
    create->add_option("--port", port_, "Port of the main branch")
        ->transform(DecimalIn(1024, 65535));
    create->add_option("--listen", listen_, "Address the servers listen on (default 127.0.0.1)");
    create
        ->add_option("--suspend-after", suspend_after_,
                     "Suspend a branch idle this long (no sessions) while 'pgbranch serve' runs, "
                     "unless the branch sets its own: 30s, 10m, 2h, 1d (default: never)")
        ->transform(IdleDuration());
    create->add_option("--from-dump", from_dump_,
                       "Load main from this pg_dump archive (custom -Fc or directory -Fd format) "
                       "with pg_restore, before its first snapshot");
    create->add_option("--from-server", from_server_,
                       "Copy main from this running server (a libpq URI or keyword string; the "
                       "password from it or from PGPASSFILE/~/.pgpass) with pg_basebackup");
    create->add_flag("--logical", logical_,
                     "With --from-server: pg_dump of the URI's database (directory format, "
                     "--jobs) restored into main, instead of a physical copy");
    create->add_flag("--replica", replica_,
                     "With --from-server: main stays a streaming standby of the server; branches "
                     "are primaries of their own");
    create->add_option("--slot", slot_,
                       "With --replica: stream from this replication slot "
                       "(created on the server if missing)");
    create->add_option("--adopt", adopt_dir_,
                       "Make this existing data directory main in place, without copying it: "
                       "a Btrfs subvolume or ZFS dataset on the pool's filesystem, cleanly shut "
                       "down ('project delete --keep-data' hands it back)");
    create->add_flag("--stop", adopt_stop_,
                     "With --adopt: stop the directory's running server first (pg_ctl stop -m "
                     "fast)");
    create->add_option("--jobs", restore_jobs_, "Parallel pg_restore jobs (default 2)")
        ->transform(DecimalIn(1, 64));
    create->add_option("--transform", transforms_,
                       "An SQL file run in main after the load, in one transaction, before any "
                       "branch can see the data: masking (repeatable, in order)");
    AddJson(create);
    create->callback([this] {
      action_ = [this] {
        return With("project create", name_, [&](Engine& e) -> Status {
          auto start = Clock::now();
          ProjectCreateOptions o;
          o.runtime = runtime_;
          o.image = image_;
          o.pg_version = pg_version_;
          o.pg_bin = pg_bin_;
          o.port = port_;
          if (!listen_.empty()) o.listen_address = listen_;
          SetDataSource(&o);
          o.replica = replica_;
          o.slot = slot_;
          o.adopt = adopt_dir_;
          o.adopt_stop = adopt_stop_;
          PGB_ASSIGN_OR_RETURN(BranchInfo main, e.CreateProject(name_, o));
          if (suspend_after_) {
            PGB_RETURN_IF_ERROR(e.SetSuspendAfter(BranchRef{name_, ""}, suspend_after_));
          }
          out_->Done(
              fmt::format("Project {} created with branch {}/{}", name_, main.project, main.name),
              Clock::now() - start);
          PrintCreated(main);
          return Status::OK();
        });
      };
    });

    auto* list = project->add_subcommand("list", "List projects")->alias("ls");
    AddJson(list);
    list->callback([this] {
      action_ = [this] {
        return With("project list", "", [&](Engine& e) -> Status {
          PGB_ASSIGN_OR_RETURN(auto projects, e.ListProjects());
          if (json_) {
            nlohmann::json arr = nlohmann::json::array();
            for (const auto& p : projects) arr.push_back(ToJson(p));
            out_->Json(arr);
            return Status::OK();
          }
          std::vector<std::vector<Cell>> rows;
          for (const auto& p : projects) {
            rows.push_back({p.name, "PostgreSQL " + p.pg_version, p.runtime,
                            std::to_string(p.branch_count), Age(p.created_at, SystemClock())});
          }
          out_->Table({"PROJECT", "VERSION", "RUNTIME", "BRANCHES", "CREATED"}, rows);
          return Status::OK();
        });
      };
    });

    auto* get = project->add_subcommand("get", "Show one project");
    get->add_option("name", name_, "Project name")->required();
    AddJson(get);
    get->callback([this] {
      action_ = [this] {
        return With("project get", name_, [&](Engine& e) -> Status {
          PGB_ASSIGN_OR_RETURN(ProjectInfo p, e.GetProject(name_));
          PGB_ASSIGN_OR_RETURN(auto branches, e.ListBranches(name_, SizeMode::kNone));
          if (json_) {
            nlohmann::json j = ToJson(p);
            j["branches"] = nlohmann::json::array();
            for (const auto& b : branches) j["branches"].push_back(ToJson(b, UriForm::kMasked));
            out_->Json(j);
            return Status::OK();
          }
          out_->Table({"FIELD", "VALUE"},
                      {{"name", p.name},
                       {"postgresql", p.pg_version + " (" + p.pg_bin + ")"},
                       {"runtime", p.image.empty() ? p.runtime : p.runtime + " (" + p.image + ")"},
                       {"created", p.created_at},
                       {"branches", std::to_string(p.branch_count)},
                       {"active branch", p.name + "/" + p.active_branch}});
          return Status::OK();
        });
      };
    });

    auto* url = project->add_subcommand(
        "url",
        "Print the project's connection URI through 'pgbranch serve': it reaches the "
        "active branch (see 'pgbranch use')");
    url->add_option("name", name_, "Project name")->required();
    url->add_flag("--verify", verify_, "Require TLS and verify the proxy against pgbranch's CA");
    url->callback([this] {
      action_ = [this] {
        return With("project url", name_, [&](Engine& e) -> Status {
          return PrintProxyUrl(e, BranchRef{name_, ""});
        });
      };
    });

    auto* rename = project->add_subcommand("rename", "Rename a project (ports and URIs stay)");
    rename->add_option("name", name_, "Project name")->required();
    rename->add_option("new_name", new_name_, "The new name")->required();
    AddJson(rename);
    rename->callback([this] {
      action_ = [this] {
        return With("project rename", name_, [&](Engine& e) -> Status {
          PGB_ASSIGN_OR_RETURN(ProjectInfo p, e.RenameProject(name_, new_name_));
          out_->Note(fmt::format("project {} is now {}", name_, p.name));
          if (json_) out_->Json(ToJson(p));
          return Status::OK();
        });
      };
    });

    auto* refresh = project->add_subcommand(
        "refresh", "Give main new data (a dump or a server); branches keep theirs until reset");
    refresh->add_option("name", name_, "Project name")->required();
    refresh->add_option("--from-dump", from_dump_,
                        "The new data: a pg_dump archive (custom -Fc or directory -Fd)");
    refresh->add_option("--from-server", from_server_,
                        "The new data: a physical copy of this running server (libpq URI)");
    refresh->add_flag("--logical", logical_, "With --from-server: pg_dump instead of a copy");
    refresh->add_option("--jobs", restore_jobs_, "Parallel pg_dump/pg_restore jobs (default 2)")
        ->transform(DecimalIn(1, 64));
    refresh->add_option("--transform", transforms_,
                        "An SQL file run in the new main before its snapshot (repeatable)");
    AddJson(refresh);
    refresh->callback([this] {
      action_ = [this] {
        return With("project refresh", name_, [&](Engine& e) -> Status {
          auto start = Clock::now();
          ProjectCreateOptions o;
          SetDataSource(&o);
          PGB_ASSIGN_OR_RETURN(BranchInfo main, e.RefreshProject(name_, o));
          out_->Done(fmt::format("Project {} refreshed: {}/main has the new data; 'branch "
                                 "rebase' moves a branch onto it",
                                 name_, name_),
                     Clock::now() - start);
          PrintCreated(main);
          return Status::OK();
        });
      };
    });

    auto* del = project->add_subcommand("delete", "Delete a project and all its data")->alias("rm");
    del->add_option("name", name_, "Project name")->required();
    del->add_flag("--force", force_, "Also delete its branches other than main");
    del->add_flag("--keep-data", keep_data_,
                  "An adopted project (--adopt): hand main's data directory back where it was, "
                  "cleanly shut down, instead of deleting it");
    del->callback([this] {
      action_ = [this] {
        return With("project delete", name_, [&](Engine& e) -> Status {
          auto start = Clock::now();
          PGB_RETURN_IF_ERROR(e.DeleteProject(name_, force_, keep_data_));
          out_->Done(fmt::format("Project {} deleted{}", name_,
                                 keep_data_ ? "; its data directory was handed back" : ""),
                     Clock::now() - start);
          return Status::OK();
        });
      };
    });
  }

  // Where project create/refresh take main's data from (--from-dump, --from-server, --logical,
  // --jobs, --transform), and the caller's PGPASSFILE for the source (pgbranch clears PG*
  // variables for its own connections).
  void SetDataSource(ProjectCreateOptions* o) const {
    o->from_dump = from_dump_;
    o->from_server = from_server_;
    o->logical = logical_;
    o->restore_jobs = restore_jobs_;
    o->transforms = transforms_;
    for (const auto& [k, v] : caller_pg_env_) {
      if (k == "PGPASSFILE") o->source_passfile = v;
    }
  }

  // `branch reset` and `branch rebase` (a reset onto the parent as it is now).
  Status Reset(Engine& e, const BranchRef& ref, bool rebase) {
    auto start = Clock::now();
    ResetOptions o;
    o.fast = fast_;
    o.snapshot = snapshot_id_;
    o.force = force_;
    o.rebase = rebase;
    PGB_ASSIGN_OR_RETURN(BranchInfo b, e.ResetBranch(ref, o));
    out_->Done(fmt::format("Branch {} {} {}", ref.ToString(), rebase ? "rebased onto" : "reset to",
                           b.parent),
               Clock::now() - start);
    PrintCreated(b);
    return Status::OK();
  }

  // One subcommand "branch <verb> P/B" whose body gets the parsed reference.
  CLI::App* BranchVerb(CLI::App* branch, const std::string& verb, const std::string& help,
                       std::function<Status(Engine&, const BranchRef&)> body) {
    auto* cmd = branch->add_subcommand(verb, help);
    cmd->add_option("branch", ref_text_, "PROJECT/BRANCH")->required();
    cmd->callback([this, verb, body] {
      action_ = [this, verb, body] {
        return With("branch " + verb, ref_text_, [&](Engine& e) -> Status {
          PGB_ASSIGN_OR_RETURN(BranchRef ref, ParseBranchRef(ref_text_));
          return body(e, ref);
        });
      };
    });
    return cmd;
  }

  void DefineBranch() {
    auto* branch =
        app_.add_subcommand("branch", "Create, list, reset and delete branches")->alias("br");
    branch->require_subcommand(1);

    auto* create = BranchVerb(branch, "create", "Create a branch: a writable clone of its parent",
                              [this](Engine& e, const BranchRef& ref) -> Status {
                                auto start = Clock::now();
                                BranchCreateOptions o;
                                if (!parent_.empty()) o.parent = parent_;
                                o.snapshot = snapshot_id_;
                                o.fast = fast_;
                                o.port = port_;
                                if (!pitr_.empty()) o.pitr = pitr_;
                                o.max_size_bytes = max_size_;
                                o.ttl_s = ttl_;
                                o.idle_ttl_s = idle_ttl_;
                                o.protect = protect_;
                                PGB_ASSIGN_OR_RETURN(o.labels, ParseLabels(labels_));
                                PGB_ASSIGN_OR_RETURN(BranchInfo b, e.CreateBranch(ref, o));
                                if (suspend_after_) {
                                  PGB_RETURN_IF_ERROR(e.SetSuspendAfter(ref, suspend_after_));
                                  b.suspend_after_s = suspend_after_;
                                }
                                out_->Done(fmt::format("Branch {} ready", ref.ToString()),
                                           Clock::now() - start);
                                PrintCreated(b);
                                return Status::OK();
                              });
    create->add_option("--parent", parent_, "PROJECT/BRANCH to clone (default PROJECT/main)");
    create
        ->add_option("--snapshot", snapshot_id_,
                     "Clone this snapshot (see 'pgbranch snapshot list') instead of taking one")
        ->transform(DecimalIn(1, kMaxId));
    create->add_flag("--fast", fast_,
                     "Skip the CHECKPOINT on a running parent (the clone "
                     "then replays more WAL when it starts)");
    create->add_option("--port", port_, "Port for the branch")->transform(DecimalIn(1024, 65535));
    auto* pitr = create->add_option("--pitr", pitr_,
                                    "The parent as it was at this time or LSN: "
                                    "'2026-11-21T14:30:00Z' (offsets accepted), '2 hours ago', "
                                    "'0/3000060'");
    create
        ->add_option("--max-size", max_size_,
                     "The most new data the branch may write, e.g. 2G (default: what the pool "
                     "has free, less the headroom kept for main)")
        ->transform(SizeAtLeast(64ull << 20, "a branch"))
        ->excludes(pitr);
    create
        ->add_option("--suspend-after", suspend_after_,
                     "Suspend it when idle this long (no sessions) while 'pgbranch serve' runs; "
                     "a connection through the proxy wakes it: 30s, 10m, 2h, 1d or never "
                     "(default: the project's)")
        ->transform(IdleDuration());
    AddLifetimeOptions(create);
    create->add_flag("--protect", protect_,
                     "Protect it from delete, reset and expiry (as 'branch protect')");
    AddJson(create);

    auto* set = BranchVerb(
        branch, "set", "Change a branch's TTL, idle TTL or labels",
        [this](Engine& e, const BranchRef& ref) -> Status {
          BranchChanges c;
          c.ttl_s = ttl_;
          c.idle_ttl_s = idle_ttl_;
          c.clear_ttl = no_ttl_;
          PGB_ASSIGN_OR_RETURN(c.add_labels, ParseLabels(labels_));
          c.remove_labels = unlabels_;
          if (!c.ttl_s && !c.idle_ttl_s && !c.clear_ttl && c.add_labels.empty() &&
              c.remove_labels.empty()) {
            return Status::InvalidArgument(
                "nothing to change; give --ttl, --idle-ttl, --no-ttl, --label or --unlabel");
          }
          PGB_ASSIGN_OR_RETURN(BranchInfo b, e.SetBranch(ref, c));
          out_->Note(fmt::format("{}: expires {}; labels {}", ref.ToString(), ExpiryText(b),
                                 LabelText(b.labels)));
          if (json_) out_->Json(ToJson(b, UriForm::kMasked));
          return Status::OK();
        });
    AddLifetimeOptions(set);
    set->add_flag("--no-ttl", no_ttl_, "Remove the TTL and the idle TTL");
    set->add_option("--unlabel", unlabels_, "Remove the label with this key (repeatable)");
    AddJson(set);

    for (bool protect : {true, false}) {
      auto* cmd =
          BranchVerb(branch, protect ? "protect" : "unprotect",
                     protect ? "Refuse delete, reset and expiry of a branch unless forced"
                             : "Let a protected branch be deleted, reset and expired again",
                     [this, protect](Engine& e, const BranchRef& ref) -> Status {
                       PGB_ASSIGN_OR_RETURN(BranchInfo b, e.ProtectBranch(ref, protect));
                       out_->Note(fmt::format("{} is {}", ref.ToString(),
                                              protect ? "protected" : "no longer protected"));
                       if (json_) out_->Json(ToJson(b, UriForm::kMasked));
                       return Status::OK();
                     });
      AddJson(cmd);
    }

    auto* list = branch->add_subcommand("list", "List branches")->alias("ls");
    list->add_option("project", name_, "Only this project");
    list->add_option("--label", labels_,
                     "Only branches with this label, key=value or key (repeatable: all of them)");
    list->add_flag("--tree", tree_, "Show the lineage: each branch under its parent");
    AddJson(list);
    AddRefreshSizes(list);
    list->callback([this] {
      action_ = [this] {
        return With("branch list", name_, [&](Engine& e) -> Status {
          PGB_ASSIGN_OR_RETURN(auto branches,
                               e.ListBranches(name_, tree_ ? SizeMode::kNone : Sizes()));
          PGB_ASSIGN_OR_RETURN(LabelFilter filter, ParseLabelFilter(labels_));
          std::erase_if(branches, [&](const BranchInfo& b) { return !filter.Matches(b.labels); });
          if (tree_ && !json_) {
            PrintTree(branches);
          } else {
            PrintBranches(branches);
          }
          return Status::OK();
        });
      };
    });

    auto* get = BranchVerb(
        branch, "get", "Show one branch", [this](Engine& e, const BranchRef& ref) -> Status {
          PGB_ASSIGN_OR_RETURN(BranchInfo b, e.GetBranch(ref, Sizes()));
          Result<SpaceLimit> limit = e.BranchSpaceLimit(ref);
          if (json_) {
            out_->Json(ToJson(b, limit.ok() ? limit->limit_bytes : std::nullopt));
            return Status::OK();
          }
          PrintBranch(b, limit);
          return Status::OK();
        });
    AddJson(get);
    AddRefreshSizes(get);

    auto* logs = BranchVerb(branch, "logs", "The branch's server log (native or container)",
                            [this](Engine& e, const BranchRef& ref) -> Status {
                              PGB_ASSIGN_OR_RETURN(std::string text, e.BranchLogs(ref, tail_));
                              if (!text.empty() && text.back() == '\n') text.pop_back();
                              // A server log holds what clients sent (statements, names).
                              out_->Print(EscapeForTerminal(text, "\n\t"));
                              return Status::OK();
                            });
    logs->add_option("--tail", tail_, "How many of the last lines (default 50)")
        ->transform(DecimalIn(1, 1000000));

    auto* del = BranchVerb(branch, "delete", "Delete a branch and its data",
                           [this](Engine& e, const BranchRef& ref) -> Status {
                             auto start = Clock::now();
                             PGB_RETURN_IF_ERROR(e.DeleteBranch(ref, recursive_, force_));
                             out_->Done(fmt::format("Branch {} deleted", ref.ToString()),
                                        Clock::now() - start);
                             return Status::OK();
                           });
    del->alias("rm");
    del->add_flag("--recursive", recursive_, "Also delete the branches made from it");
    del->add_flag("--force", force_, "Delete it even if it (or a child) is protected");

    auto* reset =
        BranchVerb(branch, "reset",
                   "Replace a branch's data with its parent's current data (same "
                   "port and URI)",
                   [this](Engine& e, const BranchRef& ref) { return Reset(e, ref, false); });
    reset->add_flag("--fast", fast_, "Skip the CHECKPOINT on a running parent");
    reset
        ->add_option("--snapshot", snapshot_id_,
                     "Reset to this snapshot (of the branch or of its parent) instead")
        ->transform(DecimalIn(1, kMaxId));
    reset->add_flag("--force", force_, "Reset it even if it is protected");
    AddJson(reset);

    auto* rebase = BranchVerb(
        branch, "rebase",
        "Move a branch onto its parent's data as it is now (after 'project refresh'); keeps its "
        "port, password, TTL, labels and protection",
        [this](Engine& e, const BranchRef& ref) { return Reset(e, ref, true); });
    rebase->add_flag("--fast", fast_, "Skip the CHECKPOINT on a running parent");
    rebase->add_flag("--force", force_, "Rebase it even if it is protected");
    AddJson(rebase);

    using Verb = Result<BranchInfo> (Engine::*)(const BranchRef&);
    const std::vector<std::tuple<std::string, std::string, Verb, std::string>> simple = {
        {"start", "Start a stopped branch", &Engine::StartBranch, "started"},
        {"stop", "Stop a branch (its data stays)", &Engine::StopBranch, "stopped"},
        {"restart", "Stop and start a branch", &Engine::RestartBranch, "restarted"},
        {"suspend",
         "Stop a branch until a client connects to it through 'pgbranch serve' (data stays)",
         &Engine::SuspendBranch, "suspended"},
        {"resume", "Start a suspended branch now", &Engine::StartBranch, "resumed"},
    };
    for (const auto& [verb, help, method, done] : simple) {
      auto* cmd = BranchVerb(
          branch, verb, help,
          [this, method = method, done = done](Engine& e, const BranchRef& ref) -> Status {
            auto start = Clock::now();
            PGB_ASSIGN_OR_RETURN(BranchInfo b, (e.*method)(ref));
            out_->Done(fmt::format("Branch {} {}", ref.ToString(), done), Clock::now() - start);
            if (json_) out_->Json(ToJson(b, UriForm::kWithPassword));
            return Status::OK();
          });
      AddJson(cmd);
    }

    auto* rename =
        BranchVerb(branch, "rename", "Rename a branch (its port and URI stay)",
                   [this](Engine& e, const BranchRef& ref) -> Status {
                     PGB_ASSIGN_OR_RETURN(BranchInfo b, e.RenameBranch(ref, new_name_));
                     out_->Note(fmt::format("{} is now {}/{}", ref.ToString(), b.project, b.name));
                     if (json_) out_->Json(ToJson(b, UriForm::kWithPassword));
                     return Status::OK();
                   });
    rename->add_option("new_name", new_name_, "The new name (without the project)")->required();
    AddJson(rename);

    auto* url = BranchVerb(branch, "url", "Print the branch's connection URI, with its password",
                           [this](Engine& e, const BranchRef& ref) -> Status {
                             if (service_) return WriteService(e, ref);
                             if (proxy_) return PrintProxyUrl(e, ref);
                             PGB_ASSIGN_OR_RETURN(BranchInfo b, e.GetBranch(ref));
                             if (!verify_) {
                               out_->Print(b.uri);
                               return Status::OK();
                             }
                             PGB_ASSIGN_OR_RETURN(LocalCa ca, e.CertificateAuthority());
                             out_->Print(WithVerifyFull(b.uri, ca.cert_path));
                             return Status::OK();
                           });
    auto* verify = url->add_flag("--verify", verify_,
                                 "Require TLS and verify the server against pgbranch's CA "
                                 "(sslmode=verify-full&sslrootcert=...)");
    url->add_flag("--service", service_,
                  "Write the branch's entry [P-B] to libpq's service file ($PGSERVICEFILE, else "
                  "~/.pg_service.conf; no password in it) and print service=P-B")
        ->excludes(verify);
    url->add_flag("--proxy", proxy_,
                  "The URI through 'pgbranch serve' (one port for every branch; database "
                  "PROJECT/BRANCH), with the project's proxy password");

    auto* env = BranchVerb(branch, "env",
                           "Print PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSFILE, PGSSLMODE and "
                           "PGSSLROOTCERT for the branch, for "
                           "eval \"$(pgbranch branch env P/B)\": no password on any command line",
                           [this](Engine& e, const BranchRef& ref) -> Status {
                             PGB_ASSIGN_OR_RETURN(BranchConnection c, e.ConnectionOf(ref));
                             if (json_) {
                               nlohmann::json j = nlohmann::json::object();
                               for (const auto& [k, v] : ConnectionEnv(c)) j[k] = v;
                               out_->Json(j);
                               return Status::OK();
                             }
                             // A password or service from the caller's shell would take precedence
                             // over the file.
                             out_->Print("unset PGPASSWORD PGSERVICE PGHOSTADDR");
                             for (const auto& [k, v] : ConnectionEnv(c)) {
                               out_->Print(fmt::format("export {}={}", k, ShellQuote(v)));
                             }
                             return Status::OK();
                           });
    AddJson(env);
  }

  // `branch url P/B --service`: the branch's section in libpq's per-user connection service file
  // (docs 34.17), with the same parameters as `branch env` (the password stays in the
  // branch's own 0600 file, named by passfile=). Rewrites a section pgbranch wrote for this
  // branch; refuses one it did not.
  Status WriteService(Engine& e, const BranchRef& ref) {
    PGB_ASSIGN_OR_RETURN(BranchConnection c, e.ConnectionOf(ref));
    std::string path;
    for (const auto& [k, v] : caller_pg_env_) {
      if (k == "PGSERVICEFILE" && !v.empty()) path = v;
    }
    if (path.empty()) {
      const char* home = ::getenv("HOME");
      if (home == nullptr || *home == '\0') {
        return Status::FailedPrecondition("set HOME or PGSERVICEFILE: no service file to write");
      }
      path = JoinPath(home, ".pg_service.conf");
    }
    ServiceEntry entry;
    entry.name = ServiceName(ref.project, ref.branch);
    entry.owner = fmt::format("written by pgbranch for {} of {}", c.ref,
                              home_.empty() ? DefaultHome() : home_);
    entry.keywords = ConnectionKeywords(c);
    Result<std::string> text = ReadFile(path);
    if (!text.ok() && !text.status().Is(StatusCode::kNotFound)) return text.status();
    Result<std::string> updated = PutServiceEntry(text.ok() ? *text : "", entry);
    if (!updated.ok()) {
      return Status(updated.status().code(),
                    fmt::format("{} {}", path, updated.status().message()));
    }
    // An existing file keeps its mode and owner; a new one is private.
    struct stat st {};
    mode_t mode = 0600;
    std::optional<FileOwner> owner;
    if (text.ok() && ::stat(path.c_str(), &st) == 0) {
      mode = st.st_mode & 07777;
      owner = FileOwner{st.st_uid, st.st_gid};
    }
    if (!text.ok() || *updated != *text) {
      PGB_RETURN_IF_ERROR(WriteFileAtomic(path, *updated, mode, owner));
    }
    out_->Print("service=" + entry.name);
    out_->Note(
        fmt::format("[{}] is in {}; connect with: psql service={}", entry.name, path, entry.name));
    return Status::OK();
  }

  // `pgbranch psql P/B [-- psql arguments]`: psql connected to the branch, its password read
  // from the branch's password file, never on a command line or in the environment.
  void DefinePsql() {
    auto* cmd = app_.add_subcommand(
        "psql", "Run psql on a branch (the password comes from a private file, never argv)");
    cmd->add_option("branch", ref_text_, "PROJECT/BRANCH")->required();
    cmd->add_option("psql_args", psql_args_, "Arguments for psql, after --");
    cmd->callback([this] {
      action_ = [this] {
        return With("psql", ref_text_, [&](Engine& e) -> Status {
          PGB_ASSIGN_OR_RETURN(BranchRef ref, ParseBranchRef(ref_text_));
          PGB_ASSIGN_OR_RETURN(BranchConnection c, e.ConnectionOf(ref));
          if (c.state != "running") {
            return Status::FailedPrecondition(fmt::format(
                "{} is {}; 'pgbranch branch start {}' starts it", c.ref, c.state, c.ref));
          }
          Command psql;
          psql.argv = {c.psql};
          psql.argv.insert(psql.argv.end(), psql_args_.begin(), psql_args_.end());
          // The caller's PG* settings (PGOPTIONS, PGSSLMODE, ...) but not where or as whom.
          std::vector<std::pair<std::string, std::string>> ours = ConnectionEnv(c);
          for (const auto& [k, v] : caller_pg_env_) {
            bool replaced = k == "PGPASSWORD" || k == "PGSERVICE" || k == "PGHOSTADDR" ||
                            std::any_of(ours.begin(), ours.end(),
                                        [&k = k](const auto& kv) { return kv.first == k; });
            if (!replaced) psql.env.emplace_back(k, v);
          }
          psql.env.insert(psql.env.end(), ours.begin(), ours.end());
          exec_after_ = std::move(psql);
          return Status::OK();
        });
      };
    });
  }

  // `pgbranch ca`: the local certificate authority that issues every branch's TLS certificate.
  void DefineCa() {
    auto* cmd = app_.add_subcommand(
        "ca",
        "Print the path (or with --pem the certificate) of the CA that issues branches' TLS "
        "certificates");
    cmd->add_flag("--pem", pem_, "Print the CA certificate (PEM) instead of its path");
    AddJson(cmd);
    auto* import_cmd = cmd->add_subcommand(
        "import",
        "Make your own CA the one that issues branches' certificates (the one before is kept "
        "aside); branches get new certificates at their next start");
    import_cmd
        ->add_option("--cert", ca_cert_,
                     "The CA certificate (PEM), optionally followed by its chain up to a root")
        ->required();
    import_cmd->add_option("--key", ca_key_, "The CA's private key (PEM, unencrypted)")->required();
    AddJson(import_cmd);
    import_cmd->callback([this] {
      action_ = [this] {
        return With("ca import", ca_cert_, [&](Engine& e) -> Status {
          std::string replaced;
          PGB_ASSIGN_OR_RETURN(LocalCa ca,
                               e.ImportCertificateAuthority(ca_cert_, ca_key_, &replaced));
          if (json_) {
            out_->Json({{"path", ca.cert_path}, {"pem", ca.cert_pem}, {"replaced", replaced}});
            return Status::OK();
          }
          out_->Print(ca.cert_path);
          if (!replaced.empty()) out_->Note(fmt::format("the CA before it is in {}", replaced));
          out_->Note(
              "running branches keep their certificates until their next start ('pgbranch "
              "branch restart P/B')");
          return Status::OK();
        });
      };
    });
    cmd->callback([this, cmd] {
      if (cmd->got_subcommand("import")) return;
      action_ = [this] {
        return With("ca", "", [&](Engine& e) -> Status {
          PGB_ASSIGN_OR_RETURN(LocalCa ca, e.CertificateAuthority());
          if (json_) {
            out_->Json({{"path", ca.cert_path}, {"pem", ca.cert_pem}});
          } else if (pem_) {
            std::string pem = ca.cert_pem;
            if (!pem.empty() && pem.back() == '\n') pem.pop_back();
            out_->Print(pem);
          } else {
            out_->Print(ca.cert_path);
          }
          return Status::OK();
        });
      };
    });
  }

  // `pgbranch setup --user NAME`: root prepares an account to run pgbranch without root (pgd's
  // `setup` does the same for its users): a Btrfs image of its own, mounted where Btrfs lets it
  // delete its subvolumes.
  void DefineSetup() {
    auto* cmd = app_.add_subcommand(
        "setup",
        "As root: give a user a Btrfs filesystem of their own for a pool (an image file, "
        "loop-mounted with user_subvol_rm_allowed); run again after a reboot to mount it");
    cmd->add_option("--user", setup_.user, "The account that will run pgbranch")->required();
    cmd->add_option("--dir", setup_.dir,
                    "Where the image (DIR/pool.img) and its mount point (DIR/pool) go; default "
                    "/var/lib/pgbranch/users/USER");
    cmd->add_option("--size", setup_.size,
                    "Size of a new image, e.g. 20G: at least 1 GiB; default 80% of the free space "
                    "next to it, at most 64 GiB")
        ->transform(ImageSize());
    cmd->callback([this] { action_ = [this] { return RunSetup(); }; });
  }

  int RunSetup() {
    auto start = Clock::now();
    Status s = [&]() -> Status {
      if (!RunningAsRoot()) {
        return Status::FailedPrecondition(
            "run it as root: it makes and loop-mounts a filesystem for the user");
      }
      PGB_ASSIGN_OR_RETURN(OsUser user, LookupOsUser(setup_.user));
      if (user.uid == 0) return Status::InvalidArgument("root needs no setup");
      PGB_ASSIGN_OR_RETURN(
          std::string dir,
          AbsolutePath(setup_.dir.empty() ? "/var/lib/pgbranch/users/" + user.name : setup_.dir));
      const std::string image = JoinPath(dir, "pool.img"), mount = JoinPath(dir, "pool");
      uint64_t size = 0;
      if (setup_.size) {
        size = *setup_.size;
      } else if (!PathExists(image)) {
        PGB_ASSIGN_OR_RETURN(size, DefaultImageSize(image, 64 * kGiB));
      }
      PGB_ASSIGN_OR_RETURN(
          bool made,
          SetUpUserImage(image, mount, size, FileOwner{user.uid, user.gid}, *session_.runner));
      out_->Done(fmt::format("{} {} for {}, mounted at {} with user_subvol_rm_allowed",
                             made ? "Made" : "Kept", image, user.name, mount),
                 Clock::now() - start);
      out_->Print(fmt::format("{} can now run: pgbranch init --btrfs {}", user.name, mount));
      out_->Note(fmt::format(
          "after a reboot, run 'pgbranch setup --user {}' again as root to mount it", user.name));
      return Status::OK();
    }();
    if (s.ok()) return 0;
    out_->Error("setup", setup_.user, s);
    return Classify(s.code()).exit_code;
  }

  void DefineImage() {
    auto* image = app_.add_subcommand("image", "Container images of PostgreSQL for docker/podman");
    image->require_subcommand(1);
    auto* build = image->add_subcommand(
        "build",
        "Build pgbranch/postgres:N without a registry: debootstrap of the Debian release that "
        "ships PostgreSQL N, then docker/podman import");
    build->add_option("--pg-version", pg_version_, "13 (bullseye), 15 (bookworm) or 17 (trixie)")
        ->required()
        ->transform(DecimalIn(13, 17))
        ->check(CLI::IsMember({13, 15, 17}));
    build
        ->add_option("--runtime", engines_,
                     "Import into this engine (docker, podman; repeatable; default docker)")
        ->check(CLI::IsMember({"docker", "podman"}));
    build->add_option("--image", image_, "Tag (default pgbranch/postgres:N)");
    build->add_option("--mirror", mirror_, "Debian mirror (default http://deb.debian.org/debian)");
    build->callback([this] {
      action_ = [this] {
        return With("image build", fmt::format("PostgreSQL {}", pg_version_.value_or(0)),
                    [&](Engine& e) -> Status {
                      auto start = Clock::now();
                      ImageBuildOptions o;
                      o.major = *pg_version_;
                      o.engines = engines_.empty() ? std::vector<std::string>{"docker"} : engines_;
                      o.image = image_;
                      if (!mirror_.empty()) o.mirror = mirror_;
                      PGB_ASSIGN_OR_RETURN(ImageInfo info, e.BuildImage(o));
                      out_->Done(fmt::format("Image {} built: PostgreSQL {} in {}, postgres is "
                                             "uid {}, imported into {}",
                                             info.image, info.version, info.bin_dir, info.uid,
                                             fmt::join(o.engines, " and ")),
                                 Clock::now() - start);
                      return Status::OK();
                    });
      };
    });
  }

  void DefineStatus() {
    auto* cmd = app_.add_subcommand("status", "Pool usage, projects and branches");
    AddJson(cmd);
    AddRefreshSizes(cmd);
    cmd->callback([this] {
      action_ = [this] {
        return With("status", "", [&](Engine& e) -> Status {
          PGB_ASSIGN_OR_RETURN(StatusInfo s, e.GetStatus(Sizes()));
          if (json_) {
            out_->Json(ToJson(s));
            return Status::OK();
          }
          PrintStatusHeader(s);
          out_->Print("");
          if (s.branches.empty()) {
            out_->Print("No projects yet. Create one with: pgbranch project create NAME");
          } else {
            PrintBranches(s.branches);
          }
          return Status::OK();
        });
      };
    });
  }

  void PrintStatusHeader(const StatusInfo& s) {
    std::vector<std::vector<Cell>> rows;
    if (s.pool.configured) {
      rows.push_back({"Pool", s.pool.description});
      if (!s.pool.why.empty()) rows.push_back({"Chosen", s.pool.why});
      if (!s.pool.capabilities.copy_on_write) {
        rows.push_back({"Note",
                        "this pool makes full copies: every branch is slow to make and "
                        "takes its parent's full size"});
      } else if (!s.pool.capabilities.atomic_snapshots) {
        rows.push_back({"Note",
                        "copies file by file (reflink), bracketed by PostgreSQL's backup "
                        "API while the source runs"});
      }
      if (s.pool.usage) {
        rows.push_back(
            {"Usage", fmt::format("{} used, {} free of {}", FormatBytes(s.pool.usage->used_bytes),
                                  FormatBytes(s.pool.usage->free_bytes),
                                  FormatBytes(s.pool.usage->size_bytes))});
      }
    } else {
      rows.push_back({"Pool", "none yet: the first 'project create' makes one under " + s.home});
    }
    rows.push_back({"Runtime", fmt::format("native PostgreSQL, servers run as OS user {}, ports {}",
                                           OrDash(s.os_user), FormatPortRange(s.ports))});
    for (const auto& p : s.projects) {
      if (p.runtime == "native") continue;
      rows.push_back({"", fmt::format("{}: {} containers of {}", p.name, p.runtime, p.image)});
    }
    std::vector<std::string> projects;
    for (const auto& p : s.projects) {
      projects.push_back(
          fmt::format("{} (PostgreSQL {}, {} branches)", p.name, p.pg_version, p.branch_count));
    }
    rows.push_back(
        {"Projects", projects.empty() ? "none" : fmt::format("{}", fmt::join(projects, ", "))});
    for (const auto& r : rows) {
      out_->Print(fmt::format("{:<10}{}", out_->Paint(r[0].text, Tone::kBold), Shown(r[1].text)));
    }
  }

  // `branch url --proxy` and `project url`: the URI through the proxy, and a note when
  // `serve` is not running now.
  Status PrintProxyUrl(Engine& e, const BranchRef& ref) {
    PGB_ASSIGN_OR_RETURN(ProxyUrl url, e.ProxyUrlOf(ref, verify_));
    if (!url.serve_running) {
      out_->Note("'pgbranch serve' is not running: start it before connecting");
    }
    out_->Print(url.uri);
    return Status::OK();
  }

  void PrintBranches(const std::vector<BranchInfo>& branches) {
    if (json_) {
      nlohmann::json arr = nlohmann::json::array();
      for (const auto& b : branches) arr.push_back(ToJson(b, UriForm::kMasked));
      out_->Json(arr);
      return;
    }
    std::vector<std::vector<Cell>> rows;
    for (const auto& b : branches) {
      std::string parent = b.parent.empty() ? "-" : b.parent.substr(b.parent.find('/') + 1);
      // A container that ended by itself says how ("exited (code 137)").
      std::string state =
          b.state == "exited" || b.state == "restarting" ? b.runtime_detail : b.state;
      // The project's active branch (where PROJECT/@ leads through `serve`) is marked '*'.
      rows.push_back({b.project + "/" + b.name + (b.active ? " *" : ""), parent,
                      Cell(state, StateTone(b.state)), std::to_string(b.port), Bytes(b.size_bytes),
                      Bytes(b.exclusive_bytes),
                      b.uptime_seconds ? FormatAge(std::chrono::seconds(*b.uptime_seconds)) : "-",
                      WindowText(b.window), ExpiryText(b, /*brief=*/true), b.masked_uri});
    }
    out_->Table({"BRANCH", "PARENT", "STATE", "PORT", "SIZE", "EXCLUSIVE", "UPTIME", "RECOVERABLE",
                 "EXPIRES", "URI"},
                rows);
    std::string age = OldestSizeAge(branches, SystemClock());
    if (!age.empty()) {
      out_->Note(
          fmt::format("sizes as last measured, up to {} ago: --refresh measures them now", age));
    }
    for (const auto& b : branches) {
      if (b.replica)
        out_->Print(fmt::format("{}/{} {}", b.project, b.name, ReplicaText(*b.replica)));
    }
  }

  // "follows host=... : streaming, 0 B behind (0.0 s)".
  static std::string ReplicaText(const BranchInfo::Replica& r) {
    std::string state = r.streaming ? "streaming" : "NOT streaming (the source is unreachable)";
    return fmt::format("follows {}{}: {}, {} behind ({:.1f} s), replayed to {}", r.source,
                       r.slot.empty() ? "" : " through slot " + r.slot, state,
                       FormatBytes(r.lag_bytes), r.lag_seconds, OrDash(r.replay_lsn));
  }

  // Each branch under its parent, as `git log --graph` draws a tree.
  void PrintTree(const std::vector<BranchInfo>& branches) {
    std::map<std::string, std::vector<const BranchInfo*>> children;
    std::vector<const BranchInfo*> roots;
    for (const auto& b : branches) {
      if (b.parent.empty()) {
        roots.push_back(&b);
      } else {
        children[b.parent].push_back(&b);
      }
    }
    std::function<void(const BranchInfo&, const std::string&, bool, bool)> draw =
        [&](const BranchInfo& b, const std::string& prefix, bool last, bool root) {
          std::string ref = b.project + "/" + b.name;
          out_->Print(fmt::format("{}{}{}  {}  {}", prefix, root ? "" : (last ? "└── " : "├── "),
                                  (root ? ref : b.name) + (b.active ? " *" : ""),
                                  out_->Paint(Shown(b.state), StateTone(b.state)), b.port));
          const auto& kids = children[ref];
          for (size_t i = 0; i < kids.size(); ++i) {
            draw(*kids[i], root ? "" : prefix + (last ? "    " : "│   "), i + 1 == kids.size(),
                 false);
          }
        };
    for (const auto* r : roots) draw(*r, "", true, true);
  }

  void PrintSnapshots(const std::vector<SnapshotInfo>& snaps) {
    if (json_) {
      nlohmann::json arr = nlohmann::json::array();
      for (const auto& s : snaps) arr.push_back(ToJson(s));
      out_->Json(arr);
      return;
    }
    std::vector<std::vector<Cell>> rows;
    for (const auto& s : snaps) {
      rows.push_back(
          {std::to_string(s.id), s.branch, OrDash(s.label), s.implicit ? "implicit" : "explicit",
           Age(s.created_at, SystemClock()), Bytes(s.size_bytes),
           s.dependents.empty() ? "-" : fmt::format("{}", fmt::join(s.dependents, ", "))});
    }
    out_->Table({"ID", "BRANCH", "LABEL", "KIND", "CREATED", "SIZE", "BRANCHES MADE FROM IT"},
                rows);
  }

  // The space limit of `branch get`: its size and use, "none", or why the pool has none.
  static std::string LimitText(const Result<SpaceLimit>& limit) {
    if (!limit.ok()) {
      return limit.status().Is(StatusCode::kNotSupported) ? "not available on this pool" : "-";
    }
    if (!limit->limit_bytes) return "none";
    return fmt::format("{} ({} used)", FormatBytes(*limit->limit_bytes),
                       FormatBytes(limit->used_bytes));
  }

  // " (measured 12m ago)" when the sizes shown are older than kSizeAgeShown.
  static std::string MeasuredText(const BranchInfo& b) {
    std::string age = OldestSizeAge({b}, SystemClock());
    return age.empty() ? "" : fmt::format(" (measured {} ago; --refresh measures now)", age);
  }

  void PrintBranch(const BranchInfo& b, const Result<SpaceLimit>& limit) {
    out_->Table(
        {"FIELD", "VALUE"},
        {{"branch", b.project + "/" + b.name},
         {"parent", OrDash(b.parent)},
         {"state", Cell(b.runtime_detail.empty() ? b.state : b.runtime_detail, StateTone(b.state))},
         {"port", std::to_string(b.port)},
         {"uri", b.masked_uri},
         {"size", Bytes(b.size_bytes) + MeasuredText(b)},
         {"exclusive", Bytes(b.exclusive_bytes)},
         {"space limit", LimitText(limit)},
         {"created", b.created_at},
         {"recovery target", OrDash(b.recovery_target)},
         {"expires", ExpiryText(b)},
         {"protected", b.is_protected ? "yes (delete, reset and expiry need --force)" : "no"},
         {"labels", LabelText(b.labels)},
         {"replica", b.replica ? ReplicaText(*b.replica) : "-"},
         {"uptime", b.uptime_seconds ? FormatAge(std::chrono::seconds(*b.uptime_seconds)) : "-"},
         {"postgresql", b.pg_version},
         {"data_dir", OrDash(b.data_dir)},
         {"log", b.container.empty() ? b.log_path
                                     : fmt::format("pgbranch branch logs {}/{} (container {})",
                                                   b.project, b.name, b.container)}});
  }

  void AddLifetimeOptions(CLI::App* cmd) {
    cmd->add_option("--ttl", ttl_,
                    "Delete it this long from now ('pgbranch serve' does): 30m, 12h, 2d")
        ->transform(Lifetime());
    cmd->add_option("--idle-ttl", idle_ttl_,
                    "Delete it after this long without a client session ('pgbranch serve' "
                    "watches): 2h, 7d")
        ->transform(Lifetime());
    cmd->add_option("--label", labels_, "A label key=value, for filtering lists (repeatable)");
  }

  static Result<std::map<std::string, std::string>> ParseLabels(
      const std::vector<std::string>& texts) {
    std::map<std::string, std::string> out;
    for (const auto& t : texts) {
      PGB_ASSIGN_OR_RETURN(auto kv, ParseLabel(t));
      out[kv.first] = kv.second;
    }
    return out;
  }

  static std::string LabelText(const std::map<std::string, std::string>& labels) {
    if (labels.empty()) return "-";
    std::vector<std::string> parts;
    for (const auto& [k, v] : labels) parts.push_back(k + "=" + v);
    return fmt::format("{}", fmt::join(parts, ", "));
  }

  // When `serve` deletes the branch: "in 1d23h (2026-12-05T10:00:00.000Z)", "after 2h without
  // a session", both, or "never"; brief (for tables): "1d23h", "idle 2h". A protected branch
  // says so: expiry passes it by.
  static std::string ExpiryText(const BranchInfo& b, bool brief = false) {
    std::vector<std::string> parts;
    if (b.expires_at) {
      auto at = ParseTimestamp(*b.expires_at);
      std::string left =
          at.ok() ? FormatAge(SecondsBetween(SystemClock().Now(), *at)) : *b.expires_at;
      parts.push_back(brief ? left : fmt::format("in {} ({})", left, *b.expires_at));
    }
    if (b.idle_ttl_s) {
      std::string idle = FormatAge(std::chrono::seconds(*b.idle_ttl_s));
      parts.push_back(brief ? "idle " + idle : fmt::format("after {} without a session", idle));
    }
    std::string text = parts.empty() ? (brief ? "-" : "never")
                                     : fmt::format("{}", fmt::join(parts, brief ? ", " : " or "));
    if (b.is_protected) text += brief ? " (protected)" : " (protected: expiry passes it by)";
    return text;
  }

  // After create/reset: JSON with the full URI, or a line with the masked one.
  void PrintCreated(const BranchInfo& b) {
    if (json_) {
      out_->Json(ToJson(b, UriForm::kWithPassword));
      return;
    }
    out_->Print(fmt::format("{}/{}  {}  port {}  {}", b.project, b.name,
                            out_->Paint(b.state, StateTone(b.state)), b.port, Shown(b.masked_uri)));
    out_->Print(out_->Paint(fmt::format("connect: pgbranch psql {0}/{1}  (shell: eval \"$(pgbranch "
                                        "branch env {0}/{1})\"; full URI: pgbranch branch url "
                                        "{0}/{1})",
                                        b.project, b.name),
                            Tone::kDim));
  }

  CLI::App app_;
  Session session_;
  std::unique_ptr<Output> out_;
  std::function<int()> action_;

  std::string home_;
  bool verbose_ = false;
  bool quiet_ = false;
  bool json_ = false;
  struct {
    std::string image_text;
    std::optional<uint64_t> size;
    std::string fs;
    std::string btrfs_text;
    std::string zfs_text;
    std::string reflink_text;
    std::string copy_text;
    std::string port_range;
    std::string os_user;
  } init_;
  std::string name_;
  std::string scope_ = "write";  // token create --scope
  // serve: the HTTP API
  bool no_api_ = false;
  std::string api_listen_ = "127.0.0.1:8432";
  bool api_tls_ = false;
  std::string api_tls_cert_;
  std::string api_tls_key_;
  bool insecure_http_ = false;
  std::string web_dir_;
  std::string ref_text_;
  std::vector<std::string> psql_args_;
  std::optional<Command> exec_after_;
  std::vector<std::pair<std::string, std::string>>
      caller_pg_env_;  // removed at start  // run in place of pgbranch once the engine is closed
  std::string parent_;
  std::string pitr_;
  std::string pg_bin_;
  std::string runtime_ = "native";
  std::string image_;
  std::optional<int> pg_version_;
  std::vector<std::string> engines_;
  std::string mirror_;
  int tail_ = 50;
  std::string listen_;
  std::optional<int> port_;
  std::optional<int64_t> snapshot_id_;
  std::optional<uint64_t> max_size_;
  std::string new_name_;
  int64_t snapshot_arg_ = 0;
  std::string label_;
  int days_ = -1;
  int limit_ = 50;
  bool tree_ = false;
  bool refresh_sizes_ = false;
  bool all_ = false;
  bool dry_run_ = false;
  bool fix_ = false;
  bool adopt_ = false;
  bool purge_ = false;
  int grace_days_ = 7;
  bool latest_ = false;
  bool allow_lost_catalog_ = false;
  bool fast_ = false;
  bool force_ = false;
  bool recursive_ = false;
  bool verify_ = false;                          // branch url --verify
  bool service_ = false;                         // branch url --service
  bool proxy_ = false;                           // branch url --proxy
  bool terminate_ = false;                       // use --terminate
  std::optional<int64_t> suspend_after_;         // --suspend-after, in seconds (0: never)
  std::string from_dump_;                        // project create --from-dump
  std::string from_server_;                      // project create --from-server
  std::string adopt_dir_;                        // project create --adopt
  bool adopt_stop_ = false;                      // project create --adopt --stop
  bool keep_data_ = false;                       // project delete --keep-data
  bool replica_ = false;                         // project create --replica
  bool logical_ = false;                         // project create --logical
  std::string slot_;                             // project create --slot
  int restore_jobs_ = 2;                         // project create --jobs
  std::vector<std::string> transforms_;          // project create --transform (repeatable)
  std::string cron_;                             // schedule add --snapshot
  std::string refresh_cron_;                     // schedule add --refresh
  std::optional<int64_t> keep_;                  // schedule add --keep
  std::optional<int64_t> max_age_;               // schedule add --max-age, in seconds
  int64_t schedule_id_ = 0;                      // schedule remove ID
  std::optional<int64_t> ttl_;                   // --ttl, in seconds
  std::optional<int64_t> idle_ttl_;              // --idle-ttl, in seconds
  bool protect_ = false;                         // --protect
  bool no_ttl_ = false;                          // --no-ttl
  std::vector<std::string> labels_;              // --label key=value (list: key or key=value)
  std::vector<std::string> unlabels_;            // --unlabel key
  std::string proxy_listen_ = "127.0.0.1:5432";  // serve --proxy-listen
  std::string tls_cert_, tls_key_;               // serve --tls-cert/--tls-key
  std::string sni_domain_ = "localhost";         // serve --sni-domain
  size_t max_connections_ = 1000;                // serve --max-connections
  int grace_seconds_ = 30;                       // serve --grace
  std::string ca_cert_, ca_key_;                 // ca import
  struct {
    std::string user;
    std::string dir;
    std::optional<uint64_t> size;
  } setup_;
  bool pem_ = false;  // ca --pem
};

}  // namespace

int RunCli(int argc, char** argv) {
  Cli cli;
  return cli.Run(argc, argv);
}

}  // namespace pgb
