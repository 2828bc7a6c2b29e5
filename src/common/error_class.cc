#include "common/error_class.h"

namespace pgb {
namespace {

constexpr ErrorClass kClasses[] = {
    {StatusCode::kOk, 0, 200, "00000"},
    {StatusCode::kNotFound, 1, 404, "3D000"},                  // invalid_catalog_name
    {StatusCode::kAlreadyExists, 1, 409, "42710"},             // duplicate_object
    {StatusCode::kInvalidArgument, 1, 400, "22023"},           // invalid_parameter_value
    {StatusCode::kFailedPrecondition, 1, 409, "55000"},        // object_not_in_prerequisite_state
    {StatusCode::kResourceExhausted, 1, 507, "53000"},         // insufficient_resources
    {StatusCode::kNotSupported, 1, 501, "0A000"},              // feature_not_supported
    {StatusCode::kUnavailable, 1, 503, "57P03"},               // cannot_connect_now
    {StatusCode::kIOError, 1, 500, "58030"},                   // io_error
    {StatusCode::kCommandFailed, 1, 500, "58000"},             // system_error
    {StatusCode::kInternal, 1, 500, "XX000"},                  // internal_error
    {StatusCode::kCancelled, kExitInterrupted, 499, "57014"},  // query_canceled
    {StatusCode::kUnauthenticated, 1, 401, "28P01"},           // invalid_password
    {StatusCode::kPermissionDenied, 1, 403, "42501"},          // insufficient_privilege
};

}  // namespace

const ErrorClass& Classify(StatusCode code) {
  for (const auto& c : kClasses) {
    if (c.code == code) return c;
  }
  return kClasses[10];  // internal
}

}  // namespace pgb
