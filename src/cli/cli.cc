#include "cli/cli.h"

#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <functional>
#include <memory>

#include "cli/output.h"
#include "common/bytes.h"
#include "common/subprocess.h"
#include "common/time.h"
#include "engine/engine.h"

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
  return FormatAge(std::chrono::duration_cast<std::chrono::seconds>(clock.Now() - *t)) + " ago";
}

std::string Bytes(const std::optional<uint64_t>& b) { return b ? FormatBytes(*b) : "-"; }

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
    return action_();
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
    auto engine = Engine::Open(env);
    spdlog::debug("engine open");
    Status s = engine.ok() ? body(**engine) : engine.status();
    if (!s.ok()) {
      out_->Error(operation, object, s);
      return kExitFailure;
    }
    return 0;
  }

  void AddJson(CLI::App* cmd) { cmd->add_flag("--json", json_, "Print JSON instead of text"); }

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
    DefineStatus();
  }

  void DefineInit() {
    auto* cmd = app_.add_subcommand("init",
                                    "Choose the pool and settings (optional: the first "
                                    "command sets up a default pool)");
    auto* image = cmd->add_option("--image", init_.image_text,
                                  "Image file to create, format as Btrfs and loop-mount (root)");
    cmd->add_option("--size", init_.size, "Size of the image file, e.g. 20G")
        ->transform(CLI::AsSizeValue(false))
        ->needs(image);
    auto* btrfs = cmd->add_option("--btrfs", init_.btrfs_text, "An existing directory on Btrfs");
    btrfs->excludes(image);
    cmd->add_option("--port-range", init_.port_range,
                    "Ports for branches, FIRST-LAST "
                    "(default 54320-54999)");
    cmd->add_option(
        "--os-user", init_.os_user,
        "OS account that runs PostgreSQL when pgbranch runs as root (default postgres)");
    AddJson(cmd);
    cmd->callback([this] {
      action_ = [this] {
        InitOptions o;
        if (!init_.image_text.empty()) o.image = init_.image_text;
        if (init_.size) o.size_bytes = init_.size;
        if (!init_.btrfs_text.empty()) o.btrfs_dir = init_.btrfs_text;
        if (!init_.port_range.empty()) o.port_range = init_.port_range;
        if (!init_.os_user.empty()) o.os_user = init_.os_user;
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
    create->add_option("--pg-bin", pg_bin_, "Directory of the PostgreSQL server binaries");
    create->add_option("--port", port_, "Port of the main branch")->check(CLI::Range(1024, 65535));
    create->add_option("--listen", listen_, "Address the servers listen on (default 127.0.0.1)");
    AddJson(create);
    create->callback([this] {
      action_ = [this] {
        return With("project create", name_, [&](Engine& e) -> Status {
          auto start = Clock::now();
          ProjectCreateOptions o;
          o.pg_bin = pg_bin_;
          o.port = port_;
          if (!listen_.empty()) o.listen_address = listen_;
          PGB_ASSIGN_OR_RETURN(BranchInfo main, e.CreateProject(name_, o));
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
          std::vector<std::vector<std::string>> rows;
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
          PGB_ASSIGN_OR_RETURN(auto branches, e.ListBranches(name_, /*with_sizes=*/false));
          if (json_) {
            nlohmann::json j = ToJson(p);
            j["branches"] = nlohmann::json::array();
            for (const auto& b : branches) j["branches"].push_back(ToJson(b));
            out_->Json(j);
            return Status::OK();
          }
          out_->Table({"FIELD", "VALUE"}, {{"name", p.name},
                                           {"postgresql", p.pg_version + " (" + p.pg_bin + ")"},
                                           {"runtime", p.runtime},
                                           {"created", p.created_at},
                                           {"branches", std::to_string(p.branch_count)}});
          return Status::OK();
        });
      };
    });

    auto* del = project->add_subcommand("delete", "Delete a project and all its data")->alias("rm");
    del->add_option("name", name_, "Project name")->required();
    del->add_flag("--force", force_, "Also delete its branches other than main");
    del->callback([this] {
      action_ = [this] {
        return With("project delete", name_, [&](Engine& e) -> Status {
          auto start = Clock::now();
          PGB_RETURN_IF_ERROR(e.DeleteProject(name_, force_));
          out_->Done(fmt::format("Project {} deleted", name_), Clock::now() - start);
          return Status::OK();
        });
      };
    });
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
                                o.fast = fast_;
                                o.port = port_;
                                PGB_ASSIGN_OR_RETURN(BranchInfo b, e.CreateBranch(ref, o));
                                out_->Done(fmt::format("Branch {} ready", ref.ToString()),
                                           Clock::now() - start);
                                PrintCreated(b);
                                return Status::OK();
                              });
    create->add_option("--parent", parent_, "PROJECT/BRANCH to clone (default PROJECT/main)");
    create->add_flag("--fast", fast_,
                     "Skip the CHECKPOINT on a running parent (the clone "
                     "then replays more WAL when it starts)");
    create->add_option("--port", port_, "Port for the branch")->check(CLI::Range(1024, 65535));
    AddJson(create);

    auto* list = branch->add_subcommand("list", "List branches")->alias("ls");
    list->add_option("project", name_, "Only this project");
    AddJson(list);
    list->callback([this] {
      action_ = [this] {
        return With("branch list", name_, [&](Engine& e) -> Status {
          PGB_ASSIGN_OR_RETURN(auto branches, e.ListBranches(name_, /*with_sizes=*/true));
          PrintBranches(branches);
          return Status::OK();
        });
      };
    });

    auto* get = BranchVerb(branch, "get", "Show one branch",
                           [this](Engine& e, const BranchRef& ref) -> Status {
                             PGB_ASSIGN_OR_RETURN(BranchInfo b, e.GetBranch(ref));
                             if (json_) {
                               out_->Json(ToJson(b));
                               return Status::OK();
                             }
                             PrintBranch(b);
                             return Status::OK();
                           });
    AddJson(get);

    auto* del = BranchVerb(branch, "delete", "Delete a branch and its data",
                           [this](Engine& e, const BranchRef& ref) -> Status {
                             auto start = Clock::now();
                             PGB_RETURN_IF_ERROR(e.DeleteBranch(ref, recursive_));
                             out_->Done(fmt::format("Branch {} deleted", ref.ToString()),
                                        Clock::now() - start);
                             return Status::OK();
                           });
    del->alias("rm");
    del->add_flag("--recursive", recursive_, "Also delete the branches made from it");

    auto* reset =
        BranchVerb(branch, "reset",
                   "Replace a branch's data with its parent's current data (same "
                   "port and URI)",
                   [this](Engine& e, const BranchRef& ref) -> Status {
                     auto start = Clock::now();
                     PGB_ASSIGN_OR_RETURN(BranchInfo b, e.ResetBranch(ref, fast_));
                     out_->Done(fmt::format("Branch {} reset to {}", ref.ToString(), b.parent),
                                Clock::now() - start);
                     PrintCreated(b);
                     return Status::OK();
                   });
    reset->add_flag("--fast", fast_, "Skip the CHECKPOINT on a running parent");
    AddJson(reset);

    using Verb = Result<BranchInfo> (Engine::*)(const BranchRef&);
    const std::vector<std::tuple<std::string, std::string, Verb, std::string>> simple = {
        {"start", "Start a stopped branch", &Engine::StartBranch, "started"},
        {"stop", "Stop a branch (its data stays)", &Engine::StopBranch, "stopped"},
        {"restart", "Stop and start a branch", &Engine::RestartBranch, "restarted"},
    };
    for (const auto& [verb, help, method, done] : simple) {
      auto* cmd = BranchVerb(
          branch, verb, help,
          [this, method = method, done = done](Engine& e, const BranchRef& ref) -> Status {
            auto start = Clock::now();
            PGB_ASSIGN_OR_RETURN(BranchInfo b, (e.*method)(ref));
            out_->Done(fmt::format("Branch {} {}", ref.ToString(), done), Clock::now() - start);
            if (json_) out_->Json(ToJson(b));
            return Status::OK();
          });
      AddJson(cmd);
    }

    BranchVerb(branch, "url", "Print the branch's connection URI, with its password",
               [this](Engine& e, const BranchRef& ref) -> Status {
                 PGB_ASSIGN_OR_RETURN(BranchInfo b, e.GetBranch(ref));
                 out_->Print(b.uri);
                 return Status::OK();
               });
  }

  void DefineStatus() {
    auto* cmd = app_.add_subcommand("status", "Pool usage, projects and branches");
    AddJson(cmd);
    cmd->callback([this] {
      action_ = [this] {
        return With("status", "", [&](Engine& e) -> Status {
          PGB_ASSIGN_OR_RETURN(StatusInfo s, e.GetStatus());
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
    std::vector<std::vector<std::string>> rows;
    if (s.pool.configured) {
      rows.push_back({"Pool", s.pool.description});
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
    std::vector<std::string> projects;
    for (const auto& p : s.projects) {
      projects.push_back(
          fmt::format("{} (PostgreSQL {}, {} branches)", p.name, p.pg_version, p.branch_count));
    }
    rows.push_back(
        {"Projects", projects.empty() ? "none" : fmt::format("{}", fmt::join(projects, ", "))});
    for (const auto& r : rows) {
      out_->Print(fmt::format("{:<10}{}", out_->Paint(r[0], Tone::kBold), r[1]));
    }
  }

  void PrintBranches(const std::vector<BranchInfo>& branches) {
    if (json_) {
      nlohmann::json arr = nlohmann::json::array();
      for (const auto& b : branches) arr.push_back(ToJson(b));
      out_->Json(arr);
      return;
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& b : branches) {
      std::string parent = b.parent.empty() ? "-" : b.parent.substr(b.parent.find('/') + 1);
      rows.push_back({b.project + "/" + b.name, parent, out_->Paint(b.state, StateTone(b.state)),
                      std::to_string(b.port), Bytes(b.size_bytes), Bytes(b.exclusive_bytes),
                      b.uptime_seconds ? FormatAge(std::chrono::seconds(*b.uptime_seconds)) : "-",
                      b.masked_uri});
    }
    out_->Table({"BRANCH", "PARENT", "STATE", "PORT", "SIZE", "EXCLUSIVE", "UPTIME", "URI"}, rows);
  }

  void PrintBranch(const BranchInfo& b) {
    out_->Table(
        {"FIELD", "VALUE"},
        {{"branch", b.project + "/" + b.name},
         {"parent", OrDash(b.parent)},
         {"state", out_->Paint(b.state, StateTone(b.state))},
         {"port", std::to_string(b.port)},
         {"uri", b.masked_uri},
         {"size", Bytes(b.size_bytes)},
         {"exclusive", Bytes(b.exclusive_bytes)},
         {"created", b.created_at},
         {"uptime", b.uptime_seconds ? FormatAge(std::chrono::seconds(*b.uptime_seconds)) : "-"},
         {"postgresql", b.pg_version},
         {"data_dir", OrDash(b.data_dir)},
         {"log", b.log_path}});
  }

  // After create/reset: JSON with the full URI, or a line with the masked one.
  void PrintCreated(const BranchInfo& b) {
    if (json_) {
      out_->Json(ToJson(b));
      return;
    }
    out_->Print(fmt::format("{}/{}  {}  port {}  {}", b.project, b.name,
                            out_->Paint(b.state, StateTone(b.state)), b.port, b.masked_uri));
    out_->Print(out_->Paint(fmt::format("full URI: pgbranch branch url {}/{}", b.project, b.name),
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
    uint64_t size = 0;
    std::string btrfs_text;
    std::string port_range;
    std::string os_user;
  } init_;
  std::string name_;
  std::string ref_text_;
  std::string parent_;
  std::string pg_bin_;
  std::string listen_;
  std::optional<int> port_;
  bool fast_ = false;
  bool force_ = false;
  bool recursive_ = false;
};

}  // namespace

int RunCli(int argc, char** argv) {
  Cli cli;
  return cli.Run(argc, argv);
}

}  // namespace pgb
