// BackupServer: the donor side of a clone, run on every node (`[backup] listen`).
//
// Per client: authenticate (protocol.h); answer a probe with the donor's facts and close
// (no backup tool is started for it); otherwise join a backup run (below), or refuse with
// `busy` past max_concurrent runs; each receiver of a run gets its stream header, the backup
// tool's stdout (`mariabackup --backup --stream=xbstream --slave-info`, or `xtrabackup` for
// MySQL, run with the backup user's credentials in a 0600 option file) in tagged DATA frames
// and a tagged trailer.
//
// Fan-out (issue 12): several new replicas that start together share one backup. The first
// backup request opens a run and waits fanout_window for more; every request that arrives
// meanwhile joins it (up to fanout_max_receivers); then ONE tool run starts and every chunk
// it writes goes to every receiver, each over its own authenticated session (own stream key,
// own frame counter, own HEADER and TRAILER: the replica's side is unchanged). A slow or
// failing receiver is dropped past a bounded buffer and a grace (fanout.h) and retries on its
// own; the tool is killed only when no receiver is left. A run counts once against
// max_concurrent, from the end of its window to the end of its tool; a request that arrives
// while max_concurrent runs stream is answered busy (as before), and discovery looks for
// another donor or retries: holding it until the next run would hold a connection for a
// whole clone with nothing on the wire, past the replica's idle timeout. A probe during the
// window says "not busy", so the replicas that start together all pick this donor.
//
// Admission before authentication: a stranger must not be able to hold the donor's threads
// or memory. At most max_unauthenticated connections (and max_unauthenticated_per_address
// from one address) may be authenticating at once; any further one is closed at once and
// counted (connections_refused(), on_connection_refused), its refusal logged once per
// burst, not once per connection. A handshake has one deadline, handshake_timeout from the
// accept, however slowly its bytes trickle in.
//
// An admitted connection first waits on the io_context, costing a socket and a timer but
// no thread, until the client's first message is complete in the kernel's receive buffer:
// the whole HELLO frame (plaintext) or the whole first TLS record (its 5-byte header gives
// the length). Nothing is read: the handshake reads the same bytes. A connection that sends
// nothing, or part of a message, is closed at its deadline by that timer. Only then does it
// go to one of the handshake_threads (a fixed pool, never a thread per connection), and at
// most half of them (at least one) serve connections of one address at once: a client
// that sends HELLO and then stalls holds a thread until its deadline, so one address must
// not be able to hold them all. A connection whose address (or the pool) is full waits on
// the io_context, still under its deadline. The accept loop (an Asio coroutine on the
// caller's io_context) survives accept errors (EMFILE...) and thread creation failing,
// logging them with a backoff.
//
// The acceptor, the refusal timer and every connection still waiting for its first message
// live on one strand of the caller's io_context; Stop() closes them on that strand, so it
// may be called from any thread (from a handler of the io_context, without waiting for
// the strand: the server must then outlive that handler's return, or the io_context must
// be stopped, as `replboot serve-backup` does).
//
// Threads: the caller's io_context thread(s), handshake_threads, one per receiver (its
// sender: blocking, poll-driven writes that must not hold the I/O thread; through SSL_write
// over TLS) and one per run (its producer: the join window, the header query, the tool's
// stdout and stderr, pacing). At most max_concurrent runs stream (the busy check comes first).
//
// Donor safety: the backup tool is killed (SIGKILL to its process group, then reaped) when
// no receiver is left (each went away, stalled or was dropped), and when the donor is a
// replica its SQL thread is restarted afterwards if it was running before and the backup
// left it stopped.
#ifndef REPLBOOT_CLONE_BACKUP_SERVER_H_
#define REPLBOOT_CLONE_BACKUP_SERVER_H_

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "replboot/base/flavour.h"
#include "replboot/base/process.h"
#include "replboot/base/status.h"
#include "replboot/clone/protocol.h"
#include "replboot/clone/tls.h"

namespace replboot::db {
struct ConnectOptions;
}  // namespace replboot::db

