#include "replboot/clone/backup_server.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstring>
#include <deque>
#include <filesystem>
#include <future>

#include "fanout.h"
#include "handshake.h"
#include "net.h"
#include "pacer.h"
#include "wire_compression.h"
#include "replboot/base/files.h"
#include "replboot/base/log.h"
#include "replboot/base/option_file.h"
#include "replboot/discovery/prober.h"
#include "replboot/base/process.h"
#include "replboot/clone/cluster_id.h"
#include "replboot/clone/datadir.h"
#include "replboot/clone/protocol.h"
#include "replboot/db/client.h"
#include "replboot/db/dialect.h"

namespace replboot::clone {

namespace asio = boost::asio;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

namespace {

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.substr(0, prefix.size()) == prefix;
}

// Top-level files of a datadir the backup tools copy whole: the system and undo
// tablespaces, Aria's log and control file, MySQL's data dictionary. Everything else at the
// top (binary and relay logs, the redo log of which only the tail is copied, temporary
// tablespaces, error logs, pid files, sockets) is not part of the stream.
bool CopiedAtTop(std::string_view name) {
  return StartsWith(name, "ibdata") || StartsWith(name, "undo") || StartsWith(name, "aria_log") ||
         name == "mysql.ibd";
}

// Directories under the datadir the tools do not copy as such.
bool SkippedDirectory(std::string_view name) {
  return name == "#innodb_temp" || name == "#innodb_redo" || name == "lost+found" ||
         StartsWith(name, ".");
}

}  // namespace

uint64_t EstimateBackupBytes(const std::string& datadir,
                             const std::vector<std::string>& excluded_prefixes) {
  namespace fs = std::filesystem;
  uint64_t total = 0;
  std::error_code ec;
  auto excluded = [&](const fs::path& path) {
    const std::string text = path.string();
    return std::any_of(excluded_prefixes.begin(), excluded_prefixes.end(),
                       [&](const std::string& p) { return !p.empty() && StartsWith(text, p); });
  };
  for (auto it = fs::recursive_directory_iterator(
           datadir, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    std::error_code type_ec;
    if (it->is_directory(type_ec)) {
      if (SkippedDirectory(name)) it.disable_recursion_pending();
      continue;
    }
    if (!it->is_regular_file(type_ec)) continue;
    if (it.depth() == 0 ? !CopiedAtTop(name) : StartsWith(name, "#sql")) continue;
    if (excluded(it->path())) continue;
    auto size = it->file_size(type_ec);
    if (!type_ec) total += size;
  }
  return total;
}

std::string DefaultTool(Flavour flavour) {
  return flavour == Flavour::kMySQL ? "xtrabackup" : "mariabackup";
}

namespace {

auto Log() { return log::Get("clone"); }

// How the donor's logs name an authenticated client: the name it gave in HELLO (its host
// name, e.g. mysql-2) with the address it connects from.
std::string ClientLabel(const net::Socket& sock, const AcceptedClient& client) {
  return client.name.empty() ? sock.peer() : client.name + "/" + sock.peer();
}

// The level a backup tool's stderr line is logged at: its own ("[ERROR]", "[Warning]",
// "[Note]" in MariaDB's and XtraBackup's format), info when it says none.
spdlog::level::level_enum ToolLineLevel(std::string_view line) {
  if (line.find("[ERROR]") != std::string_view::npos || line.find("[FATAL]") != std::string_view::npos)
    return spdlog::level::err;
  if (line.find("[Warning]") != std::string_view::npos ||
      line.find("[WARNING]") != std::string_view::npos)
    return spdlog::level::warn;
  return spdlog::level::info;
}

// Per-backup private dirs under ServerOptions::work_dir (files::OwnedTempDir).
constexpr char kWorkDirPrefix[] = "replboot-backup-";

// The tool's [client] options: the password verbatim, quoted and escaped for the option
// parser (a bare `p#1` would reach mariabackup as `p`).
Result<std::string> BackupOptionFile(const ServerOptions& o) {
  std::string cnf = "[client]\n";
  std::vector<std::pair<std::string_view, std::string>> lines = {{"user", o.user},
                                                                 {"password", o.password}};
  if (!o.socket.empty()) {
    lines.emplace_back("socket", o.socket);
  } else {
    lines.emplace_back("host", o.host);
    lines.emplace_back("port", std::to_string(o.port));
  }
  for (const auto& [name, value] : lines) {
    auto line = option_file::Line(name, value);
    if (!line) return Error(line.error().WithContext("backup option file"));
    cnf += *line;
  }
  return cnf;
}

// The replica threads' state, for donor safety. nullopt when not a replica or unreadable.
std::optional<db::ReplicaState> ReplicaThreads(db::Session& session, const db::Dialect& dialect) {
  auto state = db::ReadReplicaState(session, dialect);
  if (!state) {
    Log()->warn("event=replication_check_failed error={}", log::Quote(state.error().message()));
    return std::nullopt;
  }
  return *state;
}

// What a probe tells about the local server: its version and GTID state, one session.
struct LocalFacts {
  std::string version;
  std::pair<std::string, std::string> gtid;  // binlog_state, current_pos
};

Result<LocalFacts> QueryLocalFacts(const db::ConnectOptions& connect, Flavour flavour) {
  auto session = db::Connect(connect);
  if (!session) return Error(session.error());
  auto rows = (*session)->Query("SELECT VERSION() AS v");
  if (!rows) return Error(rows.error());
  if (rows->empty()) return Error(StatusCode::kUnavailable, "SELECT VERSION() returned no row");
  LocalFacts facts;
  facts.version = (*rows)[0].Get("v").value_or("");
  const db::Dialect dialect(flavour, db::ParseServerVersion(facts.version).value_or(0));
  auto gtid = (*session)->Query(dialect.GtidStateQuery());
  if (!gtid) return Error(gtid.error().WithContext("GTID state"));
  if (gtid->empty()) return Error(StatusCode::kUnavailable, "the GTID state query returned no row");
  facts.gtid = {(*gtid)[0].Get("binlog_state").value_or(""),
                (*gtid)[0].Get("current_pos").value_or("")};
  return facts;
}

// Whether `datadir` holds a database on disk (a committed clone, or data): nullopt when
// there is no datadir to look at or it cannot be read.
std::optional<bool> DatadirHoldsData(const std::string& datadir) {
  if (datadir.empty()) return std::nullopt;
  auto inspection = InspectDatadir(datadir);
  if (!inspection) {
    Log()->warn("event=datadir_unreadable error={}", log::Quote(inspection.error().message()));
    return std::nullopt;
  }
  return inspection->datadir == DirState::kData || inspection->datadir == DirState::kCommitted;
}

// The node's cluster id for probes and HEADERs: "" when it has none (or it cannot be read,
// which is logged: a peer then treats this node's data as of unknown origin).
std::string LocalClusterId(const std::string& datadir) {
  if (datadir.empty()) return "";
  auto id = ReadClusterId(datadir);
  if (!id) {
    Log()->warn("event=cluster_id_unreadable error={}", log::Quote(id.error().message()));
    return "";
  }
  return id->value_or("");
}

}  // namespace

BackupServer::BackupServer(asio::io_context& io, ServerOptions options)
    : io_(io),
      options_(std::move(options)),
      strand_(asio::make_strand(io)),
      acceptor_(strand_),
      refusal_timer_(strand_) {
  if (options_.tool.empty()) options_.tool = DefaultTool(options_.flavour);
}

BackupServer::~BackupServer() { Stop(); }

int64_t BackupServer::threads_per_address() const {
  return std::max<int64_t>(1, std::max<int64_t>(1, options_.handshake_threads) / 2);
}

Status BackupServer::Start() {
  // A killed server leaves its per-backup dirs (the backup password's option file) behind;
  // those of live servers sharing work_dir (a local cluster's nodes share /tmp) stay.
  if (auto swept = files::SweepStaleTempDirs(options_.work_dir, kWorkDirPrefix); !swept) {
    Log()->warn("event=stale_backup_dirs_sweep_failed error={}",
                log::Quote(swept.error().ToString()));
  } else if (*swept > 0) {
    Log()->info("event=stale_backup_dirs_removed dir={} count={}", log::Quote(options_.work_dir),
                *swept);
  }
  // A killed donor's resume spools: its runs are gone, so are their resumes.
  if (auto swept = files::SweepStaleTempDirs(SpoolParent(), fanout::kSpoolDirPrefix); !swept) {
    Log()->warn("event=stale_resume_spools_sweep_failed error={}",
                log::Quote(swept.error().ToString()));
  } else if (*swept > 0) {
    Log()->info("event=stale_resume_spools_removed dir={} count={}", log::Quote(SpoolParent()),
                *swept);
  }
  if (options_.tls.enabled && !tls_) tls_ = options_.tls_context;
  if (options_.tls.enabled && !tls_) {
    auto context = net::TlsContext::Create(options_.tls, net::TlsContext::Role::kServer);
    if (!context) return context.error().WithContext("backup.tls");
    tls_ = std::move(*context);
  }
  const asio::ip::tcp::endpoint& endpoint = options_.listen;
  const std::string listen_text = discovery::EndpointText(endpoint);
  boost::system::error_code ec;
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return Status(StatusCode::kIOError,
                  fmt::format("listen on {}: {}", listen_text, ec.message()));
  }
  port_ = acceptor_.local_endpoint().port();
  try {
    handshake_pool_ = std::make_unique<asio::thread_pool>(
        static_cast<size_t>(std::max<int64_t>(1, options_.handshake_threads)));
  } catch (const std::system_error& e) {
    acceptor_.close(ec);
    return Status(StatusCode::kUnavailable,
                  fmt::format("cannot start the backup server's handshake threads: {}", e.what()));
  }
  Log()->info(
      "event=backup_server_listening listen={} port={} tool={} max_concurrent={} tls={} "
      "max_unauthenticated={} max_unauthenticated_per_address={} handshake_threads={}",
      log::Quote(listen_text), port_, options_.tool, options_.max_concurrent,
      tls_ ? (options_.tls.ca.empty() ? "on" : "verify-peer") : "off",
      options_.max_unauthenticated, options_.max_unauthenticated_per_address,
      options_.handshake_threads);
  started_ = true;
  asio::co_spawn(strand_, AcceptLoop(), asio::detached);
  return Status::Ok();
}

