#include "replboot/api/server.h"

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
#include <charconv>
#include <cmath>
#include <condition_variable>
#include <map>
#include <string>
#include <thread>

#include "replboot/api/query.h"
#include "replboot/base/log.h"

namespace replboot::api {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::awaitable;
using asio::use_awaitable;
using tcp = asio::ip::tcp;
// What the server reports and decides comes from replication/health.h.
using replication::CollectSnapshot;
using replication::DecideHealth;
using replication::DecidePrimary;
using replication::DecideReady;
using replication::DecideReplica;
using replication::Decision;
using replication::NodeRole;
using replication::NodeRoleName;
using replication::SnapshotJson;
using replication::SnapshotMetrics;
using replication::WaitForGtid;
using replication::WaitResult;
using replication::WriteHeartbeat;

namespace {

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

namespace {

// After a /wait's own deadline the server-side wait has this long to answer by itself (it is
// given the same deadline) before it is killed; a killed wait has kKillGrace to hand its
// connection back before the request is answered anyway.
constexpr auto kWaitKillGrace = std::chrono::seconds(1);
constexpr auto kKillGrace = std::chrono::seconds(5);
// A refused burst is logged once, then at most this often, with the count.
constexpr auto kRefusalLogInterval = std::chrono::seconds(10);
// /replica?lag= beyond a day is no threshold anyone means; it is refused like garbage.
constexpr double kMaxLagParam = 86400;

// One /wait in flight, shared by the request's coroutine (I/O thread), the wait_pool thread
// that holds its database connection, and the kill_pool thread that may end it.
struct WaitCall {
  explicit WaitCall(const asio::any_io_executor& executor) : wake(executor) {}
  // Expires at the kill deadline; cancelled (on the I/O thread) when the wait has returned or
  // the client has gone.
  asio::steady_timer wake;
  std::string gtid;
  std::chrono::steady_clock::time_point deadline;  // the server-side wait ends by then
  std::atomic<uint64_t> connection_id{0};          // the waiting session's, once connected
  std::atomic<bool> cancelled{false};              // set before the kill: do not start
  std::atomic<bool> done{false};
  Result<WaitResult> result = WaitResult::kTimedOut;  // written before done, read after
  bool watching = true;                               // I/O thread only: the socket is alive
  bool client_gone = false;                           // I/O thread only
};

}  // namespace

struct Server::Impl : std::enable_shared_from_this<Server::Impl> {
  explicit Impl(ServerOptions o)
      : options(std::move(o)),
        wait_pool(static_cast<size_t>(std::max(1, options.max_concurrent_waits))) {
    snapshot.node = options.info;
    snapshot.mysqld_error = "not checked yet";
  }

  ServerOptions options;
  std::shared_ptr<spdlog::logger> log = log::Get("api");
  // The poller and the heartbeat each run on a thread of their own with a session of their
  // own, apart from the I/O thread and the request pools: no request load can delay a
  // heartbeat (replicas would report lag) or make the poller collect more often.
  std::thread poll_thread;
  std::thread beat_thread;
  std::unique_ptr<db::Session> poll_session;  // poll_thread only
  std::unique_ptr<db::Session> beat_session;  // beat_thread only
  std::mutex stop_mu;
  std::condition_variable stop_cv;  // wakes the poller and the heartbeat at Stop()
  // /wait: one thread per allowed concurrent wait, each with a connection of its own; and the
  // one thread (with its session) that kills a wait whose client left or whose deadline passed.
  asio::thread_pool wait_pool;
  asio::thread_pool kill_pool{1};
  std::unique_ptr<db::Session> kill_session;  // kill_pool only

  std::optional<asio::any_io_executor> executor;
  std::unique_ptr<tcp::acceptor> acceptor;
  std::atomic<bool> stopping{false};
  std::atomic<unsigned short> port{0};
  std::atomic<int> waits{0};
  std::atomic<bool> heartbeat_started{false};
  std::atomic<bool> set_up{true};

  // HTTP connections, for the caps and /metrics.
  std::atomic<int> connections{0};
  std::map<std::string, int> connections_per_address;  // I/O thread only
  std::atomic<uint64_t> connections_refused{0};
  std::atomic<uint64_t> waits_killed{0};
  uint64_t refused_logged = 0;                                // I/O thread only
  std::chrono::steady_clock::time_point refusal_logged_at{};  // I/O thread only

