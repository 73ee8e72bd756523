// What `replboot run` adds around mysqld once the modules are wired together:
//
//   on_start                   api/: the HTTP health server (/status shows the
//                              clone's progress; /health says mysqld is not up yet);
//                              clone/: the backup server every node runs, from the first
//                              second (probes say "no data yet" / "not ready" until they
//                              are not), for a lost primary's survey and the next replica
//   prepare_datadir (replica)  clone_step.h: discover a donor, clone, commit
//   recover_primary (primary)  primary_recovery.h: ask the peers, clone this cluster's most
//                              advanced one, or initialize (/status "bootstrap")
//   after_ready                a recovered primary's promotion (primary_recovery.h) first;
//                              replication/: users + heartbeat (primary) or CHANGE MASTER at
//                              most once (replica)
//                              archive.schedule: the backup scheduler (backup_scheduler.h),
//                              on every node, from the first time mysqld is ready
//                              archive.binlog: the live binlog archiver
//                              (binlog_archiver_wiring.h), on every node, likewise
//   supervise (replica)        recovery_watcher.h: failure classes, the GTID comparison with
//                              the primary, and the guarded automatic re-clone (the clone then
//                              runs as prepare_datadir again, replacing the data)
//
// The services outlive the hook that starts them: they run on threads of their own until
// Stop(), which `run` calls once the supervisor returned (mysqld has ended), so that
// readiness turns 503 while mysqld shuts down instead of vanishing first.
#ifndef REPLBOOT_DAEMON_NODE_SERVICES_H_
#define REPLBOOT_DAEMON_NODE_SERVICES_H_

#include <boost/asio/io_context.hpp>
#include <memory>
#include <thread>

#include "replboot/base/status.h"
#include "replboot/clone/clone.h"
#include "replboot/daemon/bootstrap.h"
#include "replboot/daemon/recovery_watcher.h"

namespace replboot::clone {
class BackupServer;
}
namespace replboot::api {
class Server;
}

namespace replboot::daemon {

class BackupScheduler;
class LiveBinlogArchiver;

class NodeServices {
 public:
  NodeServices();
  ~NodeServices();  // Stop()
  NodeServices(const NodeServices&) = delete;
  NodeServices& operator=(const NodeServices&) = delete;

  // The hooks for RunNode(); they keep a pointer to this object.
  BootstrapHooks Hooks();
  // Stops the backup server (killing a running backup) and the health server. Idempotent.
  void Stop();

 private:
  Status OnStart(NodeContext& ctx);
  Status StartBackupServer(NodeContext& ctx);
  Status PrepareDatadir(NodeContext& ctx);
  Result<bool> RecoverPrimaryDatadir(NodeContext& ctx);
  Status AfterReady(NodeContext& ctx);
  void StartBackupScheduler(NodeContext& ctx);
  void StartBinlogArchiver(NodeContext& ctx);
  // This node's own backup server as a client reaches it (the listen address, loopback for a
  // wildcard); an error when it serves none.
  Result<clone::Endpoint> OwnBackupEndpoint(NodeContext& ctx);
  Result<bool> Supervise(NodeContext& ctx);

  std::unique_ptr<api::Server> node_;
  std::unique_ptr<RecoveryWatcher> watcher_;  // a replica's, from its first supervise
  boost::asio::io_context backup_io_;
  std::unique_ptr<clone::BackupServer> backup_server_;
  std::thread backup_thread_;
  std::unique_ptr<BackupScheduler> scheduler_;  // archive.schedule, from the first after_ready
  std::unique_ptr<LiveBinlogArchiver> binlog_archiver_;  // archive.binlog, likewise
  bool backup_disabled_ = false;  // no backup.secret: said once
};

}  // namespace replboot::daemon

#endif  // REPLBOOT_DAEMON_NODE_SERVICES_H_
