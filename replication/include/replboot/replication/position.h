// The replication position a clone carries, parsed from the backup tool's metadata files
// (see shared/reference/xbstream-and-backup.md §2.3, §2.4):
//
//   file                          written by                   holds
//   xtrabackup_binlog_info        mariabackup ≤10.x, PXB 8.x   the donor's own binlog position +
//   GTID mariadb_backup_binlog_info    mariabackup 11.x             (same) xtrabackup_slave_info
//   mariabackup ≤10.x, PXB 8.x   the donor's position in ITS source mariadb_backup_slave_info
//   mariabackup 11.x             (same; only with --slave-info)
//
// The files are parsed, never executed: the statements replboot runs are generated from the
// values (statements.h), so a file cannot smuggle SQL in.
#ifndef REPLBOOT_REPLICATION_POSITION_H_
#define REPLBOOT_REPLICATION_POSITION_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "replboot/base/flavour.h"
#include "replboot/base/status.h"

namespace replboot::replication {

struct Position {
  // GTID state to start from; empty when the file carries none. MariaDB: a comma list of
  // domain-server-seq ("0-1-100,1-2-50"); MySQL: a GTID set ("uuid:1-5:7,uuid2:1-3").
  // Normalised: no whitespace or newlines.
  std::string gtid;
  // Binlog coordinates in the source; empty file when the file carries none (a GTID-only
  // slave_info). Used when there is no GTID.
  std::string log_file;
  uint64_t log_pos = 0;
  std::string origin;  // the file it came from, for logs and the intent record

  bool HasGtid() const { return !gtid.empty(); }
  bool HasFilePos() const { return !log_file.empty(); }
  bool operator==(const Position&) const = default;
};

// Parses xtrabackup_binlog_info / mariadb_backup_binlog_info. Accepts `file\tpos`,
// `file\tpos\tgtid`, an empty third field, `[]` as "no GTID", the multi-line SST form (earlier
// lines `name\tsize\t[]`, the last line is the position) and a MySQL GTID set continued over
// several lines after a trailing comma. `origin` names the file in errors, which are
// kCorruption "<origin>:<line>: <what>".
Result<Position> ParseBinlogInfo(std::string_view content, std::string_view origin,
                                 Flavour flavour);

// Parses xtrabackup_slave_info / mariadb_backup_slave_info: `SET GLOBAL gtid_slave_pos = '…';`,
// `SET GLOBAL gtid_purged='…';`, `CHANGE MASTER TO master_use_gtid = slave_pos;`,
// `CHANGE MASTER TO MASTER_AUTO_POSITION=1;`, `CHANGE REPLICATION SOURCE TO
// SOURCE_AUTO_POSITION=1;` and the file/pos forms `CHANGE MASTER TO MASTER_LOG_FILE='…',
// MASTER_LOG_POS=…;` / `CHANGE REPLICATION SOURCE TO SOURCE_LOG_FILE='…', SOURCE_LOG_POS=…;`. A
// named connection or channel other than '' is refused (replboot replicates one source).
Result<Position> ParseSlaveInfo(std::string_view content, std::string_view origin, Flavour flavour);

// Validates a GTID position of the flavour (empty is valid) and returns it normalised.
// kInvalidArgument naming the bad element.
Result<std::string> NormalizeGtid(std::string_view gtid, Flavour flavour);

// The position to replicate from in an unpacked clone at `datadir`. A clone of a replica
// carries a slave_info (the position in the primary, which is what a new replica needs);
// a clone of the primary only a binlog_info. Both the 10.x and the 11.x file names are
// looked for. kNotFound when neither file is there (binlog off on the donor).
Result<Position> ReadClonePosition(const std::string& datadir, Flavour flavour);

}  // namespace replboot::replication

#endif  // REPLBOOT_REPLICATION_POSITION_H_