  mutable std::mutex mu;
  Snapshot snapshot;       // guarded by mu
  std::string last_error;  // guarded by mu
  CloneProgress clone;
  RecoveryState recovery;
  replication::BootstrapStatus bootstrap;
  replication::ArchiveStatus archive;
  replication::BinlogArchiveStatus binlog_archive;
  std::atomic<uint64_t> backups_served{0};
  std::atomic<uint64_t> backup_connections_refused{0};
  mutable std::mutex backup_source_mu;
  std::function<replication::BackupServing()> backup_source;  // guarded by backup_source_mu

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
    s.recovery = recovery.Get();
    s.bootstrap = bootstrap.Get();
    s.archive = archive.Get();
    s.binlog_archive = binlog_archive.Get();
    s.set_up = set_up.load();
    s.backups_served = backups_served.load();
    s.backup_connections_refused = backup_connections_refused.load();
    {
      std::lock_guard lock(backup_source_mu);
      if (backup_source) s.backup = backup_source();
    }
    return s;
  }

  // Sleeps until `until` or Stop(); false when stopping.
  bool SleepUntil(std::chrono::steady_clock::time_point until) {
    std::unique_lock lock(stop_mu);
    return !stop_cv.wait_until(lock, until, [this] { return stopping.load(); });
  }

  Snapshot CollectOnce() {
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

  // The only place that collects: /status and /metrics serve what this stored last, so the
  // database sees one collection per poll_interval whatever the request rate.
  void PollThread() {
    // Starts "down": in `replboot run` the server answers before mysqld exists (while it is
    // initialized or cloned), and that is not worth a warning; losing it later is.
    bool was_up = false;
    do {
      Snapshot s = CollectOnce();
      if (s.mysqld_up != was_up && !clone.Get().Active()) {
        if (s.mysqld_up) {
          log->info("event=mysqld_answering");
        } else {
          log->warn("event=mysqld_not_answering error={}", log::Quote(s.mysqld_error));
        }
        was_up = s.mysqld_up;
      }
      std::lock_guard lock(mu);
      snapshot = std::move(s);
    } while (SleepUntil(std::chrono::steady_clock::now() + options.poll_interval));
  }

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

  void BeatThread() {
    std::string last;  // log a failure once, not every second
    // On a fixed schedule, so that a slow write does not push every later beat back.
    auto next = std::chrono::steady_clock::now();
    do {
      Status status = BeatOnce();
      if (!status.ok() && status.message() != last) {
        log->warn("event=heartbeat_failed error={}", log::Quote(status.message()));
      } else if (status.ok() && !last.empty()) {
        log->info("event=heartbeat_resumed");
      }
      last = status.ok() ? "" : status.message();
      next += options.poll_interval;
      auto now = std::chrono::steady_clock::now();
      if (next < now) next = now;
    } while (SleepUntil(next));
  }

  // On wait_pool: connects, notes the connection id (for a kill), waits on the server until
  // call.deadline at most.
  void RunWait(WaitCall& call) {
    db::ConnectOptions o = options.local;
    auto budget =
        std::chrono::ceil<std::chrono::seconds>(call.deadline - std::chrono::steady_clock::now());
    o.read_timeout = std::max(budget, std::chrono::seconds(0)) + std::chrono::seconds(10);
    auto session = db::Connect(o);
    if (!session) {
      call.result = tl::unexpected(session.error());
      return;
    }
    auto id = (*session)->Query("SELECT CONNECTION_ID() AS id");
    uint64_t connection_id = 0;
    std::string id_text = id && !id->empty() ? id->front().Get("id").value_or("") : "";
    auto [ptr, ec] =
        std::from_chars(id_text.data(), id_text.data() + id_text.size(), connection_id);
    if (!id || ec != std::errc() || ptr != id_text.data() + id_text.size()) {
      // Without its id the wait could not be ended: do not start it.
      call.result = tl::unexpected(
          id ? Status(StatusCode::kInternal, "wait: CONNECTION_ID() returned '" + id_text + "'")
             : id.error());
      return;
    }
    call.connection_id.store(connection_id);
    if (call.cancelled.load()) return;  // ended before it began: kTimedOut
    auto remaining =
        std::chrono::ceil<std::chrono::seconds>(call.deadline - std::chrono::steady_clock::now());
    call.result = WaitForGtid(**session, options.info.flavour, call.gtid,
                              std::max(remaining, std::chrono::seconds(0)), options.info.role);
  }

  // On kill_pool. KILL CONNECTION rather than KILL QUERY: it also ends a wait between two
  // statements (the primary's polling loop, or one about to start), and the connection is
  // gone with it instead of sleeping until the pool thread closes it.
  Status KillWait(WaitCall& call) {
    call.cancelled.store(true);
    uint64_t id = call.connection_id.load();
    if (id == 0) return Status::Ok();  // not connected yet: it sees `cancelled` and stops
    Status last;
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (!kill_session) {
        auto session = db::Connect(options.local);
        if (!session) return session.error().WithContext("end a /wait");
        kill_session = std::move(*session);
      }
      last = kill_session->Execute(fmt::format("KILL CONNECTION {}", id));
      // 1094 (unknown thread): it returned by itself meanwhile.
      if (last.ok() || kill_session->LastErrorNumber() == 1094) return Status::Ok();
      kill_session.reset();  // perhaps a stale session: once more on a new one
    }
    return last.WithContext("end a /wait");
  }