void BackupServer::Stop() {
  if (stopping_.exchange(true)) return;
  stop_source_.request_stop();
  // The I/O objects are used by the accept loop and the timers on strand_, on the I/O
  // thread: closing them from here would race with it (TSan saw the acceptor's close run
  // against the pending accept, and the refusal timer's cancel against Refused()).
  if (started_) {
    if (io_.stopped() || strand_.running_in_this_thread()) {
      CloseIoObjects();
    } else if (io_.get_executor().running_in_this_thread()) {
      // A handler of the io_context outside the strand (serve-backup's signal handler):
      // waiting here for the strand could wait for this very thread. The strand closes
      // them once this handler returns, or the io_context does when it is destroyed.
      asio::post(strand_, [this] { CloseIoObjects(); });
    } else {
      // Whoever claims `claimed` first closes them: the strand, or this thread when no
      // thread runs the io_context (then nothing on it can race, and the posted handler,
      // should it ever run, returns without touching the server).
      auto claimed = std::make_shared<std::atomic<bool>>(false);
      auto closed = std::make_shared<std::promise<void>>();
      std::future<void> done = closed->get_future();
      asio::post(strand_, [this, claimed, closed] {
        if (claimed->exchange(true)) return;
        CloseIoObjects();
        closed->set_value();
      });
      if (done.wait_for(kStopWait) == std::future_status::ready) {
        done.get();
      } else if (!claimed->exchange(true)) {
        CloseIoObjects();
      } else {
        done.wait();  // the strand claimed it just now: it is closing them
      }
    }
  }
  // Queued handshakes see stopping_ and return at once, running ones within a poll slice.
  if (handshake_pool_) handshake_pool_->join();
  std::list<SessionThread> sessions;
  {
    std::lock_guard lock(sessions_mu_);
    sessions.swap(sessions_);
  }
  // Sessions notice stopping_ within one poll slice, kill their backup tool and return.
  for (auto& s : sessions) {
    if (s.thread.joinable()) s.thread.join();
  }
}

void BackupServer::CloseIoObjects() {
  boost::system::error_code ec;
  acceptor_.close(ec);
  refusal_timer_.cancel();
  // Drop() edits pending_: close a copy.
  for (const auto& p : std::vector(pending_)) Drop(p, "server shutting down");
}

void BackupServer::ReapFinishedSessions() {
  std::lock_guard lock(sessions_mu_);
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    if (it->done->load()) {
      it->thread.join();
      it = sessions_.erase(it);
    } else {
      ++it;
    }
  }
}

asio::awaitable<void> BackupServer::AcceptLoop() {
  milliseconds backoff(100);
  while (!stopping_) {
    auto [ec, socket] = co_await acceptor_.async_accept(asio::as_tuple(asio::use_awaitable));
    if (ec == asio::error::operation_aborted || stopping_) co_return;
    if (ec) {
      // EMFILE, ENFILE, ENOBUFS...: the loop must survive them (a dead accept loop is a donor
      // that silently serves nobody). Back off, doubling up to 5 s, and say so.
      accept_errors_.fetch_add(1);
      Log()->warn("event=backup_accept_failed error={} retry_ms={}", log::Quote(ec.message()),
                  backoff.count());
      asio::steady_timer timer(strand_, backoff);
      co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
      backoff = std::min(backoff * 2, milliseconds(5000));
      continue;
    }
    backoff = milliseconds(100);
    ReapFinishedSessions();
    Admit(std::move(socket));
  }
}

struct BackupServer::Pending {
  Pending(asio::ip::tcp::socket s, std::string a, Clock::time_point d)
      : socket(std::move(s)), timer(socket.get_executor()), address(std::move(a)), deadline(d) {}
  asio::ip::tcp::socket socket;
  asio::steady_timer timer;  // the handshake deadline while it waits here
  std::string address;
  Clock::time_point deadline;
  size_t seen = 0;     // the bytes that had arrived when it was last looked at
  bool ready = false;  // its first message is complete: it waits for a thread (ready_)
  bool done = false;   // handed to a thread or closed: a late handler returns at once
};

