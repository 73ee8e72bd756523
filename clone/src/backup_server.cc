#include "replboot/clone/backup_server.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstring>
#include <deque>
#include <filesystem>

#include "net.h"
#include "replboot/base/files.h"
#include "replboot/base/log.h"
#include "replboot/base/option_file.h"
#include "replboot/discovery/prober.h"
#include "replboot/base/process.h"
#include "replboot/clone/protocol.h"
#include "replboot/db/client.h"
#include "replboot/db/dialect.h"

namespace replboot::clone {

namespace asio = boost::asio;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

std::string DefaultTool(Flavour flavour) {
  return flavour == Flavour::kMySQL ? "xtrabackup" : "mariabackup";
}

namespace {

auto Log() { return log::Get("clone"); }

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

uint64_t DirectorySize(const std::string& dir) {
  uint64_t total = 0;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(
           dir, std::filesystem::directory_options::skip_permission_denied, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code size_ec;
    if (it->is_regular_file(size_ec)) {
      auto size = it->file_size(size_ec);
      if (!size_ec) total += size;
    }
  }
  return total;
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

Result<std::string> QueryServerVersion(const db::ConnectOptions& connect) {
  auto session = db::Connect(connect);
  if (!session) return Error(session.error());
  auto rows = (*session)->Query("SELECT VERSION() AS v");
  if (!rows) return Error(rows.error());
  if (rows->empty()) return Error(StatusCode::kUnavailable, "SELECT VERSION() returned no row");
  return (*rows)[0].Get("v").value_or("");
}

}  // namespace

BackupServer::BackupServer(asio::io_context& io, ServerOptions options)
    : io_(io), options_(std::move(options)), acceptor_(io) {
  if (options_.tool.empty()) options_.tool = DefaultTool(options_.flavour);
}

BackupServer::~BackupServer() { Stop(); }

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
  // splice(2) into a socket whose peer is gone raises SIGPIPE; the error code is enough.
  ::signal(SIGPIPE, SIG_IGN);
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
  Log()->info("event=backup_server_listening listen={} port={} tool={} max_concurrent={} tls={}",
              log::Quote(listen_text), port_, options_.tool, options_.max_concurrent,
              tls_ ? (options_.tls.ca.empty() ? "on" : "verify-peer") : "off");
  asio::co_spawn(io_, AcceptLoop(), asio::detached);
  return Status::Ok();
}

void BackupServer::Stop() {
  if (stopping_.exchange(true)) return;
  stop_source_.request_stop();
  boost::system::error_code ec;
  acceptor_.close(ec);
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
  while (!stopping_) {
    auto [ec, socket] = co_await acceptor_.async_accept(asio::as_tuple(asio::use_awaitable));
    if (ec == asio::error::operation_aborted || stopping_) co_return;
    if (ec) {
      Log()->warn("event=backup_accept_failed error={}", log::Quote(ec.message()));
      // EMFILE and friends: back off instead of spinning on the error.
      asio::steady_timer timer(io_, std::chrono::milliseconds(200));
      co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
      continue;
    }
    ReapFinishedSessions();
    int fd = socket.release(ec);
    if (ec) continue;
    auto done = std::make_shared<std::atomic<bool>>(false);
    std::lock_guard lock(sessions_mu_);
    sessions_.push_back({std::thread([this, fd, done] {
                           RunSession(fd);
                           done->store(true);
                         }),
                         done});
  }
}

// A probe: the facts a replica's pre-flight needs, without starting the backup tool. The
// server version costs one query (a probe is rare: a few per clone attempt).
void BackupServer::AnswerProbe(net::Socket& sock) {
  ProbeInfo info;
  info.flavour = FlavourName(options_.flavour);
  info.tool = options_.tool;
  info.active = active_.load();
  info.max_concurrent = options_.max_concurrent;
  info.busy = info.active >= options_.max_concurrent;
  Result<std::string> version = options_.probe_server_version
                                    ? options_.probe_server_version()
                                    : QueryServerVersion(ConnectOptions());
  if (version) {
    info.server_version = *version;
  } else {
    info.error = fmt::format("cannot query the local server: {}", version.error().message());
  }
  probes_answered_.fetch_add(1);
  Log()->info("event=backup_probe_answered peer={} busy={} server_version={}{}", sock.peer(),
              info.busy, log::Quote(info.server_version),
              info.error.empty() ? "" : " error=" + log::Quote(info.error));
  if (Status s = sock.WriteFrame(FrameType::kProbeInfo, EncodeProbeInfo(info),
                                 options_.handshake_timeout);
      !s.ok()) {
    Log()->debug("event=backup_probe_failed peer={} error={}", sock.peer(),
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

// One client, start to end. Everything it owns is released on every path.
void BackupServer::RunSession(int fd) {
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  net::Socket sock(fd, net::PeerName(fd));
  const std::string peer = sock.peer();
  const milliseconds hs = options_.handshake_timeout;
  sock.SetStop(stop_source_.get_token());

  // --- TLS, or not: both sides must agree, and a mismatch is named on the side that sees it
  auto first = sock.PeekByte(hs);
  if (!first) {
    Log()->warn("event=backup_handshake_failed peer={} error={}", peer,
                log::Quote(first.error().message()));
    return;
  }
  if (tls_) {
    if (*first == static_cast<uint8_t>(FrameType::kHello)) {
      const std::string message = "this server requires TLS (backup.tls = true)";
      Log()->warn("event=backup_handshake_failed peer={} error={}", peer,
                  log::Quote(fmt::format("peer {} speaks plaintext but backup.tls is true", peer)));
      (void)sock.WriteFrame(FrameType::kError, EncodeErrorMessage({"tls_required", message}), hs);
      return;
    }
    if (Status s = sock.StartTls(*tls_, hs); !s.ok()) {
      Log()->warn("event=backup_handshake_failed peer={} error={}", peer, log::Quote(s.message()));
      return;
    }
  } else if (*first == kTlsHandshakeRecord) {
    Log()->warn("event=backup_handshake_failed peer={} error={}", peer,
                log::Quote(fmt::format("peer {} speaks TLS but backup.tls is false", peer)));
    return;
  }
  auto binding = sock.ChannelBinding();
  if (!binding) {
    Log()->error("event=backup_handshake_failed peer={} error={}", peer,
                 log::Quote(binding.error().message()));
    return;
  }

  // --- authentication ---
  auto hello = sock.ReadControlFrame(hs);
  if (!hello) {
    Log()->warn("event=backup_handshake_failed peer={} error={}", peer,
                log::Quote(hello.error().message()));
    return;
  }
  if (hello->type != FrameType::kHello) {
    Log()->warn("event=backup_handshake_failed peer={} error={}", peer,
                log::Quote(fmt::format("expected HELLO, got {}", FrameTypeName(hello->type))));
    return;
  }
  auto mode = CheckHello(hello->payload);
  if (!mode) {
    const Status& s = mode.error();
    Log()->warn("event=backup_handshake_failed peer={} error={}", peer, log::Quote(s.message()));
    (void)sock.WriteFrame(FrameType::kError, EncodeErrorMessage({"protocol", s.message()}), hs);
    return;
  }
  auto server_nonce = RandomNonce();
  if (!server_nonce) {
    Log()->error("event=backup_handshake_failed peer={} error={}", peer,
                 log::Quote(server_nonce.error().message()));
    return;
  }
  std::string challenge(reinterpret_cast<const char*>(server_nonce->data()), server_nonce->size());
  if (!sock.WriteFrame(FrameType::kChallenge, challenge, hs).ok()) return;
  auto response = sock.ReadControlFrame(hs);
  if (!response) {
    Log()->warn("event=backup_handshake_failed peer={} error={}", peer,
                log::Quote(response.error().message()));
    return;
  }
  if (response->type != FrameType::kResponse || response->payload.size() != kMacSize + kNonceSize) {
    Log()->warn("event=backup_handshake_failed peer={} error={}", peer,
                log::Quote("malformed RESPONSE"));
    return;
  }
  Nonce client_nonce;
  std::memcpy(client_nonce.data(), response->payload.data() + kMacSize, kNonceSize);
  Mac expected = ClientMac(options_.secret, *server_nonce, client_nonce, *binding);
  auto given = std::span(reinterpret_cast<const uint8_t*>(response->payload.data()), kMacSize);
  if (!MacEqual(expected, given)) {
    Log()->warn("event=auth_refused peer={}", peer);
    (void)sock.WriteFrame(FrameType::kError,
                          EncodeErrorMessage({"auth_failed", "authentication failed"}), hs);
    return;
  }
  Mac proof = ServerMac(options_.secret, client_nonce, *server_nonce, *binding);
  if (!sock.WriteFrame(FrameType::kProof,
                       std::string(reinterpret_cast<const char*>(proof.data()), proof.size()), hs)
           .ok()) {
    return;
  }

  if (*mode == HelloMode::kProbe) return AnswerProbe(sock);

  // --- admission ---
  int active = active_.fetch_add(1);
  struct Release {
    std::atomic<int>& n;
    ~Release() { n.fetch_sub(1); }
  } release{active_};
  if (active >= options_.max_concurrent) {
    Log()->info("event=backup_busy peer={} active={} max_concurrent={}", peer, active,
                options_.max_concurrent);
    (void)sock.WriteFrame(
        FrameType::kError,
        EncodeErrorMessage({"busy", fmt::format("busy: {} backup(s) running, max_concurrent={}",
                                                active, options_.max_concurrent)}),
        hs);
    return;
  }

  auto fail = [&](const std::string& message) {
    Log()->error("event=backup_failed peer={} error={}", peer, log::Quote(message));
    (void)sock.WriteFrame(FrameType::kError, EncodeErrorMessage({"backup_failed", message}), hs);
  };

  // --- header: what the replica needs for its pre-flight ---
  const db::ConnectOptions connect = ConnectOptions();
  auto session = db::Connect(connect);
  if (!session)
    return fail(fmt::format("cannot query the local server: {}", session.error().message()));
  auto rows = (*session)->Query("SELECT VERSION() AS v, @@datadir AS d");
  if (!rows || rows->empty()) {
    return fail(fmt::format("SELECT VERSION(): {}", rows ? "no row" : rows.error().message()));
  }
  StreamHeader header;
  header.flavour = FlavourName(options_.flavour);
  header.server_version = (*rows)[0].Get("v").value_or("");
  header.tool = options_.tool;
  header.estimated_bytes = DirectorySize((*rows)[0].Get("d").value_or(""));
  auto version = process::RunCapture({options_.tool, "--version"}, process::ChildEnvironment());
  if (!version)
    return fail(fmt::format("{} --version: {}", options_.tool, version.error().message()));
  {
    std::string text = version->out + version->err;
    auto nl = text.find('\n');
    header.tool_version = text.substr(0, nl);
  }
  // The statements and columns of this server (MySQL 8.4 has no SHOW SLAVE STATUS).
  const db::Dialect dialect(options_.flavour,
                            db::ParseServerVersion(header.server_version).value_or(0));
  std::optional<db::ReplicaState> before = ReplicaThreads(**session, dialect);

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
  Log()->info("event=backup_started peer={} pid={} tool={} estimated_bytes={}", peer, pid,
              options_.tool, header.estimated_bytes);
  if (Status s = sock.WriteFrame(FrameType::kHeader, EncodeStreamHeader(header), hs); !s.ok()) {
    Log()->warn("event=backup_aborted peer={} error={}", peer, log::Quote(s.message()));
    return;
  }

  // --- stream: splice the tool's stdout into the socket, DATA frame by DATA frame ---
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
  const auto start = Clock::now();
  auto last_progress = start;
  std::string abort_reason;
  constexpr uint32_t kMaxFrame = 1 << 20;
  std::string tls_buffer;  // one DATA frame when the stream goes through TLS
  while ((out_fd >= 0 || err_fd >= 0) && abort_reason.empty()) {
    if (stopping_) {
      abort_reason = "server shutting down";
      break;
    }
    pollfd fds[3];
    int n = 0;
    fds[n++] = {sock.fd(), POLLIN | POLLRDHUP, 0};
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
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) {
      abort_reason = ErrnoStatus(errno, "poll").message();
      break;
    }
    if (rc == 0) {
      if (Clock::now() - last_progress > options_.idle_timeout) {
        abort_reason = fmt::format("no output from {} for {} ms", options_.tool,
                                   options_.idle_timeout.count());
      }
      continue;
    }
    if (fds[0].revents != 0) {
      // The client sends nothing during the stream: readable means it closed or reset.
      abort_reason = "client went away";
      break;
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
      int avail = 0;
      if (::ioctl(out_fd, FIONREAD, &avail) != 0) avail = 0;
      if (avail <= 0) {
        if (fds[out_i].revents & (POLLHUP | POLLERR)) {
          ::close(out_fd);
          out_fd = -1;
        }
        continue;
      }
      uint32_t chunk = std::min<uint32_t>(static_cast<uint32_t>(avail), kMaxFrame);
      if (options_.bandwidth_limit > 0) {
        // Pace so that `sent` never runs ahead of limit × elapsed.
        chunk = std::min<uint32_t>(
            chunk, static_cast<uint32_t>(std::max<int64_t>(options_.bandwidth_limit / 10, 4096)));
        auto due =
            start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
                        static_cast<double>(sent) / static_cast<double>(options_.bandwidth_limit)));
        if (due > Clock::now()) std::this_thread::sleep_until(due);
      }
      if (sock.tls()) {
        // No splice through TLS: one DATA frame (header + payload) into the buffer, read
        // from the pipe (FIONREAD said it holds `chunk` bytes) and encrypted by SSL_write.
        tls_buffer.resize(kFrameHeaderSize + chunk);
        auto frame = EncodeFrameHeader(FrameType::kData, chunk);
        std::memcpy(tls_buffer.data(), frame.data(), frame.size());
        size_t got = 0;
        while (got < chunk) {
          ssize_t r = ::read(out_fd, tls_buffer.data() + kFrameHeaderSize + got, chunk - got);
          if (r > 0) {
            got += static_cast<size_t>(r);
            continue;
          }
          if (r < 0 && errno == EINTR) continue;
          abort_reason = r == 0 ? "backup tool output ended inside a frame"
                                : ErrnoStatus(errno, "read from the backup tool").message();
          break;
        }
        if (!abort_reason.empty()) break;
        Status s = sock.WriteAll(std::string_view(tls_buffer.data(), tls_buffer.size()),
                                 options_.idle_timeout);
        if (!s.ok()) {
          abort_reason = s.code() == StatusCode::kCancelled ? "server shutting down"
                         : s.code() == StatusCode::kTimeout
                             ? fmt::format("client {} took nothing for {} ms", peer,
                                           options_.idle_timeout.count())
                             : (s.code() == StatusCode::kUnavailable ? "client went away"
                                                                     : s.message());
          break;
        }
        sent += chunk;
        last_progress = Clock::now();
        continue;
      }
      auto frame = EncodeFrameHeader(FrameType::kData, chunk);
      if (Status s = sock.WriteAll(
              std::string_view(reinterpret_cast<const char*>(frame.data()), frame.size()),
              options_.idle_timeout);
          !s.ok()) {
        abort_reason = s.message();
        break;
      }
      uint32_t moved = 0;
      while (moved < chunk) {
        ssize_t r = ::splice(out_fd, nullptr, sock.fd(), nullptr, chunk - moved,
                             SPLICE_F_MOVE | SPLICE_F_MORE | SPLICE_F_NONBLOCK);
        if (r > 0) {
          moved += static_cast<uint32_t>(r);
          last_progress = Clock::now();
          continue;
        }
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && errno == EAGAIN) {
          // The socket is full (the pipe holds at least `chunk` bytes, FIONREAD said so).
          // Wait in short slices so that Stop() is never held up by a stalled client.
          pollfd p{sock.fd(), POLLOUT, 0};
          int prc = ::poll(&p, 1, 500);
          if (stopping_) {
            abort_reason = "server shutting down";
            break;
          }
          if (prc == 0 && Clock::now() - last_progress > options_.idle_timeout) {
            abort_reason = fmt::format("client {} took nothing for {} ms", peer,
                                       options_.idle_timeout.count());
            break;
          }
          continue;
        }
        abort_reason = r == 0 ? "backup tool output ended inside a frame"
                              : (errno == EPIPE || errno == ECONNRESET
                                     ? "client went away"
                                     : ErrnoStatus(errno, "splice").message());
        break;
      }
      sent += moved;
      last_progress = Clock::now();
    }
  }
  if (!abort_reason.empty()) {
    kill_child();
    Log()->warn("event=backup_aborted peer={} bytes={} reason={} pid={}", peer, sent,
                log::Quote(abort_reason), pid);
  } else {
    auto status = process::Wait(pid);
    reaped = true;
    StreamTrailer trailer;
    trailer.bytes = sent;
    trailer.last_line = last_line;
    if (status) {
      trailer.exit_code = status->code;
      trailer.signal = status->signal;
    }
    auto elapsed_ms = std::chrono::duration_cast<milliseconds>(Clock::now() - start).count();
    if (trailer.ok()) {
      backups_served_.fetch_add(1);
      if (options_.on_backup_served) options_.on_backup_served();
      Log()->info("event=backup_served peer={} bytes={} elapsed_ms={} backups_served={}", peer,
                  sent, elapsed_ms, backups_served_.load());
    } else {
      Log()->error("event=backup_tool_failed peer={} status={} bytes={}", peer,
                   log::Quote(status ? status->ToString() : status.error().message()), sent);
      for (const auto& line : err_tail) {
        Log()->error("event=backup_tool_stderr line={}", log::Quote(options_.tool + ": " + line));
      }
    }
    if (Status s = sock.WriteFrame(FrameType::kTrailer, EncodeStreamTrailer(trailer),
                                   options_.idle_timeout);
        !s.ok()) {
      Log()->warn("event=backup_trailer_failed peer={} error={}", peer, log::Quote(s.message()));
    }
  }

  // --- donor safety: leave replication as it was ---
  if (before && before->SqlRunning()) {
    auto after_session = db::Connect(connect);
    if (after_session) {
      auto after = ReplicaThreads(**after_session, dialect);
      if (after && !after->SqlRunning()) {
        Status s = (*after_session)->Execute(dialect.StartSqlThread());
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
}

}  // namespace replboot::clone
