#include "proxy/proxy.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

#include <array>
#include <asio/ssl.hpp>
#include <cstring>
#include <map>
#include <optional>
#include <unordered_set>

#include "common/error_class.h"
#include "proxy/messages.h"
#include "proxy/startup.h"
#include "proxy/wire.h"

namespace pgb::proxy {

namespace {

using asio::awaitable;
using asio::use_awaitable;
using Clock = std::chrono::steady_clock;

constexpr size_t kRelayBuffer = 64 * 1024;

// GCC 12 destroys twice a temporary that has a destructor in a full-expression holding
// co_await: every such value here is a named local first, and awaitables are made, named, then
// awaited.

// One byte stream: the client's (TCP, or TLS over TCP) or the branch's (Unix socket or TCP).
class Stream {
 public:
  virtual ~Stream() = default;
  virtual awaitable<size_t> ReadSome(asio::mutable_buffer buffer) = 0;
  virtual awaitable<void> WriteAll(asio::const_buffer buffer) = 0;
  virtual void Close() = 0;
};

template <class Socket>
class StreamOf : public Stream {
 public:
  explicit StreamOf(Socket socket) : socket_(std::move(socket)) {}
  Socket& socket() { return socket_; }
  awaitable<size_t> ReadSome(asio::mutable_buffer buffer) override {
    co_return co_await socket_.async_read_some(buffer, use_awaitable);
  }
  awaitable<void> WriteAll(asio::const_buffer buffer) override {
    co_await asio::async_write(socket_, buffer, use_awaitable);
  }
  void Close() override {
    asio::error_code ignored;
    socket_.lowest_layer().close(ignored);
  }

 private:
  Socket socket_;
};

using TcpStream = StreamOf<asio::ip::tcp::socket>;
using TlsStream = StreamOf<asio::ssl::stream<asio::ip::tcp::socket>>;
using UnixStream = StreamOf<asio::local::stream_protocol::socket>;

// Reads whole packets and messages from a Stream, keeping what arrived beyond them.
class Reader {
 public:
  explicit Reader(Stream* stream) : stream_(stream) {}
  void Reset(Stream* stream) { stream_ = stream; }
  std::string& pending() { return buffer_; }

  awaitable<void> Fill(size_t n) {
    std::array<char, 8192> chunk;
    while (buffer_.size() < n) {
      size_t got = co_await stream_->ReadSome(asio::buffer(chunk));
      buffer_.append(chunk.data(), got);
    }
  }
  // Exactly `n` bytes.
  awaitable<std::string> Take(size_t n) {
    co_await Fill(n);
    std::string out = buffer_.substr(0, n);
    buffer_.erase(0, n);
    co_return out;
  }
  // The startup packet (no type byte).
  awaitable<Result<std::string>> StartupPacket() {
    co_await Fill(4);
    auto length = StartupPacketLength(std::string_view(buffer_).substr(0, 4));
    if (!length.ok()) co_return length.status();
    co_return co_await Take(*length);
  }
  // One typed message, whole (type, length and body).
  awaitable<Result<std::string>> MessageBytes() {
    co_await Fill(5);
    auto peek = PeekMessage(buffer_);
    if (!peek.ok()) co_return peek.status();
    uint32_t length = ReadUint32(buffer_, 1);
    co_return co_await Take(1 + static_cast<size_t>(length));
  }

 private:
  Stream* stream_;
  std::string buffer_;
};

// Where a CancelRequest for a key the proxy gave out goes.
struct CancelTarget {
  std::string socket_path;  // else TCP host:port
  std::string host;
  int port = 0;
  int32_t pid = 0;
  std::string key;
};

std::string KeyOf(int32_t pid, std::string_view key) { return fmt::format("{}:{}", pid, key); }

std::string Describe(const asio::ip::tcp::socket& socket) {
  asio::error_code ec;
  auto ep = socket.remote_endpoint(ec);
  if (ec) return "?";
  return fmt::format("{}:{}", ep.address().to_string(), ep.port());
}

void SetCloseOnExec(int fd) {
  int flags = ::fcntl(fd, F_GETFD);
  if (flags >= 0) ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}

// A refusal: the ErrorResponse a client gets, and why (for the log).
struct Refusal {
  std::string sqlstate;
  std::string message;
  std::string detail;
  bool sent = false;   // the branch's own ErrorResponse, already relayed to the client
  bool retry = false;  // the branch was not ready and nothing reached the client: try again
};

}  // namespace

class Proxy::Impl : public std::enable_shared_from_this<Proxy::Impl> {
 public:
  Impl(asio::io_context& io, Router& router, ProxyOptions options)
      : io_(io),
        router_(router),
        options_(std::move(options)),
        acceptor_(io),
        workers_(static_cast<size_t>(std::max(1, options_.workers))) {}