namespace {

enum class FirstMessage { kIncomplete, kComplete, kClosed };

// Whether the client's first message has arrived whole, looking without reading: the
// handshake reads the same bytes. `*available` is what has arrived so far. Whatever is not
// our first message (not a HELLO, not a TLS handshake record, a length past the limits)
// counts as complete: the handshake refuses it at once and says why.
FirstMessage LookAtFirstMessage(int fd, bool tls, size_t* available) {
  uint8_t header[kFrameHeaderSize];  // a frame header and a TLS record header are both 5 bytes
  ssize_t n;
  do {
    n = ::recv(fd, header, sizeof header, MSG_PEEK | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n == 0) return FirstMessage::kClosed;
  if (n < 0) {
    *available = 0;
    return errno == EAGAIN || errno == EWOULDBLOCK ? FirstMessage::kIncomplete
                                                   : FirstMessage::kClosed;
  }
  int queued = 0;
  *available = ::ioctl(fd, FIONREAD, &queued) == 0 && queued > 0 ? static_cast<size_t>(queued)
                                                                   : static_cast<size_t>(n);
  const bool tls_record = header[0] == kTlsHandshakeRecord;
  if (tls_record != tls || (!tls && header[0] != static_cast<uint8_t>(FrameType::kHello)))
    return FirstMessage::kComplete;
  if (static_cast<size_t>(n) < sizeof header) return FirstMessage::kIncomplete;
  size_t length;
  if (tls) {
    // TLSPlaintext: type(1) version(2) length(2); a record is at most 2^14 bytes (RFC 8446
    // 5.1), 2^14 + 2048 for older versions' ciphertext.
    length = (size_t{header[3]} << 8) | header[4];
    if (length > (1u << 14) + 2048) return FirstMessage::kComplete;
  } else {
    auto frame = DecodeFrameHeader(header);
    if (!frame) return FirstMessage::kComplete;
    length = frame->length;
  }
  return *available >= sizeof header + length ? FirstMessage::kComplete
                                              : FirstMessage::kIncomplete;
}

}  // namespace

void BackupServer::Admit(asio::ip::tcp::socket socket) {
  boost::system::error_code ec;
  auto remote = socket.remote_endpoint(ec);
  const std::string address = ec ? std::string("unknown") : remote.address().to_string();
  std::string refusal;
  {
    std::lock_guard lock(admission_mu_);
    auto from_address = per_address_.find(address);
    const int64_t held = from_address == per_address_.end() ? 0 : from_address->second;
    if (unauthenticated_ >= options_.max_unauthenticated) {
      refusal = fmt::format("{} connections are authenticating (max_unauthenticated)",
                            unauthenticated_);
    } else if (held >= options_.max_unauthenticated_per_address) {
      refusal = fmt::format("{} connections from {} are authenticating", held, address);
    } else {
      ++unauthenticated_;
      ++per_address_[address];
    }
  }
  if (!refusal.empty()) {
    socket.close(ec);
    Refused(address, refusal);
    return;
  }
  auto p = std::make_shared<Pending>(std::move(socket), address,
                                     Clock::now() + options_.handshake_timeout);
  pending_.push_back(p);
  p->timer.expires_at(p->deadline);
  p->timer.async_wait([this, p](const boost::system::error_code& error) {
    if (error || p->done) return;
    Drop(p, p->ready ? "no handshake thread free before the deadline"
                     : "no complete first message before the deadline");
  });
  AwaitFirstMessage(p);
}

void BackupServer::AwaitFirstMessage(const std::shared_ptr<Pending>& p) {
  if (p->done) return;
  if (stopping_) return Drop(p, "server shutting down");
  size_t available = 0;
  switch (LookAtFirstMessage(p->socket.native_handle(), tls_ != nullptr, &available)) {
    case FirstMessage::kClosed:
      return Drop(p, "closed before its first message");
    case FirstMessage::kComplete:
      p->ready = true;
      ready_.push_back(p);
      return StartHandshakes();
    case FirstMessage::kIncomplete:
      break;
  }
  p->seen = available;
  // Woken by the next bytes (or EOF, or Drop closing the socket). Asio's reactor reports a
  // socket's readiness edge-triggered, and an edge that comes while no wait is queued (on
  // another I/O thread, between the look above and this wait) is not kept for it: so look
  // once more with the wait queued, and when more has come, cancel it to look again.
  p->socket.async_wait(asio::socket_base::wait_read,
                       [this, p](const boost::system::error_code&) { AwaitFirstMessage(p); });
  size_t now = 0;
  if (LookAtFirstMessage(p->socket.native_handle(), tls_ != nullptr, &now) !=
          FirstMessage::kIncomplete ||
      now != p->seen) {
    boost::system::error_code ec;
    p->socket.cancel(ec);
  }
}

void BackupServer::StartHandshakes() {
  const int64_t threads = std::max<int64_t>(1, options_.handshake_threads);
  for (auto it = ready_.begin(); it != ready_.end();) {
    const std::shared_ptr<Pending> p = *it;
    if (p->deadline <= Clock::now()) {
      // Its timer is about to close it: a thread would only fail it.
      ++it;
      continue;
    }
    {
      std::lock_guard lock(admission_mu_);
      if (threaded_ >= threads) return;
      int64_t& from_address = threaded_per_address_[p->address];
      if (from_address >= threads_per_address()) {
        // Its address holds its share of the threads: it waits (under its deadline), the
        // next address's connection goes first.
        ++it;
        continue;
      }
      ++threaded_;
      ++from_address;
    }
    it = ready_.erase(it);
    std::erase(pending_, p);
    p->done = true;
    p->timer.cancel();
    boost::system::error_code ec;
    int fd = p->socket.release(ec);
    const std::string address = p->address;
    const Clock::time_point deadline = p->deadline;
    auto leave_thread = [this, address] {
      std::lock_guard lock(admission_mu_);
      --threaded_;
      if (auto i = threaded_per_address_.find(address);
          i != threaded_per_address_.end() && --i->second <= 0) {
        threaded_per_address_.erase(i);
      }
    };
    if (ec) {
      leave_thread();
      Authenticated(address);
      continue;
    }
    asio::post(*handshake_pool_, [this, fd, address, deadline, leave_thread] {
      net::Socket sock(fd, net::PeerName(fd));
      std::optional<AcceptedClient> client;
      if (!stopping_) client = Handshake(sock, deadline);
      Authenticated(address);  // this connection no longer counts against the caps
      // The thread is free for the next waiting connection (of any address) now: what
      // follows is for an authenticated client.
      leave_thread();
      if (!stopping_) asio::post(strand_, [this] { StartHandshakes(); });
      if (!client) return;
      if (client->mode == HelloMode::kProbe) return AnswerProbe(sock, *client);
      if (client->mode == HelloMode::kResume) {
        auto shared = std::make_shared<net::Socket>(std::move(sock));
        auto accepted = std::move(*client);
        (void)SpawnSession([this, shared, accepted] {
          ServeResume(*shared, accepted);
          shared->Close();
        });
        return;
      }
      StartBackup(std::move(sock), std::move(*client));
    });
  }
}

void BackupServer::Drop(const std::shared_ptr<Pending>& p, std::string_view why) {
  if (p->done) return;
  p->done = true;
  // Debug: a peer of ours sends its HELLO at once; what never does is a scan or a flood,
  // and a line per connection would flood the log with it.
  Log()->debug("event=backup_connection_closed peer={} reason={}", p->address,
               log::Quote(std::string(why)));
  boost::system::error_code ec;
  p->socket.close(ec);
  p->timer.cancel();
  std::erase(pending_, p);
  if (p->ready) std::erase(ready_, p);
  Authenticated(p->address);
}

void BackupServer::Authenticated(const std::string& address) {
  std::lock_guard lock(admission_mu_);
  --unauthenticated_;
  if (auto it = per_address_.find(address); it != per_address_.end() && --it->second <= 0) {
    per_address_.erase(it);
  }
}

// Refusals come in bursts (a scan, a flood): the first one of a burst is logged, the rest
// are counted and summed up in one line when the burst has lasted kRefusalLogInterval.
void BackupServer::Refused(const std::string& address, const std::string& why) {
  connections_refused_.fetch_add(1);
  if (options_.on_connection_refused) options_.on_connection_refused();
  if (refused_in_burst_++ == 0) {
    Log()->warn(
        "event=backup_connection_refused peer={} reason={} note={}", address, log::Quote(why),
        log::Quote("further refusals in the next 10 s are summed up in one line"));
    refusal_timer_.expires_after(kRefusalLogInterval);
    // A member timer, cancelled by Stop(): the handler never outlives the server's use.
    refusal_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      uint64_t more = refused_in_burst_.exchange(0) - 1;
      if (more > 0 && !stopping_) {
        Log()->warn("event=backup_connections_refused count={} interval_s={} total={}", more,
                    std::chrono::duration_cast<std::chrono::seconds>(kRefusalLogInterval).count(),
                    connections_refused_.load());
      }
    });
  }
}

