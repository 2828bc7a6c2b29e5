#include "common/cancel.h"

namespace pgb {
namespace {
thread_local const CancelToken* current_token = nullptr;
}  // namespace

const CancelToken* CurrentCancelToken() { return current_token; }

CancelScope::CancelScope(const CancelToken* token) : previous_(current_token) {
  current_token = token;
}

CancelScope::~CancelScope() { current_token = previous_; }

Status CheckCancelled() {
  const CancelToken* token = current_token;
  if (token && token->cancelled()) return Status::Cancelled(token->reason());
  return Status::OK();
}

}  // namespace pgb