namespace replboot::clone {

namespace net {
class Socket;
class TlsContext;
}  // namespace net
namespace fanout {
class Run;
}  // namespace fanout
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
  // The tool's priorities (process::SpawnOptions): below the server it copies.
  // A receiver must take each DATA frame within kFrameSendSlack plus the frame's size at this
  // rate (bytes/s; 0 = only idle_timeout bounds it): one that reads a trickle cannot hold the
  // donor's backup slot for long.
  int64_t min_send_rate_bytes = 256 << 10;
  int tool_nice = 10;
  process::SpawnOptions::IoPriority tool_io_priority =
      process::SpawnOptions::IoPriority::kBestEffortLowest;
  std::string work_dir = "/tmp";  // private per-backup dirs (option file, --target-dir) go here
  std::chrono::milliseconds handshake_timeout{10'000};
  std::chrono::milliseconds idle_timeout{300'000};  // no byte from the tool or to the client
  // Called (on the receiver's thread) after each backup that was sent whole, e.g. to feed
  // the node's /metrics.
  std::function<void()> on_backup_served;
  // Fan-out (see above): how long the first request of a run waits for others (0: every
  // request starts its own run at once), the receivers of one run at most, each one's queue
  // of the tool's output at most (fanout.h: a run holds about this plus 2 MiB per receiver
  // and 5 MiB), and how long a full queue may hold the others back before its receiver is
  // dropped.
  std::chrono::milliseconds fanout_window{5'000};
  int64_t fanout_max_receivers = 8;
  int64_t fanout_buffer_bytes = 8 << 20;
  std::chrono::milliseconds fanout_grace{5'000};
  std::chrono::milliseconds fanout_slow_window{10'000};
  // Resume (protocol.h, "Why resume"; fanout.h, "Resume"): how long a run keeps a receiver
  // that went away (0: never), the spool's disk use at most, and where the spool's private
  // dir goes ("" = next to `datadir`, else work_dir). At most max_resume_spools runs hold a
  // spool at once.
  std::chrono::milliseconds resume_window{180'000};
  int64_t resume_spool_bytes = int64_t{1024} << 20;
  std::string resume_spool_dir;
  int64_t max_resume_spools = 2;
  // Admission before authentication (see above). One address may hold a quarter of the
  // connections and half of the handshake threads: probes from the other peers always
  // find room.
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
  // With a datadir, a probe reports has_data from the disk, not from the server: a node
  // whose server is down or refuses the backup user still says it holds data (a primary
  // that lost its volume must never take it for empty), and a node with an empty datadir
  // (cloning, or a primary asking its peers) answers at once that it has none and serves
  // no backup.
  std::string datadir;
  std::string role;
  // How the server names itself in every CHALLENGE (protocol.h, "Why a transcript"): a
  // replica that expects another ordinal refuses it. "" and none for a node without an
  // identity (a test server): then only clients that expect no ordinal accept it.
  std::string node_name;
  std::optional<int64_t> node_ordinal;
  // The GTID state a probe reports (binlog_state, current_pos as Dialect::GtidStateQuery);
  // with probe_server_version set and this empty, no GTID state is reported (has_data
  // false). Without either seam both come from the local server in one session.
  std::function<Result<std::pair<std::string, std::string>>()> probe_gtid_state;
  // Whether this node could be a donor now, for probes (ProbeInfo::ready, diverged): the
  // daemon's readiness and its recovery watcher's divergence verdict. Unset: ready whenever
  // the local server answers (`replboot serve-backup`, tests).
  struct Readiness {
    bool ready = true;
    std::string reason;  // why not, in words
    bool diverged = false;
  };
  std::function<Readiness()> readiness;
  // The stream header of a run; unset (the default) asks the local server (version, datadir
  // estimate) and the tool (--version), and watches the donor's replication threads. A seam
  // for tests without mysqld.
  std::function<Result<StreamHeader>()> stream_header;
  // Compression on the wire (protocol.h): the CPUs this donor may use (0: its affinity). A
  // run is granted compression only when every receiver of it asked for some (a shared run
  // compresses once, for all of them) and the backup tool's --parallel leaves a CPU free
  // (parallel < cpus): the producer thread compresses. The level is the lowest asked, at most
  // kMaxGrantedLevel; `auto` (every receiver asked auto) picks it per window
  // (wire_compression.h).
  int64_t cpus = 0;
};

// One receiver of a backup run, for the donor's /status.
struct BackupReceiverStatus {
  uint64_t run = 0;
  std::string name;  // the name it gave in HELLO (e.g. mysql-3), "" when none
  std::string peer;  // address:port
  // "joining" (the run's window is open), "streaming", "done" (sent whole), "dropped" (held
  // the others back: `reason`), "gone" (left or failed on its own: `reason`)
  std::string state;
  uint64_t bytes_sent = 0;       // stream bytes
  uint64_t wire_bytes_sent = 0;  // what they took on the wire (compressed, when granted)
  uint64_t queued_bytes = 0;  // the tool's output waiting for it
  std::string asked;          // the compression its HELLO asked ("off", "zstd:3", "auto")
  std::string compression;    // what its run granted ("off", "zstd:1", "auto:3"; "" before)
  std::string reason;
};

// What the donor is serving, for /status and /metrics.
struct BackupActivity {
  uint64_t runs_started = 0;       // backup tool runs (one per shared run)
  uint64_t backups_served = 0;     // receivers that got a whole stream
  uint64_t receivers_dropped = 0;  // dropped for holding the others back
  uint64_t stream_bytes_sent = 0;  // the stream's bytes sent to receivers, every run together
  uint64_t wire_bytes_sent = 0;    // the DATA/ZDATA payload bytes that carried them
  // Resume: receivers kept after they went away, resumed streams, the bytes sent again to
  // them (from a frame before what they had been sent), the spools' disk use now.
  uint64_t receivers_detached = 0;
  uint64_t resumes = 0;
  uint64_t resent_bytes = 0;
  uint64_t spool_bytes = 0;
  int64_t resume_window_seconds = 0;
  std::vector<BackupReceiverStatus> receivers;  // those of the runs in progress
  std::vector<BackupReceiverStatus> ended;      // the last few dropped or gone, newest last
};

// The deadline for writing one DATA frame of `bytes` to a receiver (min_send_rate_bytes).
inline constexpr std::chrono::milliseconds kFrameSendSlack{10'000};
std::chrono::milliseconds FrameSendDeadline(size_t bytes, int64_t min_rate_bytes,
                                            std::chrono::milliseconds idle_timeout);

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
  // Backup tool runs started (several receivers share one when they join its window).
  uint64_t runs_started() const { return runs_started_.load(); }
  BackupActivity Activity() const;
  int active_backups() const { return active_.load(); }
  // Connections closed by admission before authentication, since Start().
  uint64_t connections_refused() const { return connections_refused_.load(); }
  uint64_t accept_errors() const { return accept_errors_.load(); }
  // Handshakes refused for a wrong MAC (a wrong backup.secret), since Start().
  uint64_t authentications_failed() const { return authentications_failed_.load(); }
  int64_t unauthenticated_connections() const {
    std::lock_guard lock(admission_mu_);
    return unauthenticated_;
  }
  // Connections on a handshake thread now (the rest of the unauthenticated ones wait for
  // their first message, or for a thread, on the io_context).
  int64_t threaded_handshakes() const {
    std::lock_guard lock(admission_mu_);
    return threaded_;
  }
  // The most handshake threads one address may hold at once.
  int64_t threads_per_address() const;

 private:
  static constexpr std::chrono::seconds kRefusalLogInterval{10};
  // How long Stop() waits for the I/O thread to close the I/O objects before it takes the
  // io_context for one that no thread runs.
  static constexpr std::chrono::seconds kStopWait{2};
  static constexpr size_t kEndedKept = 8;
  boost::asio::awaitable<void> AcceptLoop();
  void Admit(boost::asio::ip::tcp::socket socket);
  // A connection admitted but not yet on a handshake thread (see above); on strand_.
  struct Pending;
  // Waits (on strand_) until `p`'s first message is complete, then queues it for a thread.
  void AwaitFirstMessage(const std::shared_ptr<Pending>& p);
  // Hands waiting connections whose address has room to the handshake pool; on strand_.
  void StartHandshakes();
  // Closes `p` (its deadline, its peer left, the server stops); on strand_.
  void Drop(const std::shared_ptr<Pending>& p, std::string_view why);
  // Closes the acceptor, the refusal timer and the waiting connections; on strand_.
  void CloseIoObjects();
  void Authenticated(const std::string& address);
  void Refused(const std::string& address, const std::string& why);
  std::optional<AcceptedClient> Handshake(net::Socket& sock,
                                          std::chrono::steady_clock::time_point deadline);
  void StartBackup(net::Socket sock, AcceptedClient client);
  // Starts `fn` on a thread of its own, joined by Stop() or once done; an error when no
  // thread could be started.
  Status SpawnSession(std::function<void()> fn);
  // A backup client: joins the open run (or opens one, or is answered busy), then sends it.
  void ServeReceiver(net::Socket& sock, const AcceptedClient& client);
  // A run's producer: the window, the header, the tool, its output to every receiver.
  void ProduceRun(const std::shared_ptr<fanout::Run>& run);
  struct RunSetup;
  // The run's stream header and the donor-safety baseline (the replication threads before).
  Result<RunSetup> SetUpRun();
  void RemoveRun(const std::shared_ptr<fanout::Run>& run);
  void AnswerProbe(net::Socket& sock, const AcceptedClient& client);
  // A resume request (mode kResume): the run that holds the stream, or ERROR resume_refused.
  void ServeResume(net::Socket& sock, const AcceptedClient& client);
  // Sends receiver `index` of `run` what the run's producer (or its spool) provides, from
  // HEADER to TRAILER; `chain` is the resume chain before the first DATA frame.
  void SendRun(net::Socket& sock, const std::shared_ptr<fanout::Run>& run, size_t index,
               const std::string& peer, ResumeChain chain);
  std::string SpoolParent() const;
  db::ConnectOptions ConnectOptions() const;
  void ReapFinishedSessions();

  boost::asio::io_context& io_;
  ServerOptions options_;
  // Declared before the I/O objects that use it.
  boost::asio::strand<boost::asio::io_context::executor_type> strand_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer refusal_timer_;  // ends a burst of refusals (Refused)
  bool started_ = false;  // Start() succeeded: the accept loop runs on strand_
  // On strand_ only: admitted connections waiting for their first message or a thread,
  // and those of them whose first message is complete, oldest first.
  std::vector<std::shared_ptr<Pending>> pending_;
  std::deque<std::shared_ptr<Pending>> ready_;
  std::shared_ptr<const net::TlsContext> tls_;  // set by Start() when options.tls.enabled
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::stop_source stop_source_;  // requested by Stop(): sessions' sockets give up at once
  std::atomic<int> active_{0};
  std::atomic<uint64_t> backups_served_{0};
  std::atomic<uint64_t> stream_bytes_sent_{0};
  std::atomic<uint64_t> wire_bytes_sent_{0};
  std::atomic<uint64_t> runs_started_{0};
  std::atomic<uint64_t> receivers_dropped_{0};
  // Resume: spools held now (fanout::Limits::spools), and the counts of runs that ended.
  std::shared_ptr<std::atomic<int>> spools_ = std::make_shared<std::atomic<int>>(0);
  uint64_t ended_detached_ = 0;  // under runs_mu_
  uint64_t ended_resumes_ = 0;
  uint64_t ended_resent_ = 0;
  // Runs: the one whose window is open (joinable), and those in progress (for Activity()).
  mutable std::mutex runs_mu_;
  std::shared_ptr<fanout::Run> joinable_;
  std::vector<std::shared_ptr<fanout::Run>> runs_;
  uint64_t next_run_id_ = 1;
  std::deque<BackupReceiverStatus> ended_;  // bounded: kEndedKept
  std::atomic<uint64_t> probes_answered_{0};
  std::atomic<uint64_t> connections_refused_{0};
  std::atomic<uint64_t> accept_errors_{0};
  std::atomic<uint64_t> authentications_failed_{0};
  std::atomic<uint64_t> refused_in_burst_{0};
  mutable std::mutex admission_mu_;
  int64_t unauthenticated_ = 0;
  std::map<std::string, int64_t> per_address_;
  // Connections on a handshake thread, overall and per address (threads_per_address()).
  int64_t threaded_ = 0;
  std::map<std::string, int64_t> threaded_per_address_;
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
