// Status and Result<T>: how every layer below the CLI reports failure.
//
// A Status is OK or carries one code from a closed set plus a message written for people.
// The message is the *cause* only ("parent demo/main is stopped"); the caller at the process
// boundary prefixes "<operation> <object>: " (see cli/). Exceptions are used only at process
// boundaries and for bugs (after leveldb include/leveldb/status.h).

#ifndef PGBRANCH_COMMON_STATUS_H_
#define PGBRANCH_COMMON_STATUS_H_

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace pgb {

enum class StatusCode {
  kOk = 0,
  kNotFound,            // a named object does not exist
  kAlreadyExists,       // a named object exists already
  kInvalidArgument,     // the caller's input is wrong (bad name, bad size...)
  kFailedPrecondition,  // the input is fine but the system is not in a state that allows it
  kResourceExhausted,   // no free port, pool full
  kNotSupported,        // this backend/runtime cannot do that
  kUnavailable,         // transient: busy lock, server not answering yet
  kIOError,             // a system call failed
  kCommandFailed,       // an external command exited non-zero
  kInternal,            // a bug or an impossible state
  kCancelled,           // interrupted (SIGINT/SIGTERM, a cancelled request); undone
  kUnauthenticated,     // credentials missing or wrong (a password, a token)
  kPermissionDenied,    // authenticated, but not allowed (a read token writing)
};

// Returns the stable lower-case name of `code` ("not_found"), used in JSON errors.
std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status OK() { return Status(); }
  static Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
  static Status AlreadyExists(std::string m) { return {StatusCode::kAlreadyExists, std::move(m)}; }
  static Status InvalidArgument(std::string m) {
    return {StatusCode::kInvalidArgument, std::move(m)};
  }
  static Status FailedPrecondition(std::string m) {
    return {StatusCode::kFailedPrecondition, std::move(m)};
  }
  static Status ResourceExhausted(std::string m) {
    return {StatusCode::kResourceExhausted, std::move(m)};
  }
  static Status NotSupported(std::string m) { return {StatusCode::kNotSupported, std::move(m)}; }
  static Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
  static Status IOError(std::string m) { return {StatusCode::kIOError, std::move(m)}; }
  static Status CommandFailed(std::string m) { return {StatusCode::kCommandFailed, std::move(m)}; }
  static Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
  static Status Cancelled(std::string m) { return {StatusCode::kCancelled, std::move(m)}; }
  static Status Unauthenticated(std::string m) {
    return {StatusCode::kUnauthenticated, std::move(m)};
  }
  static Status PermissionDenied(std::string m) {
    return {StatusCode::kPermissionDenied, std::move(m)};
  }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  bool Is(StatusCode c) const { return code_ == c; }

  // Returns a copy whose message is "<context>: <message>"; OK stays OK.
  Status WithContext(std::string_view context) const;

  // "ok" or "<code name>: <message>", for logs and test failures.
  std::string ToString() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// Converts an errno value into a Status in exactly one place (after leveldb's PosixError).
// `context` names what failed ("open /var/lib/pgbranch/state.db"). ENOENT becomes NotFound,
// EEXIST AlreadyExists, ENOSPC/EDQUOT ResourceExhausted, EACCES/EPERM FailedPrecondition,
// EBUSY/EAGAIN Unavailable, everything else IOError.
Status PosixError(std::string_view context, int error_number);

// A value of type T or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}        // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT: implicit by design
    if (std::get<Status>(v_).ok()) v_ = Status::Internal("Result constructed from OK status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  Status status() const { return ok() ? Status::OK() : std::get<Status>(v_); }

  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<Status, T> v_;
};

}  // namespace pgb

#define PGB_CONCAT_INNER_(a, b) a##b
#define PGB_CONCAT_(a, b) PGB_CONCAT_INNER_(a, b)

// Returns the Status of `expr` from the enclosing function if it is not OK.
#define PGB_RETURN_IF_ERROR(expr)              \
  do {                                         \
    ::pgb::Status pgb_status_ = (expr);        \
    if (!pgb_status_.ok()) return pgb_status_; \
  } while (0)

// Evaluates `rexpr` (a Result<T>); on error returns its Status, else moves the value into `lhs`.
// Expands to several statements: under an `if`, use braces.
#define PGB_ASSIGN_OR_RETURN(lhs, rexpr) \
  PGB_ASSIGN_OR_RETURN_IMPL_(PGB_CONCAT_(pgb_result_, __LINE__), lhs, rexpr)
#define PGB_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, rexpr) \
  auto tmp = (rexpr);                               \
  if (!tmp.ok()) return tmp.status();               \
  lhs = std::move(tmp).value()

#endif  // PGBRANCH_COMMON_STATUS_H_
