#include "replboot/replication/node.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <charconv>
#include <cmath>
#include <map>
#include <thread>

#include "replboot/base/log.h"
#include "replboot/replication/configure.h"
#include "replboot/replication/users.h"

namespace replboot::replication {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::awaitable;
using asio::use_awaitable;
using tcp = asio::ip::tcp;

namespace {

constexpr auto kIoTimeout = std::chrono::seconds(10);  // per read or write of one request

// Runs blocking `f` on `pool` and resumes the awaiting coroutine on its own executor.
// (Not a lambda coroutine: GCC 12 destroys the captures of a coroutine lambda too early.)
template <typename F>
auto OnPool(asio::thread_pool& pool, F f) {
  using T = std::invoke_result_t<F>;
  return asio::async_initiate<const asio::use_awaitable_t<>, void(T)>(
      [&pool](auto handler, F work) {
        asio::post(pool, [handler = std::move(handler), work = std::move(work)]() mutable {
          T result = work();
          auto executor = asio::get_associated_executor(handler);
          asio::dispatch(executor,
                         [handler = std::move(handler), result = std::move(result)]() mutable {
                           std::move(handler)(std::move(result));
                         });
        });
      },
      use_awaitable, std::move(f));
}

Result<tcp::endpoint> ParseListen(const std::string& listen) {
  std::string host, port_text;
  if (!listen.empty() && listen.front() == '[') {
    size_t close = listen.find(']');
    if (close == std::string::npos || close + 1 >= listen.size() || listen[close + 1] != ':') {
      return Error(StatusCode::kInvalidArgument, "http.listen '{}' is not [address]:port", listen);
    }
    host = listen.substr(1, close - 1);
    port_text = listen.substr(close + 2);
  } else {
    size_t colon = listen.rfind(':');
    if (colon == std::string::npos)
      return Error(StatusCode::kInvalidArgument, "http.listen '{}' has no port", listen);
    host = listen.substr(0, colon);
    port_text = listen.substr(colon + 1);
  }
  if (host.empty()) host = "0.0.0.0";
  unsigned port = 0;
  auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || ptr != port_text.data() + port_text.size() || port > 65535) {
    return Error(StatusCode::kInvalidArgument, "http.listen '{}': '{}' is not a port", listen,
                 port_text);
  }
  boost::system::error_code error;
  auto address = asio::ip::make_address(host, error);
  if (error)
    return Error(StatusCode::kInvalidArgument, "http.listen '{}': '{}' is not an IP address",
                 listen, host);
  return tcp::endpoint(address, static_cast<unsigned short>(port));
}

std::string PercentDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out.push_back(static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else if (s[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::map<std::string, std::string> ParseQuery(std::string_view query) {
  std::map<std::string, std::string> out;
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    size_t eq = pair.find('=');
    out[PercentDecode(pair.substr(0, eq))] =
        eq == std::string_view::npos ? "" : PercentDecode(pair.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return out;
}

std::optional<double> ParseNumber(const std::string& text) {
  double v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size() || !(v >= 0))
    return std::nullopt;
  return v;
}

using Response = http::response<http::string_body>;

Response Text(http::status status, std::string body) {
  Response res{status, 11};
  res.set(http::field::content_type, "text/plain; charset=utf-8");
  res.set(http::field::cache_control, "no-store");
  res.body() = std::move(body) + "\n";
  return res;
}

Response FromDecision(const Decision& d) {
  return Text(d.ok ? http::status::ok : http::status::service_unavailable, d.reason);
}

}  // namespace

struct Node::Impl : std::enable_shared_from_this<Node::Impl> {
  explicit Impl(NodeOptions o)
      : options(std::move(o)),
        wait_pool(static_cast<size_t>(std::max(1, options.max_concurrent_waits))) {
    snapshot.node = options.info;
    snapshot.mysqld_error = "not checked yet";
  }

  NodeOptions options;
  std::shared_ptr<spdlog::logger> log = log::Get("replication");
  // Poller and heartbeat: two threads, each with its own session (used by one thread at a time).
  asio::thread_pool poll_pool{2};
  asio::thread_pool wait_pool;
  std::unique_ptr<db::Session> poll_session;
  std::unique_ptr<db::Session> beat_session;

  std::optional<asio::any_io_executor> executor;
  std::unique_ptr<tcp::acceptor> acceptor;
  std::unique_ptr<asio::steady_timer> poll_timer;
  std::unique_ptr<asio::steady_timer> beat_timer;
  std::atomic<bool> stopping{false};
  std::atomic<unsigned short> port{0};
  std::atomic<int> waits{0};
  std::atomic<bool> heartbeat_started{false};
  std::atomic<bool> set_up{true};

  mutable std::mutex mu;
  std::mutex collect_mu;   // serializes CollectOnce (poll_session)
  Snapshot snapshot;       // guarded by mu
  std::string last_error;  // guarded by mu
  CloneProgress clone;
  std::atomic<uint64_t> backups_served{0};

  std::unique_ptr<asio::io_context> own_io;
  std::thread own_thread;

  Snapshot Current() const {
    Snapshot s;
    {
      std::lock_guard lock(mu);
      s = snapshot;
      if (!last_error.empty()) s.last_error = last_error;
    }
    s.clone = clone.Get();
    s.set_up = set_up.load();
    s.backups_served = backups_served.load();
    return s;
  }

  // On poll_pool, from the poll loop and from /status: collect_mu keeps the two from
  // using poll_session at the same time.
  Snapshot CollectOnce() {
    std::lock_guard collect_lock(collect_mu);
    if (!poll_session) {
      auto session = db::Connect(options.local);
      if (!session) {
        Snapshot s;
        s.node = options.info;
        s.collected_at = std::chrono::system_clock::now();
        s.mysqld_error = session.error().message();
        return s;
      }
      poll_session = std::move(*session);
    }
    Snapshot s = CollectSnapshot(*poll_session, options.info);
    if (!s.mysqld_up) poll_session.reset();  // reconnect next time
    return s;
  }

  // On poll_pool.
  Status BeatOnce() {
    if (!beat_session) {
      auto session = db::Connect(options.local);
      if (!session) return session.error();
      beat_session = std::move(*session);
    }
    Status status = WriteHeartbeat(*beat_session);
    if (!status.ok() && status.code() == StatusCode::kUnavailable) beat_session.reset();
    return status;
  }

  awaitable<void> PollLoop(std::shared_ptr<Impl> self) {
    // Starts "down": in `replboot run` the server answers before mysqld exists (while it is
    // initialized or cloned), and that is not worth a warning; losing it later is.
    bool was_up = false;
    while (!stopping) {
      Snapshot s = co_await OnPool(poll_pool, [this] { return CollectOnce(); });
      if (s.mysqld_up != was_up && !clone.Get().Active()) {
        if (s.mysqld_up) {
          log->info("event=mysqld_answering");
        } else {
          log->warn("event=mysqld_not_answering error={}", log::Quote(s.mysqld_error));
        }
        was_up = s.mysqld_up;
      }
      {
        std::lock_guard lock(mu);
        snapshot = std::move(s);
      }
      poll_timer->expires_after(options.poll_interval);
      co_await poll_timer->async_wait(asio::as_tuple(use_awaitable));
    }
    (void)self;
  }

  awaitable<void> BeatLoop(std::shared_ptr<Impl> self) {
    std::string last;  // log a failure once, not every second
    while (!stopping) {
      Status status = co_await OnPool(poll_pool, [this] { return BeatOnce(); });
      if (!status.ok() && status.message() != last) {
        log->warn("event=heartbeat_failed error={}", log::Quote(status.message()));
      } else if (status.ok() && !last.empty()) {
        log->info("event=heartbeat_resumed");
      }
      last = status.ok() ? "" : status.message();
      beat_timer->expires_after(options.poll_interval);
      co_await beat_timer->async_wait(asio::as_tuple(use_awaitable));
    }
    (void)self;
  }

  awaitable<Response> Wait(const std::map<std::string, std::string>& query) {
    auto gtid = query.find("gtid");
    if (gtid == query.end() || gtid->second.empty())
      co_return Text(http::status::bad_request, "missing ?gtid=");
    double timeout = 10;
    if (auto t = query.find("timeout"); t != query.end()) {
      auto parsed = ParseNumber(t->second);
      if (!parsed)
        co_return Text(http::status::bad_request,
                       fmt::format("timeout '{}' is not a number", t->second));
      timeout = *parsed;
    }
    auto seconds = std::chrono::seconds(static_cast<int64_t>(std::ceil(timeout)));
    seconds = std::min(seconds, options.max_wait);
    if (waits.fetch_add(1) >= options.max_concurrent_waits) {
      waits.fetch_sub(1);
      co_return Text(
          http::status::service_unavailable,
          fmt::format("too many concurrent waits (limit {})", options.max_concurrent_waits));
    }
    const std::string wanted = gtid->second;
    // Captures by reference only (the frame outlives the call): GCC 12 mishandles the
    // destruction of non-trivial captures of a temporary inside a co_await expression.
    auto result = co_await OnPool(wait_pool, [this, &wanted, &seconds]() -> Result<WaitResult> {
      db::ConnectOptions o = options.local;
      o.read_timeout = seconds + std::chrono::seconds(10);
      auto session = db::Connect(o);
      if (!session) return tl::unexpected(session.error());
      return WaitForGtid(**session, options.info.flavour, wanted, seconds, options.info.role);
    });
    waits.fetch_sub(1);
    if (!result) {
      http::status status =
          result.error().code() == StatusCode::kInvalidArgument ? http::status::bad_request
          : result.error().code() == StatusCode::kUnavailable   ? http::status::service_unavailable
                                                              : http::status::internal_server_error;
      co_return Text(status, result.error().message());
    }
    if (*result == WaitResult::kReached) co_return Text(http::status::ok, "reached " + wanted);
    co_return Text(http::status::gateway_timeout,
                   fmt::format("not reached {} within {}s", wanted, seconds.count()));
  }

  awaitable<Response> Handle(const http::request<http::empty_body>& req) {
    if (req.method() != http::verb::get && req.method() != http::verb::head) {
      Response res = Text(http::status::method_not_allowed, "only GET");
      res.set(http::field::allow, "GET, HEAD");
      co_return res;
    }
    std::string_view target(req.target().data(), req.target().size());
    size_t q = target.find('?');
    std::string_view path = target.substr(0, q);
    auto query =
        ParseQuery(q == std::string_view::npos ? std::string_view() : target.substr(q + 1));
    Snapshot s = Current();
    if (path == "/health") co_return FromDecision(DecideHealth(s));
    if (path == "/ready") co_return FromDecision(DecideReady(s, options.max_lag));
    if (path == "/primary") co_return FromDecision(DecidePrimary(s));
    if (path == "/replica") {
      double limit = options.max_lag;
      if (auto l = query.find("lag"); l != query.end()) {
        auto parsed = ParseNumber(l->second);
        if (!parsed)
          co_return Text(http::status::bad_request,
                         fmt::format("lag '{}' is not a number", l->second));
        limit = *parsed;
      }
      co_return FromDecision(DecideReplica(s, limit));
    }
    if (path == "/status") {
      // Collected now, not the last 1 s poll: an application takes the primary's GTID
      // position from here to pass to a replica's /wait, and a position even a fraction of
      // a second old would let /wait answer "reached" before its own write was applied.
      Snapshot fresh = co_await OnPool(poll_pool, [this] { return CollectOnce(); });
      {
        std::lock_guard lock(mu);
        snapshot = fresh;
      }
      s = Current();
      Response res{http::status::ok, 11};
      res.set(http::field::content_type, "application/json");
      res.set(http::field::cache_control, "no-store");
      res.body() = SnapshotJson(s, options.max_lag).dump(2) + "\n";
      co_return res;
    }
    if (path == "/metrics") {
      Response res{http::status::ok, 11};
      res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
      res.body() = SnapshotMetrics(s);
      co_return res;
    }
    if (path == "/wait") co_return co_await Wait(query);
    co_return Text(http::status::not_found, fmt::format("no such endpoint '{}'", path));
  }

  awaitable<void> Serve(std::shared_ptr<Impl> self, tcp::socket socket) {
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    std::string peer;
    boost::system::error_code ignored;
    auto remote = stream.socket().remote_endpoint(ignored);
    if (!ignored) peer = fmt::format("{}:{}", remote.address().to_string(), remote.port());
    while (!stopping) {
      http::request_parser<http::empty_body> parser;
      parser.header_limit(16 * 1024);
      parser.body_limit(0);
      stream.expires_after(kIoTimeout);
      auto [read_error, read_bytes] =
          co_await http::async_read(stream, buffer, parser, asio::as_tuple(use_awaitable));
      (void)read_bytes;
      if (read_error) {
        if (read_error != http::error::end_of_stream && read_error != beast::error::timeout &&
            read_error != asio::error::operation_aborted) {
          log->debug("event=http_read_failed peer={} error={}", peer,
                     log::Quote(read_error.message()));
        }
        break;
      }
      http::request<http::empty_body> req = parser.release();
      Response res = co_await Handle(req);
      res.version(req.version());
      res.keep_alive(req.keep_alive());
      if (req.method() == http::verb::head) {
        res.content_length(res.body().size());
        res.body().clear();
      } else {
        res.prepare_payload();
      }
      stream.expires_after(kIoTimeout);
      auto [write_error, written] =
          co_await http::async_write(stream, res, asio::as_tuple(use_awaitable));
      (void)written;
      if (write_error || !res.keep_alive()) break;
    }
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
    (void)self;
  }

  awaitable<void> AcceptLoop(std::shared_ptr<Impl> self) {
    while (!stopping) {
      auto [error, socket] = co_await acceptor->async_accept(asio::as_tuple(use_awaitable));
      if (error) {
        if (stopping || error == asio::error::operation_aborted) break;
        log->warn("event=http_accept_failed error={}", log::Quote(error.message()));
        continue;
      }
      asio::co_spawn(*executor, Serve(self, std::move(socket)), asio::detached);
    }
  }
};

Node::Node(NodeOptions options) : impl_(std::make_shared<Impl>(std::move(options))) {
  impl_->set_up = impl_->options.set_up;
}

void Node::MarkSetUp() { impl_->set_up = true; }

Node::~Node() {
  Stop();
  // Our own io_context: do not wait for idle keep-alive connections to time out.
  if (impl_->own_io) impl_->own_io->stop();
  if (impl_->own_thread.joinable()) impl_->own_thread.join();
  impl_->poll_pool.join();
  impl_->wait_pool.join();
  if (impl_->own_io) {
    // The I/O objects must go before the io_context whose services they use; then the
    // io_context destroys the coroutine frames left in it, which hold references to impl_.
    impl_->acceptor.reset();
    impl_->poll_timer.reset();
    impl_->beat_timer.reset();
    impl_->executor.reset();
    impl_->own_io.reset();
  }
}

Status Node::Start(asio::io_context& io) {
  auto endpoint = ParseListen(impl_->options.listen);
  if (!endpoint) return endpoint.error();
  impl_->executor = io.get_executor();
  auto acceptor = std::make_unique<tcp::acceptor>(io);
  boost::system::error_code error;
  acceptor->open(endpoint->protocol(), error);
  if (!error) acceptor->set_option(asio::socket_base::reuse_address(true), error);
  if (!error) acceptor->bind(*endpoint, error);
  if (!error) acceptor->listen(asio::socket_base::max_listen_connections, error);
  if (error) {
    return Status(StatusCode::kUnavailable,
                  fmt::format("http listen {}: {}", impl_->options.listen, error.message()));
  }
  impl_->port = acceptor->local_endpoint().port();
  impl_->acceptor = std::move(acceptor);
  impl_->poll_timer = std::make_unique<asio::steady_timer>(io);
  impl_->beat_timer = std::make_unique<asio::steady_timer>(io);
  auto self = impl_;
  asio::co_spawn(io, impl_->AcceptLoop(self), asio::detached);
  asio::co_spawn(io, impl_->PollLoop(self), asio::detached);
  if (impl_->options.write_heartbeat) StartHeartbeat();
  impl_->log->info("event=http_listening address={} port={} role={} heartbeat={}",
                   impl_->options.listen, impl_->port.load(),
                   NodeRoleName(impl_->options.info.role), impl_->options.write_heartbeat);
  return Status::Ok();
}

void Node::StartHeartbeat() {
  if (!impl_->executor || impl_->heartbeat_started.exchange(true)) return;
  asio::co_spawn(*impl_->executor, impl_->BeatLoop(impl_), asio::detached);
}

Status Node::StartInBackground() {
  impl_->own_io = std::make_unique<asio::io_context>();
  Status started = Start(*impl_->own_io);
  if (!started.ok()) return started;
  impl_->own_thread = std::thread([io = impl_->own_io.get()] { io->run(); });
  return Status::Ok();
}

void Node::Stop() {
  if (impl_->stopping.exchange(true)) return;
  if (!impl_->executor) return;
  auto self = impl_;
  // Asio objects are not thread-safe: close them on their own executor.
  asio::post(*impl_->executor, [self] {
    boost::system::error_code ignored;
    if (self->acceptor) self->acceptor->close(ignored);
    if (self->poll_timer) self->poll_timer->cancel();
    if (self->beat_timer) self->beat_timer->cancel();
  });
}

unsigned short Node::port() const { return impl_->port; }
CloneProgress& Node::clone_progress() { return impl_->clone; }
void Node::CountBackupServed() { impl_->backups_served.fetch_add(1); }
void Node::SetLastError(std::string error) {
  std::lock_guard lock(impl_->mu);
  impl_->last_error = std::move(error);
}
void Node::AddError(const std::string& error) {
  std::lock_guard lock(impl_->mu);
  impl_->last_error = impl_->last_error.empty() ? error : impl_->last_error + "; " + error;
}
Snapshot Node::Current() const { return impl_->Current(); }

Result<db::ConnectOptions> LocalRootOptions(const conf::Config& config) {
  auto password = conf::ResolveSecret(config.mysql.root_password, config.mysql.root_password_file,
                                      "mysql.root_password");
  if (!password) return tl::unexpected(password.error());
  db::ConnectOptions o;
  o.socket = config.mysql.socket;
  o.user = "root";
  o.password = *password;
  return o;
}

NodeOptions NodeOptionsFromConfig(const conf::Config& config, const conf::Identity& identity,
                                  Flavour flavour, const db::ConnectOptions& local) {
  NodeOptions o;
  o.info.role = identity.role == conf::Role::kPrimary ? NodeRole::kPrimary : NodeRole::kReplica;
  o.info.ordinal = identity.ordinal;
  o.info.server_id = identity.server_id;
  o.info.flavour = flavour;
  o.local = local;
  o.listen = config.http.listen;
  o.max_lag = static_cast<double>(config.replication.max_lag);
  o.write_heartbeat = identity.role == conf::Role::kPrimary;
  return o;
}

Prepared PrepareReplication(const conf::Config& config, const conf::Identity& identity,
                            Flavour flavour, const db::ConnectOptions& local) {
  Prepared out;
  auto log = log::Get("replication");
  auto session = db::Connect(local);
  if (!session) {
    out.fatal = session.error().WithContext("replication setup");
    return out;
  }
  if (identity.role == conf::Role::kPrimary) {
    auto accounts = AccountsFromConfig(config);
    if (!accounts) {
      out.fatal = accounts.error();
      return out;
    }
    out.fatal = EnsureUsers(**session, flavour, *accounts);
    return out;
  }
  auto password = conf::ResolveSecret(config.replication.password, config.replication.password_file,
                                      "replication.password");
  if (!password) {
    out.fatal = password.error();
    return out;
  }
  ReplicaSetup setup;
  setup.flavour = flavour;
  setup.source.host = identity.PeerName(0, config.cluster.service);
  setup.source.port = static_cast<int>(config.mysql.port);
  setup.source.user = config.replication.user;
  setup.source.password = *password;
  setup.source.connect_retry = static_cast<int>(config.replication.connect_retry);
  setup.source.tls = config.replication.tls;
  setup.datadir = config.mysql.datadir;
  setup.start_deadline = std::chrono::seconds(config.replication.start_deadline);
  auto outcome = SetupReplica(**session, setup);
  if (!outcome) {
    // The node keeps running and serving health: /ready and /status say why.
    out.error = outcome.error().message();
    log->error("event=replication_setup_failed error={}", log::Quote(out.error));
  }
  return out;
}

Result<std::unique_ptr<Node>> StartNodeServer(const conf::Config& config,
                                              const conf::Identity& identity, Flavour flavour) {
  auto local = LocalRootOptions(config);
  if (!local) return tl::unexpected(local.error());
  NodeOptions options = NodeOptionsFromConfig(config, identity, flavour, *local);
  options.write_heartbeat = false;  // its table exists once FinishReplicationSetup ran
  options.set_up = false;
  auto node = std::make_unique<Node>(std::move(options));
  Status started = node->StartInBackground();
  if (!started.ok()) return tl::unexpected(started);
  return node;
}

Status FinishReplicationSetup(Node& node, const conf::Config& config,
                              const conf::Identity& identity, Flavour flavour) {
  auto local = LocalRootOptions(config);
  if (!local) return local.error();
  Prepared prepared = PrepareReplication(config, identity, flavour, *local);
  if (!prepared.fatal.ok()) return prepared.fatal;
  node.SetLastError(prepared.error);
  if (identity.role == conf::Role::kPrimary) node.StartHeartbeat();
  node.MarkSetUp();
  return Status::Ok();
}

}  // namespace replboot::replication