  ~Impl() { workers_.join(); }

  Status Listen() {
    PGB_RETURN_IF_ERROR(ReloadTls());
    PGB_RETURN_IF_ERROR(Bind(acceptor_, options_.listen_host, options_.listen_port));
    asio::co_spawn(io_, Accept(shared_from_this()), asio::detached);
    return Status::OK();
  }

  Status ListenForBranch(const std::string& host, int port, const Route& route) {
    if (branch_listeners_.count(port)) return Status::OK();
    auto woken = woken_at_.find(port);
    if (woken != woken_at_.end() && Clock::now() - woken->second < kRelistenAfter) {
      return Status::OK();  // its server may be about to bind the port
    }
    auto listener = std::make_shared<BranchListener>(io_, route);
    PGB_RETURN_IF_ERROR(Bind(listener->acceptor, host, port));
    branch_listeners_[port] = listener;
    asio::co_spawn(io_, AcceptForBranch(shared_from_this(), listener, port), asio::detached);
    return Status::OK();
  }

  void StopListeningForBranch(int port) {
    auto it = branch_listeners_.find(port);
    if (it == branch_listeners_.end()) return;
    asio::error_code ignored;
    it->second->acceptor.close(ignored);
    branch_listeners_.erase(it);
  }

  std::vector<int> BranchListenerPorts() const {
    std::vector<int> out;
    for (const auto& [port, listener] : branch_listeners_) out.push_back(port);
    return out;
  }

  // Binds and listens on host:port, close-on-exec.
  static Status Bind(asio::ip::tcp::acceptor& acceptor, const std::string& host, int port) {
    asio::error_code ec;
    auto address = asio::ip::make_address(host, ec);
    if (ec) return Status::InvalidArgument(fmt::format("listen on {}: not an IP address", host));
    asio::ip::tcp::endpoint endpoint(address, static_cast<unsigned short>(port));
    acceptor.open(endpoint.protocol(), ec);
    if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor.bind(endpoint, ec);
    if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      asio::error_code ignored;
      acceptor.close(ignored);
      std::string where = fmt::format("{}:{}", host, port);
      if (ec == asio::error::address_in_use) {
        return Status::Unavailable(fmt::format("listen on {}: address in use", where));
      }
      return Status::IOError(fmt::format("listen on {}: {}", where, ec.message()));
    }
    SetCloseOnExec(acceptor.native_handle());
    return Status::OK();
  }

  int port() const {
    asio::error_code ec;
    auto ep = acceptor_.local_endpoint(ec);
    return ec ? 0 : ep.port();
  }