  awaitable<Response> Wait(const Query& query, beast::tcp_stream& stream) {
    auto gtid = query.find("gtid");
    if (gtid == query.end() || gtid->second.empty())
      co_return Text(http::status::bad_request, "missing ?gtid=");
    const double max_wait = static_cast<double>(options.max_wait.count());
    double timeout = std::min(10.0, max_wait);
    if (auto t = query.find("timeout"); t != query.end()) {
      auto parsed = ParseNumberParam("timeout", t->second, 0, max_wait);
      if (!parsed) co_return Text(http::status::bad_request, parsed.error().message());
      timeout = *parsed;
    }
    // Finite and within [0, max_wait]: the conversion is defined.
    const auto seconds = std::chrono::seconds(static_cast<int64_t>(std::ceil(timeout)));
    if (waits.fetch_add(1) >= options.max_concurrent_waits) {
      waits.fetch_sub(1);
      co_return Text(
          http::status::service_unavailable,
          fmt::format("too many concurrent waits (limit {})", options.max_concurrent_waits));
    }
    auto call = std::make_shared<WaitCall>(*executor);
    call->gtid = gtid->second;
    call->deadline = std::chrono::steady_clock::now() + seconds;
    call->wake.expires_at(call->deadline + kWaitKillGrace);
    asio::post(wait_pool, [this, call] {
      RunWait(*call);
      waits.fetch_sub(1);
      call->done.store(true);
      asio::post(call->wake.get_executor(), [call] { call->wake.cancel(); });
    });
    // The client leaving shows as the socket turning readable with nothing to read (EOF or
    // reset); bytes to read are a pipelined request, not a departure.
    tcp::socket& socket = stream.socket();
    socket.async_wait(tcp::socket::wait_read, [call, &socket](boost::system::error_code error) {
      if (error || !call->watching) return;  // the wait ended first
      char byte = 0;
      boost::system::error_code peek_error;
      if (socket.receive(asio::buffer(&byte, 1), tcp::socket::message_peek, peek_error) > 0) return;
      call->client_gone = true;
      call->wake.cancel();
    });
    while (!call->done.load() && !call->client_gone) {
      auto [error] = co_await call->wake.async_wait(asio::as_tuple(use_awaitable));
      if (!error) break;  // the kill deadline
    }
    call->watching = false;
    boost::system::error_code ignored;
    socket.cancel(ignored);  // ends the departure watch
    bool killed = false;
    if (!call->done.load()) {
      // Its client left or its deadline passed: end the server-side wait now rather than let it
      // hold a connection (and a wait slot) until the server gives up by itself.
      WaitCall* raw = call.get();
      Status kill = co_await OnPool(kill_pool, [this, raw] { return KillWait(*raw); });
      if (!kill.ok()) log->warn("event=wait_kill_failed error={}", log::Quote(kill.message()));
      killed = true;
      waits_killed.fetch_add(1);
      call->wake.expires_after(kKillGrace);
      while (!call->done.load()) {
        auto [error] = co_await call->wake.async_wait(asio::as_tuple(use_awaitable));
        if (!error) break;
      }
    }
    const std::string& wanted = call->gtid;
    if (call->client_gone) {
      Response gone = Text(http::status::gateway_timeout, "client gone");
      gone.keep_alive(false);
      co_return gone;
    }
    const bool done = call->done.load();
    const Result<WaitResult>& result = call->result;
    // A wait that returned "reached" just before its kill still counts as reached.
    if (done && result && *result == WaitResult::kReached)
      co_return Text(http::status::ok, "reached " + wanted);
    if (killed || !done || result) {
      co_return Text(http::status::gateway_timeout,
                     fmt::format("not reached {} within {}s", wanted, seconds.count()));
    }
    http::status status =
        result.error().code() == StatusCode::kInvalidArgument ? http::status::bad_request
        : result.error().code() == StatusCode::kUnavailable   ? http::status::service_unavailable
                                                              : http::status::internal_server_error;
    co_return Text(status, result.error().message());
  }

