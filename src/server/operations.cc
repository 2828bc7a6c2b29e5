#include "server/operations.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/error_class.h"
#include "common/random.h"
#include "common/time.h"

namespace pgb::server {
namespace {

constexpr size_t kMaxQueuedEvents = 1000;
constexpr size_t kKeptOperations = 1000;

std::string Now() { return FormatTimestamp(SystemClock().Now()); }

// The operation the calling thread runs, if any (OperationRunner::Run binds it).
thread_local ApiOperation* t_current = nullptr;

}  // namespace

std::optional<Event> EventHub::Subscription::Next(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return closed_ || !queue_.empty(); });
  if (queue_.empty()) return std::nullopt;
  Event e = std::move(queue_.front());
  queue_.pop_front();
  return e;
}

bool EventHub::Subscription::closed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return closed_;
}

std::shared_ptr<EventHub::Subscription> EventHub::Subscribe() {
  auto sub = std::make_shared<Subscription>();
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) {
    sub->closed_ = true;
  } else {
    subs_.push_back(sub);
  }
  return sub;
}

void EventHub::Unsubscribe(const std::shared_ptr<Subscription>& sub) {
  std::lock_guard<std::mutex> lock(mu_);
  std::erase(subs_, sub);
}

void EventHub::Publish(std::string name, nlohmann::json data) {
  std::lock_guard<std::mutex> lock(mu_);
  Event e{++seq_, std::move(name), std::move(data)};
  for (auto it = subs_.begin(); it != subs_.end();) {
    auto& sub = **it;
    bool drop = false;
    {
      std::lock_guard<std::mutex> sl(sub.mu_);
      if (sub.queue_.size() >= kMaxQueuedEvents) {
        sub.closed_ = true;  // too slow a reader: its stream ends, EventSource reconnects
        drop = true;
      } else {
        sub.queue_.push_back(e);
      }
    }
    sub.cv_.notify_all();
    it = drop ? subs_.erase(it) : it + 1;
  }
}

void EventHub::CloseAll() {
  std::lock_guard<std::mutex> lock(mu_);
  closed_ = true;
  for (auto& sub : subs_) {
    {
      std::lock_guard<std::mutex> sl(sub->mu_);
      sub->closed_ = true;
    }
    sub->cv_.notify_all();
  }
  subs_.clear();
}

nlohmann::json ErrorJson(const Status& status, const std::string& prefix) {
  return {{"code", StatusCodeName(status.code())},
          {"message", prefix.empty() ? status.message() : prefix + ": " + status.message()}};
}

namespace {

// "postgresql://user:secret@host..." with the password replaced by "****".
std::string MaskPassword(const std::string& uri) {
  size_t scheme = uri.find("://");
  size_t at = uri.find('@');
  if (scheme == std::string::npos || at == std::string::npos || at < scheme) return uri;
  size_t colon = uri.find(':', scheme + 3);
  if (colon == std::string::npos || colon > at) return uri;
  return uri.substr(0, colon + 1) + "****" + uri.substr(at);
}

nlohmann::json MaskedResult(nlohmann::json result, bool secrets) {
  if (secrets || !result.is_object()) return result;
  for (const char* key : {"uri", "proxy_uri"}) {
    auto it = result.find(key);
    if (it != result.end() && it->is_string()) *it = MaskPassword(it->get<std::string>());
  }
  return result;
}

}  // namespace

nlohmann::json ToJson(const ApiOperation& op, bool secrets) {
  auto opt = [](const std::string& s) { return s.empty() ? nlohmann::json() : nlohmann::json(s); };
  nlohmann::json steps = nlohmann::json::array();
  for (const auto& s : op.steps) {
    steps.push_back({{"name", s.name},
                     {"started_at", s.started_at},
                     {"ended_at", opt(s.ended_at)},
                     {"seconds", s.seconds ? nlohmann::json(*s.seconds) : nlohmann::json()}});
  }
  return {{"id", op.id},
          {"kind", op.kind},
          {"target", op.target},
          {"status", op.status},
          {"steps", steps},
          {"notes", op.notes},
          {"error", op.error.ok() ? nlohmann::json() : ErrorJson(op.error, op.error_prefix)},
          {"result", op.result ? MaskedResult(*op.result, secrets) : nlohmann::json()},
          {"created_at", op.created_at},
          {"started_at", opt(op.started_at)},
          {"ended_at", opt(op.ended_at)},
          {"token", op.token}};
}

OperationRunner::~OperationRunner() { Shutdown(std::chrono::hours(1)); }

