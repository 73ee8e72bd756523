// BackupServer: the donor side of a clone, run on every node (`[backup] listen`).
//
// Per client: authenticate (protocol.h); answer a probe with the donor's facts and close
// (no backup tool is started for it); otherwise refuse with `busy` past max_concurrent, send the
// stream header, run the backup tool (`mariabackup --backup --stream=xbstream
// --slave-info`, or `xtrabackup` for MySQL) with the backup user's credentials in a 0600
// option file, forward its stdout to the client in tagged DATA frames and end with a
// tagged trailer.
//
// Admission before authentication: a stranger must not be able to hold the donor's threads
// or memory. At most max_unauthenticated connections (and max_unauthenticated_per_address
// from one address) may be authenticating at once; any further one is closed at once and
// counted (connections_refused(), on_connection_refused), its refusal logged once per
// burst, not once per connection. A handshake has one deadline, handshake_timeout from the
// accept, however slowly its bytes trickle in. Handshakes run on a fixed pool of
// handshake_threads threads, never a thread per connection; the accept loop (an Asio
// coroutine on the caller's io_context) survives accept errors (EMFILE...) and thread
// creation failing, logging them with a backoff.
//
// Threads: the caller's io_context thread(s), handshake_threads, and one per running backup
// (at most max_concurrent: the busy check comes first), which moves the stream in a
// blocking, poll-driven loop that must not hold the I/O thread. Over TLS (options.tls) the
// same loop writes through SSL_write.
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
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <stop_token>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

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
struct AcceptedClient;

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
  // Admission before authentication (see above).
  int64_t max_unauthenticated = 32;
  int64_t max_unauthenticated_per_address = 8;
  int64_t handshake_threads = 4;
  // Called (on the I/O thread) for each connection closed by admission, e.g. for /metrics.
  std::function<void()> on_connection_refused;
  // What a probe reports as the server version; empty (the default) asks the local server
  // (SELECT VERSION()). A seam for tests without mysqld.
  std::function<Result<std::string>()> probe_server_version;
  // The node's place in the cluster, for probes and the stream HEADER: its datadir (where
  // the cluster id file is, cluster_id.h; "" = no id) and its role ("primary" | "replica").
  std::string datadir;
  std::string role;
  // The GTID state a probe reports (binlog_state, current_pos as Dialect::GtidStateQuery);
  // with probe_server_version set and this empty, no GTID state is reported (has_data
  // false). Without either seam both come from the local server in one session.
  std::function<Result<std::pair<std::string, std::string>>()> probe_gtid_state;
};

std::string DefaultTool(Flavour flavour);  // "mariabackup" / "xtrabackup"

// The bytes a backup of `datadir` streams, about: the tablespaces and table files the tools
// copy (ibdata*, undo*, aria_log*, mysql.ibd at the top; every database directory's files
// but #sql temporaries), not binary or relay logs (nor any file whose path starts with one
// of `excluded_prefixes`, e.g. @@log_bin_basename), the redo log, temporary tablespaces,
// error logs or pid files. The HEADER's estimated_bytes (plus the redo log's checkpoint age,
// the part of the redo log the tool copies) is this, for progress and the replica's
// free-space pre-flight.
uint64_t EstimateBackupBytes(const std::string& datadir,
                             const std::vector<std::string>& excluded_prefixes = {});

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
  // Connections closed by admission before authentication, since Start().
  uint64_t connections_refused() const { return connections_refused_.load(); }
  uint64_t accept_errors() const { return accept_errors_.load(); }
  int64_t unauthenticated_connections() const {
    std::lock_guard lock(admission_mu_);
    return unauthenticated_;
  }

 private:
  static constexpr std::chrono::seconds kRefusalLogInterval{10};
  boost::asio::awaitable<void> AcceptLoop();
  void Admit(boost::asio::ip::tcp::socket socket);
  void Authenticated(const std::string& address);
  void Refused(const std::string& address, const std::string& why);
  std::optional<AcceptedClient> Handshake(net::Socket& sock,
                                          std::chrono::steady_clock::time_point deadline);
  void StartBackup(net::Socket sock, AcceptedClient client);
  void RunBackup(net::Socket& sock, const AcceptedClient& client);
  void AnswerProbe(net::Socket& sock, const AcceptedClient& client);
  db::ConnectOptions ConnectOptions() const;
  void ReapFinishedSessions();

  boost::asio::io_context& io_;
  ServerOptions options_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer refusal_timer_;  // ends a burst of refusals (Refused)
  std::shared_ptr<const net::TlsContext> tls_;  // set by Start() when options.tls.enabled
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::stop_source stop_source_;  // requested by Stop(): sessions' sockets give up at once
  std::atomic<int> active_{0};
  std::atomic<uint64_t> backups_served_{0};
  std::atomic<uint64_t> probes_answered_{0};
  std::atomic<uint64_t> connections_refused_{0};
  std::atomic<uint64_t> accept_errors_{0};
  std::atomic<uint64_t> refused_in_burst_{0};
  mutable std::mutex admission_mu_;
  int64_t unauthenticated_ = 0;
  std::map<std::string, int64_t> per_address_;
  std::unique_ptr<boost::asio::thread_pool> handshake_pool_;
  std::mutex sessions_mu_;
  struct SessionThread {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::list<SessionThread> sessions_;
};

}  // namespace replboot::clone

#endif  // REPLBOOT_CLONE_BACKUP_SERVER_H_
