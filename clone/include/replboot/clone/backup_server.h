// BackupServer: the donor side of a clone, run on every node (`[backup] listen`).
//
// Per client: authenticate (protocol.h); answer a probe with the donor's facts and close
// (no backup tool is started for it); otherwise refuse with `busy` past max_concurrent, send the
// stream header, run the backup tool (`mariabackup --backup --stream=xbstream
// --slave-info`, or `xtrabackup` for MySQL) with the backup user's credentials in a 0600
// option file, forward its stdout to the client and end with a trailer.
//
// Threads: the accept loop is an Asio coroutine on the caller's io_context; each accepted
// client gets its own thread, because the stream is moved with splice(2) from the tool's
// pipe straight into the socket (no copy through user space), which is a blocking,
// poll-driven loop that must not hold the I/O thread. Over TLS (options.tls) splice
// cannot be used (the bytes must be encrypted in user space): the tool's output is read
// into a buffer and written with SSL_write, same frames, pacing and idle timeout. max_concurrent is small (default 1),
// so threads stay few.
//
// Donor safety: the backup tool is killed (SIGKILL to its process group, then reaped) when
// the client goes away or stalls, and when the donor is a replica its SQL thread is
// restarted afterwards if it was running before and the backup left it stopped.
#ifndef REPLBOOT_CLONE_BACKUP_SERVER_H_
#define REPLBOOT_CLONE_BACKUP_SERVER_H_

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>

#include "replboot/base/flavour.h"
#include "replboot/base/status.h"
#include "replboot/clone/tls.h"

namespace replboot::db {
struct ConnectOptions;
}  // namespace replboot::db

namespace replboot::clone {

namespace net {
class Socket;
class TlsContext;
}  // namespace net

struct ServerOptions {
  boost::asio::ip::tcp::endpoint listen;  // port 0 picks a free one (port() tells which)
  std::string secret;               // shared secret; never logged
  Flavour flavour = Flavour::kMariaDB;
  std::string tool;  // "" = mariabackup / xtrabackup by flavour
  TlsOptions tls;                   // backup.tls*: clients must speak TLS
  std::shared_ptr<const net::TlsContext> tls_context;  // built once from `tls`; null: Start() builds it
  // How the backup tool and the header query reach the local server.
  std::string user;
  std::string password;  // never logged, never on argv
  std::string socket;
  std::string host;  // used when socket is empty
  int64_t port = 3306;
  int64_t max_concurrent = 1;
  int64_t bandwidth_limit = 0;  // bytes/s, 0 = unlimited
  int64_t parallel = 1;
  std::string work_dir = "/tmp";  // private per-backup dirs (option file, --target-dir) go here
  std::chrono::milliseconds handshake_timeout{10'000};
  std::chrono::milliseconds idle_timeout{300'000};  // no byte from the tool or to the client
  // Called (on the session's thread) after each backup that was sent whole, e.g. to feed
  // the node's /metrics.
  std::function<void()> on_backup_served;
  // What a probe reports as the server version; empty (the default) asks the local server
  // (SELECT VERSION()). A seam for tests without mysqld.
  std::function<Result<std::string>()> probe_server_version;
};

std::string DefaultTool(Flavour flavour);  // "mariabackup" / "xtrabackup"

class BackupServer {
 public:
  BackupServer(boost::asio::io_context& io, ServerOptions options);
  ~BackupServer();  // Stop()
  BackupServer(const BackupServer&) = delete;
  BackupServer& operator=(const BackupServer&) = delete;

  // Binds and listens on options.listen and starts accepting on the io_context.
  Status Start();
  // Stops accepting, kills running backups and joins their threads.
  void Stop();

  uint16_t port() const { return port_; }
  uint64_t backups_served() const { return backups_served_.load(); }
  uint64_t probes_answered() const { return probes_answered_.load(); }
  int active_backups() const { return active_.load(); }

 private:
  struct Session;
  boost::asio::awaitable<void> AcceptLoop();
  void RunSession(int fd);
  void AnswerProbe(net::Socket& sock);
  db::ConnectOptions ConnectOptions() const;
  void ReapFinishedSessions();

  boost::asio::io_context& io_;
  ServerOptions options_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::shared_ptr<const net::TlsContext> tls_;  // set by Start() when options.tls.enabled
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::stop_source stop_source_;  // requested by Stop(): sessions' sockets give up at once
  std::atomic<int> active_{0};
  std::atomic<uint64_t> backups_served_{0};
  std::atomic<uint64_t> probes_answered_{0};
  std::mutex sessions_mu_;
  struct SessionThread {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::list<SessionThread> sessions_;
};

}  // namespace replboot::clone

#endif  // REPLBOOT_CLONE_BACKUP_SERVER_H_
