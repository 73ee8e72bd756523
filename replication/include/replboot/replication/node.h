// The node's agent: the HTTP health server (Boost.Beast, coroutines), from the node's first second,
// the 1 s state poller and, on the primary, the heartbeat writer.
//
// Threads: the Asio I/O thread only parses requests and serves the cached Snapshot; every SQL
// call runs on the Node's own thread pools (one for the poller and heartbeat, one for /wait),
// each with its own db::Session, never shared between threads at the same time.
//
// Endpoints (see health.h for the decisions): GET /health /ready /primary /replica[?lag=N]
// (text, 200 or 503 with the reason), /status (JSON), /metrics (Prometheus text),
// /wait?gtid=G&timeout=S (200 reached, 504 timed out, 400 bad input, 503 server unavailable).
//
// Wiring in `replboot run` (daemon/node_services.cc): StartNodeServer() when the node starts,
// before its datadir is initialized or cloned; FinishReplicationSetup() once mysqld is ready;
// at shutdown, once mysqld has ended (readiness turns 503 while it shuts down), node->Stop(),
// then the Node is destroyed (a /wait in flight ended when mysqld closed its connection).
// `replboot replication-agent` (commands.h) does the same against an already running mysqld;
// the integration tests drive it.
#ifndef REPLBOOT_REPLICATION_NODE_H_
#define REPLBOOT_REPLICATION_NODE_H_

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <memory>
#include <string>

#include "replboot/base/status.h"
#include "replboot/conf/config.h"
#include "replboot/conf/identity.h"
#include "replboot/db/client.h"
#include "replboot/replication/health.h"

namespace replboot::replication {

struct NodeOptions {
  NodeInfo info;
  db::ConnectOptions local;             // root over the local socket
  std::string listen = "0.0.0.0:8008";  // host:port, [v6]:port; port 0 picks a free one
  double max_lag = 30;                  // seconds, for /ready and /replica without ?lag=
  std::chrono::milliseconds poll_interval{1000};
  bool write_heartbeat = false;       // the primary writes replboot.heartbeat every poll_interval
  std::chrono::seconds max_wait{60};  // cap on /wait?timeout=
  int max_concurrent_waits = 4;       // more are refused with 503 (each holds a connection)
  bool set_up = true;  // false: /ready, /primary, /replica say "setting up" until MarkSetUp()
};

class Node {
 public:
  explicit Node(NodeOptions options);
  ~Node();  // Stop()s and joins its threads
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // Binds the listener (the error names the address) and starts the accept loop, the poller
  // and the heartbeat on `io`, which the caller runs. The Node must be destroyed before `io`.
  Status Start(boost::asio::io_context& io);
  // Start() on an io_context of its own, run by a thread of its own.
  Status StartInBackground();
  // Starts the primary's heartbeat writer if Start() did not (options.write_heartbeat false):
  // `replboot run` starts the server before the heartbeat table exists. Idempotent.
  void StartHeartbeat();
  // Users and replication are set up: readiness may turn 200 (see NodeOptions::set_up).
  void MarkSetUp();
  // Stops accepting, stops polling and writing heartbeats. Idempotent, does not block.
  void Stop();

  unsigned short port() const;  // the bound port (after Start)
  CloneProgress& clone_progress();
  void CountBackupServed();
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

// The root connection to the local server: mysql.socket, user root, mysql.root_password[_file].
Result<db::ConnectOptions> LocalRootOptions(const conf::Config& config);

NodeOptions NodeOptionsFromConfig(const conf::Config& config, const conf::Identity& identity,
                                  Flavour flavour, const db::ConnectOptions& local);

struct Prepared {
  Status fatal;       // not ok: the node cannot work (primary without its users); stop
  std::string error;  // a replica whose replication did not start: serve, and say why
};

// After mysqld is ready, as root over the socket: on the primary, EnsureUsers (accounts and
// heartbeat schema); on a replica, SetupReplica from the clone's position in the datadir,
// replicating from <prefix>-0.<service>:mysql.port with the replication account.
Prepared PrepareReplication(const conf::Config& config, const conf::Identity& identity,
                            Flavour flavour, const db::ConnectOptions& local);

// `replboot run` in two steps, so that the HTTP server answers from the first second (while
// the datadir is initialized or cloned: /status shows the clone's progress) and replication
// is set up once mysqld is ready:
// StartNodeServer: LocalRootOptions, a Node from the config without heartbeat, started in the
// background, its readiness "setting up" until FinishReplicationSetup: PrepareReplication (its
// fatal error is returned), the replica's setup error as the Node's last error, the primary's
// heartbeat, MarkSetUp(). (`replboot replication-agent` prepares first, then serves.)
Result<std::unique_ptr<Node>> StartNodeServer(const conf::Config& config,
                                              const conf::Identity& identity, Flavour flavour);
Status FinishReplicationSetup(Node& node, const conf::Config& config,
                              const conf::Identity& identity, Flavour flavour);

}  // namespace replboot::replication

#endif  // REPLBOOT_REPLICATION_NODE_H_
