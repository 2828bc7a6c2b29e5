#include "common/status.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>

namespace pgb {

std::string_view StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return "ok";
    case StatusCode::kNotFound:
      return "not_found";
    case StatusCode::kAlreadyExists:
      return "already_exists";
    case StatusCode::kInvalidArgument:
      return "invalid_argument";
    case StatusCode::kFailedPrecondition:
      return "failed_precondition";
    case StatusCode::kResourceExhausted:
      return "resource_exhausted";
    case StatusCode::kNotSupported:
      return "not_supported";
    case StatusCode::kUnavailable:
      return "unavailable";
    case StatusCode::kIOError:
      return "io_error";
    case StatusCode::kCommandFailed:
      return "command_failed";
    case StatusCode::kInternal:
      return "internal";
    case StatusCode::kCancelled:
      return "cancelled";
    case StatusCode::kUnauthenticated:
      return "unauthenticated";
    case StatusCode::kPermissionDenied:
      return "permission_denied";
  }
  return "internal";
}

Status Status::WithContext(std::string_view context) const {
  if (ok()) return *this;
  return Status(code_, fmt::format("{}: {}", context, message_));
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  return fmt::format("{}: {}", StatusCodeName(code_), message_);
}

Status PosixError(std::string_view context, int error_number) {
  std::string message = fmt::format("{}: {}", context, std::strerror(error_number));
  switch (error_number) {
    case ENOENT:
      return Status::NotFound(std::move(message));
    case EEXIST:
      return Status::AlreadyExists(std::move(message));
    case ENOSPC:
    case EDQUOT:
      return Status::ResourceExhausted(std::move(message));
    case EACCES:
    case EPERM:
      return Status::FailedPrecondition(std::move(message));
    case EBUSY:
    case EAGAIN:
      return Status::Unavailable(std::move(message));
    default:
      return Status::IOError(std::move(message));
  }
}

}  // namespace pgb
