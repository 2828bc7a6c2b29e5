#include "runtime/runtime.h"

#include <fmt/format.h>

namespace pgb {

std::function<Status()> StillRunningCheck(Runtime& runtime, const InstanceSpec& spec) {
  return [&runtime, spec]() -> Status {
    PGB_ASSIGN_OR_RETURN(InstanceStatus st, runtime.Status(spec));
    if (st.running) return st.ready ? Status::OK() : Status::Unavailable(st.detail);
    Result<std::string> log = runtime.Logs(spec, 5);
    std::string tail = log.ok() ? *log : "";
    return Status::FailedPrecondition(fmt::format("postgres is not running: {}{}{}", st.detail,
                                                  tail.empty() ? "" : "; log:\n", tail));
  };
}

}  // namespace pgb