  std::string HttpMetrics() const {
    return fmt::format(
        "# HELP replboot_http_connections Open HTTP connections.\n"
        "# TYPE replboot_http_connections gauge\n"
        "replboot_http_connections {}\n"
        "# HELP replboot_http_connections_refused_total HTTP connections closed at once because "
        "{} were open, or {} from their address.\n"
        "# TYPE replboot_http_connections_refused_total counter\n"
        "replboot_http_connections_refused_total {}\n"
        "# HELP replboot_http_waits_killed_total /wait calls ended on the server because the "
        "client left or the deadline passed.\n"
        "# TYPE replboot_http_waits_killed_total counter\n"
        "replboot_http_waits_killed_total {}\n",
        connections.load(), options.max_connections, options.max_connections_per_address,
        connections_refused.load(), waits_killed.load());
  }

  awaitable<Response> Handle(const http::request<http::empty_body>& req,
                             beast::tcp_stream& stream) {
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
        auto parsed = ParseNumberParam("lag", l->second, 0, kMaxLagParam);
        if (!parsed) co_return Text(http::status::bad_request, parsed.error().message());
        limit = *parsed;
      }
      co_return FromDecision(DecideReplica(s, limit));
    }
    if (path == "/status") {
      // The poller's snapshot (collected_at_ms says when), never a collection per request:
      // requests cost the database nothing. Read-your-writes does not take its position from
      // here: the application reads the GTID of its own write in its own session (MariaDB
      // @@last_gtid or @@gtid_binlog_pos, MySQL @@gtid_executed) and passes it to /wait.
      Response res{http::status::ok, 11};
      res.set(http::field::content_type, "application/json");
      res.set(http::field::cache_control, "no-store");
      res.body() = SnapshotJson(s, options.max_lag).dump(2) + "\n";
      co_return res;
    }
    if (path == "/metrics") {
      Response res{http::status::ok, 11};
      res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
      res.body() = SnapshotMetrics(s) + HttpMetrics();
      co_return res;
    }
    if (path == "/wait") co_return co_await Wait(query, stream);
    co_return Text(http::status::not_found, fmt::format("no such endpoint '{}'", path));
  }

  awaitable<void> Serve(std::shared_ptr<Impl> self, tcp::socket socket, std::string address) {
    // The slots taken in AcceptLoop, given back however this ends.
    struct Slot {
      Impl& impl;
      std::string address;
      ~Slot() {
        impl.connections.fetch_sub(1);
        if (auto it = impl.connections_per_address.find(address);
            it != impl.connections_per_address.end() && --it->second <= 0) {
          impl.connections_per_address.erase(it);
        }
      }
    } slot{*this, std::move(address)};
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
      stream.expires_after(options.request_timeout);
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
      stream.expires_never();  // a /wait bounds itself
      Response res = co_await Handle(req, stream);
      const bool keep_alive = req.keep_alive() && res.keep_alive();  // res: false to close
      res.version(req.version());
      res.keep_alive(keep_alive);
      if (req.method() == http::verb::head) {
        res.content_length(res.body().size());
        res.body().clear();
      } else {
        res.prepare_payload();
      }
      stream.expires_after(options.request_timeout);
      auto [write_error, written] =
          co_await http::async_write(stream, res, asio::as_tuple(use_awaitable));
      (void)written;
      if (write_error || !res.keep_alive()) break;
    }
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
    (void)self;
  }

  // Beyond options.max_connections (or max_connections_per_address from one address) a
  // connection is closed at once: a stranger opening connections costs a file descriptor and
  // a counter, not a coroutine each.
  void Refuse(tcp::socket& socket, const std::string& why) {
    boost::system::error_code ignored;
    socket.close(ignored);
    uint64_t refused = connections_refused.fetch_add(1) + 1;
    auto now = std::chrono::steady_clock::now();
    if (refused_logged == 0 || now - refusal_logged_at >= kRefusalLogInterval) {
      log->warn("event=http_connections_refused count={} reason={}", refused - refused_logged,
                log::Quote(why));
      refused_logged = refused;
      refusal_logged_at = now;
    }
  }

  awaitable<void> AcceptLoop(std::shared_ptr<Impl> self) {
    while (!stopping) {
      auto [error, socket] = co_await acceptor->async_accept(asio::as_tuple(use_awaitable));
      if (error) {
        if (stopping || error == asio::error::operation_aborted) break;
        log->warn("event=http_accept_failed error={}", log::Quote(error.message()));
        continue;
      }
      boost::system::error_code ignored;
      auto remote = socket.remote_endpoint(ignored);
      std::string address = ignored ? std::string("unknown") : remote.address().to_string();
      if (connections.load() >= options.max_connections) {
        Refuse(socket, fmt::format("{} connections open (max_connections)", connections.load()));
        continue;
      }
      int& from_address = connections_per_address[address];
      if (from_address >= options.max_connections_per_address) {
        Refuse(socket, fmt::format("{} connections open from {} (max_connections_per_address)",
                                   from_address, address));
        continue;
      }
      ++from_address;
      connections.fetch_add(1);
      asio::co_spawn(*executor, Serve(self, std::move(socket), std::move(address)),
                     asio::detached);
    }
  }
};