  Status ReloadTls() {
    if (options_.tls_cert.empty()) return Status::OK();
    auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
    asio::error_code ec;
    ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                         asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                         asio::ssl::context::no_tlsv1_1,
                     ec);
    ctx->use_certificate_chain_file(options_.tls_cert, ec);
    if (ec) {
      return Status::InvalidArgument(
          fmt::format("load TLS certificate {}: {}", options_.tls_cert, ec.message()));
    }
    ctx->use_private_key_file(options_.tls_key, asio::ssl::context::pem, ec);
    if (ec) {
      return Status::InvalidArgument(
          fmt::format("load TLS key {}: {}", options_.tls_key, ec.message()));
    }
    if (SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
      return Status::InvalidArgument(fmt::format("load TLS key {}: it does not match {}",
                                                 options_.tls_key, options_.tls_cert));
    }
    tls_ = std::move(ctx);
    return Status::OK();
  }

  void StopAccepting() {
    asio::error_code ignored;
    acceptor_.close(ignored);
    for (auto& [port, listener] : branch_listeners_) listener->acceptor.close(ignored);
    branch_listeners_.clear();
  }

  void CloseAll();

  ProxyStats stats() const {
    ProxyStats s = stats_;
    s.sessions = sessions_.size();
    return s;
  }

 private:
  class Session;

  // A suspended branch's own port, held for it until its first client comes.
  struct BranchListener {
    BranchListener(asio::io_context& io, Route r) : acceptor(io), route(std::move(r)) {}
    asio::ip::tcp::acceptor acceptor;
    Route route;
  };
  // After a wake, a branch's port is not listened on again for this long: its server is
  // starting and must be able to bind it.
  static constexpr std::chrono::seconds kRelistenAfter{10};

  static awaitable<void> Accept(std::shared_ptr<Impl> self);
  static awaitable<void> AcceptForBranch(std::shared_ptr<Impl> self,
                                         std::shared_ptr<BranchListener> listener, int port);

  // Runs `fn` (which blocks) on a worker thread; resumes the awaiting coroutine on the event
  // loop with its result. A callback, not a coroutine: GCC 12 destroys a coroutine's
  // by-value functor parameters twice.
  template <class T, class Fn>
  awaitable<T> OnWorker(Fn fn) {
    return asio::async_initiate<decltype(use_awaitable), void(T)>(
        [this, fn = std::move(fn)](auto handler) mutable {
          asio::post(workers_, [fn = std::move(fn), handler = std::move(handler)]() mutable {
            T result = fn();
            auto executor = asio::get_associated_executor(handler);
            asio::post(executor,
                       [handler = std::move(handler), result = std::move(result)]() mutable {
                         std::move(handler)(std::move(result));
                       });
          });
        },
        use_awaitable);
  }

  awaitable<void> ForwardCancel(CancelTarget target) {
    ++stats_.cancels;
    std::string packet = SerializeCancelRequest(target.pid, target.key);
    try {
      if (!target.socket_path.empty()) {
        asio::local::stream_protocol::socket s(io_);
        asio::local::stream_protocol::endpoint where(target.socket_path);
        co_await s.async_connect(where, use_awaitable);
        SetCloseOnExec(s.native_handle());
        co_await asio::async_write(s, asio::buffer(packet), use_awaitable);
      } else {
        asio::ip::tcp::resolver resolver(io_);
        std::string port = std::to_string(target.port);
        auto results = co_await resolver.async_resolve(target.host, port, use_awaitable);
        asio::ip::tcp::socket s(io_);
        co_await asio::async_connect(s, results, use_awaitable);
        SetCloseOnExec(s.native_handle());
        co_await asio::async_write(s, asio::buffer(packet), use_awaitable);
      }
    } catch (const std::exception& e) {
      spdlog::info("proxy: cancel for backend {} not delivered: {}", target.pid, e.what());
    }
  }

  asio::io_context& io_;
  Router& router_;
  ProxyOptions options_;
  asio::ip::tcp::acceptor acceptor_;
  asio::thread_pool workers_;
  std::shared_ptr<asio::ssl::context> tls_;
  std::unordered_set<Session*> sessions_;
  std::map<int, std::shared_ptr<BranchListener>> branch_listeners_;
  std::map<int, Clock::time_point> woken_at_;
  std::map<std::string, CancelTarget> cancel_keys_;
  ProxyStats stats_;
};

class Proxy::Impl::Session : public std::enable_shared_from_this<Session> {
 public:
  // `fixed_route`: the session came to a suspended branch's own port, and goes to that branch
  // with its startup message unchanged, its password checked by the branch.
  Session(std::shared_ptr<Impl> proxy, asio::ip::tcp::socket socket,
          std::optional<Route> fixed_route = std::nullopt)
      : proxy_(std::move(proxy)),
        peer_(Describe(socket)),
        fixed_route_(std::move(fixed_route)),
        raw_(std::move(socket)),
        deadline_(proxy_->io_),
        reader_(nullptr) {
    proxy_->sessions_.insert(this);
  }
  ~Session() {
    proxy_->sessions_.erase(this);
    if (!cancel_key_.empty()) proxy_->cancel_keys_.erase(cancel_key_);
  }

  void Close() {
    if (client_) client_->Close();
    if (raw_.is_open()) {
      asio::error_code ignored;
      raw_.close(ignored);
    }
    if (backend_) backend_->Close();
  }