Result<std::string> OperationRunner::Submit(Request request) {
  auto entry = std::make_shared<Entry>();
  entry->op.id = "op-" + RandomHex(6);
  entry->op.kind = std::move(request.kind);
  entry->op.target = std::move(request.target);
  entry->op.status = "queued";
  entry->op.error_prefix = std::move(request.error_prefix);
  entry->op.token = std::move(request.token);
  entry->op.success_status = request.success_status;
  entry->op.created_at = Now();
  entry->body = std::move(request.body);
  entry->key = std::move(request.key);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (shutting_down_) return Status::Unavailable("the server is stopping");
    by_id_[entry->op.id] = entry;
    order_.push_back(entry->op.id);
    while (order_.size() > kKeptOperations) {
      auto old = by_id_.find(order_.front());
      // Only ended ones are forgotten; the rest stay until they end.
      if (old != by_id_.end() && old->second->op.ended_at.empty()) break;
      if (old != by_id_.end()) by_id_.erase(old);
      order_.pop_front();
    }
    ++unfinished_;
    auto& queue = queues_[entry->key];
    queue.push_back(entry);
    // Published before the worker can start, under mu_, so that subscribers
    // see every operation's changes in the order they happened.
    Publish(entry->op);
    if (queue.size() == 1) StartNext(entry->key);
  }
  return entry->op.id;
}

void OperationRunner::StartNext(const std::string& key) {
  auto it = queues_.find(key);
  if (it == queues_.end() || it->second.empty()) {
    if (it != queues_.end()) queues_.erase(it);
    return;
  }
  std::thread(&OperationRunner::Run, this, it->second.front()).detach();
}

void OperationRunner::Run(std::shared_ptr<Entry> entry) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    entry->op.status = "running";
    entry->op.started_at = Now();
    Publish(entry->op);
  }
  t_current = &entry->op;
  Result<nlohmann::json> result = Status::Internal("operation did not run");
  {
    ProgressScope scope(this);
    try {
      result = entry->body();
    } catch (const std::exception& e) {
      result = Status::Internal(fmt::format("unexpected exception: {}", e.what()));
    }
  }
  t_current = nullptr;
  if (changed_) changed_();
  {
    std::lock_guard<std::mutex> lock(mu_);
    entry->op.ended_at = Now();
    if (result.ok()) {
      entry->op.status = "succeeded";
      entry->op.result = std::move(*result);
    } else {
      entry->op.status = "failed";
      entry->op.error = result.status();
    }
    for (auto& s : entry->op.steps) {
      if (s.ended_at.empty()) s.ended_at = entry->op.ended_at;  // the step it failed in
    }
    entry->body = nullptr;
  }
  if (!result.ok()) {
    spdlog::info("serve: operation {} {} {} failed: {}", entry->op.id, entry->op.kind,
                 entry->op.target, result.status().message());
  }
  std::lock_guard<std::mutex> lock(mu_);
  Publish(entry->op);
  auto& queue = queues_[entry->key];
  if (!queue.empty() && queue.front() == entry) queue.pop_front();
  StartNext(entry->key);
  --unfinished_;
  ended_.notify_all();
}

std::optional<ApiOperation> OperationRunner::Get(const std::string& id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return std::nullopt;
  return it->second->op;
}

std::vector<ApiOperation> OperationRunner::List(size_t limit) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<ApiOperation> out;
  for (auto it = order_.rbegin(); it != order_.rend() && out.size() < limit; ++it) {
    auto e = by_id_.find(*it);
    if (e != by_id_.end()) out.push_back(e->second->op);
  }
  return out;
}

std::optional<ApiOperation> OperationRunner::Wait(const std::string& id,
                                                  std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return std::nullopt;
  std::shared_ptr<Entry> entry = it->second;
  ended_.wait_for(lock, timeout, [&] { return !entry->op.ended_at.empty(); });
  return entry->op;
}

size_t OperationRunner::Shutdown(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  shutting_down_ = true;
  ended_.wait_for(lock, timeout, [&] { return unfinished_ == 0; });
  return unfinished_;
}

void OperationRunner::Publish(const ApiOperation& op) {
  events_.Publish("operation", ToJson(op, /*secrets=*/false));
}

void OperationRunner::StepStarted(std::string_view name) {
  if (!t_current) return;
  std::lock_guard<std::mutex> lock(mu_);
  t_current->steps.push_back({std::string(name), Now(), "", std::nullopt});
  Publish(*t_current);
}

void OperationRunner::Step(std::string_view name, std::chrono::nanoseconds took) {
  if (!t_current) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    OperationStepRecord* step = nullptr;
    for (auto it = t_current->steps.rbegin(); it != t_current->steps.rend(); ++it) {
      if (it->name == name && it->ended_at.empty()) {
        step = &*it;
        break;
      }
    }
    if (!step) {  // a step reported only when it ended
      t_current->steps.push_back({std::string(name), Now(), "", std::nullopt});
      step = &t_current->steps.back();
    }
    step->ended_at = Now();
    step->seconds = std::chrono::duration<double>(took).count();
    Publish(*t_current);
  }
}

void OperationRunner::Note(std::string_view message) {
  if (!t_current) return;
  std::lock_guard<std::mutex> lock(mu_);
  t_current->notes.emplace_back(message);
  Publish(*t_current);
}

}  // namespace pgb::server