Server::Server(ServerOptions options) : impl_(std::make_shared<Impl>(std::move(options))) {
  impl_->set_up = impl_->options.set_up;
}

void Server::MarkSetUp() { impl_->set_up = true; }
void Server::MarkSettingUp() { impl_->set_up = false; }

Server::~Server() {
  Stop();
  // Our own io_context: do not wait for idle keep-alive connections to time out.
  if (impl_->own_io) impl_->own_io->stop();
  if (impl_->own_thread.joinable()) impl_->own_thread.join();
  if (impl_->poll_thread.joinable()) impl_->poll_thread.join();
  if (impl_->beat_thread.joinable()) impl_->beat_thread.join();
  impl_->wait_pool.join();
  impl_->kill_pool.join();
  if (impl_->own_io) {
    // The I/O objects must go before the io_context whose services they use; then the
    // io_context destroys the coroutine frames left in it, which hold references to impl_.
    impl_->acceptor.reset();
    impl_->executor.reset();
    impl_->own_io.reset();
  }
}

Status Server::Start(asio::io_context& io) {
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
  auto self = impl_;
  asio::co_spawn(io, impl_->AcceptLoop(self), asio::detached);
  impl_->poll_thread = std::thread([impl = impl_.get()] { impl->PollThread(); });
  if (impl_->options.write_heartbeat) StartHeartbeat();
  impl_->log->info(
      "event=http_listening address={} port={} role={} heartbeat={} max_connections={} "
      "max_connections_per_address={} request_timeout_ms={}",
      impl_->options.listen, impl_->port.load(), NodeRoleName(impl_->options.info.role),
      impl_->options.write_heartbeat, impl_->options.max_connections,
      impl_->options.max_connections_per_address, impl_->options.request_timeout.count());
  return Status::Ok();
}

void Server::StartHeartbeat() {
  if (!impl_->executor || impl_->heartbeat_started.exchange(true)) return;
  impl_->beat_thread = std::thread([impl = impl_.get()] { impl->BeatThread(); });
}

Status Server::StartInBackground() {
  impl_->own_io = std::make_unique<asio::io_context>();
  Status started = Start(*impl_->own_io);
  if (!started.ok()) return started;
  impl_->own_thread = std::thread([io = impl_->own_io.get()] { io->run(); });
  return Status::Ok();
}

void Server::Stop() {
  if (impl_->stopping.exchange(true)) return;
  {
    // Under the lock, so that a poller or heartbeat between its check and its wait still sees it.
    std::lock_guard lock(impl_->stop_mu);
  }
  impl_->stop_cv.notify_all();
  if (!impl_->executor) return;
  auto self = impl_;
  // Asio objects are not thread-safe: close them on their own executor.
  asio::post(*impl_->executor, [self] {
    boost::system::error_code ignored;
    if (self->acceptor) self->acceptor->close(ignored);
  });
}

unsigned short Server::port() const { return impl_->port; }
CloneProgress& Server::clone_progress() { return impl_->clone; }
RecoveryState& Server::recovery() { return impl_->recovery; }
replication::BootstrapStatus& Server::bootstrap_status() { return impl_->bootstrap; }
replication::ArchiveStatus& Server::archive_status() { return impl_->archive; }
replication::BinlogArchiveStatus& Server::binlog_archive_status() { return impl_->binlog_archive; }
void Server::CountBackupServed() { impl_->backups_served.fetch_add(1); }
void Server::SetBackupSource(std::function<replication::BackupServing()> source) {
  std::lock_guard lock(impl_->backup_source_mu);
  impl_->backup_source = std::move(source);
}
void Server::CountBackupConnectionRefused() { impl_->backup_connections_refused.fetch_add(1); }
void Server::SetLastError(std::string error) {
  std::lock_guard lock(impl_->mu);
  impl_->last_error = std::move(error);
}
void Server::AddError(const std::string& error) {
  std::lock_guard lock(impl_->mu);
  impl_->last_error = impl_->last_error.empty() ? error : impl_->last_error + "; " + error;
}
Snapshot Server::Current() const { return impl_->Current(); }

}  // namespace replboot::api