void BackupServer::StartBackup(net::Socket sock, AcceptedClient client) {
  auto shared = std::make_shared<net::Socket>(std::move(sock));
  Status started = SpawnSession([this, shared, client] {
    ServeReceiver(*shared, client);
    shared->Close();
  });
  if (!started.ok() && !stopping_) {
    // A pids limit: the client is told, the server goes on.
    (void)shared->WriteFrame(FrameType::kError, EncodeErrorMessage({"busy", started.message()}),
                             options_.handshake_timeout);
  }
}

Status BackupServer::SpawnSession(std::function<void()> fn) {
  auto done = std::make_shared<std::atomic<bool>>(false);
  std::lock_guard lock(sessions_mu_);
  if (stopping_) return Status(StatusCode::kCancelled, "server shutting down");
  try {
    sessions_.push_back({std::thread([fn = std::move(fn), done] {
                           fn();
                           done->store(true);
                         }),
                         done});
  } catch (const std::system_error& e) {
    Log()->error("event=backup_thread_failed error={}", log::Quote(e.what()));
    return Status(StatusCode::kUnavailable, fmt::format("cannot start a thread: {}", e.what()));
  }
  return Status::Ok();
}

std::optional<AcceptedClient> BackupServer::Handshake(net::Socket& sock,
                                                      Clock::time_point deadline) {
  ::fcntl(sock.fd(), F_SETFL, ::fcntl(sock.fd(), F_GETFL) | O_NONBLOCK);
  ::fcntl(sock.fd(), F_SETFD, FD_CLOEXEC);
  sock.SetStop(stop_source_.get_token());
  auto client = AcceptAuthenticated(sock, options_.secret,
                                    NodeIdentity{options_.node_name, options_.node_ordinal},
                                    tls_.get(), deadline);
  if (client) return std::move(*client);
  const Status& s = client.error();
  if (s.code() == StatusCode::kPermissionDenied) {
    authentications_failed_.fetch_add(1);
    Log()->warn("event=auth_refused peer={}", sock.peer());
  } else if (s.code() != StatusCode::kCancelled) {
    Log()->log(s.code() == StatusCode::kInternal ? spdlog::level::err : spdlog::level::warn,
               "event=backup_handshake_failed peer={} error={}", sock.peer(),
               log::Quote(s.message()));
  }
  return std::nullopt;
}

// A probe: the facts a replica's pre-flight needs, without starting the backup tool. The
// server version costs one query (a probe is rare: a few per clone attempt).
void BackupServer::AnswerProbe(net::Socket& sock, const AcceptedClient& client) {
  ProbeInfo info;
  info.flavour = FlavourName(options_.flavour);
  info.tool = options_.tool;
  info.active = active_.load();
  info.max_concurrent = options_.max_concurrent;
  info.busy = info.active >= options_.max_concurrent;
  info.role = options_.role;
  info.cluster_id = LocalClusterId(options_.datadir);
  const std::optional<bool> on_disk = DatadirHoldsData(options_.datadir);
  Result<LocalFacts> facts = Error(StatusCode::kInternal, "unset");
  if (on_disk == false) {
    // Nothing to ask the server about: a node being cloned, or a primary asking its peers.
    facts = Error(StatusCode::kUnavailable, "this node holds no data yet");
  } else if (options_.probe_server_version) {
    auto version = options_.probe_server_version();
    if (version) {
      facts = LocalFacts{*version, {}};
      if (options_.probe_gtid_state) {
        auto gtid = options_.probe_gtid_state();
        if (gtid) {
          facts->gtid = *gtid;
        } else {
          facts = Error(gtid.error());
        }
      }
    } else {
      facts = Error(version.error());
    }
  } else {
    facts = QueryLocalFacts(ConnectOptions(), options_.flavour);
  }
  if (facts) {
    info.server_version = facts->version;
    info.gtid_binlog_state = facts->gtid.first;
    info.gtid_current_pos = facts->gtid.second;
    // A server that answers runs on a datadir: data, even if it holds no transaction yet.
    info.has_data = on_disk.value_or(options_.probe_gtid_state || !options_.probe_server_version);
  } else {
    // The disk decides: a server that is down (re-clone, restart) or refuses the backup user
    // still runs on data.
    info.has_data = on_disk.value_or(false);
    if (on_disk != false) {
      info.error = fmt::format("cannot query the local server: {}", facts.error().message());
    }
  }
  if (on_disk == false) {
    info.ready = false;
    info.not_ready_reason = "holds no data yet";
  } else if (!info.error.empty()) {
    info.ready = false;
    info.not_ready_reason = info.error;
  } else if (options_.readiness) {
    const ServerOptions::Readiness readiness = options_.readiness();
    info.ready = readiness.ready && !readiness.diverged;
    info.diverged = readiness.diverged;
    info.not_ready_reason = info.ready ? "" : readiness.reason.substr(0, kMaxProbeReason);
  } else {
    info.ready = true;
  }
  probes_answered_.fetch_add(1);
  Log()->info(
      "event=backup_probe_answered peer={} busy={} server_version={} cluster_id={} role={} "
      "gtid_binlog_state={} has_data={} ready={}{}",
      ClientLabel(sock, client), info.busy, log::Quote(info.server_version),
      info.cluster_id.empty() ? "-" : info.cluster_id, info.role.empty() ? "-" : info.role,
      log::Quote(info.gtid_binlog_state), info.has_data, info.ready,
      info.error.empty() ? "" : " error=" + log::Quote(info.error));
  if (Status s = sock.WriteFrame(FrameType::kProbeInfo, EncodeProbeInfo(info),
                                 options_.handshake_timeout);
      !s.ok()) {
    Log()->debug("event=backup_probe_failed peer={} error={}", ClientLabel(sock, client),
                 log::Quote(s.message()));
  }
}

db::ConnectOptions BackupServer::ConnectOptions() const {
  db::ConnectOptions connect;
  connect.socket = options_.socket;
  connect.host = options_.host;
  connect.port = static_cast<int>(options_.port);
  connect.user = options_.user;
  connect.password = options_.password;
  return connect;
}

struct BackupServer::RunSetup {
  StreamHeader header;
  // Unset with the stream_header seam (no local server to look after).
  std::optional<db::Dialect> dialect;
  std::optional<db::ReplicaState> before;
};

