// The node's HTTP API (what Patroni's api.py is to Patroni): the health server (Boost.Beast,
// coroutines), answering from the node's first second, the 1 s state poller and, on the
// primary, the heartbeat writer. Typed options only: the daemon maps its configuration.
//
// Threads: the Asio I/O thread only parses requests and serves the poller's Snapshot (refreshed
// every poll_interval, never by a request). The poller and the heartbeat each have a thread and
// a db::Session of their own, so no request load delays a heartbeat; /wait runs on a pool of
// max_concurrent_waits threads, each wait on a connection of its own, bounded by the request's
// timeout and killed (from one more thread and session) when its client leaves or the deadline
// passes.
//
// Endpoints (see replication/health.h for the decisions): GET /health /ready /primary
// /replica[?lag=N] (text, 200 or 503 with the reason), /status (JSON), /metrics (Prometheus
// text), /wait?gtid=G&timeout=S (200 reached, 504 timed out, 400 bad input, 503 server
// unavailable).
//
// Lifetime: Start() (or StartInBackground()) when the node starts, before its datadir is
// initialized or cloned; StartHeartbeat() and MarkSetUp() once users and replication are set
// up; at shutdown, once mysqld has ended (readiness turns 503 while it shuts down), Stop(), then
// destroy the Server (a /wait in flight ended when mysqld closed its connection).
#ifndef REPLBOOT_API_SERVER_H_
#define REPLBOOT_API_SERVER_H_

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "replboot/base/status.h"
#include "replboot/db/client.h"
#include "replboot/replication/health.h"

namespace replboot::api {

using replication::CloneProgress;
using replication::NodeInfo;
using replication::RecoveryState;
using replication::Snapshot;

struct ServerOptions {
  NodeInfo info;
  db::ConnectOptions local;             // root over the local socket
  std::string listen = "0.0.0.0:8008";  // host:port, [v6]:port; port 0 picks a free one
  double max_lag = 30;                  // seconds, for /ready and /replica without ?lag=
  // The poller collects the Snapshot that every request is answered from this often.
  std::chrono::milliseconds poll_interval{1000};
  bool write_heartbeat = false;       // the primary writes replboot.heartbeat every poll_interval
  std::chrono::seconds max_wait{60};  // the largest /wait?timeout= (beyond: 400)
  int max_concurrent_waits = 4;       // more are refused with 503 (each holds a connection)
  // Open HTTP connections, overall and from one address; further ones are closed at once
  // (replboot_http_connections_refused_total). The per-address cap is what keeps one client
  // holding idle connections from failing the kubelet's probes.
  int max_connections = 64;
  int max_connections_per_address = 16;
  // Reading a whole request (from the end of the previous answer on a kept-alive
  // connection), and writing its answer, must end within this, however slowly the bytes
  // come: an idle or trickling connection is closed then.
  std::chrono::milliseconds request_timeout{10'000};
  bool set_up = true;  // false: /ready, /primary, /replica say "setting up" until MarkSetUp()
};

class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();  // Stop()s and joins its threads
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds the listener (the error names the address) and starts the accept loop, the poller
  // and the heartbeat on `io`, which the caller runs. The Server must be destroyed before `io`.
  Status Start(boost::asio::io_context& io);
  // Start() on an io_context of its own, run by a thread of its own.
  Status StartInBackground();
  // Starts the primary's heartbeat writer if Start() did not (options.write_heartbeat false):
  // `replboot run` starts the server before the heartbeat table exists. Idempotent.
  void StartHeartbeat();
  // Users and replication are set up: readiness may turn 200 (see ServerOptions::set_up).
  void MarkSetUp();
  // The opposite, while a replica re-clones itself and sets replication up again.
  void MarkSettingUp();
  // Stops accepting, stops polling and writing heartbeats. Idempotent, does not block.
  void Stop();

  unsigned short port() const;  // the bound port (after Start)
  CloneProgress& clone_progress();
  // A replica's day-two state (divergence, re-clone), published by the daemon's watcher.
  RecoveryState& recovery();
  // The primary's decision after asking its peers (daemon/primary_recovery.h), for /status.
  replication::BootstrapStatus& bootstrap_status();
  // Scheduled backups (daemon/backup_scheduler.h), for /status "archive" and /metrics. A
  // restore test run here records its time with
  // archive_status().Update([&](auto& v) { v.last_restore_test_at = unix_seconds; }).
  replication::ArchiveStatus& archive_status();
  // The binlog archiver's view (daemon/binlog_archiver.h): /status "binlog_archive",
  // /metrics replboot_binlog_archive_*.
  replication::BinlogArchiveStatus& binlog_archive_status();
  void CountBackupServed();
  void CountBackupConnectionRefused();  // the backup server closed one before authentication
  // Where /status and /metrics read the donor side's runs and receivers from (the backup
  // server, asked per request: it is a few counters and a short list under a lock). An empty
  // function removes it; the caller removes it before the source goes away.
  void SetBackupSource(std::function<replication::BackupServing()> source);
  // An error to show in /status and the readiness reason (e.g. replication did not start);
  // "" clears it.
  void SetLastError(std::string error);
  // Adds to the last error instead of replacing it ("a; b").
  void AddError(const std::string& error);
  Snapshot Current() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace replboot::api

#endif  // REPLBOOT_API_SERVER_H_