  static awaitable<void> Run(std::shared_ptr<Session> self) {
    Impl& proxy = *self->proxy_;
    self->deadline_.expires_after(proxy.options_.startup_timeout);
    self->deadline_.async_wait([weak = std::weak_ptr<Session>(self)](asio::error_code ec) {
      if (ec) return;
      if (auto s = weak.lock(); s && !s->relaying_) {
        spdlog::info("proxy: {}: startup timed out", s->peer_);
        s->Close();
      }
    });
    std::optional<Refusal> refusal;
    try {
      refusal = co_await self->Startup();
    } catch (const std::exception& e) {
      // The client went away or broke the protocol mid-read: nothing to answer.
      spdlog::debug("proxy: {}: {}", self->peer_, e.what());
      self->Close();
      co_return;
    }
    if (refusal) {
      ++proxy.stats_.refused;
      spdlog::info("proxy: {} refused ({}): {}", self->peer_, refusal->sqlstate, refusal->message);
      if (refusal->sent) {
        self->Close();
        co_return;
      }
      try {
        std::string error =
            ErrorResponse("FATAL", refusal->sqlstate, refusal->message, refusal->detail);
        co_await self->client_->WriteAll(asio::buffer(error));
      } catch (const std::exception&) {
      }
      self->Close();
      co_return;
    }
    if (self->closed_) co_return;
    self->relaying_ = true;
    self->deadline_.cancel();
    co_await self->Relay();
  }

 private:
  using Outcome = std::optional<Refusal>;

  static Refusal Refuse(const Status& s) {
    return Refusal{Classify(s.code()).sqlstate, s.message(), {}};
  }

  awaitable<Outcome> Startup() {
    Impl& proxy = *proxy_;
    client_ = std::make_unique<TcpStream>(std::move(raw_));
    reader_.Reset(client_.get());
    std::string server_name;
    StartupPacket startup;
    for (;;) {
      auto packet = co_await reader_.StartupPacket();
      if (!packet.ok()) co_return Refusal{"08P01", packet.status().message(), {}};
      auto parsed = ParseStartupPacket(*packet);
      if (!parsed.ok()) co_return Refusal{"08P01", parsed.status().message(), {}};
      startup = std::move(*parsed);
      if (startup.kind == StartupKind::kCancel) {
        auto it = proxy.cancel_keys_.find(KeyOf(startup.cancel_pid, startup.cancel_key));
        if (it != proxy.cancel_keys_.end()) {
          auto forward = proxy.ForwardCancel(it->second);
          co_await std::move(forward);
        }
        Close();
        closed_ = true;
        co_return std::nullopt;
      }
      if (startup.kind == StartupKind::kGssEncRequest) {
        co_await client_->WriteAll(asio::buffer("N", 1));
        continue;
      }
      if (startup.kind == StartupKind::kSslRequest) {
        if (tls_started_ || !proxy.tls_) {
          co_await client_->WriteAll(asio::buffer("N", 1));
          continue;
        }
        if (!reader_.pending().empty()) {
          // Bytes the client sent after the SSLRequest, before the handshake: refused, so that
          // nothing unencrypted is taken as if it came over TLS.
          co_return Refusal{"08P01", "received unencrypted data after SSL request", {}};
        }
        co_await client_->WriteAll(asio::buffer("S", 1));
        auto* tcp = static_cast<TcpStream*>(client_.get());
        auto tls = std::make_unique<TlsStream>(
            asio::ssl::stream<asio::ip::tcp::socket>(std::move(tcp->socket()), *proxy.tls_));
        tls_context_ = proxy.tls_;  // kept alive for this session across a reload
        co_await tls->socket().async_handshake(asio::ssl::stream_base::server, use_awaitable);
        const char* sni =
            SSL_get_servername(tls->socket().native_handle(), TLSEXT_NAMETYPE_host_name);
        if (sni) server_name = sni;
        client_ = std::move(tls);
        reader_.Reset(client_.get());
        tls_started_ = true;
        continue;
      }
      break;
    }

    if (proxy.sessions_.size() > proxy.options_.max_connections) {
      co_return Refusal{"53300", "sorry, too many clients already", {}};
    }

    // The route, and the startup message the branch gets.
    std::string user = startup.Get("user").value_or("");
    StartupPacket forwarded = startup;
    Route route;
    if (fixed_route_) {
      route = *fixed_route_;  // the branch's own port: everything goes to it as sent
    } else {
      std::optional<Refusal> refused = RouteFrom(startup, server_name, &route, &forwarded);
      if (refused) co_return refused;
    }
    std::vector<std::string> unrecognized;
    for (const auto& [name, value] : startup.params) {
      if (name.starts_with("_pq_.")) unrecognized.push_back(name);
    }
    for (const auto& name : unrecognized) forwarded.Set(name, std::nullopt);
    if (startup.minor > 0 || !unrecognized.empty()) {
      // The proxy speaks 3.0 to branches: say so first (docs 55.2.1).
      std::string negotiate = NegotiateProtocolVersion(0, unrecognized);
      co_await client_->WriteAll(asio::buffer(negotiate));
    }

    auto started = Clock::now();
    auto endpoint = co_await Resolve(route);
    if (!endpoint.ok()) {
      const Status& s = endpoint.status();
      std::string code = s.Is(StatusCode::kInvalidArgument) ? "3D000" : Classify(s.code()).sqlstate;
      co_return Refusal{code, s.message(), {}};
    }
    endpoint_ = *endpoint;
    route_ = route.ToString();

    // On a branch's own port the client gave the branch's password: the branch checks it.
    const bool superuser = !fixed_route_ && user == endpoint_.superuser;
    if (superuser) {
      auto refused = co_await AuthenticateSuperuser(user);
      if (refused) co_return refused;
    }
    std::string packet = SerializeStartupMessage(forwarded);
    Outcome outcome;
    for (;;) {
      auto connected = co_await ConnectBackend(route, superuser, started);
      if (connected) co_return connected;
      backend_reader_ = std::make_unique<Reader>(backend_.get());
      try {
        co_await backend_->WriteAll(asio::buffer(packet));
        outcome = co_await LogIn(superuser);
      } catch (const std::system_error& e) {
        // The branch hung up before saying anything to the client (it was stopping for a
        // reset or a restart): as good as refused.
        if (forwarded_ || closed_) throw;
        outcome = Refusal{"57P03", fmt::format("branch {}: {}", endpoint_.Ref(), e.what()), {}};
        outcome->retry = true;
      }
      if (!outcome || !outcome->retry) break;
      if (Clock::now() - started > proxy.options_.connect_wait || closed_) {
        outcome->retry = false;
        break;
      }
      // Not ready yet (starting up, shutting down, in recovery): the client waits, bounded.
      backend_->Close();
      asio::error_code ec;
      asio::steady_timer pause(proxy.io_, std::chrono::milliseconds(100));
      co_await pause.async_wait(asio::redirect_error(use_awaitable, ec));
      auto again = co_await Resolve(route);
      if (!again.ok()) co_return Refuse(again.status());
      endpoint_ = *again;
    }
    if (!outcome) {
      spdlog::info(
          "proxy: {} user={} route={} -> {} ({} ms)", peer_, user, route_, endpoint_.Ref(),
          std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count());
    }
    co_return outcome;
  }