// What the replicas need for their pre-flight, asked once per run.
Result<BackupServer::RunSetup> BackupServer::SetUpRun() {
  RunSetup setup;
  if (options_.stream_header) {
    auto header = options_.stream_header();
    if (!header) return Error(header.error());
    setup.header = std::move(*header);
    return setup;
  }
  auto session = db::Connect(ConnectOptions());
  if (!session)
    return Error(StatusCode::kUnavailable, "cannot query the local server: {}",
                 session.error().message());
  auto rows = (*session)->Query("SELECT VERSION() AS v, @@datadir AS d");
  if (!rows || rows->empty()) {
    return Error(StatusCode::kUnavailable, "SELECT VERSION(): {}",
                 rows ? "no row" : rows.error().message());
  }
  StreamHeader& header = setup.header;
  header.flavour = FlavourName(options_.flavour);
  header.server_version = (*rows)[0].Get("v").value_or("");
  header.tool = options_.tool;
  header.cluster_id = LocalClusterId(options_.datadir);
  {
    // What the tool will stream, not the datadir's size: binary and relay logs (wherever
    // they are) and temporary files are not in a backup.
    std::vector<std::string> logs;
    auto bases = (*session)->Query("SELECT @@log_bin_basename AS b, @@relay_log_basename AS r");
    if (bases && !bases->empty()) {
      for (const char* column : {"b", "r"}) {
        if (auto base = (*bases)[0].Get(column); base && !base->empty()) logs.push_back(*base);
      }
    }
    header.estimated_bytes = EstimateBackupBytes((*rows)[0].Get("d").value_or(""), logs);
    // The redo log is copied from the last checkpoint on: after heavy writes that tail is
    // a large part of a small backup. MariaDB reports it; elsewhere it is left out.
    auto age = (*session)->Query("SHOW GLOBAL STATUS LIKE 'Innodb_checkpoint_age'");
    if (age && !age->empty()) {
      uint64_t bytes = 0;
      const std::string text = (*age)[0].Get("Value").value_or("");
      auto [end, err] = std::from_chars(text.data(), text.data() + text.size(), bytes);
      if (err == std::errc() && end == text.data() + text.size()) header.estimated_bytes += bytes;
    }
  }
  auto version = process::RunCapture({options_.tool, "--version"}, process::ChildEnvironment());
  if (!version)
    return Error(StatusCode::kUnavailable, "{} --version: {}", options_.tool,
                 version.error().message());
  {
    std::string text = version->out + version->err;
    auto nl = text.find('\n');
    header.tool_version = text.substr(0, nl);
  }
  // The statements and columns of this server (MySQL 8.4 has no SHOW SLAVE STATUS).
  setup.dialect.emplace(options_.flavour,
                        db::ParseServerVersion(header.server_version).value_or(0));
  setup.before = ReplicaThreads(**session, *setup.dialect);
  return setup;
}

namespace {

// The client sends nothing during the stream: readable (or hung up) means it closed or reset.
bool ClientLeft(const net::Socket& sock) {
  pollfd fd{sock.fd(), POLLIN | POLLRDHUP, 0};
  return ::poll(&fd, 1, 0) > 0 && fd.revents != 0;
}

// Why a frame could not be sent to `peer`, in the words of the logs.
std::string WriteFailure(const Status& s, const std::string& peer, milliseconds timeout) {
  if (s.code() == StatusCode::kCancelled) return "server shutting down";
  if (s.code() == StatusCode::kTimeout)
    return fmt::format("client {} did not take a frame within its {} ms deadline", peer,
                       timeout.count());
  if (s.code() == StatusCode::kUnavailable) return "client went away";
  return s.message();
}

}  // namespace

milliseconds FrameSendDeadline(size_t bytes, int64_t min_rate_bytes, milliseconds idle_timeout) {
  if (min_rate_bytes <= 0) return idle_timeout;
  const auto at_floor = milliseconds(static_cast<int64_t>(
      static_cast<double>(bytes) * 1000.0 / static_cast<double>(min_rate_bytes)));
  return std::min(idle_timeout, kFrameSendSlack + at_floor);
}

namespace {

fanout::Limits RunLimits(const ServerOptions& options_, std::string spool_parent,
                         std::shared_ptr<std::atomic<int>> spools) {
  fanout::Limits limits;
  limits.buffer_bytes = static_cast<size_t>(std::max<int64_t>(options_.fanout_buffer_bytes, 1));
  limits.grace = options_.fanout_grace;
  limits.slow_window = options_.fanout_slow_window;
  limits.max_receivers = static_cast<size_t>(std::max<int64_t>(options_.fanout_max_receivers, 1));
  limits.resume_window = options_.resume_window;
  limits.spool_bytes = static_cast<uint64_t>(std::max<int64_t>(options_.resume_spool_bytes, 0));
  limits.spool_parent = std::move(spool_parent);
  limits.spools = std::move(spools);
  limits.max_spools = static_cast<int>(std::max<int64_t>(options_.max_resume_spools, 0));
  return limits;
}

}  // namespace

// One authenticated backup client, start to end: it joins the run whose window is open, or
// opens one (when fewer than max_concurrent runs stream), or is answered busy; then it is
// sent what the run's producer reads, over its own session. Everything it owns is released
// on every path.
void BackupServer::ServeReceiver(net::Socket& sock, const AcceptedClient& client) {
  const std::string peer = ClientLabel(sock, client);
  const milliseconds hs = options_.handshake_timeout;

  // A node without data (being cloned, or a primary asking its peers) has nothing to send.
  if (DatadirHoldsData(options_.datadir) == false) {
    Log()->info("event=backup_refused peer={} reason=no_data", peer);
    (void)sock.WriteFrame(
        FrameType::kError,
        EncodeErrorMessage({"busy", "this node holds no data yet (being cloned or initialized)"}),
        hs);
    return;
  }

  // --- admission ---
  std::shared_ptr<fanout::Run> run;
  size_t index = 0;
  bool opened = false;
  int64_t streaming = 0;
  {
    std::lock_guard lock(runs_mu_);
    if (joinable_) {
      if (auto i = joinable_->Join(client.name, sock.peer(), client.compress)) {
        run = joinable_;
        index = *i;
      }
    }
    streaming = active_.load();
    // The run whose window is open (full, or closing) counts as streaming already.
    if (!run && streaming + (joinable_ ? 1 : 0) < options_.max_concurrent) {
      run = std::make_shared<fanout::Run>(next_run_id_++,
                                          RunLimits(options_, SpoolParent(), spools_));
      index = *run->Join(client.name, sock.peer(), client.compress);
      joinable_ = run;
      runs_.push_back(run);
      opened = true;
    }
  }
  if (!run) {
    Log()->info("event=backup_busy peer={} active={} max_concurrent={}", peer, streaming,
                options_.max_concurrent);
    (void)sock.WriteFrame(
        FrameType::kError,
        EncodeErrorMessage({"busy", fmt::format("busy: {} backup run(s) streaming, "
                                                "max_concurrent={}",
                                                streaming, options_.max_concurrent)}),
        hs);
    return;
  }
  if (opened) {
    Log()->info("event=backup_run_opened peer={} run={} window_ms={}", peer, run->id(),
                options_.fanout_window.count());
    if (Status s = SpawnSession([this, run] { ProduceRun(run); }); !s.ok()) {
      run->Fail(s.message());
      RemoveRun(run);
    }
  } else {
    Log()->info("event=backup_run_joined peer={} run={} receivers={}", peer, run->id(),
                run->receivers());
  }

  const ResumeChain chain = ResumeChainStart(ResumeKey(options_.secret, run->resume_id(index)));
  SendRun(sock, run, index, peer, chain);
}


// Next to the datadir (its filesystem has room for data), else the work dir.
std::string BackupServer::SpoolParent() const {
  if (!options_.resume_spool_dir.empty()) return options_.resume_spool_dir;
  if (!options_.datadir.empty()) return files::ParentDir(options_.datadir);
  return options_.work_dir;
}

void BackupServer::ServeResume(net::Socket& sock, const AcceptedClient& client) {
  const std::string peer = ClientLabel(sock, client);
  const ResumeRequest& request = *client.resume;
  std::shared_ptr<fanout::Run> run;
  std::optional<fanout::Run::Resumed> resumed;
  std::string why;
  {
    std::lock_guard lock(runs_mu_);
    for (const auto& candidate : runs_) {
      std::string reason;
      resumed = candidate->Resume(request, client.compress, client.name, sock.peer(), &reason);
      if (resumed) {
        run = candidate;
        break;
      }
      if (!reason.empty()) why = reason;
    }
  }
  if (!run) {
    if (why.empty()) {
      why = options_.resume_window.count() == 0
                ? "this donor keeps no run for a resume (backup.resume_window = 0)"
                : "this donor holds no such stream (it restarted since, its resume window "
                  "closed, or the run ended)";
    }
    Log()->info("event=backup_resume_refused peer={} run={} offset={} reason={}", peer,
                request.run_id, request.frame_offset, log::Quote(why));
    (void)sock.WriteFrame(FrameType::kError, EncodeErrorMessage({"resume_refused", why}),
                          options_.handshake_timeout);
    return;
  }
  Log()->info("event=backup_resumed peer={} run={} from_offset={} asked={}", peer, run->id(),
              request.frame_offset, CompressRequestText(client.compress));
  SendRun(sock, run, resumed->index, peer, resumed->chain);
}

