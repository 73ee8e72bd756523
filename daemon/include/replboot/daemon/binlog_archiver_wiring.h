// The live binlog archiver of `replboot run` (archive.binlog = true), wired from the node's
// settings: BinlogArchiver (binlog_archiver.h: the lease, the cutter, the lag) with its seams
// filled by real parts.
//
//   seam                 on the primary (ordinal 0)        on a replica
//   the binlog stream    root over mysql.socket            replication.user to
//                                                          <prefix>-0.<service>:mysql.port (TLS
//                                                          as replication.tls), the account
//                                                          that already holds REPLICATION SLAVE
//   @@gtid_binlog_state  the same connection's account     the same
//   the history          SELECT id FROM replboot.history, root over the local socket: the row is
//                        the new history's first transaction, so a replica has it as soon as it
//                        replicates anything written after the restore
//   segments, lease      the store of [archive] (archive/binlog_archive.h, binlog-lease/)
//   where a chain starts the history's newest segment; else the newest complete backup of this
//                        history; else, on a history a restore began, its branch point (the
//                        restored primary's binlog starts there); else the primary now
//   a gap's backup       TakeBackup from this node's own backup server, at most one at a time
//   readiness            this node's /ready (the poller's snapshot)
//
// The reader's server_id is kReaderServerIdBase + this node's server_id (mod 2^32, never 0):
// every node's own id is node.server_id_offset + ordinal, far below, so the reader never
// shares an id with a replica (the primary would drop the replica's IO thread).
// The cluster id comes from the datadir (clone/cluster_id.h): every segment is bound to it.
#ifndef REPLBOOT_DAEMON_BINLOG_ARCHIVER_WIRING_H_
#define REPLBOOT_DAEMON_BINLOG_ARCHIVER_WIRING_H_

#include <cstdint>
#include <memory>
#include <optional>

#include "replboot/api/server.h"
#include "replboot/base/status.h"
#include "replboot/clone/clone.h"
#include "replboot/daemon/node_settings.h"

namespace replboot::daemon {

inline constexpr uint32_t kReaderServerIdBase = 2'000'000'000;
uint32_t BinlogReaderServerId(uint32_t node_server_id);

class LiveBinlogArchiver {
 public:
  // Opens the store, reads the cluster id and starts the archiver's thread. `node` must
  // outlive this. `backup_from`: this node's backup server (nullopt: it serves none, so a gap
  // is reported without a backup). kInvalidArgument when the store cannot be opened or the
  // datadir has no cluster id.
  static Result<std::unique_ptr<LiveBinlogArchiver>> Start(const NodeSettings& settings,
                                                           api::Server& node,
                                                           std::optional<clone::Endpoint> backup_from);
  ~LiveBinlogArchiver();  // Stop()
  LiveBinlogArchiver(const LiveBinlogArchiver&) = delete;
  LiveBinlogArchiver& operator=(const LiveBinlogArchiver&) = delete;

  // Seals what is whole, stops, and waits for a gap's backup to end.
  void Stop();

  struct Parts;

 private:
  explicit LiveBinlogArchiver(std::unique_ptr<Parts> parts);
  std::unique_ptr<Parts> parts_;
};

}  // namespace replboot::daemon

#endif  // REPLBOOT_DAEMON_BINLOG_ARCHIVER_WIRING_H_