  // The route a startup message names (route.h), and the startup message the branch gets:
  // the real database, the options without the route. A refusal (3D000) if it names none.
  std::optional<Refusal> RouteFrom(const StartupPacket& startup, const std::string& server_name,
                                   Route* route, StartupPacket* forwarded) const {
    const std::string& domain = proxy_->options_.sni_domain;
    auto routed = RouteStartup(startup.Get("database").value_or(""),
                               startup.Get("options").value_or(""), server_name, domain);
    if (!routed.ok()) return Refusal{"3D000", routed.status().message(), {}};
    if (!routed->route) {
      std::string user = startup.Get("user").value_or("");
      return Refusal{
          "3D000",
          fmt::format("database \"{}\" names no branch", startup.Get("database").value_or(user)),
          "Connect with database PROJECT/BRANCH[/DATABASE] (PROJECT/@ for the active branch), "
          "options '-c pgbranch.branch=PROJECT/BRANCH', or TLS server name "
          "BRANCH.PROJECT." +
              domain};
    }
    *route = *routed->route;
    if (!routed->database.empty()) forwarded->Set("database", routed->database);
    if (routed->options_changed) {
      forwarded->Set("options",
                     routed->options.empty() ? std::nullopt : std::optional(routed->options));
    }
    return std::nullopt;
  }

  awaitable<Result<Endpoint>> Resolve(const Route& route) {
    Router& router = proxy_->router_;
    struct Answer {
      Status status;
      Endpoint endpoint;
    };
    auto resolve = [&router, route] {
      auto r = router.Resolve(route);
      if (!r.ok()) return Answer{r.status(), {}};
      return Answer{Status::OK(), std::move(*r)};
    };
    auto on_worker = proxy_->OnWorker<Answer>(std::move(resolve));
    Answer answer = co_await std::move(on_worker);
    if (!answer.status.ok()) co_return answer.status;
    co_return answer.endpoint;
  }