void BackupServer::SendRun(net::Socket& sock, const std::shared_ptr<fanout::Run>& run,
                           size_t index, const std::string& peer, ResumeChain chain) {
  const milliseconds hs = options_.handshake_timeout;
  const ResumeChain key = ResumeKey(options_.secret, run->resume_id(index));
  // --- send: HEADER, DATA..., TRAILER (or ERROR), as the run's producer provides them ---
  const auto start = Clock::now();
  std::vector<uint8_t> own;  // this receiver's frame for a chunk others send too
  uint64_t sent = 0;
  uint64_t wire = 0;
  // A receiver that did not take a frame within its deadline is too slow, not cut off: it is
  // given up, not kept for a resume, or a trickle reader would hold the donor's slot (and its
  // tool) for the resume window after all (fanout.h, "Resume").
  auto gone = [&](const std::string& reason, bool resumable = true) {
    if (run->Gone(index, reason, resumable)) {
      Log()->warn("event=backup_receiver_detached peer={} run={} bytes={} reason={} "
                  "resume_window_s={}",
                  peer, run->id(), sent, log::Quote(reason),
                  std::chrono::duration_cast<std::chrono::seconds>(options_.resume_window).count());
      return;
    }
    Log()->warn("event=backup_aborted peer={} run={} bytes={} reason={}", peer, run->id(), sent,
                log::Quote(reason));
  };
  for (;;) {
    if (stopping_) return gone("server shutting down");
    fanout::Run::Item item = run->Next(index, milliseconds(200));
    switch (item.kind) {
      case fanout::Run::Item::Kind::kNone:
        if (ClientLeft(sock)) return gone("client went away");
        continue;
      case fanout::Run::Item::Kind::kError:
        // Dropped (logged by the producer when it dropped it) or the run failed (logged
        // once by the producer): the client is told why.
        (void)sock.WriteFrame(FrameType::kError, EncodeErrorMessage(item.error), hs);
        return;
      case fanout::Run::Item::Kind::kHeader:
        if (Status s = sock.WriteFrame(FrameType::kHeader, item.payload, hs); !s.ok())
          return gone(WriteFailure(s, peer, hs));
        continue;
      case fanout::Run::Item::Kind::kData: {
        fanout::Chunk& chunk = *item.chunk;
        std::vector<uint8_t>* frame = &chunk.frame;
        if (!item.own_chunk && !run->sole_receiver()) {
          // Each receiver tags the bytes with its own key and counter: a copy of its own.
          if (own.size() < kFrameHeaderSize + chunk.size + kTagSize)
            own.resize(kFrameHeaderSize + chunk.size + kTagSize);
          std::memcpy(own.data() + kFrameHeaderSize, chunk.frame.data() + kFrameHeaderSize,
                      chunk.size);
          frame = &own;
        }
        const milliseconds deadline =
            FrameSendDeadline(chunk.size, options_.min_send_rate_bytes, options_.idle_timeout);
        Status s = sock.WriteFrameBuffer(chunk.type, *frame, chunk.size, deadline);
        if (!s.ok())
          return gone(WriteFailure(s, peer, deadline), s.code() != StatusCode::kTimeout);
        sent += chunk.stream_bytes;
        stream_bytes_sent_.fetch_add(chunk.stream_bytes, std::memory_order_relaxed);
        wire_bytes_sent_.fetch_add(chunk.size, std::memory_order_relaxed);
        wire += chunk.size;
        // The resume chain goes over the tag just sent, at the frame's stream offset and
        // stream bytes (protocol.h, "Why resume"): the same for DATA and ZDATA.
        const ResumeChain before = chain;
        chain = ResumeChainNext(key, before, chunk.offset, static_cast<uint32_t>(chunk.stream_bytes),
                                {frame->data() + kFrameHeaderSize + chunk.size, kTagSize});
        run->Sent(index, chunk.offset, chunk.stream_bytes, chunk.size, before);
        // For `auto`: how long this receiver's window held TCP back (wire_compression.h).
        if (auto limits = ReadTcpLimits(sock.fd())) run->ReportLink(index, limits->rwnd_limited_us);
        continue;
      }
      case fanout::Run::Item::Kind::kTrailer: {
        Status s = sock.WriteFrame(FrameType::kTrailer, item.payload, options_.idle_timeout);
        if (!s.ok()) {
          Log()->warn("event=backup_trailer_failed peer={} run={} error={}", peer, run->id(),
                      log::Quote(s.message()));
          run->Gone(index, WriteFailure(s, peer, options_.idle_timeout));
          return;
        }
        if (!item.trailer_ok) {
          // The producer logged the tool's failure; the client learns it from the trailer.
          run->Gone(index, fmt::format("{} failed", options_.tool));
          return;
        }
        run->Done(index);
        backups_served_.fetch_add(1);
        if (options_.on_backup_served) options_.on_backup_served();
        Log()->info(
            "event=backup_served peer={} run={} bytes={} wire_bytes={} elapsed_ms={} "
            "backups_served={}",
            peer, run->id(), sent, wire,
            std::chrono::duration_cast<milliseconds>(Clock::now() - start).count(),
            backups_served_.load());
        return;
      }
    }
  }
}

void BackupServer::RemoveRun(const std::shared_ptr<fanout::Run>& run) {
  std::lock_guard lock(runs_mu_);
  if (joinable_ == run) joinable_.reset();
  if (std::find(runs_.begin(), runs_.end(), run) != runs_.end()) {
    const auto stats = run->resume_stats();
    ended_detached_ += stats.detached;
    ended_resumes_ += stats.resumed;
    ended_resent_ += stats.resent_bytes;
  }
  std::erase(runs_, run);
  for (auto& r : run->Status()) {
    if (r.state != "dropped" && r.state != "gone") continue;
    ended_.push_back(std::move(r));
    if (ended_.size() > kEndedKept) ended_.pop_front();
  }
}

BackupActivity BackupServer::Activity() const {
  BackupActivity a;
  a.runs_started = runs_started_.load();
  a.backups_served = backups_served_.load();
  a.receivers_dropped = receivers_dropped_.load();
  a.stream_bytes_sent = stream_bytes_sent_.load();
  a.wire_bytes_sent = wire_bytes_sent_.load();
  std::lock_guard lock(runs_mu_);
  a.resume_window_seconds =
      std::chrono::duration_cast<std::chrono::seconds>(options_.resume_window).count();
  a.receivers_detached = ended_detached_;
  a.resumes = ended_resumes_;
  a.resent_bytes = ended_resent_;
  for (const auto& run : runs_) {
    for (auto& r : run->Status()) a.receivers.push_back(std::move(r));
    const auto stats = run->resume_stats();
    a.receivers_detached += stats.detached;
    a.resumes += stats.resumed;
    a.resent_bytes += stats.resent_bytes;
    a.spool_bytes += stats.spool_bytes;
  }
  a.ended.assign(ended_.begin(), ended_.end());
  return a;
}

