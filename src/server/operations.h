// The HTTP API's asynchronous operations and its event stream (api.h).
//
// A mutating request becomes an ApiOperation: queued, then running on a thread of its own,
// then succeeded or failed. Operations with the same serialization key (the branch, "demo/dev",
// or the project for project-wide work) run one after another in submission order; those with
// different keys run at once, and the engine's locks (engine/locks.h) order what they share.
// While one runs, the engine's progress (steps with timings, notes) from its thread is recorded
// on it (the runner binds itself with ProgressScope on the operation's thread).
//
// Every change of an operation is published on the EventHub as an "operation" event; the
// scheduler publishes "branch" events. Subscribers (the SSE streams of GET /api/v1/events) get
// every event from their subscription on, in order; a subscriber that falls 1000 events behind
// is dropped (its stream ends; EventSource reconnects).
//
// Thread-safety: every class here is thread-safe.

#ifndef PGBRANCH_SERVER_OPERATIONS_H_
#define PGBRANCH_SERVER_OPERATIONS_H_

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "engine/engine.h"

namespace pgb::server {

// One server-sent event: `event:` name and `data:` JSON (https://html.spec.whatwg.org/
// multipage/server-sent-events.html, "Interpreting an event stream").
struct Event {
  uint64_t seq = 0;  // the `id:` field: increasing from 1
  std::string name;  // "operation", "branch"
  nlohmann::json data;
};

class EventHub {
 public:
  class Subscription {
   public:
    // The next event, waiting up to `timeout`; nullopt on timeout, or when dropped or closed
    // (then closed() is true).
    std::optional<Event> Next(std::chrono::milliseconds timeout);
    bool closed() const;

   private:
    friend class EventHub;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::deque<Event> queue_;
    bool closed_ = false;
  };

  std::shared_ptr<Subscription> Subscribe();
  void Unsubscribe(const std::shared_ptr<Subscription>& sub);
  void Publish(std::string name, nlohmann::json data);
  // Ends every subscription (serve stops); later ones are closed from the start.
  void CloseAll();

 private:
  std::mutex mu_;
  bool closed_ = false;
  uint64_t seq_ = 0;
  std::vector<std::shared_ptr<Subscription>> subs_;
};

struct OperationStepRecord {
  std::string name;
  std::string started_at;
  std::string ended_at;           // empty while it runs
  std::optional<double> seconds;  // when it ended
};

// A snapshot of one operation, as GET /api/v1/operations/{id} returns it.
struct ApiOperation {
  std::string id;      // "op-" + 12 hex characters
  std::string kind;    // "branch.create"
  std::string target;  // "demo/pr-42"
  std::string status;  // queued, running, succeeded, failed
  std::vector<OperationStepRecord> steps;
  std::vector<std::string> notes;
  Status error;  // OK unless failed
  // The error's "<operation> <object>" prefix, e.g. "branch create demo/pr-42".
  std::string error_prefix;
  std::optional<nlohmann::json> result;
  std::string created_at, started_at, ended_at;
  std::string token;         // the name of the token that asked
  int success_status = 200;  // 201 for creates: the status of ?wait=true when it succeeds
};

// The JSON of an operation (api/openapi.json "Operation"). Without `secrets`, the passwords in
// its result's connection strings ("uri", "proxy_uri") are masked as "****": what lists and the
// event stream show (only GET /api/v1/operations/{id} and the answer to ?wait=true show them).
nlohmann::json ToJson(const ApiOperation& op, bool secrets = true);
// {"code", "message"} of a failed status, the message prefixed with `prefix`.
nlohmann::json ErrorJson(const Status& status, const std::string& prefix);

class OperationRunner : public Progress {
 public:
  // `changed` (may be empty) is called on the operation's thread as soon as its work has
  // returned, before anyone can see it ended (the API drops its cached reads there).
  explicit OperationRunner(EventHub& events, std::function<void()> changed = nullptr)
      : events_(events), changed_(std::move(changed)) {}
  ~OperationRunner() override;

  struct Request {
    std::string kind;
    std::string target;
    std::string key;  // serialization key: operations with the same key run in order
    std::string error_prefix;
    std::string token;
    int success_status = 200;
    // The work; its JSON is the operation's result.
    std::function<Result<nlohmann::json>()> body;
  };
  // Queues `request`; returns the new operation's id. After Shutdown: Unavailable.
  Result<std::string> Submit(Request request);
  std::optional<ApiOperation> Get(const std::string& id) const;
  // Newest first, at most `limit`.
  std::vector<ApiOperation> List(size_t limit) const;
  // Waits until operation `id` ends or `timeout` passes; returns it as it is then.
  std::optional<ApiOperation> Wait(const std::string& id, std::chrono::milliseconds timeout) const;
  // Refuses new operations and waits up to `timeout` for those queued or running to end.
  // Returns how many had not ended.
  size_t Shutdown(std::chrono::milliseconds timeout);

  // Progress: recorded on the calling thread's operation (ignored on other threads).
  void StepStarted(std::string_view name) override;
  void Step(std::string_view name, std::chrono::nanoseconds took) override;
  void Note(std::string_view message) override;

 private:
  struct Entry {
    ApiOperation op;
    std::function<Result<nlohmann::json>()> body;
    std::string key;
  };
  void Run(std::shared_ptr<Entry> entry);
  void StartNext(const std::string& key);  // REQUIRES: mu_ held
  // Sends op's state to the event hub. REQUIRES: mu_ held, so that every
  // subscriber sees one operation's changes in the order they were made.
  void Publish(const ApiOperation& op);

  EventHub& events_;
  std::function<void()> changed_;
  mutable std::mutex mu_;
  mutable std::condition_variable ended_;
  bool shutting_down_ = false;
  std::map<std::string, std::shared_ptr<Entry>> by_id_;
  std::deque<std::string> order_;  // ids, oldest first (the newest 1000 kept)
  std::map<std::string, std::deque<std::shared_ptr<Entry>>> queues_;  // by key; front runs
  std::vector<std::thread> threads_;
  size_t unfinished_ = 0;
};

}  // namespace pgb::server

#endif  // PGBRANCH_SERVER_OPERATIONS_H_