  // SCRAM-SHA-256 against the project's proxy password (docs 55.3.1).
  awaitable<Outcome> AuthenticateSuperuser(const std::string& user) {
    auto failed = [&] {
      return Refusal{
          "28P01", fmt::format("password authentication failed for user \"{}\"", user), {}};
    };
    if (!endpoint_.verifier) co_return failed();
    ScramServer scram(*endpoint_.verifier);
    std::vector<std::string> mechanisms = {kScramSha256};
    std::string request = AuthenticationSasl(mechanisms);
    co_await client_->WriteAll(asio::buffer(request));
    auto first = co_await reader_.MessageBytes();
    if (!first.ok() || (*first)[0] != 'p') {
      co_return Refusal{"08P01", "expected a SASLInitialResponse", {}};
    }
    auto initial = ParseSaslInitialResponse(std::string_view(*first).substr(5));
    if (!initial.ok()) co_return Refusal{"08P01", initial.status().message(), {}};
    if (initial->mechanism != kScramSha256) {
      co_return Refusal{"28000",
                        fmt::format("client selected an invalid SASL authentication mechanism "
                                    "{}",
                                    initial->mechanism.substr(0, 64)),
                        {}};
    }
    auto server_first = scram.ClientFirst(initial->data);
    if (!server_first.ok()) co_return Refusal{"08P01", server_first.status().message(), {}};
    std::string sasl_continue = AuthenticationSaslContinue(*server_first);
    co_await client_->WriteAll(asio::buffer(sasl_continue));
    auto final_msg = co_await reader_.MessageBytes();
    if (!final_msg.ok() || (*final_msg)[0] != 'p') {
      co_return Refusal{"08P01", "expected a SASLResponse", {}};
    }
    auto server_final = scram.ClientFinal(std::string_view(*final_msg).substr(5));
    if (!server_final.ok()) {
      if (server_final.status().Is(StatusCode::kUnauthenticated)) co_return failed();
      co_return Refusal{"08P01", server_final.status().message(), {}};
    }
    std::string sasl_final = AuthenticationSaslFinal(*server_final);
    co_await client_->WriteAll(asio::buffer(sasl_final));
    co_return std::nullopt;
  }

  // Connects to the branch: its Unix socket for the superuser, else TCP. While the branch
  // refuses (restarting, being reset, still waking), tries again for up to connect_wait.
  awaitable<Outcome> ConnectBackend(const Route& route, bool superuser, Clock::time_point since) {
    Impl& proxy = *proxy_;
    for (int attempt = 0;; ++attempt) {
      asio::error_code ec;
      if (superuser) {
        asio::local::stream_protocol::socket s(proxy.io_);
        asio::local::stream_protocol::endpoint where(endpoint_.socket_path);
        co_await s.async_connect(where, asio::redirect_error(use_awaitable, ec));
        if (!ec) {
          SetCloseOnExec(s.native_handle());
          backend_ = std::make_unique<UnixStream>(std::move(s));
          co_return std::nullopt;
        }
      } else {
        asio::ip::tcp::resolver resolver(proxy.io_);
        std::string port = std::to_string(endpoint_.port);
        auto results = co_await resolver.async_resolve(endpoint_.host, port,
                                                       asio::redirect_error(use_awaitable, ec));
        if (!ec) {
          asio::ip::tcp::socket s(proxy.io_);
          co_await asio::async_connect(s, results, asio::redirect_error(use_awaitable, ec));
          if (!ec) {
            SetCloseOnExec(s.native_handle());
            s.set_option(asio::ip::tcp::no_delay(true), ec);
            backend_ = std::make_unique<TcpStream>(std::move(s));
            co_return std::nullopt;
          }
        }
      }
      if (Clock::now() - since > proxy.options_.connect_wait || closed_) {
        co_return Refusal{
            "57P03",
            fmt::format("branch {} does not accept connections: {}", endpoint_.Ref(), ec.message()),
            {}};
      }
      if (attempt == 0) {
        spdlog::info("proxy: {}: {} refused ({}); waiting for it", peer_, endpoint_.Ref(),
                     ec.message());
      }
      asio::steady_timer pause(proxy.io_, std::chrono::milliseconds(100));
      co_await pause.async_wait(asio::redirect_error(use_awaitable, ec));
      // It may have moved (a reset gives the same port; a restart after a port change not).
      auto again = co_await Resolve(route);
      if (!again.ok()) co_return Refuse(again.status());
      endpoint_ = *again;
    }
  }