// A run's producer, start to end: the join window, the header, the tool, its stdout to
// every receiver, the trailer, donor safety. Everything it owns is released on every path.
void BackupServer::ProduceRun(const std::shared_ptr<fanout::Run>& run) {
  struct Remove {
    BackupServer* server;
    const std::shared_ptr<fanout::Run>& run;
    ~Remove() { server->RemoveRun(run); }
  } remove{this, run};

  // --- the join window: the replicas that start together share this run ---
  const size_t joined =
      run->CloseJoiningAt(Clock::now() + options_.fanout_window, stop_source_.get_token());
  {
    std::lock_guard lock(runs_mu_);
    if (joinable_ == run) joinable_.reset();
    active_.fetch_add(1);  // under the lock: admission counts it as streaming from now
  }
  struct Release {
    std::atomic<int>& n;
    bool released = false;
    void operator()() {
      if (!released) n.fetch_sub(1);
      released = true;
    }
    ~Release() { (*this)(); }
  } release{active_};
  const uint64_t id = run->id();
  auto fail = [&](const std::string& message) {
    Log()->error("event=backup_failed run={} receivers={} error={}", id, joined,
                 log::Quote(message));
    run->Fail(message);
  };
  if (stopping_) return run->Fail("server shutting down");

  auto setup = SetUpRun();
  if (!setup) return fail(setup.error().message());
  StreamHeader& header = setup->header;

  // --- private work dir: 0600 option file and the tool's --target-dir ---
  auto work_dir = files::OwnedTempDir::Create(options_.work_dir, kWorkDirPrefix);
  if (!work_dir) return fail(work_dir.error().message());
  const std::string work = work_dir->path();
  auto cnf = BackupOptionFile(options_);
  if (!cnf) return fail(cnf.error().message());
  const std::string cnf_path = work + "/backup.cnf";
  if (Status s = files::WriteFileAtomic(cnf_path, *cnf, 0600); !s.ok()) return fail(s.message());
  const std::string target = work + "/target";

  process::SpawnOptions spawn;
  spawn.argv = {options_.tool,  "--defaults-extra-file=" + cnf_path,
                "--backup",     "--stream=xbstream",
                "--slave-info", "--target-dir=" + target};
  if (options_.parallel > 1) spawn.argv.push_back(fmt::format("--parallel={}", options_.parallel));
  spawn.env = process::ChildEnvironment();
  spawn.stdout_mode = process::Stdio::kPipe;
  spawn.stderr_mode = process::Stdio::kPipe;
  spawn.new_process_group = true;
  spawn.parent_death_signal = SIGKILL;  // no backup runs on for a replboot that is gone
  spawn.nice = options_.tool_nice;
  spawn.io_priority = options_.tool_io_priority;
  auto child = process::Spawn(spawn);
  if (!child)
    return fail(fmt::format("cannot start {}: {}", options_.tool, child.error().message()));
  const pid_t pid = child->pid;
  int out_fd = child->stdout_fd;
  int err_fd = child->stderr_fd;
  bool reaped = false;
  auto kill_child = [&] {
    if (reaped) return;
    ::kill(-pid, SIGKILL);
    ::kill(pid, SIGKILL);
    (void)process::Wait(pid);
    reaped = true;
  };
  struct Cleanup {
    std::function<void()> fn;
    ~Cleanup() { fn(); }
  } cleanup{[&] {
    kill_child();
    if (out_fd >= 0) ::close(out_fd);
    if (err_fd >= 0) ::close(err_fd);
  }};
  runs_started_.fetch_add(1);
  {
    std::string names;
    for (const auto& r : run->Status()) {
      if (!names.empty()) names += ",";
      names += r.name.empty() ? r.peer : r.name + "/" + r.peer;
    }
    Log()->info(
        "event=backup_started run={} receivers={} peers={} pid={} tool={} estimated_bytes={}", id,
        joined, log::Quote(names), pid, options_.tool, header.estimated_bytes);
  }
  // --- compression on the wire: one grant for the whole run (wire_compression.h) ---
  const std::vector<CompressRequest> asked = run->CompressRequests();
  const Grant grant = DecideGrant(asked, options_.cpus > 0 ? options_.cpus : process::UsableCpus(),
                                  options_.parallel);
  header.compression = grant.mode;
  header.compression_level = grant.level;
  const std::string grant_text =
      grant.mode == "off" ? "off" : fmt::format("{}:{}", grant.mode, grant.level);
  run->SetCompression(grant_text);
  {
    std::string asked_text;
    for (const auto& a : asked) asked_text += (asked_text.empty() ? "" : ",") + CompressRequestText(a);
    Log()->info("event=backup_compression run={} asked={} granted={}{}", id, asked_text,
                grant_text, grant.reason.empty() ? "" : " reason=" + log::Quote(grant.reason));
  }
  std::optional<ChunkCompressor> compressor;
  if (grant.mode != "off") {
    auto created = ChunkCompressor::Create();
    if (!created) return fail(created.error().message());
    compressor.emplace(std::move(*created));
  }
  AutoLevel auto_level(grant.level);
  // The level of the chunks being made now: fixed, or auto's (starts off).
  int level = grant.mode == "zstd" ? grant.level : 0;
  run->Start(header);

  // --- stream: the tool's stdout, read once, to every receiver of the run ---
  // Each chunk is read from the pipe into user space; each receiver's sender tags it
  // (AES-GMAC, its own key) and sends it with one write; over TLS that write is encrypted
  // too. No splice(2): the bytes must be seen to be authenticated.
  ::fcntl(out_fd, F_SETPIPE_SZ, 1 << 20);  // bigger frames, fewer syscalls; best effort
  ::fcntl(out_fd, F_SETFL, ::fcntl(out_fd, F_GETFL) | O_NONBLOCK);
  ::fcntl(err_fd, F_SETFL, ::fcntl(err_fd, F_GETFL) | O_NONBLOCK);
  std::deque<std::string> err_tail;  // the tool's last stderr lines, logged when it fails
  std::string err_partial;
  std::string last_line;
  auto add_err_line = [&](std::string line) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) return;
    Log()->debug("event=backup_tool_output line={}", log::Quote(options_.tool + ": " + line));
    last_line = line;
    err_tail.push_back(std::move(line));
    if (err_tail.size() > 40) err_tail.pop_front();
  };
  uint64_t sent = 0;
  uint64_t wire = 0;
  const auto start = Clock::now();
  auto last_progress = start;
  std::string abort_reason;
  constexpr size_t kMaxFrame = 1 << 20;
  // Frames are reused once no receiver holds them any more (fanout.h, ChunkPool).
  fanout::ChunkPool pool(kFrameHeaderSize + kMaxFrame + kTagSize, 4);
  // backup.bandwidth_limit: the tool's output is read at this pace (pacer.h).
  std::optional<Pacer> pacer;
  if (options_.bandwidth_limit > 0) pacer.emplace(options_.bandwidth_limit);
  // A frame's worth of room to compress into; swapped with the chunk's frame when the zstd
  // frame is smaller (so neither is copied), and the raw bytes' frame is the next room.
  std::vector<uint8_t> zroom(compressor ? kFrameHeaderSize + kMaxFrame + kTagSize : 0);
  // `auto`'s window (wire_compression.h): what the producer waited for since window_start.
  auto window_start = start;
  Clock::duration window_blocked{0}, window_compressing{0};
  int window_chunks = 0;
  uint64_t window_rwnd_start = 0;
  uint64_t zchunks = 0;
  auto log_drops = [&](const std::vector<BackupReceiverStatus>& dropped) {
    for (const auto& r : dropped) {
      receivers_dropped_.fetch_add(1);
      Log()->warn("event=backup_receiver_dropped peer={} run={} bytes={} reason={}",
                  r.name.empty() ? r.peer : r.name + "/" + r.peer, id, r.bytes_sent,
                  log::Quote(r.reason));
    }
  };
  while ((out_fd >= 0 || err_fd >= 0) && abort_reason.empty()) {
    if (stopping_) {
      abort_reason = "server shutting down";
      break;
    }
    pollfd fds[2];
    int n = 0;
    int out_i = -1, err_i = -1;
    if (out_fd >= 0) {
      out_i = n;
      fds[n++] = {out_fd, POLLIN, 0};
    }
    if (err_fd >= 0) {
      err_i = n;
      fds[n++] = {err_fd, POLLIN, 0};
    }
    int rc = ::poll(fds, n, 500);
    run->Tick();  // resume windows that closed
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) {
      abort_reason = ErrnoStatus(errno, "poll").message();
      break;
    }
    if (rc == 0) {
      if (run->live() == 0) {
        abort_reason = "no receiver left";
      } else if (Clock::now() - last_progress > options_.idle_timeout) {
        abort_reason = fmt::format("no output from {} for {} ms", options_.tool,
                                   options_.idle_timeout.count());
      }
      continue;
    }
    if (err_i >= 0 && fds[err_i].revents != 0) {
      char buf[4096];
      ssize_t r = ::read(err_fd, buf, sizeof buf);
      if (r > 0) {
        err_partial.append(buf, static_cast<size_t>(r));
        size_t pos;
        while ((pos = err_partial.find('\n')) != std::string::npos) {
          add_err_line(err_partial.substr(0, pos));
          err_partial.erase(0, pos + 1);
        }
      } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
        add_err_line(err_partial);
        err_partial.clear();
        ::close(err_fd);
        err_fd = -1;
      }
    }
    if (out_i >= 0 && fds[out_i].revents != 0) {
      const size_t want = pacer ? pacer->ChunkBytes(kMaxFrame) : kMaxFrame;
      std::shared_ptr<fanout::Chunk> chunk = pool.Take();
      ssize_t r = ::read(out_fd, chunk->frame.data() + kFrameHeaderSize, want);
      if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (r < 0) {
        abort_reason = ErrnoStatus(errno, "read from the backup tool").message();
        break;
      }
      if (r == 0) {
        ::close(out_fd);
        out_fd = -1;
        continue;
      }
      chunk->size = static_cast<size_t>(r);
      if (pacer) std::this_thread::sleep_until(pacer->Reserve(chunk->size, Clock::now()));
      chunk->stream_bytes = static_cast<size_t>(r);
      chunk->offset = sent;
      if (compressor && level > 0) {
        const auto before = Clock::now();
        auto n = compressor->Compress(
            level, std::span<const uint8_t>(chunk->frame.data() + kFrameHeaderSize, chunk->size),
            std::span<uint8_t>(zroom.data() + kFrameHeaderSize, kMaxFrame));
        window_compressing += Clock::now() - before;
        if (!n) {
          abort_reason = n.error().message();
          break;
        }
        if (*n > 0) {
          std::swap(chunk->frame, zroom);
          chunk->size = *n;
          chunk->type = FrameType::kZData;
          ++zchunks;
        }
      }
      std::vector<BackupReceiverStatus> dropped;
      const auto publish_start = Clock::now();
      const bool published = run->Publish(chunk, stop_source_.get_token(), &dropped);
      last_progress = Clock::now();
      window_blocked += last_progress - publish_start;
      log_drops(dropped);
      if (!published) {
        abort_reason = stopping_ ? "server shutting down" : "no receiver left";
        break;
      }
      sent += static_cast<size_t>(r);
      wire += chunk->size;
      ++window_chunks;
      if (grant.mode == "auto" && window_chunks >= kAutoWindowChunks &&
          last_progress - window_start >= kAutoWindow) {
        const uint64_t rwnd = run->MaxRwndLimited();
        WindowMeasure m;
        m.elapsed = last_progress - window_start;
        m.blocked = window_blocked;
        m.compressing = window_compressing;
        m.receiver_limited =
            std::chrono::microseconds(rwnd > window_rwnd_start ? rwnd - window_rwnd_start : 0);
        const AutoDecision decision = auto_level.Next(m);
        if (!decision.reason.empty()) {
          auto pct = [&](Clock::duration d) {
            return 100.0 * std::chrono::duration<double>(d).count() /
                   std::chrono::duration<double>(m.elapsed).count();
          };
          Log()->info(
              "event=backup_compression_level run={} from={} to={} reason={} blocked_pct={:.0f} "
              "compressing_pct={:.0f} receiver_limited_pct={:.0f} bytes={} wire_bytes={}",
              id, level, decision.level, decision.reason, pct(m.blocked), pct(m.compressing),
              pct(m.receiver_limited), sent, wire);
        }
        level = decision.level;
        window_start = last_progress;
        window_blocked = window_compressing = Clock::duration{0};
        window_chunks = 0;
        window_rwnd_start = rwnd;
      }
    }
  }
  if (!abort_reason.empty()) {
    kill_child();
    Log()->warn("event=backup_aborted run={} bytes={} reason={} pid={}", id, sent,
                log::Quote(abort_reason), pid);
    run->Fail(abort_reason);
  } else {
    auto status = process::Wait(pid);
    reaped = true;
    StreamTrailer trailer;
    trailer.bytes = sent;
    // Only when compression was granted: a receiver before version 4 knows no wire_bytes,
    // and without compression they are the bytes.
    if (grant.mode != "off") trailer.wire_bytes = wire;
    trailer.last_line = last_line;
    if (status) {
      trailer.exit_code = status->code;
      trailer.signal = status->signal;
    }
    auto elapsed_ms = std::chrono::duration_cast<milliseconds>(Clock::now() - start).count();
    if (trailer.ok()) {
      Log()->info(
          "event=backup_run_finished run={} bytes={} wire_bytes={} compression={} zdata_frames={} "
          "ratio={:.2f} elapsed_ms={} receivers={} left={}",
          id, sent, wire, grant_text, zchunks,
          wire > 0 ? static_cast<double>(sent) / static_cast<double>(wire) : 0.0, elapsed_ms,
          joined, run->live());
    } else {
      Log()->error("event=backup_tool_failed run={} status={} bytes={}", id,
                   log::Quote(status ? status->ToString() : status.error().message()), sent);
      // Each line at its own level: the tool's [Note] lines are context, not errors.
      for (const auto& line : err_tail) {
        Log()->log(ToolLineLevel(line), "event=backup_tool_stderr line={}",
                   log::Quote(options_.tool + ": " + line));
      }
    }
    run->Finish(trailer);
  }
  release();  // the tool is done: the slot is free while the senders drain their queues

  // --- donor safety: leave replication as it was ---
  // (the backup account may restart the SQL thread: db::Dialect::BackupGrants)
  if (setup->before && setup->before->SqlRunning()) {
    auto after_session = db::Connect(ConnectOptions());
    if (after_session) {
      auto after = ReplicaThreads(**after_session, *setup->dialect);
      if (after && !after->SqlRunning()) {
        Status s = (*after_session)->Execute(setup->dialect->StartSqlThread());
        if (s.ok()) {
          Log()->warn("event=replication_restarted thread=sql reason={}",
                      log::Quote("stopped during the backup"));
        } else {
          Log()->error("event=replication_restart_failed thread=sql error={}",
                       log::Quote(s.message()));
        }
      }
    } else {
      Log()->error("event=replication_check_failed error={}",
                   log::Quote(after_session.error().message()));
    }
  }
  // The run stays in /status until its last receiver is served or gone.
  // A detached receiver keeps it (and its spool) for its resume window.
  while (run->live() > 0 && !stopping_) {
    run->Tick();
    std::this_thread::sleep_for(milliseconds(100));
  }
}

}  // namespace replboot::clone
