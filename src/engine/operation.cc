#include "engine/operation.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "common/cancel.h"
#include "common/failpoint.h"
#include "common/proc.h"
#include "engine/audit.h"

namespace pgb {
namespace {

using nlohmann::json;

json ActionToJson(const Action& a) {
  json j = {{"kind", a.kind}};
  if (a.project_id) j["project_id"] = a.project_id;
  if (a.branch_id) j["branch_id"] = a.branch_id;
  if (!a.volume.empty()) j["volume"] = a.volume;
  if (!a.snapshot.empty()) j["snapshot"] = a.snapshot;
  if (!a.path.empty()) j["path"] = a.path;
  if (!a.from.empty()) j["from"] = a.from;
  if (!a.state.empty()) j["state"] = a.state;
  if (!a.text.empty()) j["text"] = a.text;
  return j;
}

std::string StepsText(const std::vector<OperationStep>& steps) {
  json arr = json::array();
  for (const auto& s : steps) {
    arr.push_back({{"name", s.name}, {"started_at", s.started_at}, {"ended_at", s.ended_at}});
  }
  return arr.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace

Action SweepSnapshotsAction(int64_t project_id, const std::string& project_name) {
  Action sweep;
  sweep.kind = "sweep-snapshots";
  sweep.project_id = project_id;
  sweep.text = fmt::format("sweep the unused implicit snapshots of {}", project_name);
  return sweep;
}

std::string ToJsonText(const std::vector<Action>& actions) {
  json arr = json::array();
  for (const auto& a : actions) arr.push_back(ActionToJson(a));
  return arr.dump(-1, ' ', false, json::error_handler_t::replace);
}

Result<std::vector<Action>> ActionsFromJson(const std::string& text) {
  std::vector<Action> out;
  if (text.empty()) return out;
  json arr = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!arr.is_array()) return Status::Internal(fmt::format("garbled journal: {}", text));
  for (const auto& j : arr) {
    if (!j.is_object() || !j.contains("kind") || !j["kind"].is_string()) {
      return Status::Internal(fmt::format("garbled journal entry: {}", j.dump()));
    }
    Action a;
    a.kind = j["kind"].get<std::string>();
    a.project_id = j.value("project_id", int64_t{0});
    a.branch_id = j.value("branch_id", int64_t{0});
    a.volume = j.value("volume", "");
    a.snapshot = j.value("snapshot", "");
    a.path = j.value("path", "");
    a.from = j.value("from", "");
    a.state = j.value("state", "");
    a.text = j.value("text", "");
    out.push_back(std::move(a));
  }
  return out;
}

Result<std::vector<OperationStep>> StepsFromJson(const std::string& text) {
  std::vector<OperationStep> out;
  if (text.empty()) return out;
  json arr = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!arr.is_array()) return Status::Internal(fmt::format("garbled steps: {}", text));
  for (const auto& j : arr) {
    if (!j.is_object()) return Status::Internal("garbled step");
    out.push_back({j.value("name", ""), j.value("started_at", ""), j.value("ended_at", "")});
  }
  return out;
}

std::string SelfOwner() {
  pid_t pid = ::getpid();
  std::optional<ProcInfo> me = ReadProc(pid);
  return fmt::format("{}/{}/{}", BootId(), pid, me ? me->start_ticks : 0);
}

bool OwnerAlive(const std::string& owner) {
  size_t a = owner.find('/');
  size_t b = owner.rfind('/');
  if (a == std::string::npos || b == a) return false;
  if (owner.substr(0, a) != BootId()) return false;
  pid_t pid = static_cast<pid_t>(std::atol(owner.substr(a + 1, b - a - 1).c_str()));
  unsigned long long ticks = std::strtoull(owner.c_str() + b + 1, nullptr, 10);
  std::optional<ProcInfo> info = ReadProc(pid);
  return info && !info->Dead() && info->start_ticks == ticks;
}

Result<std::unique_ptr<Operation>> Operation::Begin(Catalog& catalog, const Clock& clock,
                                                    std::string kind, std::string target,
                                                    std::optional<int64_t> project_id,
                                                    std::optional<int64_t> branch_id,
                                                    std::string command) {
  std::unique_ptr<Operation> op(new Operation(catalog, clock));
  OperationRow& r = op->row_;
  r.kind = std::move(kind);
  r.target = std::move(target);
  r.project_id = project_id;
  r.branch_id = branch_id;
  r.owner = SelfOwner();
  r.pid = ::getpid();
  r.command = std::move(command);
  r.state = kOpRunning;
  r.steps = "[]";
  r.journal = "[]";
  r.started_at = r.updated_at = FormatTimestamp(clock.Now());
  PGB_ASSIGN_OR_RETURN(r.id, catalog.InsertOperation(r));
  return op;
}

Result<std::unique_ptr<Operation>> Operation::Adopt(Catalog& catalog, const Clock& clock,
                                                    int64_t id) {
  std::unique_ptr<Operation> op(new Operation(catalog, clock));
  PGB_ASSIGN_OR_RETURN(op->row_, catalog.GetOperation(id));
  if (!op->row_.ended_at.empty()) {
    return Status::FailedPrecondition(fmt::format("operation {} has ended", id));
  }
  if (OwnerAlive(op->row_.owner)) {
    return Status::FailedPrecondition(
        fmt::format("operation {} is still running (pid {})", id, op->row_.pid));
  }
  PGB_ASSIGN_OR_RETURN(op->steps_, StepsFromJson(op->row_.steps));
  PGB_ASSIGN_OR_RETURN(op->journal_, ActionsFromJson(op->row_.journal));
  op->row_.owner = SelfOwner();
  op->row_.pid = ::getpid();
  PGB_RETURN_IF_ERROR(op->Save());
  return op;
}

Operation::~Operation() {
  if (!ended_) {
    // An early return left the record open: say so, and leave the journal for doctor.
    UncancellableScope uncancellable;
    Status ignored = End(Status::Internal("the operation ended without a result"));
    (void)ignored;
  }
}

std::string Operation::HolderText() const {
  std::string verb = row_.kind.substr(row_.kind.find('.') + 1);
  return fmt::format("{} of {} by pid {} (operation {})", verb, row_.target, row_.pid, row_.id);
}

Status Operation::Save() {
  row_.steps = StepsText(steps_);
  row_.journal = ToJsonText(journal_);
  row_.updated_at = FormatTimestamp(clock_.Now());
  return catalog_.UpdateOperation(row_);
}

Status Operation::Step(std::string_view name) {
  std::string fail_point = fmt::format("fail:{}:{}", row_.kind, name);
  PGB_RETURN_IF_ERROR(Failpoint(fail_point));
  CrashPoint(fmt::format("crash:{}:{}", row_.kind, name));
  if (FailpointEnabled(fmt::format("pause:{}:{}", row_.kind, name))) {
    // Holds the operation at this boundary, its record saying so, until it is interrupted (or
    // a minute passes): for tests of what runs beside an operation in flight.
    row_.step = fmt::format("paused before {}", name);
    PGB_RETURN_IF_ERROR(Save());
    for (int i = 0; i < 6000 && CheckCancelled().ok(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  PGB_RETURN_IF_ERROR(CheckCancelled());
  std::string now = FormatTimestamp(clock_.Now());
  if (!steps_.empty() && steps_.back().ended_at.empty()) steps_.back().ended_at = now;
  steps_.push_back({std::string(name), now, ""});
  row_.step = std::string(name);
  SetAuditStep(row_.step);
  spdlog::debug("operation {}: {}", row_.id, name);
  return Save();
}

Status Operation::SetIds(std::optional<int64_t> project_id, std::optional<int64_t> branch_id) {
  row_.project_id = project_id;
  row_.branch_id = branch_id;
  return Save();
}

Status Operation::PushUndo(Action undo) {
  if (committed()) return Status::Internal("PushUndo after the commit");
  journal_.push_back(std::move(undo));
  return Save();
}

Status Operation::MarkCommitted(std::vector<Action> finish) {
  journal_ = std::move(finish);
  row_.state = kOpCommitted;
  return Save();
}

Status Operation::RunJournal(const std::function<Status(const Action&)>& run) {
  std::vector<std::string> failures;
  std::vector<Action> left;
  const bool forward = committed();
  while (!journal_.empty()) {
    Action action = forward ? journal_.front() : journal_.back();
    if (forward) {
      journal_.erase(journal_.begin());
    } else {
      journal_.pop_back();
    }
    Status s = run(action);
    if (!s.ok()) {
      failures.push_back(
          fmt::format("{}: {}", action.text.empty() ? action.kind : action.text, s.message()));
      if (forward) {
        left.push_back(action);
      } else {
        left.insert(left.begin(), action);
      }
    }
    // The journal on disk shrinks as actions succeed; one left over stays for doctor.
    std::vector<Action> remaining = journal_;
    if (forward) {
      remaining.insert(remaining.begin(), left.begin(), left.end());
    } else {
      remaining.insert(remaining.end(), left.begin(), left.end());
    }
    std::swap(journal_, remaining);
    Status saved = Save();
    std::swap(journal_, remaining);
    if (!saved.ok()) spdlog::warn("operation {}: journal not saved: {}", row_.id, saved.message());
  }
  journal_ = std::move(left);
  if (failures.empty()) return Status::OK();
  return Status::Internal(fmt::format("{}", fmt::join(failures, "; ")));
}

Status Operation::End(const Status& result, bool by_doctor) {
  ended_ = true;
  const bool was_committed = committed();
  std::string now = FormatTimestamp(clock_.Now());
  if (!steps_.empty() && steps_.back().ended_at.empty()) steps_.back().ended_at = now;
  if (!result.ok()) row_.error = result.message();
  if (by_doctor) {
    row_.error = row_.error.empty() ? "repaired by pgbranch doctor"
                                    : row_.error + "; repaired by pgbranch doctor";
  }
  if (!journal_.empty()) {
    // Work is left (an undo or finish action failed): the record stays open for doctor, which
    // runs the rest in the same direction (a committed operation keeps that state).
    if (!was_committed) row_.state = kOpFailed;
  } else {
    if (result.ok()) {
      row_.state = by_doctor && !was_committed ? kOpUndone : kOpDone;
    } else {
      row_.state = was_committed ? kOpDone : kOpFailed;
    }
    row_.ended_at = now;
  }
  SetAuditStep("");
  return Save();
}

}  // namespace pgb