  // The branch's side of the login: authentication relayed (other roles) or expected to be
  // trusted (the superuser, already checked), then everything up to the first ReadyForQuery,
  // with BackendKeyData replaced.
  awaitable<Outcome> LogIn(bool superuser) {
    Impl& proxy = *proxy_;
    bool authenticated = false;
    // From AuthenticationOk to ReadyForQuery the branch's messages are held and sent in one
    // write: until then nothing of this attempt has reached the client, so for the superuser
    // (whose password the proxy checked itself) a branch that goes away mid-login is retried.
    std::string held;
    for (;;) {
      auto message = co_await backend_reader_->MessageBytes();
      if (!message.ok()) {
        co_return Refusal{
            "08P01", fmt::format("branch {}: {}", endpoint_.Ref(), message.status().message()), {}};
      }
      std::string_view body = std::string_view(*message).substr(5);
      char type = (*message)[0];
      if (type == 'E') {
        auto fields = ParseErrorFields(body);
        std::string code = fields.ok() ? (*fields)['C'] : "08P01";
        std::string text = fields.ok() ? (*fields)['M'] : fields.status().message();
        // 57P03 "the database system is starting up / shutting down / not yet accepting
        // connections", 57P01/57P02 a shutdown ending the login: the branch is restarting
        // (a reset); nothing reached the client yet, so it may wait for the branch.
        if (!forwarded_ && (code == "57P03" || code == "57P01" || code == "57P02")) {
          co_return Refusal{
              code, fmt::format("branch {}: {}", endpoint_.Ref(), text), {}, false, true};
        }
        forwarded_ = true;
        held += *message;
        co_await client_->WriteAll(asio::buffer(held));
        co_return Refusal{code, fmt::format("branch {}: {}", endpoint_.Ref(), text), {}, true};
      }
      if (type == 'R' && !authenticated) {
        auto auth = ParseAuthentication(body);
        if (!auth.ok()) co_return Refusal{"08P01", auth.status().message(), {}};
        if (auth->code == 0) {
          authenticated = true;
          // The superuser already got SASLFinal from the proxy: now AuthenticationOk.
          held += *message;
          continue;
        }
        if (superuser) {
          co_return Refusal{"28000",
                            fmt::format("branch {} asked the proxy for a password on its socket",
                                        endpoint_.Ref()),
                            {}};
        }
        forwarded_ = true;
        co_await client_->WriteAll(asio::buffer(*message));
        if (auth->code == 12) continue;  // SASLFinal: AuthenticationOk or an error follows
        auto reply = co_await reader_.MessageBytes();
        if (!reply.ok()) co_return Refusal{"08P01", reply.status().message(), {}};
        co_await backend_->WriteAll(asio::buffer(*reply));
        continue;
      }
      if (type == 'K' && !fixed_route_) {
        auto key = ParseBackendKeyData(body);
        if (!key.ok()) co_return Refusal{"08P01", key.status().message(), {}};
        CancelTarget target;
        if (superuser) {
          target.socket_path = endpoint_.socket_path;
        } else {
          target.host = endpoint_.host;
          target.port = endpoint_.port;
        }
        target.pid = key->pid;
        target.key = key->key;
        int32_t pid = 0;
        std::string secret;
        do {
          std::array<unsigned char, 8> random;
          if (RAND_bytes(random.data(), static_cast<int>(random.size())) != 1) {
            co_return Refusal{"XX000", "no random bytes for a cancel key", {}};
          }
          std::memcpy(&pid, random.data(), 4);
          pid &= 0x7fffffff;
          secret.assign(reinterpret_cast<const char*>(random.data()) + 4, 4);
        } while (pid == 0 || proxy.cancel_keys_.count(KeyOf(pid, secret)));
        if (!cancel_key_.empty()) proxy.cancel_keys_.erase(cancel_key_);  // an earlier attempt's
        cancel_key_ = KeyOf(pid, secret);
        proxy.cancel_keys_[cancel_key_] = std::move(target);
        held += BackendKeyData(pid, secret);
        continue;
      }
      held += *message;
      if (type == 'Z') {
        forwarded_ = true;
        co_await client_->WriteAll(asio::buffer(held));
        co_return std::nullopt;
      }
    }
  }

  static awaitable<void> Pump(std::shared_ptr<Session> self, Stream* from, Stream* to,
                              std::string pending) {
    try {
      if (!pending.empty()) co_await to->WriteAll(asio::buffer(pending));
      std::vector<char> buffer(kRelayBuffer);
      for (;;) {
        size_t n = co_await from->ReadSome(asio::buffer(buffer));
        co_await to->WriteAll(asio::buffer(buffer.data(), n));
      }
    } catch (const std::exception&) {
    }
    self->Close();
  }

