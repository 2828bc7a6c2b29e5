#include "common/undo.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace pgb {

UndoStack::~UndoStack() {
  if (!steps_.empty()) {
    Status ignored = Rollback(Status::Internal("operation abandoned"));
    (void)ignored;
  }
}

void UndoStack::Push(std::string what, std::function<Status()> undo) {
  steps_.push_back({std::move(what), std::move(undo)});
}

void UndoStack::Commit() { steps_.clear(); }

Status UndoStack::Rollback(Status cause) {
  std::vector<std::string> failures;
  while (!steps_.empty()) {
    Step step = std::move(steps_.back());
    steps_.pop_back();
    spdlog::debug("undo: {}", step.what);
    Status s = step.undo();
    if (!s.ok()) failures.push_back(fmt::format("{}: {}", step.what, s.message()));
  }
  if (failures.empty()) return cause;
  return Status(cause.code(),
                fmt::format("{}; cleanup failed: {}", cause.message(), fmt::join(failures, "; ")));
}

}  // namespace pgb