  awaitable<void> Relay() {
    auto self = shared_from_this();
    asio::co_spawn(proxy_->io_,
                   Pump(self, backend_.get(), client_.get(), backend_reader_->pending()),
                   asio::detached);
    auto pump = Pump(self, client_.get(), backend_.get(), reader_.pending());
    co_await std::move(pump);
  }

  std::shared_ptr<Impl> proxy_;
  std::string peer_;
  std::optional<Route> fixed_route_;
  asio::ip::tcp::socket raw_;
  asio::steady_timer deadline_;
  std::unique_ptr<Stream> client_;
  std::unique_ptr<Stream> backend_;
  Reader reader_;
  std::unique_ptr<Reader> backend_reader_;
  std::shared_ptr<asio::ssl::context> tls_context_;
  Endpoint endpoint_;
  std::string route_;
  std::string cancel_key_;
  bool tls_started_ = false;
  bool forwarded_ = false;  // LogIn has relayed something of the branch's to the client
  bool relaying_ = false;
  bool closed_ = false;
};

awaitable<void> Proxy::Impl::Accept(std::shared_ptr<Impl> self) {
  while (self->acceptor_.is_open()) {
    asio::error_code ec;
    asio::ip::tcp::socket socket =
        co_await self->acceptor_.async_accept(asio::redirect_error(use_awaitable, ec));
    if (ec) {
      if (ec == asio::error::operation_aborted || !self->acceptor_.is_open()) break;
      // Out of descriptors and the like: say so, breathe, go on.
      spdlog::warn("proxy: accept: {}", ec.message());
      asio::steady_timer pause(self->io_, std::chrono::milliseconds(100));
      co_await pause.async_wait(asio::redirect_error(use_awaitable, ec));
      continue;
    }
    SetCloseOnExec(socket.native_handle());
    socket.set_option(asio::ip::tcp::no_delay(true), ec);
    ++self->stats_.accepted;
    auto session = std::make_shared<Session>(self, std::move(socket));
    asio::co_spawn(self->io_, Session::Run(session), asio::detached);
  }
}

awaitable<void> Proxy::Impl::AcceptForBranch(std::shared_ptr<Impl> self,
                                             std::shared_ptr<BranchListener> listener, int port) {
  asio::error_code ec;
  asio::ip::tcp::socket socket =
      co_await listener->acceptor.async_accept(asio::redirect_error(use_awaitable, ec));
  // The first client: the port goes back at once, for the branch's server to bind it.
  asio::error_code ignored;
  listener->acceptor.close(ignored);
  auto it = self->branch_listeners_.find(port);
  if (it != self->branch_listeners_.end() && it->second == listener) {
    self->branch_listeners_.erase(it);
  }
  if (ec) co_return;
  self->woken_at_[port] = Clock::now();
  SetCloseOnExec(socket.native_handle());
  socket.set_option(asio::ip::tcp::no_delay(true), ec);
  ++self->stats_.accepted;
  spdlog::info("proxy: a client on port {} wakes {}", port, listener->route.ToString());
  auto session = std::make_shared<Session>(self, std::move(socket), listener->route);
  asio::co_spawn(self->io_, Session::Run(session), asio::detached);
}

void Proxy::Impl::CloseAll() {
  for (auto* session : sessions_) session->Close();
}

Proxy::Proxy(asio::io_context& io, Router& router, ProxyOptions options)
    : impl_(std::make_shared<Impl>(io, router, std::move(options))) {}
Proxy::~Proxy() {
  impl_->StopAccepting();
  impl_->CloseAll();
}
Status Proxy::Listen() { return impl_->Listen(); }
int Proxy::port() const { return impl_->port(); }
Status Proxy::ReloadTls() { return impl_->ReloadTls(); }
Status Proxy::ListenForBranch(const std::string& host, int port, const Route& route) {
  return impl_->ListenForBranch(host, port, route);
}
void Proxy::StopListeningForBranch(int port) { impl_->StopListeningForBranch(port); }
std::vector<int> Proxy::BranchListenerPorts() const { return impl_->BranchListenerPorts(); }
void Proxy::StopAccepting() { impl_->StopAccepting(); }
void Proxy::CloseAll() { impl_->CloseAll(); }
ProxyStats Proxy::stats() const { return impl_->stats(); }

}  // namespace pgb::proxy
